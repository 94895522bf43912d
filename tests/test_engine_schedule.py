"""How the engine runs on its device: the plan (fast path, stage schedule), as build_engine applies it, and
both schedules really publishing fresh camera frames, also past a slow encoder."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from bridge.device import RunPlan, plan_run, synchronize
from bridge.engine import Engine
from bridge.params import PARAMS_BY_NAME, ParamError, ParamStore
from bridge.sources import make_source
from bridge.startup import StartupError, build_engine
import conftest
from conftest import STYLEGAN_FIXTURES
from test_engine_core import CollectSink, encoder, generator  # noqa: F401 - the sg2_tiny fixtures

QUIET = {"osc_in": "off", "osc_out": [], "oscquery": "off", "preview": "off", "demo_encoder": True,
         "encoder_size": "64x48", "device": "cpu"}


@pytest.mark.parametrize("model, fast", [("sg3t_tiny", True), ("sg2_tiny", True)])
def test_build_engine_chooses_the_fast_path_by_architecture_on_cpu(model, fast):
    """Both fast paths pay off on the CPU (float32): StyleGAN3's polyphase resampling, StyleGAN2's sg2_cpu."""
    engine = build_engine({**QUIET, "network": str(STYLEGAN_FIXTURES / f"{model}.pkl")})
    try:
        assert engine.generator.fast is fast
        assert any(layer.fast is fast for layer in engine.generator.synthesis.modules() if hasattr(layer, "fast"))
        device_line = next(line for line in engine.describe() if line.startswith("device:"))
        assert f"fast path {'on' if fast else 'off'}" in device_line
    finally:
        engine.stop()


def test_plan_per_device():
    # CUDA: the plain path (as fast or faster than fp16 at batch 1 on an H200, BENCHMARKS.md's GPU check)
    assert plan_run("cuda", "stylegan2") == RunPlan(torch.device("cuda"), False, "overlap", True,
                                                     plan_run("cuda", "stylegan2").why)
    assert not plan_run("cuda", "stylegan3").fast
    cpu2, cpu8 = plan_run("cpu", "stylegan2", cpu_threads=2), plan_run("cpu", "stylegan3", cpu_threads=8)
    assert (cpu2.fast, cpu2.schedule, cpu2.cudnn_benchmark) == (True, "serial", False)
    assert not plan_run("mps", "stylegan2").fast and plan_run("mps", "stylegan3").fast
    assert (cpu8.fast, cpu8.schedule) == (True, "overlap")
    assert plan_run("cpu", "stylegan2", "overlap", cpu_threads=2).schedule == "overlap"  # asked for: honoured
    # 2 cores with the synthesis compiled in the background: it runs without the GIL, so the stages overlap
    # (BENCHMARKS.md: 28.25 fps at 55.8 ms against serial's 24.0 fps at 58.8 ms); eager, or 1 thread: serial
    compiled2 = plan_run("cpu", "stylegan2", compile="background", cpu_threads=2)
    assert compiled2.schedule == "overlap" and "GIL" in compiled2.why
    assert plan_run("cpu", "stylegan2", compile="off", cpu_threads=2).schedule == "serial"
    assert plan_run("cpu", "stylegan2", compile="background", cpu_threads=1).schedule == "serial"
    mps = plan_run("mps", "stylegan2", "overlap")
    assert mps.schedule == "serial" and "197805" in mps.why  # two threads on one MPS device: never
    assert plan_run("cuda:1", "stylegan3").device == torch.device("cuda", 1)
    synchronize("cpu")  # nothing queued on a CPU: returns at once


def test_cuda_n_is_a_device_setting_and_a_missing_gpu_is_one_line():
    assert PARAMS_BY_NAME["device"].coerce("cuda:1") == "cuda:1"
    with pytest.raises(ParamError, match="cuda:N"):
        PARAMS_BY_NAME["device"].coerce("gpu1")
    if torch.cuda.device_count() > 1:
        pytest.skip("this machine has a second GPU")
    with pytest.raises(StartupError) as info:
        build_engine({**QUIET, "device": "cuda:1"})
    assert "cuda:1" in str(info.value) and "\n" not in str(info.value)


class SlowEncoder:
    """The real encoder behind a delay (a slow backbone or an overloaded machine)."""

    def __init__(self, encoder, delay_s: float) -> None:
        self.encoder, self.delay_s = encoder, delay_s

    def encode(self, rgb, params=None):
        time.sleep(self.delay_s)
        return self.encoder.encode(rgb, params)

    def stats(self):
        return {}


@pytest.mark.parametrize("schedule", ["serial", "overlap"])
def test_both_schedules_publish_fresh_frames(generator, encoder, schedule):
    sink = CollectSink()
    engine = Engine(ParamStore(), generator, encoder, make_source("pattern", size=(96, 72), fps=30.0), [sink],
                    schedule=schedule)
    engine.start()
    try:
        assert conftest.wait_for(lambda: len({f.source_index for f in sink.frames if f.source_index >= 0}) >= 5,
                                 timeout=30)
        names = {t.name for t in threading.enumerate()}
        assert ("engine-encode" in names) is (schedule == "overlap")
        health = engine.health()
        assert health["schedule"] == schedule and health["status"] == "ok"
        assert health["stage_ms"].get("encode", 0) > 0
    finally:
        engine.stop()


def test_serial_schedule_keeps_publishing_past_a_slow_encoder(generator, encoder):
    """Serial stages wait for one encode at most: a 0.3 s encoder still gives a steady stream of frames."""
    sink = CollectSink()
    engine = Engine(ParamStore(), generator, SlowEncoder(encoder, 0.3),
                    make_source("pattern", size=(96, 72), fps=30.0), [sink], schedule="serial")
    engine.start()
    try:
        assert conftest.wait_for(lambda: any(f.source_index >= 0 for f in sink.frames), timeout=30)
        start = len(sink.frames)
        times = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            if len(sink.frames) > start:
                times.append(sink.frames[-1].t_rendered)
                start = len(sink.frames)
            time.sleep(0.01)
    finally:
        engine.stop()
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) >= 4 and max(gaps) < 1.2, gaps  # new camera frames keep arriving, about every 0.3 s


def test_overlapping_encode_starts_just_in_time_for_the_render_thread(generator, encoder, monkeypatch):
    """Synthesis takes 100 ms and encoding 20 ms: 10 ms after the render thread took the last latents the
    encoder waits ~70 ms, so its latents (and their camera frame) are fresh when the render thread is free.
    While the last latents are still in the box it first waits for them to be taken; an idle render thread or
    a slower encoder means no wait, and a wild estimate waits half a second at most."""
    engine = Engine(ParamStore(), generator, encoder, make_source("pattern", size=(96, 72), fps=30.0),
                    schedule="overlap")
    waits: list[float] = []
    monkeypatch.setattr(engine._stop, "wait", lambda seconds: waits.append(seconds))
    engine.clock.add("synth", 100.0)
    engine.clock.add("encode", 20.0)
    box = engine.latents_box
    box.put("latents 1")
    box.get(0)
    box.taken_at = time.monotonic() - 0.010
    engine._wait_for_render_slot()
    assert len(waits) == 1 and 0.06 < waits[0] <= 0.07
    box.taken_at = time.monotonic() - 0.2  # render thread idle since
    engine._wait_for_render_slot()
    engine.clock.ms["encode"] = 150.0  # the encoder is the slow stage
    box.taken_at = time.monotonic()
    engine._wait_for_render_slot()
    assert len(waits) == 1
    engine.clock.ms.update(encode=20.0, synth=100.0)
    box.put("latents 2")  # not taken yet: the render thread is still on its frame
    taker = threading.Timer(0.05, lambda: box.get(1))
    taker.start()
    engine._wait_for_render_slot()
    assert box.taken_at > 0 and len(waits) == 2 and 0.07 < waits[1] <= 0.08  # timed from the take, not before it
    engine.clock.ms.update(encode=1.0, synth=5000.0)
    engine._wait_for_render_slot()
    assert waits[-1] == 0.5


def test_seed_latents_are_float32_before_they_reach_the_device(monkeypatch):
    """MPS has no float64: numpy's float64 z must be cast before .to(device), as render and the benches do."""
    import numpy as np

    from bridge.latents import seed_z

    moved = []
    original = torch.Tensor.to

    def spy(self, *args, **kwargs):
        moved.append(self.dtype)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    z = seed_z(7, 16, "cpu")
    assert moved and all(dtype == torch.float32 for dtype in moved)
    assert z.dtype == torch.float32 and z.shape == (1, 16)
    assert np.allclose(z.numpy(), np.random.RandomState(7).randn(1, 16), atol=1e-6)  # gen_images.py's z


def test_mps_work_takes_turns_across_threads():
    """On MPS every thread's torch work (engine stages, depth) holds one process-wide turn; elsewhere none."""
    from bridge.device import torch_turn

    assert torch_turn("mps") is torch_turn("mps:0")
    entered = threading.Event()

    def take_turn() -> None:
        with torch_turn("mps"):
            entered.set()

    with torch_turn("mps"):
        worker = threading.Thread(target=take_turn, daemon=True)
        worker.start()
        assert not entered.wait(0.3)  # the second thread waits while the first holds the turn
        with torch_turn("cpu"), torch_turn("cuda"):  # nothing is held for other devices
            pass
    assert entered.wait(5)
