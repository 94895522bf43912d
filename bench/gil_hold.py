"""Does a synthesis call let other Python threads run? (issue 16: the engine's capture, encode, OSC and tracker
threads share the interpreter with the render thread.)

Usage: python bench/gil_hold.py
A ticker thread sleeps 1 ms in a loop while this thread runs 30 demo syntheses: eager, and compiled (bridge.aot's
package, built first if the cache has none, about a minute) through torch's loader and as the engine runs it
(bridge.aot_runner); prints the ticker's longest gap and tick count. A call that holds the GIL throughout leaves
the ticker one tick per call.
"""
import threading
import time

import torch

from bridge.aot import AotSynthesis
from bridge.stylegan import Generator, demo_config

CALLS = 30


def ticker_gaps(run) -> list[float]:
    """Milliseconds between a 1 ms-sleeping ticker's ticks while ``run`` is called CALLS times here."""
    stop, gaps = threading.Event(), []

    def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append((now - last) * 1000.0)
            last = now

    thread = threading.Thread(target=tick)
    thread.start()
    for _ in range(CALLS):
        run()
    stop.set()
    thread.join()
    return gaps


def main() -> None:
    torch.set_num_threads(1)
    generator = Generator.from_config(demo_config(), seed=0).eval().requires_grad_(False).set_fast(False)
    compiled = AotSynthesis(generator)
    compiled.start()
    if not compiled.wait(timeout=900):
        raise SystemExit(f"compiled synthesis unavailable: {compiled.status}")
    with torch.inference_mode():
        ws = generator.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(0)), None,
                               truncation_psi=0.7)
        loader = torch._inductor.aoti_load_package(str(compiled.path))
        const = generator.synthesis.b4.const.detach()
        runs = {"sleep 30 ms (idle)": lambda: time.sleep(0.03), "eager synthesis": lambda: generator.synthesis(ws),
                "compiled, through torch's loader": lambda: loader(ws, const),
                f"compiled, as the engine runs it ({compiled.runner})": lambda: compiled(ws, "const")}
        for name, run in runs.items():
            start = time.perf_counter()
            gaps = ticker_gaps(run)
            print(f"{name}: {CALLS} calls in {time.perf_counter() - start:.2f} s; ticker: {len(gaps)} ticks, "
                  f"longest gap {max(gaps):.1f} ms")
    compiled.close()


if __name__ == "__main__":
    main()
