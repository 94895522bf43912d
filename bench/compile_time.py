"""Cold vs warm torch.compile of the demo synthesis (what ``vrbridge run --compile`` does at start).

Usage: VRBRIDGE_CACHE=DIR python bench/compile_time.py LABEL   (run twice with the same DIR: cold, then warm)
Prints the first call's time (compilation, or loading it from the cache) and eager vs compiled ms per frame.
"""
import statistics
import sys
import time

import torch

from bridge.startup import compile_synthesis
from bridge.stylegan import Generator, demo_config


def per_frame(generator, ws, n: int = 20) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        generator.synthesis(ws)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main(label: str) -> None:
    torch.set_num_threads(2)
    generator = Generator.from_config(demo_config(), seed=0).eval().requires_grad_(False)
    ws = generator.mapping(torch.randn(1, 512), None, truncation_psi=0.7)
    with torch.inference_mode():
        generator.synthesis(ws)
        eager = per_frame(generator, ws)
        compile_synthesis(generator)
        start = time.perf_counter()
        generator.synthesis(ws)
        first = time.perf_counter() - start
        compiled = per_frame(generator, ws)
    print(f"{label}: first call (compile) {first:.1f} s; eager {eager:.1f} ms; compiled {compiled:.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "run")
