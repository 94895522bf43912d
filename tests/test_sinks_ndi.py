"""NDI out, for real: our sink in this process, an independent receiver process (ndi-python) on loopback.

What a TouchDesigner NDI In TOP would see is checked from outside: size, FourCC, frame rate, content within
codec loss, alpha, per-frame metadata (frame index) and timecode; plus receivers that come and go x20 while
the render loop keeps publishing, a name already taken, and the latest frame winning when NDI is slower.
"""
from __future__ import annotations

import os
import re
import threading
import time

import numpy as np
import pytest

from bridge.frames import RenderedFrame
from bridge.params import ParamStore
from bridge.sinks import make_sink
from standins.ndi_env import probe_receive, require_ndi
from standins.ndi_probe import moving_picture as picture

pytestmark = pytest.mark.slow
FRAME_RE = re.compile(r'<vrb frame="(\d+)" source_frame="(-?\d+)" t_rendered="([\d.]+)"/>')


@pytest.fixture(scope="module")
def ndilib(tmp_path_factory):
    return require_ndi(tmp_path_factory.mktemp("ndi-config"))


def unique(name: str) -> str:
    return f"vrb-{name}-{os.getpid()}"


class RenderLoop:
    """Stands for the engine's render thread: publishes ``picture(i)`` at ``hz`` and remembers what it sent."""

    def __init__(self, sink, size=(320, 180), hz=30.0):
        self.sink, self.size, self.hz = sink, size, hz
        self.published = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        width, height = self.size
        while not self._stop.is_set():
            i = self.published
            now = time.monotonic()
            self.sink.publish(RenderedFrame(rgb=picture(width, height, i), index=i, source_index=1000 + i,
                                            t_capture=now, t_rendered=now))
            self.published += 1
            self._stop.wait(1.0 / self.hz)

    def __enter__(self):
        self.sink.start()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)
        self.sink.close()


def received_rgb(bgra: np.ndarray) -> np.ndarray:
    return bgra[:, :, 2::-1]


def test_frames_arrive_with_size_content_metadata_and_timecode(ndilib, tmp_path):
    name = unique("basic")
    sink = make_sink(f"ndi:{name}", fps=30)
    with RenderLoop(sink, size=(320, 180)) as loop:
        status, records = probe_receive(name, frames=4, save=tmp_path / "px.npz")
        published = loop.published
    assert status == 0, records
    assert sink.actual_name == name and sink.stats()["errors"] == 0
    pixels = np.load(tmp_path / "px.npz")
    for k, rec in enumerate(records):
        assert (rec["w"], rec["h"]) == (320, 180)
        assert rec["fourcc"].endswith("BGRA")
        assert (rec["fps_n"], rec["fps_d"]) == (30, 1)
        assert rec["source"].endswith(f"({name})")
        match = FRAME_RE.fullmatch(rec["metadata"])
        assert match, rec["metadata"]
        index = int(match.group(1))
        assert 0 <= index < published and int(match.group(2)) == 1000 + index
        # timecode: the render time in 100 ns units since the epoch; it was rendered before it was received
        assert 0 <= rec["t_received"] - rec["timecode"] / 1e7 < 5.0
        got = pixels[f"f{k}"]
        error = np.abs(received_rgb(got).astype(int) - picture(320, 180, index)).mean()
        # NDI's codec loses ~2-3 levels on this test picture, depending on the frame (frame 23: 3.004)
        assert error < 4.0, f"frame {index}: mean error {error:.2f} beyond codec loss"
        assert (got[:, :, 3] == 255).all()  # alpha.mode opaque


def test_luma_key_alpha_reaches_the_receiver(ndilib, tmp_path):
    name = unique("alpha")
    params = ParamStore({"alpha.mode": "luma", "alpha.luma_low": 0.2, "alpha.luma_high": 0.6})
    sink = make_sink(f"ndi:{name}", fps=30, params=params)
    with RenderLoop(sink, size=(320, 180)):
        status, records = probe_receive(name, frames=2, save=tmp_path / "px.npz")
    assert status == 0
    got = np.load(tmp_path / "px.npz")["f1"]
    index = int(FRAME_RE.fullmatch(records[1]["metadata"]).group(1))
    rgb = picture(320, 180, index)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    expected = np.clip((luma / 255 - 0.2) / 0.4, 0, 1) * 255
    assert np.abs(got[:, :, 3].astype(float) - expected).mean() < 4.0
    assert (got[:, :, 3][expected == 0] < 8).all() and (got[:, :, 3][expected == 255] > 247).all()


@pytest.mark.parametrize("size", [(640, 360), (1280, 720)], ids=["sd", "hd"])
def test_uyvy_colours_match_ndis_own_conversion(ndilib, tmp_path, size):
    """NDI decodes our UYVY back to BGRA with its own matrix (Rec.709 at every size): a wrong one is ~5 levels off."""
    name = unique(f"uyvy{size[1]}")
    sink = make_sink(f"ndi:{name}", fps=30, fmt="uyvy")
    with RenderLoop(sink, size=size):
        status, records = probe_receive(name, frames=2, save=tmp_path / "px.npz")
    assert status == 0 and records[0]["fourcc"].endswith("BGRX")  # the receiver asked BGRX_BGRA: no alpha sent
    assert (records[0]["w"], records[0]["h"]) == size
    index = int(FRAME_RE.fullmatch(records[1]["metadata"]).group(1))
    got = received_rgb(np.load(tmp_path / "px.npz")["f1"]).astype(int)
    assert np.abs(got - picture(*size, index)).mean() < 3.0


def test_receiver_restarted_20_times_never_stalls_the_sender(ndilib):
    name = unique("restart")
    sink = make_sink(f"ndi:{name}", fps=60)
    threads_before = threading.active_count()
    with RenderLoop(sink, size=(256, 144), hz=60) as loop:
        progress = []
        for attempt in range(20):
            sent_before = sink.sent
            status, records = probe_receive(name, frames=1, timeout=15)
            assert status == 0, f"receiver #{attempt + 1} got nothing"
            assert FRAME_RE.fullmatch(records[0]["metadata"])
            progress.append(sink.sent - sent_before)
        sent = sink.sent  # before published: the sink only ever sends what was published before it
        published = loop.published
    assert all(n > 0 for n in progress), f"the sender stalled during a receiver restart: {progress}"
    assert sink.errors == 0 and sent > 20
    assert published >= sent  # the render loop was never held back by NDI
    assert threading.active_count() <= threads_before  # sink thread gone, nothing left behind


def test_latest_frame_wins_when_ndi_is_slower_than_the_render_loop(ndilib):
    name = unique("latest")
    sink = make_sink(f"ndi:{name}", fps=5)  # a clocked send at 5 fps blocks ~200 ms per frame
    sink.start()
    received: list = []
    receiver = threading.Thread(target=lambda: received.extend(probe_receive(name, frames=40, timeout=8)[1]))
    try:
        now = time.monotonic()
        sink.publish(RenderedFrame(rgb=picture(128, 72, 0), index=0, source_index=0, t_capture=now, t_rendered=now))
        receiver.start()  # connected before the burst, so it sees every frame NDI actually sends
        deadline = time.monotonic() + 20
        while sink.stats()["connections"] < 1 and time.monotonic() < deadline:
            now = time.monotonic()
            sink.publish(RenderedFrame(rgb=picture(128, 72, 0), index=0, source_index=0, t_capture=now,
                                       t_rendered=now))
            time.sleep(0.1)
        assert sink.stats()["connections"] >= 1, "the receiver never connected"
        for i in range(1, 40):  # a burst far faster than 5 fps
            now = time.monotonic()
            sink.publish(RenderedFrame(rgb=picture(128, 72, i), index=i, source_index=i, t_capture=now,
                                       t_rendered=now))
            time.sleep(0.005)
        receiver.join(timeout=40)
        indices = [int(FRAME_RE.fullmatch(r["metadata"]).group(1)) for r in received]
        burst = [i for i in indices if i > 0]
        assert burst and burst[-1] == 39, indices  # the newest frame reached the receiver
        assert len(burst) <= 5, indices  # ...and not a queue of the 39 old ones
        assert burst == sorted(burst)
        assert sink.stats()["dropped"] > 20
    finally:
        sink.close()


def test_a_taken_name_reports_the_name_actually_got(ndilib):
    name = unique("taken")
    create = ndilib.SendCreate()
    create.ndi_name = name
    holder = ndilib.send_create(create)  # someone else (here: a raw NDI sender) already uses NAME on this host
    assert holder is not None
    try:
        sink = make_sink(f"ndi:{name}", fps=30)
        with RenderLoop(sink, size=(160, 90)):
            deadline = time.monotonic() + 10
            while not sink.actual_name and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sink.actual_name == f"{name} (2)"
            assert sink.describe() == f"ndi:{name} (2)"
            status, records = probe_receive(f"({name} (2))", frames=1)
            assert status == 0 and FRAME_RE.fullmatch(records[0]["metadata"])
    finally:
        ndilib.send_destroy(holder)


def test_bad_settings_are_refused_with_a_clear_message(ndilib):
    with pytest.raises(ValueError, match=r"ndi: fps 500 is outside \[1, 240\]"):
        make_sink("ndi:x", fps=500)
    with pytest.raises(ValueError, match="ndi: format 'rgb' is not one of bgra, uyvy"):
        make_sink("ndi:x", fmt="rgb")
    with pytest.raises(ValueError, match="must be printable"):
        make_sink("ndi:bad\nname")
    assert make_sink("ndi:").name == "vrbridge"  # the app name by default
