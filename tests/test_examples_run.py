"""The worked show files in examples/ load, and run for a few seconds on the fixture generators.

What is overridden for the test (each example's header says what a user changes the same way): the network
(the tiny fixture pickle of the same architecture), the source (the test pattern instead of a camera / video
file), the sinks (a PNG folder instead of Spout / NDI, which need Windows / a network), the ports (free
loopback ports) and the encoder (the random-init demo encoder: no VGG16 weights are downloaded in tests).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import REPO, STYLEGAN_FIXTURES, free_port, vrbridge_cmd
from bridge import config

EXAMPLES = {
    "camera_sg2_hands_td.toml": "sg2_tiny.pkl",
    "camera_sg2_body_face_td.toml": "sg2_tiny.pkl",
    "video_sg3_transform_resolume_ndi.toml": "sg3t_tiny.pkl",
    "depth_psi.toml": "sg2_tiny.pkl",
    "motion_psi.toml": "sg2_tiny.pkl",
}
# the scene rigs: the analyser each starts and the signal its first route sends to psi
SCENE_RIGS = {"depth_psi.toml": ("depth", "scene.depth.mean"), "motion_psi.toml": ("scene", "scene.motion.energy")}
HAND_RIGS = sorted(set(EXAMPLES) - set(SCENE_RIGS))
# what the test overrides besides network, source and sinks: no Depth-Anything weights here, so its demo network
EXTRA_ARGS = {"depth_psi.toml": ["--depth-weights", "", "--depth-demo", "--depth-size", "56"]}


def test_every_example_is_covered():
    assert sorted(p.name for p in (REPO / "examples").glob("*.toml")) == sorted(EXAMPLES)


@pytest.mark.parametrize("name", HAND_RIGS)
def test_example_loads_with_its_rig_settings(name):
    settings = config.load_show_file(str(REPO / "examples" / name))
    assert settings["hands"] == "mediapipe"
    if "sg2" in name:
        assert settings["sink"] == ("spout:vrbridge",) and settings["hand.const.enable"] is True
        assert "touchdesigner" in settings["osc_maps"] and settings["source"].startswith("camera:")
    else:
        assert settings["sink"] == ("ndi:vrbridge",) and settings["hand.transform.enable"] is True
        assert "resolume" in settings["osc_maps"] and settings["source"].startswith("video:")


@pytest.mark.parametrize("name", sorted(SCENE_RIGS))
def test_scene_example_routes_its_analyser_to_psi(name):
    from bridge.routes import parse_route

    settings = config.load_show_file(str(REPO / "examples" / name))
    track, signal = SCENE_RIGS[name]
    assert settings["track"] == (track,)
    routes = [parse_route(entry, where=f"{name} route") for entry in settings["route"]]  # checked as at start-up
    assert routes[0].source == signal and routes[0].target == "psi"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs_on_the_fixture_generator(name, tmp_path: Path):
    frames = tmp_path / "frames"
    cmd = vrbridge_cmd() + [
        "run", "--config", str(REPO / "examples" / name),
        "--network", str(STYLEGAN_FIXTURES / EXAMPLES[name]),
        "--source", "pattern", "--sink", f"png:{frames}", "--demo-encoder",
        "--encoder-weights", "", "--resolution", "64x48",
        "--osc-in", f"127.0.0.1:{free_port()}", "--osc-out", f"127.0.0.1:{free_port()}",
        "--oscquery", "off", "--preview", "off", "--duration", "4", "--status-every", "0",
        *EXTRA_ARGS.get(name, []),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped after" in done.stderr
    written = sorted(frames.glob("*.png"))
    assert written, "no frame reached the sink"
