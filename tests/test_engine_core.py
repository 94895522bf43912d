"""The engine in-process with real parts: the sg2_tiny fixture generator, the random-init VGG16 encoder and
real sources and sinks. Covers the paper's Test 1 mixing maths, the plug-in surface (tracker, manipulations,
observers, services), live controls, and that failures never stop the publishing."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from bridge.engine import Engine
from bridge.latents import LatentMixer, resolve_ranges
from bridge.routes import parse_route
from bridge.signals import SignalSpec
from bridge.frames import Frame, Hand, Keypoints, RenderedFrame
from bridge.params import ParamStore
from bridge.sinks.base import Sink
from bridge.sources import Source, make_source
import conftest
from conftest import STYLEGAN_FIXTURES


@pytest.fixture(scope="module")
def generator():
    from bridge.stylegan import load_network

    return load_network(str(STYLEGAN_FIXTURES / "sg2_tiny.pkl")).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def encoder(generator):
    from bridge.encoder import build_encoder

    return build_encoder(z_dim=generator.z_dim, demo=True, encode_size=(64, 48))


class CollectSink(Sink):
    """A real sink (its own thread, latest-wins box) that keeps what it was sent."""

    kind = "collect"

    def __init__(self) -> None:
        super().__init__("test")
        self.frames: list[RenderedFrame] = []

    def _send(self, frame: RenderedFrame) -> None:
        self.frames.append(frame)
        del self.frames[:-50]


def wait_for(predicate, limit_s: float = 20.0):
    """conftest's polling helper with this file's longer default (the engine renders on busy cores)."""
    return conftest.wait_for(predicate, timeout=limit_s, interval=0.02)


def make_engine(generator, encoder, source="pattern", resolution=None, **overrides):
    params = ParamStore(overrides)
    sink = CollectSink()
    src = make_source(source, size=(96, 72), fps=30.0) if source == "pattern" else make_source(source)
    engine = Engine(params, generator, encoder, src, [sink], resolution=resolution)
    return engine, sink


@pytest.fixture
def running(generator, encoder):
    engines = []

    def start(**kwargs):
        engine, sink = make_engine(generator, encoder, **kwargs)
        engine.start()
        engines.append(engine)
        return engine, sink

    yield start
    for engine in engines:
        engine.stop()


# ---- Test 1 maths -----------------------------------------------------------------------------
def snap(**values):
    return ParamStore(values).snapshot()


def seed_z(generator, seed):
    return torch.from_numpy(np.random.RandomState(seed).randn(1, generator.z_dim)).float()


def test_without_camera_the_static_w_is_rendered_truncated(generator):
    mixer = LatentMixer(generator)
    for psi, cutoff in ((1.0, 0), (0.5, 0), (0.3, 3)):
        ws = mixer.mix(None, snap(seed=11, psi=psi, trunc_cutoff=cutoff))
        ref = generator.mapping(seed_z(generator, 11), None, truncation_psi=psi,
                                truncation_cutoff=cutoff or None)
        assert ws.shape == (1, generator.num_ws, generator.w_dim)
        torch.testing.assert_close(ws, ref, atol=1e-5, rtol=1e-5)


def test_mixing_ranges_and_amount(generator):
    mixer = LatentMixer(generator)
    z = {"coarse": torch.randn(generator.z_dim), "middle": torch.randn(generator.z_dim),
         "fine": torch.randn(generator.z_dim)}
    cam = {k: generator.mapping(v[None], None)[0] for k, v in z.items()}
    static = generator.mapping(seed_z(generator, 3), None)[0]
    ws = mixer.mix(z, snap(seed=3, psi=1.0, **{"mix.coarse": (0, 2), "mix.middle": (0, 0), "mix.fine": (5, 8)}))[0]
    torch.testing.assert_close(ws[0:2], cam["coarse"][0:2])
    torch.testing.assert_close(ws[2:5], static[2:5])  # middle off, gap untouched: the seed's styles
    torch.testing.assert_close(ws[5:8], cam["fine"][5:8])
    half = mixer.mix(z, snap(seed=3, psi=1.0, **{"mix.amount": 0.5}))[0]
    groups = mixer.default_groups
    start, end = groups["middle"]
    torch.testing.assert_close(half[start:end], 0.5 * (static[start:end] + cam["middle"][start:end]))
    none = mixer.mix(z, snap(seed=3, psi=1.0, **{"mix.amount": 0.0}))[0]
    torch.testing.assert_close(none, static)


def test_truncation_applies_to_the_mixed_w(generator):
    mixer = LatentMixer(generator)
    z = {g: torch.randn(generator.z_dim) for g in ("coarse", "middle", "fine")}
    mixed = mixer.mix(z, snap(seed=5, psi=1.0))[0]
    w_avg = generator.mapping.w_avg
    trunc = mixer.mix(z, snap(seed=5, psi=0.4))[0]
    torch.testing.assert_close(trunc, w_avg + 0.4 * (mixed - w_avg), atol=1e-5, rtol=1e-5)


def test_default_ranges_follow_the_generator(generator):
    mixer = LatentMixer(generator)
    ranges = resolve_ranges(snap(), mixer.default_groups, generator.num_ws)
    covered = sorted(i for s, e in ranges.values() for i in range(s, e))
    assert covered == list(range(generator.num_ws))  # coarse + middle + fine tile every style layer
    assert resolve_ranges(snap(**{"mix.coarse": (0, 0)}), mixer.default_groups, 8)["coarse"] == (0, 0)
    assert resolve_ranges(snap(**{"mix.fine": (6, 64)}), mixer.default_groups, 8)["fine"] == (6, 8)


# ---- the running engine -----------------------------------------------------------------------
def test_engine_renders_publishes_and_reports(running):
    reports = []
    engine, sink = running(resolution=(48, 32))
    engine.add_report_observer(reports.append)
    assert wait_for(lambda: any(f.source_index >= 0 for f in sink.frames) and len(reports) >= 3)
    frame = next(f for f in sink.frames if f.source_index >= 0)
    assert frame.rgb.shape == (32, 48, 3) and frame.rgb.dtype == np.uint8
    assert frame.input_rgb is not None and frame.input_rgb.shape == (72, 96, 3)
    assert frame.t_rendered >= frame.t_capture
    report = reports[-1]
    assert set(report.latents) == {"coarse", "middle", "fine"}
    assert report.latents["coarse"].shape == (engine.generator.z_dim,)
    assert {"encode", "synth", "map"} <= set(report.stage_ms)
    assert report.params["psi"] == pytest.approx(0.7)
    assert report.health["demo_encoder"] is True  # the random-init encoder says so in telemetry
    assert report.health["demo_network"] is engine.demo
    health = engine.health()
    assert health["status"] == "ok" and health["frames"] >= 1 and health["output_size"] == [48, 32]
    assert health["encoder"]["demo"] is True


def test_output_follows_the_source(running):
    engine, sink = running()
    assert wait_for(lambda: len({f.source_index for f in sink.frames if f.source_index >= 0}) >= 3)
    pics = [f.rgb for f in sink.frames if f.source_index >= 0]
    assert any(np.abs(pics[0].astype(int) - p).mean() > 0.5 for p in pics[1:]), "moving pattern -> moving output"


def test_live_controls_blackout_freeze_seed(running):
    engine, sink = running()
    assert wait_for(lambda: len(sink.frames) >= 2)
    engine.params.set("blackout", True)
    assert wait_for(lambda: sink.frames[-1].rgb.max() == 0)
    engine.params.set("blackout", False)
    engine.params.set("freeze", True)
    time.sleep(0.2)
    # a frame already being made (serial stages: encode + synthesis) may still come out after the freeze
    assert wait_for(lambda: len(sink.frames) >= 2 and np.array_equal(sink.frames[-1].rgb, sink.frames[-2].rgb))
    n = len(sink.frames)
    held = sink.frames[-1].rgb
    assert wait_for(lambda: len(sink.frames) > n + 1, limit_s=5)  # still publishing (heartbeat)...
    assert all(np.array_equal(f.rgb, held) for f in sink.frames[n:])  # ...the same picture
    engine.params.set("freeze", False)
    engine.params.set("latent.hold", True)
    engine.params.set("mix.amount", 0.0)  # seed only: the seed alone decides the picture
    time.sleep(0.5)
    before = sink.frames[-1].rgb
    engine.params.set("seed", 12345)
    assert wait_for(lambda: np.abs(sink.frames[-1].rgb.astype(int) - before).mean() > 1.0)


class FlakyEncoder:
    """The real encoder, made to fail on demand: a fault injected at the stage boundary."""

    def __init__(self, inner):
        self.inner = inner
        self.fail = False

    def encode(self, rgb, params=None):
        if self.fail:
            raise RuntimeError("injected encoder fault")
        return self.inner.encode(rgb, params)


class FlakyGenerator:
    """The real generator; synthesis fails while ``fail`` is set."""

    def __init__(self, inner):
        self.inner = inner
        self.fail = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def synthesis(self, ws, noise_mode="const"):
        if self.fail:
            raise RuntimeError("injected synthesis fault")
        return self.inner.synthesis(ws, noise_mode=noise_mode)


def test_failures_hold_the_last_frame_and_are_reported(generator, encoder):
    flaky_enc, flaky_gen = FlakyEncoder(encoder), FlakyGenerator(generator)
    sink = CollectSink()
    engine = Engine(ParamStore(), flaky_gen, flaky_enc, make_source("pattern", size=(96, 72), fps=30.0), [sink])
    engine.start()
    try:
        assert wait_for(lambda: any(f.source_index >= 0 for f in sink.frames))
        flaky_enc.fail = True
        assert wait_for(lambda: engine.health()["errors"].get("encode", 0) >= 3)
        flaky_gen.fail = True
        engine.params.set("psi", 0.5)  # a change asks for a new frame, which now fails
        assert wait_for(lambda: engine.health()["errors"].get("synth", 0) >= 1)
        good = sink.frames[-1].rgb
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) >= n + 2, limit_s=5), "still publishing"
        assert np.array_equal(sink.frames[-1].rgb, good), "the last good frame is held"
        health = engine.health()
        assert health["status"] in ("degraded", "failing")
        assert "injected" in health["last_error"] and health["failing_in_a_row"]["encode"] >= 3
        flaky_enc.fail = flaky_gen.fail = False
        engine.params.set("psi", 0.6)
        assert wait_for(lambda: engine.health()["status"] == "ok")
    finally:
        engine.stop()


class RecordingTracker:
    """Implements the tracker protocol the hands engineer plugs in (submit/latest/start/close/stats)."""

    def __init__(self):
        self.submitted = 0
        self.started = self.closed = False
        self._latest = None

    def start(self):
        self.started = True

    def close(self):
        self.closed = True

    def submit(self, frame):
        self.submitted += 1
        hand = Hand(landmarks=np.full((21, 3), 0.5, np.float32), handedness="right", score=0.9)
        self._latest = Keypoints(hands=(hand,), active=0, t_capture=frame.t_capture, frame_index=frame.index)

    def latest(self):
        return self._latest

    def stats(self):
        return {"submitted": self.submitted}


class CountingManipulation:
    def __init__(self):
        self.calls = []

    def apply(self, generator, params, now):
        self.calls.append(params)

    def features(self):
        return {"test.feature": float(len(self.calls))}


class KeypointStage:
    """A render-thread signal stage: sees each frame's keypoints, publishes a signal, the lever sees the route."""

    def __init__(self, bus, fail: bool = False):
        self.keypoints, self.fail, self.bus = [], fail, bus
        bus.declare(SignalSpec("test.signal", 0.0, 1.0, source="test"))

    def update(self, keypoints, snapshot, now):
        self.keypoints.append(keypoints)
        if self.fail:
            raise RuntimeError("a broken input")
        self.bus.publish("test.signal", 0.25)


class OrderService:
    def __init__(self, engine, log):
        self.engine, self.log = engine, log

    def start(self):
        self.log.append(("start", len(self.engine._threads)))

    def close(self):
        self.log.append(("close", len(self.engine._threads)))

    def stats(self):
        return {"ok": True}


def test_plug_in_surface(generator, encoder):
    engine, sink = make_engine(generator, encoder)
    tracker, manip, log, reports = RecordingTracker(), CountingManipulation(), [], []
    stage, broken = KeypointStage(engine.signals), KeypointStage(engine.signals, fail=True)
    engine.set_keypoint_tracker(tracker)
    engine.add_signal_stage(broken)  # raises every frame: counted in health, the frames go on
    engine.add_signal_stage(stage)
    engine.routes.add(parse_route({"from": "test.signal", "to": "psi", "range": [0.0, 2.0]},
                                  {"test.signal": engine.signals.spec("test.signal")}))
    engine.add_manipulation(manip)
    engine.add_service(OrderService(engine, log))
    engine.add_report_observer(reports.append)
    engine.add_report_observer(lambda report: 1 / 0)  # a broken observer is counted, not fatal
    engine.start()
    try:
        assert tracker.started
        assert wait_for(lambda: any(r.keypoints is not None for r in reports))
        assert tracker.submitted >= 1
        assert any(k is not None for k in stage.keypoints)
        assert all(p["psi"] == 0.5 for p in manip.calls)  # the lever sees the routed snapshot: 0.25 -> 0.5
        assert reports[-1].features["test.feature"] >= 1
        assert reports[-1].signals["test.signal"] == 0.25 and reports[-1].params["psi"] == 0.5
        assert engine.health()["errors"]["signals"] >= 1 and engine.params.get("psi") != 0.5
        assert engine.health()["errors"]["observer"] >= 1
        assert engine.health()["tracker"] == {"submitted": tracker.submitted}
    finally:
        engine.stop()
    assert tracker.closed
    stages = 3 if engine.schedule == "overlap" else 2  # serial stages: no encode thread
    assert log == [("start", stages), ("close", stages)]  # started after the stage threads, closed before them


def test_video_deleted_mid_run_keeps_publishing(generator, encoder, tmp_path):
    import cv2

    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), i * 40, np.uint8))
    writer.release()
    engine, sink = make_engine(generator, encoder, source=f"video:{path}")
    engine.start()
    try:
        assert wait_for(lambda: any(f.source_index >= 0 for f in sink.frames))
        path.unlink()
        assert wait_for(lambda: engine.health()["source"]["status"].startswith("holding"))
        n = engine.frames_published
        assert wait_for(lambda: engine.frames_published >= n + 2, limit_s=5)
        assert engine.health()["status"] == "ok"
    finally:
        engine.stop()


def test_missing_camera_still_publishes(generator, encoder, tmp_path):
    engine, sink = make_engine(generator, encoder, source=f"camera:{tmp_path / 'video7'}")
    engine.start()
    try:
        assert wait_for(lambda: engine.frames_published >= 2)  # the seed's picture, with no camera at all
        assert sink.frames and sink.frames[-1].source_index == -1
        assert engine.health()["source"]["status"].startswith("reconnecting")
    finally:
        t0 = time.monotonic()
        engine.stop()
        assert time.monotonic() - t0 < 1.5
    assert not any(t.name.startswith("engine-") and t.is_alive() for t in threading.enumerate())


class TickingSink(CollectSink):
    """Like the Syphon sink: needs ``main_thread_tick`` called from the main thread."""

    def __init__(self):
        super().__init__()
        self.ticks = 0

    def main_thread_tick(self):
        self.ticks += 1


def test_run_forever_ticks_main_thread_sinks_and_stops_by_itself(generator, encoder):
    sink = TickingSink()
    engine = Engine(ParamStore(), generator, encoder, make_source("pattern", size=(96, 72), fps=30.0), [sink])
    engine.start()
    try:
        t0 = time.monotonic()
        engine.run_forever(max_frames=engine.frames_rendered + 3, duration=30)
        assert engine.frames_rendered >= 3 and time.monotonic() - t0 < 30
        assert sink.ticks >= 1
        engine.request_stop()
        engine.run_forever(duration=30)  # returns at once: a stop was requested (what SIGTERM does)
    finally:
        engine.stop()


def test_stylegan3_network_runs_through_the_engine(encoder):
    """SG3 has no per-resolution layers: the default split is thirds of its 16 ws, and the engine runs it."""
    from bridge.stylegan import load_network

    sg3 = load_network(str(STYLEGAN_FIXTURES / "sg3t_tiny.pkl")).eval().requires_grad_(False)
    mixer = LatentMixer(sg3)
    assert mixer.default_groups == {"coarse": (0, 5), "middle": (5, 11), "fine": (11, 16)}
    engine, sink = make_engine(sg3, encoder, resolution=(40, 40))
    engine.start()
    try:
        assert wait_for(lambda: any(f.source_index >= 0 for f in sink.frames))
        assert sink.frames[-1].rgb.shape == (40, 40, 3)
        assert engine.health()["status"] == "ok"
    finally:
        engine.stop()


def test_an_oversized_source_frame_is_shrunk_at_the_capture_boundary(generator, encoder):
    """A source that sends 4000x2000 frames (an 8K-ish video): what the encoder, previews and trackers get
    is at most MAX_SOURCE_SIDE on its longer side."""
    from bridge.sources.base import MAX_SOURCE_SIDE

    class HugeSource(Source):
        kind = "huge"

        def read(self, timeout=0.1):
            time.sleep(0.05)
            self.frames += 1
            return Frame(rgb=np.full((2000, 4000, 3), 90, np.uint8), index=self.frames, t_capture=time.monotonic())

    engine = Engine(ParamStore(), generator, encoder, HugeSource("huge"), [CollectSink()])
    engine.start()
    try:
        assert wait_for(lambda: engine.latest_input() is not None)
        assert engine.latest_input().shape == (MAX_SOURCE_SIDE // 2, MAX_SOURCE_SIDE, 3)
    finally:
        engine.stop()


def test_status_shows_output_render_and_source_rates_without_alarming_drops(running):
    from bridge.commands.run import format_status

    engine, sink = running()
    assert wait_for(lambda: engine.frames_published >= 3)
    engine.params.set("freeze", True)
    published = engine.frames_published
    assert wait_for(lambda: engine.frames_published >= published + 3)  # sinks keep getting frames
    health = engine.health()
    assert health["output_fps"] > 0
    line = format_status(health)
    assert line.startswith("out ") and " fps | render " in line and "| source " in line
    assert "dropped" not in line  # skipped source frames are normal; they stay in health and telemetry
    assert "dropped" in health
