"""Scene and depth analysers in the real engine, started the way a show file starts them (``track``), with a
``[[route]]`` onto psi: the routed psi of the rendered frames follows the scene (end to end)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from bridge.startup import StartupError, build_engine
from conftest import STYLEGAN_FIXTURES
from test_scene_motion import write_video


def settings(**overrides):
    return {"network": str(STYLEGAN_FIXTURES / "sg2_tiny.pkl"), "osc_in": "off", "osc_out": [],
            "oscquery": "off", "preview": "off", "demo_encoder": True, "encoder_size": "64x48", **overrides}


def collect(engine, done, timeout: float = 60.0) -> list:
    reports = []
    engine.add_report_observer(reports.append)
    engine.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done(reports):
            time.sleep(0.05)
    finally:
        engine.stop()
    return reports


def test_motion_routed_to_psi_follows_a_still_then_moving_scene(tmp_path):
    video = tmp_path / "scene.avi"
    write_video(video, (5, 0), still=30, moving=30)  # loops: 1 s still, 1 s a box moving right
    engine = build_engine(settings(source=f"video:{video}", track=["scene"], scene_size="160x120",
                                   route=[{"from": "scene.motion.energy", "to": "psi", "range": [0.2, 1.2]}]))
    assert any("scene: DIS optical flow" in line for line in engine.describe())

    def seen_both(reports):
        psis = [r.params["psi"] for r in reports if "scene.motion.energy" in r.signals]
        return len(psis) > 10 and min(psis) < 0.25 and max(psis) > 0.35  # still: ~0.2; moving: energy > 0.15

    reports = collect(engine, seen_both)
    routed = [r for r in reports if "scene.motion.energy" in r.signals]
    psis = [r.params["psi"] for r in routed]
    assert seen_both(reports), (min(psis, default=None), max(psis, default=None))
    for r in routed:  # psi is the route's map of the energy (the report's signals are read just after routing)
        if abs(r.signals["scene.motion.energy"] - (r.params["psi"] - 0.2)) < 1e-6:
            break
    else:
        pytest.fail("no frame whose psi is exactly 0.2 + energy")
    moving = [r.signals["scene.motion.x"] for r in routed if r.signals["scene.motion.energy"] > 0.1]
    assert moving and np.median(moving) > 0.5  # the box moves right
    assert engine.trackers and engine.trackers[0].stats()["analysed"] > 10


def test_depth_routed_to_psi_with_the_demo_network(tmp_path):
    engine = build_engine(settings(source="pattern", source_size="160x120", track=["depth"], depth_size=56,
                                   depth_hz=20, depth_demo=True,
                                   route=[{"from": "scene.depth.mean", "to": "psi", "range": [0.3, 1.0]}]))
    assert any("DEMO: random weights" in line for line in engine.describe())
    reports = collect(engine, lambda rs: sum("scene.depth.mean" in r.signals for r in rs) > 5)
    routed = [r for r in reports if "scene.depth.mean" in r.signals]
    assert routed, engine.trackers[0].stats()
    exact = [r for r in routed if abs(r.params["psi"] - (0.3 + 0.7 * r.signals["scene.depth.mean"])) < 1e-6]
    assert exact, [(r.params["psi"], r.signals["scene.depth.mean"]) for r in routed[-5:]]
    assert all(0.3 <= r.params["psi"] <= 1.0 for r in routed)


def test_bad_scene_settings_stop_start_up_with_one_line(tmp_path):
    with pytest.raises(StartupError, match="scene_size: '12' is not WxH"):
        build_engine(settings(source="pattern", track=["scene"], scene_size="12"))
    with pytest.raises(StartupError, match="depth: depth weights file not found"):
        build_engine(settings(source="pattern", track=["depth"], depth_weights=str(tmp_path / "nope.pth")))
    with pytest.raises(StartupError, match="track: 'sceen' is not one of .*did you mean scene"):
        build_engine(settings(source="pattern", track=["sceen"]))
