"""``vrbridge bench tracking``: MediaPipe hand, pose and face tracking per frame (VIDEO mode, 640x480), all three
together, the engine's fps with and without them, and the render-loop cost of the hand stage (features, lock)
and of the manipulations.

The tracking clip is the project's open-hand test photo moved and turned across a 640x480 canvas, one step
per frame, so VIDEO mode really tracks (as with a live performer) instead of seeing one still picture.
Manipulation costs are measured on tensors of real network sizes (StyleGAN2's 512x4x4 constant, StyleGAN3's
3x3 transform) inside a module that names them as NVIDIA does; the cost does not depend on the rest of the
network, which the ``generator`` suite measures.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bridge.bench import timing_row

IMAGES = Path(__file__).resolve().parents[2] / "tests" / "data" / "images"
IMAGE = IMAGES / "Histogram_Comparison_Source_0.jpg"


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
    return timing_row(f"mediapipe hands VIDEO, num_hands={num_hands}", "640x480", times,
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
    """One lever's cost per frame, driven as the routes drive it (its lever values in the snapshot)."""
    import torch

    snapshot = {**params, "const.corrupt": 0.7, "sg3.rotate": 12.0, "sg3.translate.x": 0.1, "sg3.translate.y": -0.1,
                "sg3.zoom": 0.2}
    times = []
    for i in range(n + 10):
        t0 = time.perf_counter()
        manipulation.apply(generator, snapshot, i / 60.0)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= 10:
            times.append((time.perf_counter() - t0) * 1000.0)
    manipulation.restore()
    return timing_row(label, "per frame", times, device=device)


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
    performer = _performer_clip(60)
    n_track = 6 if quick else 150
    rows += [_bench_worker("pose", n_track, performer, num=n) for n in (1, 2)]
    rows += [_bench_worker("face", n_track, performer, num=1)]
    rows += _bench_together(n_track, performer)
    rows += _engine_rows(torch, device, 3.0 if quick else 15.0, performer)
    rows += _manipulation_rows(torch, params, n_apply, device)
    rows += _hand_stage_rows(params, n_apply)
    notes = [f"torch threads 1; tracking clip: open-hand photo moving/turning on 640x480, {len(frames)} distinct frames",
             "num_hands above the number of visible hands makes MediaPipe run palm detection every frame",
             "performer clip (pose, face, together, engine rows): 640x480, the basketball player walking on the left, "
             "the astronaut's face and the open hand on the right, 60 distinct frames",
             "num_poses above the number of people in view makes MediaPipe run person detection every frame"]
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
    return [timing_row("active-hand lock, 2 hands", "per frame", times_l),
            timing_row("features + One-Euro update", "per frame", times_f)]


# ------------------------------------------------------------------------------------------------------
# Body and face
# ------------------------------------------------------------------------------------------------------
def _performer_clip(n: int) -> list[np.ndarray]:
    """640x480 frames with a whole body (walking on the left), a face and an open hand (on the right)."""
    import cv2

    def rgb(name: str) -> np.ndarray:
        return cv2.cvtColor(cv2.imread(str(IMAGES / name)), cv2.COLOR_BGR2RGB)

    person, face = rgb("basketball1.png")[:, :220], cv2.resize(rgb("astronaut_face.jpg"), (240, 240))
    hand = cv2.resize(rgb("Histogram_Comparison_Source_0.jpg"), (200, 200))
    frames = []
    for i in range(n):
        phase = 2 * np.pi * i / max(n, 1)
        canvas = np.empty((480, 640, 3), np.uint8)
        canvas[:] = person[0, -1]
        x0 = int(60 + 50 * np.sin(phase))
        canvas[:, x0:x0 + 220] = person
        y0 = int(10 + 10 * np.cos(phase))
        canvas[y0:y0 + 240, 395:635] = face
        canvas[272:472, 420:620] = hand
        frames.append(canvas)
    return frames


def _worker(task: str, num: int, max_hz: float = 0.0):
    from bridge.tracking.model import load_model

    if task == "pose":
        from bridge.tracking.mediapipe_pose import MediaPipePoseTracker

        return MediaPipePoseTracker(load_model("pose"), num_poses=num, max_hz=max_hz)
    from bridge.tracking.mediapipe_face import MediaPipeFaceTracker

    return MediaPipeFaceTracker(load_model("face"), num_faces=num, max_hz=max_hz)


def _time_frames(tracker, frames: list[np.ndarray], n: int, warmup: int = 5) -> tuple[list[float], int]:
    from bridge.frames import Frame

    times, found = [], 0
    for i in range(n + warmup):
        frame = Frame(rgb=frames[i % len(frames)], index=i, t_capture=i / 30.0)
        t0 = time.perf_counter()
        result = tracker.process(frame)
        if i >= warmup:  # the first frames build the graph and run the detector
            times.append((time.perf_counter() - t0) * 1000.0)
            found += int(bool(result)) if not hasattr(result, "active") else int(result.active is not None)
    return times, found


def _bench_worker(task: str, n: int, frames: list[np.ndarray], num: int) -> dict:
    tracker = _worker(task, num)
    try:
        times, found = _time_frames(tracker, frames, n)
    finally:
        tracker.close()
    what = {"pose": f"mediapipe pose VIDEO, num_poses={num}", "face": f"mediapipe face VIDEO, num_faces={num}"}[task]
    return timing_row(what, "640x480", times, note=f"{task} found in {found}/{n} frames")


def _bench_together(n: int, frames: list[np.ndarray]) -> list[dict]:
    """Hands, pose and face each on its own thread over the same frames at once: each one's ms per frame while
    the others run (the cores are shared), and the wall time for all three to finish a frame."""
    import threading

    from bridge.tracking.mediapipe_hands import MediaPipeHandTracker
    from bridge.tracking.model import load_hand_model

    trackers = {"hands": MediaPipeHandTracker(load_hand_model(), num_hands=1), "pose": _worker("pose", 1),
                "face": _worker("face", 1)}
    results: dict[str, tuple[list[float], int]] = {}
    try:
        for tracker in trackers.values():  # build each graph first: not part of the per-frame cost
            _time_frames(tracker, frames, 0)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=lambda k=k, t=t: results.__setitem__(k, _time_frames(t, frames, n, 0)))
                   for k, t in trackers.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall_ms = (time.perf_counter() - t0) * 1000.0 / max(n, 1)
    finally:
        for tracker in trackers.values():
            tracker.close()
    rows = [timing_row(f"together: {k} (3 trackers on 3 threads)", "640x480", times, note=f"found in {found}/{n}")
            for k, (times, found) in results.items()]
    rows.append(timing_row("together: wall time per frame, all three", "640x480", [wall_ms],
                         note=f"{1000.0 / wall_ms:.1f} frames/s for all three"))
    return rows


class _ClipSource:
    """The performer clip as a camera-like source at 30 fps (for the engine rows)."""

    kind = "clip"

    def __init__(self, frames: list[np.ndarray]) -> None:
        from bridge.sources.base import FramePacer

        self.frames_list, self._pacer, self._index, self.status = frames, FramePacer(30.0), 0, "idle"

    def open(self) -> None:
        self.status = "running"
        self._pacer.restart()

    def read(self, timeout: float = 0.1):
        from bridge.frames import Frame

        if not self._pacer.wait(timeout):
            return None
        now = self._pacer.mark()
        frame = Frame(rgb=self.frames_list[self._index % len(self.frames_list)], index=self._index, t_capture=now,
                      source="clip")
        self._index += 1
        return frame

    def close(self) -> None:
        self.status = "closed"

    def describe(self) -> str:
        return "performer clip 640x480 @ 30 fps"

    def stats(self) -> dict:
        return {"status": self.status}


def _engine_rows(torch, device: str, seconds: float, frames: list[np.ndarray]) -> list[dict]:
    """The engine (embedded demo network, demo encoder) on the performer clip: fps without trackers, then with
    hands, pose and face attached (each on its own thread)."""
    from bridge.bench.engine import WARMUP_S, CountingSink
    from bridge.encoder import build_encoder
    from bridge.engine import Engine
    from bridge.params import ParamStore
    from bridge.stylegan import Generator, demo_config
    from bridge.tracking.mediapipe_hands import MediaPipeHandTracker
    from bridge.tracking.model import load_hand_model

    torch.set_num_threads(2)
    generator = Generator.from_config(demo_config(), seed=0).to(device).eval().requires_grad_(False)
    encoder = build_encoder(z_dim=generator.z_dim, demo=True, device=device)
    rows = []
    for label, with_trackers, hz in (("engine fps, no trackers", False, 0.0),
                                     ("engine fps, hands + pose + face", True, 0.0),
                                     ("engine fps, hands + pose + face, pose/face at 15 Hz", True, 15.0)):
        sink = CountingSink()
        engine = Engine(ParamStore(), generator, encoder, _ClipSource(frames), [sink], device=device)
        trackers = []
        if with_trackers:
            trackers = [MediaPipeHandTracker(load_hand_model(), num_hands=1), _worker("pose", 1, hz), _worker("face", 1, hz)]
            for tracker in trackers:
                engine.add_tracker(tracker)
        engine.start()
        try:
            time.sleep(WARMUP_S)
            deadline = time.monotonic() + 60.0  # each tracker past its first frame (graph built, model mapped)
            while time.monotonic() < deadline and any(t.stats().get("frames", 0) < 2 for t in trackers):
                time.sleep(0.1)
            sink.recording = True
            time.sleep(seconds)
            sink.recording = False
            stage_ms = dict(engine.clock.snapshot())
            costs = {t.stats().get("name", t.kind): t.stats().get("track_ms", 0.0) for t in trackers}
        finally:
            engine.stop()
        fps = len(sink.records) / seconds
        note = f"{fps:.2f} fps; encode {stage_ms.get('encode', 0):.0f} ms, synth {stage_ms.get('synth', 0):.0f} ms"
        if costs:
            note += "; tracker ms/frame " + ", ".join(f"{k} {v:.0f}" for k, v in costs.items())
        ms_per_frame = 1000.0 / fps if fps else float("nan")
        rows.append(timing_row(label, "640x480 in, demo 256x256 out", [ms_per_frame], device=device, note=note))
    return rows
