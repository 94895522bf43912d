"""Hands plugged into the real engine by ``attach``: MediaPipe on a photo source drives the StyleGAN2 const
corruption end to end; OSC keypoints drive the StyleGAN3 transform; bad settings stop start-up with one line."""
from __future__ import annotations

import shutil
import time

import pytest
from pythonosc.udp_client import SimpleUDPClient

from bridge.cli import UserError
from bridge.startup import StartupError, build_engine
from bridge.tracking.model import BUNDLES
from bridge.frames import HAND_LANDMARK_NAMES

from conftest import IMAGES, STYLEGAN_FIXTURES, free_port
from test_tracking_features import hand_points


def settings(tmp_path, **overrides):
    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    shutil.copy(IMAGES / "handDst.jpg", photos)
    return {"network": str(STYLEGAN_FIXTURES / "sg2_tiny.pkl"), "source": f"images:{photos}",
            "osc_in": "off", "osc_out": [], "oscquery": "off", "preview": "off", "demo_encoder": True,
            **overrides}


def run_until(engine, predicate, timeout: float = 40.0):
    reports = []
    engine.add_report_observer(reports.append)
    engine.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if reports and predicate(reports[-1]):
                return reports[-1]
            time.sleep(0.05)
        pytest.fail(f"no matching report in {timeout} s; last: {reports[-1].features if reports else None}; "
                    f"tracker: {engine.tracker.stats() if engine.tracker else None}")
    finally:
        engine.stop()


def test_mediapipe_hands_drive_the_const_corruption_in_the_running_engine(tmp_path):
    engine = build_engine(settings(tmp_path, hands="mediapipe", **{"hand.ease_s": 0.2}))
    assert engine.tracker is not None and engine.tracker.kind == "mediapipe"
    # wait for the ease-in (0.2 s) to finish: on a fast machine the first reports still show it ramping
    report = run_until(engine, lambda r: r.features.get("present") == 1.0 and r.features.get("const_a", 0) > 0.2
                       and abs(r.features["const_a"] - r.features.get("distance", 0)) < 0.02)
    f = report.features
    assert 0.2 < f["distance"] < 0.35 and 100 < f["angle"] < 115  # handDst: left of centre, fingers to the right
    assert f["const_a"] == pytest.approx(f["distance"], abs=0.02)  # linear curve, amount 1, fully eased in
    assert "transform_angle" not in f  # StyleGAN2: the SG3 transform said so once and stays idle
    assert report.keypoints is not None and report.keypoints.active_hand.handedness == "left"
    assert engine.tracker.stats()["errors"] == 0


def test_osc_hands_drive_the_sg3_transform_in_the_running_engine(tmp_path):
    port = free_port()
    engine = build_engine(settings(tmp_path, hands="osc", osc_in=f"127.0.0.1:{port}",
                                   network=str(STYLEGAN_FIXTURES / "sg3t_tiny.pkl"), **{"hand.ease_s": 0.0}))
    assert engine.tracker.kind == "osc"
    points = hand_points(0.7, 0.5, 30)
    client = SimpleUDPClient("127.0.0.1", port)

    def send_and_check(report) -> bool:
        for name, (x, y, z) in zip(HAND_LANDMARK_NAMES, points.tolist()):
            client.send_message(f"/vrb/in/h1/{name}", [x, y, z])
        return report.features.get("present") == 1.0 and abs(report.features.get("transform_angle", 0) - 30) < 1

    report = run_until(engine, send_and_check)
    assert report.features["transform_tx"] > 0 and "const_a" not in report.features
    assert report.keypoints.source == "osc"


def test_hands_off_adds_nothing(tmp_path):
    engine = build_engine(settings(tmp_path))
    assert engine.tracker is None


def test_bad_hand_settings_stop_start_up_with_one_line(tmp_path):
    with pytest.raises(StartupError, match="hand_model: no such file .*nope.task.* \\(--hand-model FILE"):
        build_engine(settings(tmp_path, hands="mediapipe", hand_model=str(tmp_path / "nope.task")))  # preflight
    with pytest.raises(UserError, match="is not a hand landmarker bundle: it lacks hand_detector.tflite"):
        build_engine(settings(tmp_path, hands="mediapipe", hand_model=str(BUNDLES["pose"].path)))
    with pytest.raises(UserError, match="hands = osc needs the OSC control input"):
        build_engine(settings(tmp_path, hands="osc"))
