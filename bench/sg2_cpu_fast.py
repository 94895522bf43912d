"""StyleGAN2 on the CPU: plain path vs fast path (bridge.stylegan.sg2_cpu) in the same process.

Usage: python bench/sg2_cpu_fast.py THREADS {f|demo} [ROUNDS] [RESOLUTION]
  f     NVIDIA's config-f, random weights (bridge.bench.generator.full_config('stylegan2', RESOLUTION=256))
  demo  the embedded demo network (demo_config(), seed 0), 10 frames per timing
Each round times one plain and one fast synthesis (after a warm-up call each), alternating, so both see the same
load; prints medians of wall time and of this process's CPU time (on a shared machine the CPU time is the
steadier of the two: it leaves out the time other processes held the core), and the fast path's PSNR against
the plain one.
"""
import math
import statistics
import sys
import time

import torch

from bridge.bench.generator import full_config
from bridge.stylegan.generator import Generator, demo_config


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]))
    which = sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    resolution = int(sys.argv[4]) if len(sys.argv) > 4 else 256
    config = full_config("stylegan2", resolution) if which == "f" else demo_config()
    generator = Generator.from_config(config, seed=0)
    frames = 1 if which == "f" else 10
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(0))
    wall, cpu = {False: [], True: []}, {False: [], True: []}
    with torch.no_grad():
        ws = generator.mapping(z, None, truncation_psi=0.7)
        ref = generator.set_fast(False).synthesis(ws)
        got = generator.set_fast(True).synthesis(ws)
        mse = float(((got - ref) ** 2).mean())
        for _ in range(rounds):
            for fast in (False, True):
                generator.set_fast(fast).synthesis(ws)  # warm-up: caches and work buffers
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(frames):
                    generator.synthesis(ws)
                wall[fast].append((time.perf_counter() - start) / frames * 1000)
                cpu[fast].append((time.process_time() - start_cpu) / frames * 1000)
    med = statistics.median
    psnr = math.inf if mse == 0 else 10 * math.log10(4 / mse)
    print(f"{which} threads={torch.get_num_threads()} rounds={rounds} | wall ms: plain {med(wall[False]):.1f} "
          f"fast {med(wall[True]):.1f} = {med(wall[False]) / med(wall[True]):.2f}x | cpu ms: plain "
          f"{med(cpu[False]):.1f} fast {med(cpu[True]):.1f} = {med(cpu[False]) / med(cpu[True]):.2f}x | "
          f"PSNR fast vs plain {psnr:.1f} dB")


if __name__ == "__main__":
    main()
