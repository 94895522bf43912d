"""NDI in, for real: an independent NDI sender process (ndi-python) -> our NdiSource on loopback.

As the camera does, a sender that vanishes makes ``read`` return None (the engine holds the last frame) and
the source reconnects with back-off once the sender is back; and receivers that come and go leave no
threads or file descriptors behind.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from bridge.sources import make_source
from bridge.sources.base import SourceUnavailable
from bridge.sources.ndi_in import inner_name, pick_source
from conftest import read_frames
from standins.ndi_env import probe_sender, require_ndi
from standins.ndi_probe import moving_picture

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ndilib(tmp_path_factory):
    return require_ndi(tmp_path_factory.mktemp("ndi-config"))


def unique(name: str) -> str:
    return f"vrb-in-{name}-{os.getpid()}"


def best_shift(rgb: np.ndarray) -> tuple[int, float]:
    """Which sender frame i this is, and how far it is from it (the probe sends moving_picture(i))."""
    height, width = rgb.shape[:2]
    errors = [np.abs(rgb.astype(int) - moving_picture(width, height, i)).mean() for i in range(64)]
    i = int(np.argmin(errors))
    return i, errors[i]


def process_counts() -> tuple[int, int]:
    return len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))


def test_frames_arrive_from_an_ndi_sender_process(ndilib):
    name = unique("cam")
    sender = probe_sender(name, seconds=20, size="320x240")
    source = make_source(f"ndi:{name}")
    try:
        source.open()
        frames = read_frames(source, 3)
        assert len(frames) == 3, source.stats()
        assert [f.index for f in frames] == [0, 1, 2]
        for frame in frames:
            assert frame.rgb.shape == (240, 320, 3) and frame.rgb.dtype == np.uint8
            assert frame.source == f"ndi:{name}"
            _, error = best_shift(frame.rgb)
            assert error < 3.0  # RGB (not BGR), content within codec loss
        assert source.stats()["status"] == "running"
        assert source.stats()["connected_to"].endswith(f"({name})")
    finally:
        source.close()
        sender.kill()
        sender.wait()


def test_a_vanished_sender_is_held_then_reconnected(ndilib):
    name = unique("vanish")
    sender = probe_sender(name, seconds=30)
    source = make_source(f"ndi:{name}")
    try:
        source.open()
        assert len(read_frames(source, 2)) == 2
        sender.kill()  # TouchDesigner closed
        sender.wait()
        deadline = time.monotonic() + 15
        while not source.status.startswith("reconnecting") and time.monotonic() < deadline:
            assert source.read(timeout=0.1) is None  # nothing new: the engine keeps the last frame
        assert source.status.startswith("reconnecting"), source.status
        sender = probe_sender(name, seconds=30)  # TouchDesigner reopened
        frames = read_frames(source, 2, timeout=20)
        assert len(frames) == 2, source.stats()
        assert source.reconnects >= 1 and source.status == "running"
    finally:
        source.close()
        sender.kill()
        sender.wait()


def test_receivers_that_come_and_go_20_times_leak_nothing(ndilib):
    name = unique("cycle")
    sender = probe_sender(name, seconds=60, size="160x120")
    try:
        warm = make_source(f"ndi:{name}")  # the NDI runtime's own threads start on first use
        warm.open()
        read_frames(warm, 1)
        warm.close()
        before = process_counts()
        python_threads = threading.active_count()
        for cycle in range(20):
            source = make_source(f"ndi:{name}")
            source.open()
            assert len(read_frames(source, 1)) == 1, f"cycle {cycle + 1}: {source.stats()}"
            source.close()
        tasks, fds = process_counts()
        assert threading.active_count() == python_threads
        assert tasks <= before[0] + 2 and fds <= before[1] + 2, (before, (tasks, fds))
    finally:
        sender.kill()
        sender.wait()


def test_missing_name_is_a_clear_error(ndilib):
    with pytest.raises(SourceUnavailable, match="ndi: name the NDI source"):
        make_source("ndi:")


def test_name_matching_prefers_an_exact_name():
    class S:
        def __init__(self, name):
            self.ndi_name = name

    sources = [S("HOST (cam 2)"), S("HOST (cam)"), S("OTHER (projector)")]
    assert inner_name("HOST (cam (2))") == "cam (2)"
    assert pick_source("cam", sources).ndi_name == "HOST (cam)"
    assert pick_source("HOST (cam 2)", sources).ndi_name == "HOST (cam 2)"
    assert pick_source("proj", sources).ndi_name == "OTHER (projector)"
    assert pick_source("nothing", sources) is None
