"""Where the time goes with overlapping vs serial stages and the compiled synthesis on the CPU (issue 16).

Usage: python bench/engine_overlap_probe.py
The demo, as `vrbridge bench engine` runs it (bridge.bench.engine.run_pipelined, test pattern at 30 fps, 8 s per
schedule), with three engine methods wrapped to time how long the render thread waits for latents, how long the
encode thread holds back for its just-in-time slot, and how old the camera frame is when its encode ends.
Builds the demo's compiled package first if the cache has none (about a minute).
"""
import statistics
import time

from bridge.bench import engine as bench_engine
from bridge.device import plan_run
from bridge.encoder import build_encoder
from bridge.engine import Engine
from bridge.stylegan import Generator, demo_config

SECONDS = 8.0
render_waits: list[float] = []  # ms the render thread spent in _next_latents
slot_waits: list[float] = []  # ms the encode thread held back before encoding
encodes: list[tuple[float, float]] = []  # (ms encoding, ms from capture to the end of the encode)


def _timed(method, record):
    def wrapper(self, *args):
        start = time.perf_counter()
        result = method(self, *args)
        record(self, args, (time.perf_counter() - start) * 1000.0)
        return result
    return wrapper


def _instrument() -> None:
    Engine._next_latents = _timed(Engine._next_latents, lambda self, args, ms: render_waits.append(ms))
    Engine._wait_for_render_slot = _timed(Engine._wait_for_render_slot, lambda self, args, ms: slot_waits.append(ms))
    Engine._encode = _timed(Engine._encode, lambda self, args, ms: encodes.append(
        (ms, (time.monotonic() - args[0].t_capture) * 1000.0)))


def main() -> None:
    generator = Generator.from_config(demo_config(), seed=0).eval().requires_grad_(False)
    plan = plan_run("cpu", generator.arch, compile="auto")
    generator.set_fast(plan.fast)
    encoder = build_encoder(z_dim=generator.z_dim, demo=True, device="cpu")
    compiled = bench_engine._compiled(generator, "background")
    _instrument()
    for schedule in ("overlap", "serial"):
        for record in (render_waits, slot_waits, encodes):
            record.clear()
        records, ms = bench_engine.run_pipelined(generator, encoder, bench_engine._source(), "cpu", SECONDS, schedule,
                                                 compiled)
        latency = statistics.median((r[2] - r[1]) * 1000.0 for r in records)
        print(f"{schedule}: {len(records) / SECONDS:.1f} fps, latency p50 {latency:.0f} ms, "
              f"stages {({k: round(v, 1) for k, v in ms.items()})}")
        print(f"  render thread in _next_latents: median {statistics.median(render_waits):.1f} ms, "
              f"{sum(render_waits) / max(1, len(records)):.1f} ms per published frame")
        if slot_waits:
            print(f"  encode thread holding back: median {statistics.median(slot_waits):.1f} ms")
        print(f"  encode median {statistics.median(e[0] for e in encodes):.1f} ms; frame age when its encode ends: "
              f"median {statistics.median(e[1] for e in encodes):.1f} ms")


if __name__ == "__main__":
    main()
