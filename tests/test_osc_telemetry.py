"""Telemetry on real sockets: what a python-osc server and liblo's oscdump receive, datagram sizes, the
CHOP-friendly names, rate limiting, heartbeat and rate-limited error answers."""
from __future__ import annotations

import os
import socket
import subprocess
import time

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle

from bridge.frames import HAND_LANDMARK_NAMES, FrameReport, Hand, Keypoints
from bridge.osc import codec
from bridge.osc.telemetry import Telemetry
from bridge.params import ParamStore
from conftest import free_port, require_tool
from test_osc_support import Collector


def _report(store: ParamStore, index: int = 7, hand: bool = True) -> FrameReport:
    landmarks = np.stack([np.linspace(0.1, 0.9, 21), np.linspace(0.2, 0.8, 21), np.zeros(21)], 1).astype(np.float32)
    keypoints = Keypoints(hands=(Hand(landmarks, "right", 0.93),), active=0, t_capture=0.0, frame_index=index) \
        if hand else None
    rng = np.random.default_rng(0)
    return FrameReport(index=index, fps=29.5, stage_ms={"encode": 4.5, "synth": 20.25}, dropped=3,
                       params=dict(store.snapshot()),
                       latents={g: rng.standard_normal(512).astype(np.float32) for g in ("coarse", "middle", "fine")},
                       keypoints=keypoints, features={"distance": 0.4, "angle": -12.0},
                       health={"status": "ok", "sinks": {"ndi": {"dropped": 2, "ok": True}}})


@pytest.fixture
def telemetry():
    collector = Collector()
    store = ParamStore()
    sender = Telemetry(store, [("127.0.0.1", collector.port)])
    sender.start()
    yield store, sender, collector
    sender.close()
    collector.close()


def test_a_frame_report_becomes_clean_chop_channels(telemetry):
    store, sender, collector = telemetry
    store.set("mix.coarse", (0, 4))
    store.set("noise_mode", "random")
    report = _report(store)
    sender.observe(report)
    assert collector.wait_for("/vrb/frame") == (7,)
    assert collector.wait_for("/vrb/fps")[0] == pytest.approx(29.5)
    assert collector.wait_for("/vrb/ms/synth")[0] == pytest.approx(20.25)
    assert collector.wait_for("/vrb/dropped") == (3,)
    assert collector.wait_for("/vrb/psi")[0] == pytest.approx(0.7)
    assert collector.wait_for("/vrb/mix/coarse/start") == (0,) and collector.wait_for("/vrb/mix/coarse/end") == (4,)
    assert collector.wait_for("/vrb/noise_mode") == (1,)  # enum as its index (CHOPs hold numbers)
    assert collector.wait_for("/vrb/freeze") == (0,)
    z = report.latents["middle"]
    assert collector.wait_for("/vrb/z/middle/mean")[0] == pytest.approx(float(z.mean()), abs=1e-6)
    assert collector.wait_for("/vrb/z/middle/std")[0] == pytest.approx(float(z.std()), abs=1e-6)
    assert collector.wait_for("/vrb/z/fine/7")[0] == pytest.approx(float(report.latents["fine"][7]), abs=1e-6)
    assert not collector.values("/vrb/z/fine/8")  # telemetry.z_dims = 8
    assert collector.wait_for("/vrb/h1/present") == (1,)
    for i in (0, 8, 20):
        name = HAND_LANDMARK_NAMES[i]
        assert collector.wait_for(f"/vrb/h1/{name}/x")[0] == pytest.approx(0.1 + 0.04 * i, abs=1e-6)
        assert collector.wait_for(f"/vrb/h1/{name}/y")[0] == pytest.approx(0.2 + 0.03 * i, abs=1e-6)
    assert collector.wait_for("/vrb/hand/angle")[0] == pytest.approx(-12.0)
    assert collector.wait_for("/vrb/health/sinks/ndi/dropped") == (2,)
    assert collector.wait_for("/vrb/health/status") == ("ok",)
    assert collector.wait_for("/vrb/heartbeat")[0] >= 0
    assert not [a for a, args in collector.messages if len(args) != 1 and a != "/vrb/error"]  # one value each


def test_no_hand_says_so_and_z_dims_follow_the_parameter(telemetry):
    store, sender, collector = telemetry
    store.set("telemetry.z_dims", 2)
    sender.observe(_report(store, hand=False))
    assert collector.wait_for("/vrb/h1/present") == (0,)
    collector.wait_for("/vrb/z/coarse/1")
    assert not collector.values("/vrb/z/coarse/2") and not collector.values("/vrb/h1/wrist/x")


def test_datagrams_stay_under_the_safe_size():
    store = ParamStore()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2.0)
        store.set("telemetry.z_dims", 64)
        sender = Telemetry(store, [rx.getsockname()])
        sender.send_report(_report(store))  # called directly: no thread, no heartbeat in between
        datagrams = []
        rx.settimeout(0.3)
        try:
            while True:
                datagrams.append(rx.recv(65536))
        except socket.timeout:
            pass
        sender.close()
    assert len(datagrams) >= 3  # ~300 values cannot fit one datagram
    assert all(len(d) <= codec.SAFE_DATAGRAM for d in datagrams)
    addresses = [m.address for d in datagrams for m in OscBundle(d)]  # python-osc parses every bundle
    assert len(addresses) == len(set(addresses)) and "/vrb/z/fine/63" in addresses


def test_rate_limit_keeps_the_newest(telemetry):
    store, sender, collector = telemetry
    store.set("telemetry.rate_hz", 4.0)
    for i in range(40):
        sender.observe(_report(store, index=i, hand=False))
        time.sleep(0.01)
    time.sleep(0.4)
    frames = [args[0] for args in collector.values("/vrb/frame")]
    assert 1 <= len(frames) <= 4, frames  # ~0.5 s at 4 Hz, not 40 bundles
    assert frames == sorted(frames) and sender.stats()["skipped"] >= 1


def test_errors_are_rate_limited_per_code(telemetry):
    store, sender, collector = telemetry
    for i in range(100):
        sender.send_error("unknown", f"/vrb/nope{i}: no such address")
    sender.send_error("type", "seed: expects an integer")
    assert collector.wait_for("/vrb/error", where=lambda a: a[0] == "type")
    time.sleep(0.1)
    unknown = [a for a in collector.values("/vrb/error") if a[0] == "unknown"]
    assert 10 <= len(unknown) <= 12  # the burst, not the flood
    assert sender.stats()["errors_suppressed"] >= 88


def test_oscdump_reads_telemetry():
    oscdump = require_tool("oscdump")
    store = ParamStore()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dump = subprocess.Popen([oscdump, "-L", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        sender = Telemetry(store, [("127.0.0.1", port)])
        sender.start()
        sender.observe(_report(store, index=42))
        sender.send_error("range", "seed: -1 is outside [0, 2147483647]")
        lines = []
        deadline = time.monotonic() + 5
        wanted = ("/vrb/frame i 42", "/vrb/error", "/vrb/h1/wrist/x")
        while time.monotonic() < deadline and not all(any(w in line for line in lines) for w in wanted):
            lines.append(dump.stdout.readline())
        sender.close()
    finally:
        dump.terminate()
        dump.wait(5)
    text = "".join(lines)
    assert "/vrb/frame i 42" in text
    assert '/vrb/error ss "range" "seed: -1 is outside' in text
    assert "/vrb/h1/wrist/x f 0.1" in text


def test_a_second_engine_sending_to_the_same_target_is_warned_about(caplog):
    from bridge.osc.telemetry import Telemetry
    from bridge.params import ParamStore

    port = free_port()
    first = Telemetry(ParamStore(), [("127.0.0.1", port)])
    second = Telemetry(ParamStore(), [("127.0.0.1", port)])
    third = None
    with caplog.at_level("WARNING"):
        first.start()
        second.start()
        warned = [r.getMessage() for r in caplog.records if "already sends to" in r.getMessage()]
        second.close()
        first.close()  # the first engine stops: its claim goes with it
        caplog.clear()
        third = Telemetry(ParamStore(), [("127.0.0.1", port)])
        third.start()
        third.close()
    assert len(warned) == 1 and f"127.0.0.1:{port}" in warned[0] and f"pid {os.getpid()}" in warned[0]
    assert "--osc-out 127.0.0.1:PORT" in warned[0]
    assert not [r for r in caplog.records if "already sends to" in r.getMessage()]
