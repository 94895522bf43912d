"""StyleGAN3-T on the CPU: what the first fast frame after plain frames costs (issue 16).

Usage: taskset -c 1 python bench/sg3_first_fast_frame.py
A reduced SG3-T (64 px, channel_base 16384, so Winograd still runs on its wide layers), 1 thread. Prints the
steady fast frame, a plain frame, the first fast frame after set_fast(False) + set_fast(True) (the derived
weights freed, then rebuilt), and the first fast frame after plain frames with the derived weights kept (only
the path flags flipped).
"""
import time

import torch

from bridge.bench.generator import full_config
from bridge.stylegan.generator import Generator


def main() -> None:
    torch.set_num_threads(1)
    config = full_config("stylegan3-t", 64)
    config["synthesis_kwargs"].update(channel_base=16384, channel_max=512)
    generator = Generator.from_config(config, seed=0).eval()
    synthesis = generator.synthesis
    ws = generator.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(0)), None, truncation_psi=0.7)

    def ms() -> float:
        start = time.perf_counter()
        synthesis(ws)
        return (time.perf_counter() - start) * 1000

    def flags(fast: bool) -> None:  # the path switched without set_fast: nothing derived is freed
        synthesis.fast = synthesis.input.fast = fast
        for layer in synthesis.layers():
            layer.fast = fast

    with torch.inference_mode():
        generator.set_fast(True)
        ms(), ms()
        steady = min(ms() for _ in range(3))
        generator.set_fast(False)
        plain = min(ms() for _ in range(2))
        generator.set_fast(True)
        first, second = ms(), ms()
        flags(False)
        ms(), ms()
        flags(True)
        kept, kept_second = ms(), ms()
    print(f"steady fast {steady:.0f} ms | plain {plain:.0f} ms | first fast after set_fast off/on {first:.0f} ms, "
          f"second {second:.0f} ms | first fast after plain frames, derived weights kept {kept:.0f} ms, "
          f"second {kept_second:.0f} ms")


if __name__ == "__main__":
    main()
