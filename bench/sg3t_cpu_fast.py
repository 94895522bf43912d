"""StyleGAN3-T 256 px on the CPU: the fast path against the plain path (issue 16's 5x target).

Usage: taskset -c 1 python bench/sg3t_cpu_fast.py [ROUNDS] [--layers]
NVIDIA's full-size SG3-T config at 256 px with random weights (`full_config('stylegan3-t', 256)`), 1 thread,
as the engine runs each path: frame after frame. Each round is a block of 2 plain frames and a block of 4 fast
frames; the first frame of each block is not counted (it follows the other path). Prints every frame, then the
medians and their ratio. --layers adds the fast path's time per layer and in its two big parts (the Winograd
convolution and the banded filtered lrelu), from one more fast frame.
"""
import statistics
import sys
import time

import torch

from bridge.bench.generator import full_config
from bridge.stylegan import sg3, winograd
from bridge.stylegan.generator import Generator


def timed(fn, totals: dict, name: str):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
    return wrapper


def layer_profile(generator, ws) -> None:
    totals: dict[str, float] = {}
    for name, layer in generator.synthesis.named_children():
        if isinstance(layer, sg3.SynthesisLayer):
            layer.register_forward_pre_hook(lambda m, a: setattr(m, "_start", time.perf_counter()))
            layer.register_forward_hook(lambda m, a, o, name=name: totals.__setitem__(
                name, time.perf_counter() - m._start))
    parts: dict[str, float] = {}
    sg3.winograd.conv3x3 = timed(winograd.conv3x3, parts, "winograd conv3x3")
    sg3.filtered_lrelu_fast = timed(sg3.filtered_lrelu_fast, parts, "filtered lrelu")
    start = time.perf_counter()
    generator.synthesis(ws)
    total = time.perf_counter() - start
    for name, seconds in totals.items():
        print(f"  {name:24s} {seconds * 1000:7.0f} ms")
    print("  " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in parts.items()) + f", frame {total * 1000:.0f} ms")


def main() -> None:
    rounds = int(next((a for a in sys.argv[1:] if a.isdigit()), 2))
    torch.set_num_threads(1)
    generator = Generator.from_config(full_config("stylegan3-t", 256), seed=0).eval()
    ws = generator.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(0)), None, truncation_psi=0.7)
    counted: dict[bool, list[float]] = {False: [], True: []}
    with torch.inference_mode():
        for fast, frames in ((False, 2), (True, 4)) * rounds:
            generator.set_fast(fast)
            for i in range(frames):
                start = time.perf_counter()
                generator.synthesis(ws)
                ms = (time.perf_counter() - start) * 1000
                print(f"{'fast' if fast else 'plain'} frame {i}: {ms:.0f} ms", flush=True)
                if i:
                    counted[fast].append(ms)
        plain, fast = (statistics.median(counted[k]) for k in (False, True))
        print(f"plain {plain:.0f} ms, fast {fast:.0f} ms: {plain / fast:.2f}x")
        if "--layers" in sys.argv:
            layer_profile(generator, ws)


if __name__ == "__main__":
    main()
