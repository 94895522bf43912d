"""StyleGAN2 on the CPU: plain path vs fast path (bridge.stylegan.sg2_cpu) in the same process.

Usage: python bench/sg2_cpu_fast.py THREADS {f|demo} [ROUNDS] [RESOLUTION] [aot] [thread]
  f     NVIDIA's config-f, random weights (bridge.bench.generator.full_config('stylegan2', RESOLUTION=256))
  demo  the embedded demo network (demo_config(), seed 0), 10 frames per timing
  aot   also the synthesis compiled ahead of time as ``vrbridge run`` uses it on the CPU (bridge.aot: built
        first, in a child process, or found in the cache), timed in the same rounds
  thread  run on a second thread, as the engine's render thread does (glibc serves it from another arena)
Each round times one plain and one fast synthesis (after a warm-up call each), alternating, so both see the same
load; prints medians of wall time and of this process's CPU time (on a shared machine the CPU time is the
steadier of the two: it leaves out the time other processes held the core), and the fast path's PSNR against
the plain one.
"""
import math
import statistics
import sys
import threading
import time

import torch

from bridge.bench.generator import full_config
from bridge.stylegan.generator import Generator, demo_config


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]))
    which = sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    resolution = int(sys.argv[4]) if len(sys.argv) > 4 else 256
    with_aot = "aot" in sys.argv[5:]
    if "thread" in sys.argv[5:] and threading.current_thread() is threading.main_thread():
        worker = threading.Thread(target=main)
        worker.start()
        worker.join()
        return
    config = full_config("stylegan2", resolution) if which == "f" else demo_config()
    generator = Generator.from_config(config, seed=0)
    frames = 1 if which == "f" else 10
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(0))
    paths = {"plain": lambda ws: generator.set_fast(False).synthesis(ws),
             "fast": lambda ws: generator.set_fast(True).synthesis(ws)}
    if with_aot:
        compiled = _compiled(generator)
        paths["aot"] = lambda ws: compiled(ws, "const")
    wall, cpu = {name: [] for name in paths}, {name: [] for name in paths}
    with torch.inference_mode():
        ws = generator.mapping(z, None, truncation_psi=0.7)
        ref = generator.set_fast(False).synthesis(ws)
        got = generator.set_fast(True).synthesis(ws)
        mse = float(((got - ref) ** 2).mean())
        for _ in range(rounds):
            for name, run in paths.items():
                run(ws)  # warm-up: caches and work buffers
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(frames):
                    run(ws)
                wall[name].append((time.perf_counter() - start) / frames * 1000)
                cpu[name].append((time.process_time() - start_cpu) / frames * 1000)
        if with_aot:
            mse_aot = float(((paths["aot"](ws) - ref) ** 2).mean())
    med = statistics.median
    psnr = math.inf if mse == 0 else 10 * math.log10(4 / mse)
    print(f"{which} threads={torch.get_num_threads()} rounds={rounds} | wall ms: plain {med(wall['plain']):.1f} "
          f"fast {med(wall['fast']):.1f} = {med(wall['plain']) / med(wall['fast']):.2f}x | cpu ms: plain "
          f"{med(cpu['plain']):.1f} fast {med(cpu['fast']):.1f} = {med(cpu['plain']) / med(cpu['fast']):.2f}x | "
          f"PSNR fast vs plain {psnr:.1f} dB")
    if with_aot:
        psnr_aot = math.inf if mse_aot == 0 else 10 * math.log10(4 / mse_aot)
        print(f"  compiled (aot): wall {med(wall['aot']):.1f} ms = {med(wall['plain']) / med(wall['aot']):.2f}x "
              f"plain | cpu {med(cpu['aot']):.1f} ms = {med(cpu['plain']) / med(cpu['aot']):.2f}x plain | "
              f"PSNR vs plain {psnr_aot:.1f} dB | built in {compiled.build_s} s (None: found in the cache)")


def _compiled(generator):
    """The package vrbridge run would use (bridge.aot): built by the child process or found in the cache."""
    from bridge.aot import AotSynthesis

    compiled = AotSynthesis(generator)
    compiled.start()
    if not compiled.wait(timeout=3600):
        sys.exit(f"compiled synthesis unavailable: {compiled.status}")
    return compiled


if __name__ == "__main__":
    main()
