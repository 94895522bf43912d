"""``vrbridge bench routes``: what evaluating the routes costs the render thread per frame.

The render thread reads the signal bus once (``SignalBus.values``) and evaluates every route into the frame's
snapshot (``RouteTable.evaluate``). Measured for 10, 100 and 400 routes over 50 signals onto every live number
of the table, mixing curves, smoothing, deadbands and the three combine modes, as the per-frame call sequence
the engine makes (values() + evaluate on a fresh snapshot copy).
"""
from __future__ import annotations

import statistics
import time

from bridge.curves import CURVE_NAMES
from bridge.params import DEFAULTS
from bridge.routes import COMBINES, RouteTable, parse_route, route_targets
from bridge.signals import SignalBus, SignalSpec

SIGNALS = 50


def _table(count: int, bus: SignalBus) -> RouteTable:
    specs = {s.name: s for s in bus.specs()}
    targets = [p.name for p in route_targets() if p.kind == "float"]
    routes = []
    for i in range(count):
        entry = {"id": f"r{i}", "from": f"bench.s{i % SIGNALS}", "to": targets[i % len(targets)],
                 "curve": CURVE_NAMES[i % len(CURVE_NAMES)], "combine": COMBINES[i % len(COMBINES)],
                 "smooth": 0.1 if i % 4 == 0 else 0.0, "deadband": 0.01 if i % 5 == 0 else 0.0}
        routes.append(parse_route(entry, specs))
    return RouteTable(routes)


def _per_frame_us(table: RouteTable, bus: SignalBus, frames: int) -> list[float]:
    samples = []
    base = dict(DEFAULTS)
    for frame in range(frames):
        bus.publish_many({f"bench.s{i}": ((frame * 7 + i) % 100) / 100.0 for i in range(SIGNALS)})
        now = frame / 60.0
        t0 = time.perf_counter()
        table.evaluate(dict(base), bus.values(), now)
        samples.append((time.perf_counter() - t0) * 1e6)
    return samples


def run(args) -> dict:
    frames = 500 if args.quick else 5000
    bus = SignalBus([SignalSpec(f"bench.s{i}", 0.0, 1.0, source="bench") for i in range(SIGNALS)])
    rows = []
    for count in (10, 100, 400):
        table = _table(count, bus)
        samples = sorted(_per_frame_us(table, bus, frames))
        rows.append({"routes": count, "frames": frames, "median_us": round(statistics.median(samples), 1),
                     "p99_us": round(samples[int(0.99 * (len(samples) - 1))], 1),
                     "us_per_route": round(statistics.median(samples) / count, 2)})
    notes = [f"{SIGNALS} signals; per frame: one SignalBus.values() read + RouteTable.evaluate on a snapshot copy "
             f"(the snapshot copy itself included)."]
    return {"rows": rows, "notes": notes}
