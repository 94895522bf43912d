"""``vrbridge bench scene``: ms per analysis step of the scene analysers, and the engine's fps with each on.

* flow: one :class:`bridge.scene.motion.MotionAnalysis` step (resize, DIS optical flow, colour statistics)
  on 640x480 frames of a textured scene with a moving box, at analysis sizes 160x120 and 320x240;
* depth: one Depth-Anything-V2-Small step (resize, network, statistics) at a shorter side of 252 and 518 px
  on a 640x480 frame, random-init weights (the cost does not depend on the values);
* engine: frames per second the running engine publishes (embedded demo network and encoder, test pattern
  at 30 fps) with no analyser, with ``--track scene`` and with ``--track depth``.
"""
from __future__ import annotations

import os
import time

import numpy as np

from bridge.bench import timing_row


def clip(n: int, width: int = 640, height: int = 480) -> list[np.ndarray]:
    rng = np.random.RandomState(0)
    background = (rng.rand(height, width, 3) * 255).astype(np.uint8)
    box = (rng.rand(120, 120, 3) * 255).astype(np.uint8)
    frames = []
    for i in range(n):
        frame = background.copy()
        x = 40 + (i * 7) % (width - 200)
        frame[180:300, x:x + 120] = box
        frames.append(frame)
    return frames


def bench_flow(size: tuple[int, int], n: int) -> dict:
    from bridge.scene.motion import MotionAnalysis

    frames = clip(n + 5)
    analysis = MotionAnalysis(size)
    times = []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        analysis(frame, i / 30.0)
        if i >= 5:
            times.append((time.perf_counter() - t0) * 1000.0)
    return timing_row("scene: flow + colour", f"{size[0]}x{size[1]}", times, note="from 640x480 frames")


def bench_depth(side: int, n: int, device: str) -> dict:
    import torch

    from bridge.scene.depth import DepthAnalysis
    from bridge.scene.depth_model import DepthAnythingV2Small, input_size

    model = DepthAnythingV2Small()
    model.init_random(0)
    model = model.to(device).eval()
    analysis = DepthAnalysis(model, side, device)
    frame = clip(1)[0]
    analysis(frame)  # warm-up: allocations, position-embedding resize
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        analysis(frame)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000.0)
    h, w = input_size(480, 640, side)
    return timing_row("depth: Depth-Anything-V2-Small", f"{w}x{h} (side {side})", times, device,
                   f"{torch.get_num_threads()} torch threads")


def engine_fps(overrides: dict, seconds: float, device: str = "cpu") -> dict:
    """Run the real engine (build_engine) with ``overrides`` for ``seconds``; fps and the analysers' stats."""
    from bridge.startup import build_engine

    settings = {"source": "pattern", "osc_in": "off", "osc_out": [], "oscquery": "off", "preview": "off",
                "device": device, **overrides}
    engine = build_engine(settings)
    engine.start()
    try:
        time.sleep(1.5)  # warm-up
        start_frames, t0 = engine.frames_rendered, time.monotonic()
        time.sleep(seconds)
        fps = (engine.frames_rendered - start_frames) / (time.monotonic() - t0)
        extras = [t.stats() for t in engine.trackers] + [s.stats() for s in engine._services
                                                           if type(s).__name__ == "AudioService"]
    finally:
        engine.stop()
    note = "; ".join(", ".join(f"{k} {v}" for k, v in stats.items() if k in ("analysed", "ms", "blocks",
                                                                            "ms_per_block", "dropped"))
                     for stats in extras)
    return {"enabled": _label(overrides), "fps": round(fps, 2), "seconds": seconds, "analyser": note}


def _label(overrides: dict) -> str:
    parts = [f"--track {','.join(overrides['track'])}"] if overrides.get("track") else []
    if overrides.get("audio"):
        parts.append("--audio " + str(overrides["audio"]).split("/")[-1])
    return " ".join(parts) or "nothing"


def run(args) -> dict:
    import torch

    n = 30 if args.quick else 200
    n_depth = 2 if args.quick else 10
    rows = [bench_flow((160, 120), n), bench_flow((320, 240), n)]
    rows += [bench_depth(side, n_depth, args.device) for side in (252, 518)]
    seconds = 4.0 if args.quick else 10.0
    engine = [engine_fps({}, seconds, args.device),
              engine_fps({"track": ["scene"]}, seconds, args.device),
              engine_fps({"track": ["depth"], "depth_demo": True}, seconds, args.device)]
    notes = [f"device {args.device}; torch {torch.__version__}, {torch.get_num_threads()} threads",
             "engine: embedded demo network and encoder, test pattern 640x480 @ 30 fps, depth at its default "
             "side (252) and rate cap (10 Hz)"]
    notes.append(f"load average while measuring (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return {"rows": rows, "tables": {"engine fps": engine}, "notes": notes}
