"""``vrbridge bench osc``: what the OSC bridge costs and absorbs.

1. Control input: paced bursts of ``/vrb/psi f`` (python's socket, loopback) at rising rates into the control
   server of a real running engine (embedded demo network, pattern source: the render load), counting what
   arrived; the figure is the highest rate with no loss.
2. Telemetry: the render thread's cost of the report observer (``Telemetry.observe``) per frame, and the
   telemetry thread's cost to encode and send one typical report (3 latents, one hand, every parameter).
"""
from __future__ import annotations

import socket
import statistics
import time

import numpy as np

from bridge.bench import start_demo_engine
from bridge.osc import codec

RATES = (1000, 2000, 5000, 10000, 20000, 40000)
QUICK_RATES = (1000, 5000, 20000)


def run(args) -> dict:
    import torch

    torch.set_num_threads(1)
    rows, notes = [], []
    engine, collector_port = start_demo_engine(args.device)
    try:
        duration = 1.0 if args.quick else 3.0
        for rate in QUICK_RATES if args.quick else RATES:
            rows.append(_absorb(engine, rate, duration))
        notes.append(f"render load during control input: {engine.health().get('fps', 0):.1f} fps "
                     f"({engine.health().get('model', '')}, device {engine.device})")
    finally:
        engine.stop()
    rows += _telemetry_cost(10_000 if not args.quick else 2_000)
    clean = [r["rate_msg_s"] for r in rows if r.get("lost") == 0]
    notes.append(f"highest control rate with no loss: {max(clean) if clean else 'none'} msg/s")
    return {"rows": _same_columns(rows), "notes": notes}


def _same_columns(rows: list[dict]) -> list[dict]:
    """Every row gets every column (the table printer takes its columns from the first row)."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    return [{c: row.get(c, "") for c in columns} for row in rows]


def _absorb(engine, rate: int, duration: float) -> dict:
    """Send ``rate`` msg/s for ``duration`` s in 1 ms batches; count what the server took in."""
    server = engine.osc_server
    target = ("127.0.0.1", server.port)
    messages = [codec.encode_message("/vrb/psi", (0.1 + 0.8 * (i % 100) / 100,), "f") for i in range(100)]
    before = server.counts["datagrams"]
    total = int(rate * duration)
    sent = 0
    start = time.perf_counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while sent < total:
            due = int((time.perf_counter() - start) * rate)
            while sent < min(due, total):
                sock.sendto(messages[sent % 100], target)
                sent += 1
            time.sleep(0.0005)
    elapsed = time.perf_counter() - start
    deadline = time.monotonic() + 3.0
    while server.counts["datagrams"] - before < sent and time.monotonic() < deadline:
        time.sleep(0.01)
    received = server.counts["datagrams"] - before
    return {"test": "control in", "rate_msg_s": rate, "achieved_msg_s": round(sent / elapsed),
            "sent": sent, "received": received, "lost": sent - received,
            "loss_pct": round(100.0 * (sent - received) / max(1, sent), 2)}


def _telemetry_cost(calls: int) -> list[dict]:
    from bridge.frames import FrameReport, Hand, Keypoints
    from bridge.osc.telemetry import Telemetry
    from bridge.params import ParamStore

    store = ParamStore()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        telemetry = Telemetry(store, [sink.getsockname()])
        rng = np.random.default_rng(0)
        hand = Hand(rng.random((21, 3), dtype=np.float32), "right", 0.9)
        report = FrameReport(index=1, fps=30.0, stage_ms={"encode": 5.0, "synth": 20.0, "publish": 0.5}, dropped=0,
                             params=dict(store.snapshot()),
                             latents={g: rng.standard_normal(512).astype(np.float32) for g in ("coarse", "middle", "fine")},
                             keypoints=Keypoints((hand,), 0, 0.0, 1), features={"distance": 0.5, "angle": 10.0})
        observe = []
        for _ in range(calls):  # what the render thread pays: the observer only
            t0 = time.perf_counter_ns()
            telemetry.observe(report)
            observe.append(time.perf_counter_ns() - t0)
        build = []
        for _ in range(max(200, calls // 20)):  # what the telemetry thread pays per report
            t0 = time.perf_counter_ns()
            telemetry.send_report(report)
            build.append(time.perf_counter_ns() - t0)
        stats = telemetry.stats()
        telemetry.close()
    per_report = stats["bundles"] / max(1, stats["reports"])
    return [
        {"test": "telemetry observe (render thread)", "median_us": round(statistics.median(observe) / 1000, 2),
         "p99_us": round(float(np.percentile(observe, 99)) / 1000, 2), "calls": calls},
        {"test": "telemetry encode+send (its own thread)", "median_us": round(statistics.median(build) / 1000, 1),
         "p99_us": round(float(np.percentile(build, 99)) / 1000, 1), "calls": len(build),
         "bundles_per_report": round(per_report, 2), "bytes_per_report": round(stats["bytes"] / max(1, stats["reports"]))},
    ]
