"""``vrbridge bench tracking``: MediaPipe hand tracking per frame (VIDEO mode, 640x480) and the render-loop cost
of the hand stage (features, lock) and of the manipulations.

The tracking clip is the project's open-hand test photo moved and turned across a 640x480 canvas, one step
per frame, so VIDEO mode really tracks (as with a live performer) instead of seeing one still picture.
Manipulation costs are measured on tensors of real network sizes (StyleGAN2's 512x4x4 constant, StyleGAN3's
3x3 transform) inside a module that names them as NVIDIA does; the cost does not depend on the rest of the
network, which the ``generator`` suite measures.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

IMAGE = Path(__file__).resolve().parents[2] / "tests" / "data" / "images" / "Histogram_Comparison_Source_0.jpg"


def _clip(n: int) -> list[np.ndarray]:
    import cv2

    hand = cv2.cvtColor(cv2.imread(str(IMAGE)), cv2.COLOR_BGR2RGB)
    background = tuple(int(v) for v in np.median(np.concatenate([hand[0], hand[-1]]), axis=0))
    frames = []
    for i in range(n):
        phase = 2 * np.pi * i / max(n, 1)
        canvas = np.empty((480, 640, 3), np.uint8)
        canvas[:] = background
        size = 220
        turn = cv2.getRotationMatrix2D((size / 2, size / 2), 25 * np.sin(phase), 1.0)
        patch = cv2.warpAffine(cv2.resize(hand, (size, size)), turn, (size, size), borderValue=background)
        x0 = int(320 + 150 * np.sin(phase)) - size // 2
        y0 = int(240 + 60 * np.cos(phase)) - size // 2
        canvas[y0:y0 + size, x0:x0 + size] = patch
        frames.append(canvas)
    return frames


def _summary(name: str, size: str, samples_ms: list[float], device: str = "cpu", note: str = "") -> dict:
    ordered = sorted(samples_ms)
    return {"what": name, "size": size, "median_ms": round(statistics.median(ordered), 3),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 3), "n": len(ordered), "device": device,
            "note": note}


def _bench_tracking(n: int, num_hands: int, frames: list[np.ndarray]) -> dict:
    from bridge.frames import Frame
    from bridge.tracking.mediapipe_hands import MediaPipeHandTracker
    from bridge.tracking.model import load_hand_model

    tracker = MediaPipeHandTracker(load_hand_model(), num_hands=num_hands)
    try:
        times, found = [], 0
        for i in range(n + 5):
            frame = Frame(rgb=frames[i % len(frames)], index=i, t_capture=i / 30.0)
            t0 = time.perf_counter()
            kp = tracker.process(frame)
            if i >= 5:  # the first frames build the graph and run palm detection
                times.append((time.perf_counter() - t0) * 1000.0)
                found += int(kp is not None and kp.active is not None)
    finally:
        tracker.close()
    return _summary(f"mediapipe hands VIDEO, num_hands={num_hands}", "640x480", times,
                    note=f"hand found in {found}/{n} frames")


class _Named:
    """A module tree with one tensor under NVIDIA's dotted name (what the manipulations look up)."""

    def __init__(self, name: str, tensor, buffer: bool, device: str):
        import torch

        root = torch.nn.Module()
        node = root
        parts = name.split(".")
        for part in parts[:-1]:
            child = torch.nn.Module()
            node.add_module(part, child)
            node = child
        if buffer:
            node.register_buffer(parts[-1], tensor)
        else:
            node.register_parameter(parts[-1], torch.nn.Parameter(tensor, requires_grad=False))
        self.module = root.to(device)

    def __getattr__(self, item):
        return getattr(self.module, item)


def _bench_manipulation(label: str, manipulation, generator, params: dict, n: int, device: str) -> dict:
    import torch

    from bridge.frames import Hand, Keypoints

    hand = _model_hand()
    times = []
    for i in range(n + 10):
        kp = Keypoints(hands=(Hand(hand, "right", 0.9),), active=0, t_capture=i / 60.0, frame_index=i, aspect=4 / 3)
        t0 = time.perf_counter()
        manipulation.apply(generator, params, kp, i / 60.0)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= 10:
            times.append((time.perf_counter() - t0) * 1000.0)
    manipulation.restore()
    return _summary(label, "per frame", times, device=device)


def _model_hand() -> np.ndarray:
    """A hand-shaped set of landmarks right of centre, turned a little (the values only need to be plausible)."""
    rng = np.random.default_rng(0)
    pts = np.zeros((21, 3), np.float32)
    pts[:, 0] = 0.7 + 0.08 * rng.standard_normal(21)
    pts[:, 1] = 0.45 + 0.1 * rng.standard_normal(21)
    return pts


def run(args) -> dict:
    """The suite (``args``: quick, device, json_path). Runs with one torch thread, restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(args, torch)
    finally:
        torch.set_num_threads(threads)


def _run(args, torch) -> dict:
    from bridge.params import DEFAULTS

    quick = bool(getattr(args, "quick", False))
    device = getattr(args, "device", "cpu") or "cpu"
    n_apply = 100 if quick else 2000
    params = dict(DEFAULTS)
    frames = _clip(60)
    rows = [_bench_tracking(10 if quick else 150, num_hands, frames) for num_hands in (1, 2)]
    rows += _manipulation_rows(torch, params, n_apply, device)
    rows += _hand_stage_rows(params, n_apply)
    notes = [f"torch threads 1; tracking clip: open-hand photo moving/turning on 640x480, {len(frames)} distinct frames",
             "num_hands above the number of visible hands makes MediaPipe run palm detection every frame"]
    return {"rows": rows, "notes": notes}


def _manipulation_rows(torch, params: dict, n: int, device: str) -> list[dict]:
    from bridge.manipulate.const_corruption import ConstCorruption
    from bridge.manipulate.sg3_transform import InputTransform

    sg2 = _Named("synthesis.b4.const", torch.randn(512, 4, 4), buffer=False, device=device)
    sg3 = _Named("synthesis.input.transform", torch.eye(3), buffer=True, device=device)
    rows = [_bench_manipulation(f"const corruption ({mode}) 512x4x4", ConstCorruption(), sg2,
                                {**params, "hand.const.mode": mode}, n, device)
            for mode in ("blend", "additive", "shuffle")]
    rows.append(_bench_manipulation("sg3 input transform 3x3", InputTransform(), sg3, params, n, device))
    return rows


def _hand_stage_rows(params: dict, n: int) -> list[dict]:
    """The lock (tracker thread) and the feature update (render thread) with two hands in view."""
    from bridge.frames import Hand, Keypoints
    from bridge.tracking.features import HandFeatures
    from bridge.tracking.lock import HandLock

    features, lock, hand = HandFeatures(), HandLock(), _model_hand()
    hands = (Hand(hand, "right", 0.9), Hand(hand[::-1].copy(), "left", 0.8))
    times_f, times_l = [], []
    for i in range(n):
        t0 = time.perf_counter()
        active = lock.choose(hands, i / 60.0, params, 4 / 3)
        t1 = time.perf_counter()
        features.update(Keypoints(hands=hands, active=active, t_capture=i / 60.0, frame_index=i, aspect=4 / 3), params)
        features.values()
        t2 = time.perf_counter()
        times_l.append((t1 - t0) * 1000.0)
        times_f.append((t2 - t1) * 1000.0)
    return [_summary("active-hand lock, 2 hands", "per frame", times_l),
            _summary("features + One-Euro update", "per frame", times_f)]
