"""Syphon out and in: syphon-python 0.2.0's REAL package code, with stand-ins only for PyObjC and Metal.

The macOS wheel is downloaded once into tests/.cache (pip download --platform macosx_12_0_universal2) and
unzipped; its Python code then runs on this Linux machine against tests/standins/macos (objc, Foundation,
Cocoa, AppKit, Metal and the native Syphon classes). So our adapter's calls are checked against the real
library's code: texture layout (H, W, 4) RGBA, the region it publishes, and the main-thread run-loop pump.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bridge.frames import RenderedFrame
from bridge.params import ParamStore
from bridge.sinks import SinkUnavailable, make_sink
from bridge.sources import SourceUnavailable, make_source
from conftest import wait_for

HERE = Path(__file__).parent
STANDINS = HERE / "standins" / "macos"
CACHE = HERE / ".cache" / "syphon-python-0.2.0"
STANDIN_MODULES = ("objc", "Foundation", "Cocoa", "AppKit", "Metal", "_mac", "_syphon_native")


def syphon_wheel() -> Path:
    """The unzipped real wheel (downloaded on first use), or skip locally / fail under CI."""
    if (CACHE / "syphon" / "server.py").exists():
        return CACHE
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                           "--platform", "macosx_12_0_universal2", "syphon-python==0.2.0", "-d", str(CACHE)],
                          capture_output=True, text=True, timeout=300)
    wheels = list(CACHE.glob("syphon_python-0.2.0-*.whl"))
    if done.returncode or not wheels:
        message = f"could not download the syphon-python wheel: {done.stderr.strip()[-300:]}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    with zipfile.ZipFile(wheels[0]) as wheel:
        wheel.extractall(CACHE)
    return CACHE


@pytest.fixture
def mac(monkeypatch):
    """Real syphon-python on the path, stand-ins for the macOS modules; fresh state per test."""
    root = syphon_wheel()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.syspath_prepend(str(STANDINS))
    for name in [m for m in sys.modules if m in STANDIN_MODULES or m == "syphon" or m.startswith("syphon.")]:
        monkeypatch.delitem(sys.modules, name)
    import _mac
    import syphon

    assert Path(syphon.__file__).is_relative_to(root)  # the real package, not a stand-in
    _mac.reset()
    yield _mac
    _mac.reset()
    for name in [m for m in sys.modules if m in STANDIN_MODULES or m == "syphon" or m.startswith("syphon.")]:
        sys.modules.pop(name, None)


def frame(i: int, size=(40, 30)) -> RenderedFrame:
    width, height = size
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = np.arange(width, dtype=np.uint8)[None, :] * 6
    rgb[..., 1] = np.arange(height, dtype=np.uint8)[:, None] * 8
    rgb[..., 2] = (i * 10) % 256
    now = time.monotonic()
    return RenderedFrame(rgb=rgb, index=i, source_index=i, t_capture=now, t_rendered=now)


def calls(mac, what):
    return [(args, tid) for name, args, tid in mac.CALLS if name == what]


def test_sink_publishes_rgba_texture_and_pumps_main_run_loop_each_frame(mac):
    sink = make_sink("syphon:stage", params=ParamStore({"alpha.mode": "luma"}))
    sink.start()
    try:
        for i in range(3):
            sink.publish(frame(i))
            assert wait_for(lambda: sink.sent == i + 1), sink.stats()
            sink.main_thread_tick()  # the engine's main loop hook (pytest runs on the main thread)
        sink.main_thread_tick()  # nothing new published: no pump
    finally:
        sink.close()
    assert sink.stats()["run_loop_pumps"] == 3 and sink.actual_name == "stage"
    pumps = calls(mac, "runMode_beforeDate_")
    assert len(pumps) == 3
    assert all(args == ("kCFRunLoopDefaultMode", 0.001, True) for args, _ in pumps)  # main thread, 1 ms
    # the real package code: loadBundle of the wheel's Syphon.framework, one server, whole-texture writes
    assert mac.LOADED_BUNDLES[-1].endswith("syphon/libs/Syphon.framework")  # at import of the real package
    inits = calls(mac, "SyphonMetalServer.init")
    assert len(inits) == 1 and inits[0][0][0] == "stage"
    assert [a for a, _ in calls(mac, "replaceRegion")] == [(40, 30)] * 3
    assert [a for a, _ in calls(mac, "publishFrameTexture")] == [(40, 30, False)] * 3
    publish_threads = {tid for _, tid in calls(mac, "publishFrameTexture")}
    assert publish_threads and threading.main_thread().ident not in publish_threads  # sink thread publishes
    assert calls(mac, "SyphonMetalServer.stop")  # closed
    assert not mac.SERVERS


def test_texture_holds_rgba_in_h_w_4_layout(mac):
    sink = make_sink("syphon:layout", params=ParamStore({"alpha.mode": "luma", "alpha.invert": True}))
    sink.start()
    try:
        sink.publish(frame(5))
        assert wait_for(lambda: sink.sent == 1)
        texture = sink._texture
        data = np.frombuffer(bytes(texture.data), np.uint8).reshape(30, 40, 4)
        assert np.array_equal(data[..., :3], frame(5).rgb)  # R, G, B in order, row 0 = top
        luma = np.round(frame(5).rgb @ np.array([0.299, 0.587, 0.114]))
        assert np.abs(data[..., 3].astype(int) - (255 - luma)).max() <= 1  # inverted luma key
        sink.publish(frame(6, size=(64, 32)))  # a new output size: a new texture of that size
        assert wait_for(lambda: sink.sent == 2)
        assert (sink._texture.width(), sink._texture.height()) == (64, 32)
    finally:
        sink.close()


def test_pumping_from_another_thread_is_refused(mac):
    sink = make_sink("syphon:threads")
    sink.start()
    errors = []
    try:
        sink.publish(frame(0))
        assert wait_for(lambda: sink.sent == 1)
        worker = threading.Thread(target=lambda: _catch(sink.main_thread_tick, errors))
        worker.start()
        worker.join()
    finally:
        sink.close()
    assert errors and "main thread" in errors[0]


def _catch(fn, errors):
    try:
        fn()
    except RuntimeError as exc:
        errors.append(str(exc))


def test_syphon_source_receives_rgb_and_holds_a_stopped_server(mac):
    sink = make_sink("syphon:td-out")
    sink.start()
    source = make_source("syphon:td-out")
    try:
        sink.publish(frame(9))
        assert wait_for(lambda: sink.sent == 1)
        source.open()
        got = None
        deadline = time.monotonic() + 5
        while got is None and time.monotonic() < deadline:
            got = source.read(timeout=0.05)
        assert got is not None and got.rgb.shape == (30, 40, 3)
        assert np.array_equal(got.rgb, frame(9).rgb)  # the BGRA8 surface came back as RGB
        assert source.read(timeout=0.05) is None  # no new frame: hold
        sink.close()  # the server stops
        deadline = time.monotonic() + 5
        while not source.status.startswith("reconnecting") and time.monotonic() < deadline:
            assert source.read(timeout=0.05) is None
        assert source.status.startswith("reconnecting")
    finally:
        source.close()
        sink.close()


def test_missing_package_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "syphon", None)
    with pytest.raises(SinkUnavailable) as info:
        make_sink("syphon:x")
    assert "\n" not in str(info.value)
    if sys.platform != "darwin":
        assert str(info.value) == 'Syphon needs macOS 12+ and `pip install -e ".[syphon]"` in the clone'
    with pytest.raises(SourceUnavailable, match=r"Syphon in needs .*\[syphon\]"):
        make_source("syphon:x")
