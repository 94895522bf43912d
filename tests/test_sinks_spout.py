"""Spout out and in, against a strict stand-in of SpoutGL 0.1.1 (tests/standins/spoutgl; pinned API in its header).

The stand-in enforces the real binding's names, argument orders and types, and Spout's hidden-context rule
(createOpenGL, every send/receive and closeOpenGL on one thread). On Windows with SpoutGL installed, the last
test runs the same round trip through the real library (.github/workflows/platforms.yml).
"""
from __future__ import annotations

import importlib
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bridge.frames import RenderedFrame
from bridge.params import ParamStore
from bridge.sinks import SinkUnavailable, make_sink
from bridge.sources import SourceUnavailable, make_source
from conftest import wait_for

STANDIN = Path(__file__).parent / "standins" / "spoutgl"

# The pinned SpoutGL 0.1.1 surface (from the wheel's _spoutgl.pyd strings and its pybind11 source).
COMMON = {"isGLDXReady", "getAutoShare", "setAutoShare", "getCPUshare", "setCPUshare", "createOpenGL",
          "closeOpenGL", "setActiveSender", "getActiveSender", "getSenderInfo"}
SENDER = COMMON | {"setSenderName", "releaseSender", "sendTexture", "sendFbo", "sendImage", "getFrame",
                   "setFrameSync", "waitFrameSync", "getCPU", "getGLDX", "createMemoryBuffer", "writeMemoryBuffer",
                   "deleteMemoryBuffer", "getMemoryBufferSize"}
RECEIVER = COMMON | {"setReceiverName", "releaseReceiver", "receiveTexture", "receiveImage", "getSenderList",
                     "getSenderName", "getSenderWidth", "getSenderHeight", "getSenderFormat", "isConnected",
                     "isUpdated", "isFrameNew", "isFrameCountEnabled", "getSenderFrame", "setFrameSync",
                     "waitFrameSync", "readMemoryBuffer", "getMemoryBufferSize"}


@pytest.fixture
def spoutgl(monkeypatch):
    """The stand-in imported as ``SpoutGL`` for one test, with an empty sender table."""
    monkeypatch.syspath_prepend(str(STANDIN))
    for name in [m for m in sys.modules if m == "SpoutGL" or m.startswith("SpoutGL.")]:
        monkeypatch.delitem(sys.modules, name)
    module = importlib.import_module("SpoutGL")
    module.REGISTRY.reset()
    yield module
    module.REGISTRY.reset()


def frame(i: int, size=(64, 48)) -> RenderedFrame:
    width, height = size
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = np.arange(width, dtype=np.uint8)[None, :] * 3
    rgb[..., 1] = np.arange(height, dtype=np.uint8)[:, None] * 5
    rgb[..., 2] = i % 256
    now = time.monotonic()
    return RenderedFrame(rgb=rgb, index=i, source_index=i, t_capture=now, t_rendered=now)


def public(cls) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_standin_exposes_exactly_the_pinned_api(spoutgl):
    assert public(spoutgl.SpoutSender) == SENDER
    assert public(spoutgl.SpoutReceiver) == RECEIVER
    assert {n for n in dir(spoutgl.enums) if n.startswith("GL_")} == {"GL_RGBA", "GL_BGRA_EXT", "GL_RGB", "GL_BGR_EXT"}
    with pytest.raises(TypeError):  # pybind11: a float is not an int, nor is a missing argument accepted
        spoutgl.SpoutSender().sendImage(b"\0" * 16, 2.0, 2, spoutgl.enums.GL_RGBA, False, 0)


def test_sink_makes_hidden_context_on_its_thread_sends_rgba_and_syncs(spoutgl):
    sink = make_sink("spout:stage", params=ParamStore({"alpha.mode": "luma"}))
    sink.start()
    try:
        sink.publish(frame(7))
        assert wait_for(lambda: sink.sent == 1), sink.stats()
        shared = spoutgl.REGISTRY.get("stage")
        assert (shared.width, shared.height, shared.gl_format) == (64, 48, spoutgl.enums.GL_RGBA)
        pixels = np.frombuffer(shared.pixels, np.uint8).reshape(48, 64, 4)
        expected = frame(7).rgb
        assert np.array_equal(pixels[..., :3], expected)  # RGBA, top row first, no inversion
        luma = np.round(expected @ np.array([0.299, 0.587, 0.114]))
        assert np.abs(pixels[..., 3].astype(int) - luma).max() <= 1  # alpha.mode luma (0..1 full range)
        assert shared.synced == 1  # setFrameSync(actual name) after the frame
    finally:
        sink.close()
    calls = [(m, a, t) for kind, m, a, t in spoutgl.REGISTRY.calls if kind == "SpoutSender"]
    names = [m for m, _, _ in calls]
    assert names == ["createOpenGL", "setSenderName", "sendImage", "setFrameSync", "releaseSender", "closeOpenGL"]
    assert calls[1][1] == ("stage",) and calls[2][1] == (64, 48, spoutgl.enums.GL_RGBA, False, 0)
    assert len({t for _, _, t in calls}) == 1 and calls[0][2] != threading.get_ident()  # all on the sink thread
    assert spoutgl.REGISTRY.get("stage") is None  # released


def test_taken_name_reports_the_name_spout_gave(spoutgl):
    taken = spoutgl.REGISTRY.register("vrbridge")  # TouchDesigner already publishes "vrbridge"
    taken.width, taken.height, taken.frame = 1920, 1080, 1
    sink = make_sink("spout:", params=None)  # default name: the app name
    sink.start()
    try:
        sink.publish(frame(1))
        assert wait_for(lambda: sink.sent == 1)
        assert sink.actual_name == "vrbridge_1" and sink.describe() == "spout:vrbridge_1"
        assert spoutgl.REGISTRY.get("vrbridge_1").width == 64
        assert spoutgl.REGISTRY.get("vrbridge_1").synced == 1  # frame sync on the name actually got
    finally:
        sink.close()


def test_a_failing_send_is_counted_and_the_sink_reopens(spoutgl, monkeypatch):
    sink = make_sink("spout:flaky")
    sink.retry_s = 0.05
    real_send = spoutgl.SpoutSender.sendImage
    failures = {"left": 2}

    def flaky(self, *args):
        if failures["left"]:
            failures["left"] -= 1
            return False  # what SpoutGL returns when the GL/DX share breaks
        return real_send(self, *args)

    monkeypatch.setattr(spoutgl.SpoutSender, "sendImage", flaky)
    sink.start()
    try:
        for i in range(50):
            sink.publish(frame(i))
            if sink.sent:
                break
            time.sleep(0.05)
        assert wait_for(lambda: sink.sent >= 1)
        assert sink.errors == 2 and "sendImage failed" in sink.last_error
        opens = [m for _, m, _, _ in spoutgl.REGISTRY.calls if m in ("createOpenGL", "closeOpenGL")]
        assert opens[:4] == ["createOpenGL", "closeOpenGL", "createOpenGL", "closeOpenGL"]  # reopened cleanly
    finally:
        sink.close()


def test_spout_source_receives_rgb_and_holds_a_vanished_sender(spoutgl):
    sink = make_sink("spout:td-out")
    source = make_source("spout:td-out")
    sink.start()
    results = {}

    def capture():  # the engine's capture thread: open + reads + close
        source.open()
        got = []
        deadline = time.monotonic() + 5
        i = 0
        while len(got) < 2 and time.monotonic() < deadline:
            sink.publish(frame(i))
            i += 1
            f = source.read(timeout=0.05)
            if f is not None:
                got.append(f)
        results["frames"] = got
        sink.close()  # TouchDesigner quits
        deadline = time.monotonic() + 10
        while not source.status.startswith("reconnecting") and time.monotonic() < deadline:
            results.setdefault("held", []).append(source.read(timeout=0.05))
        results["status"] = source.status
        source.close()

    worker = threading.Thread(target=capture)
    worker.start()
    worker.join(20)
    frames = results["frames"]
    assert len(frames) == 2 and frames[0].rgb.shape == (48, 64, 3)
    assert np.array_equal(frames[-1].rgb[..., :2], frame(0).rgb[..., :2])  # RGB, right way up
    assert all(f is None for f in results["held"])
    assert results["status"].startswith("reconnecting")


def test_missing_package_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "SpoutGL", None)  # import fails as on a machine without SpoutGL
    with pytest.raises(SinkUnavailable) as info:
        make_sink("spout:x")
    message = str(info.value)
    assert '`pip install -e ".[spout]"` in the clone' in message and "\n" not in message
    if sys.platform != "win32":
        assert message == 'Spout needs Windows and `pip install -e ".[spout]"` in the clone'
    with pytest.raises(SourceUnavailable, match=r"Spout in needs .*\[spout\]"):
        make_source("spout:x")


def test_bad_names_are_refused(spoutgl):
    with pytest.raises(ValueError, match="printable ASCII"):
        make_sink("spout:caf\u00e9")
    with pytest.raises(ValueError, match="at most 255"):
        make_sink("spout:" + "x" * 300)


@pytest.mark.skipif(sys.platform != "win32", reason="the real SpoutGL runs on Windows only")
def test_real_spoutgl_round_trip():  # pragma: no cover - Windows CI job
    SpoutGL = pytest.importorskip("SpoutGL")
    sink = make_sink("spout:vrb-ci")
    receiver = SpoutGL.SpoutReceiver()
    sink.start()
    try:
        assert receiver.createOpenGL()
        receiver.setReceiverName("vrb-ci")
        buffer = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            sink.publish(frame(3))
            if receiver.receiveImage(buffer, SpoutGL.enums.GL_RGBA, False, 0):
                if receiver.isUpdated():
                    buffer = np.zeros((receiver.getSenderHeight(), receiver.getSenderWidth(), 4), np.uint8)
                elif buffer is not None and buffer.any():
                    break
            time.sleep(0.05)
        assert buffer is not None and buffer.shape == (48, 64, 4)
        assert np.abs(buffer[..., :3].astype(int) - frame(3).rgb).max() <= 1
    finally:
        receiver.releaseReceiver()
        receiver.closeOpenGL()
        sink.close()
