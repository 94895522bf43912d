"""Body and face in the real engine (``--track pose,face``): the worked show file's route makes the body's
distance from the centre corrupt StyleGAN2's constant (the paper's Test 2) monotonically, with real tracking
on a moving photo; trackers run beside the render loop and report their cost; start-up errors are one line."""
from __future__ import annotations

import shutil
import socket
import time

import cv2
import numpy as np
import pytest
import torch

from bridge import config
from bridge.commands.run import format_status
from bridge.frames import Frame
from bridge.manipulate.const_corruption import ConstCorruption
from bridge.osc import codec
from bridge.params import DEFAULTS
from bridge.routes import RouteTable, parse_route
from bridge.signals import SignalBus, catalogue
from bridge.startup import StartupError, build_engine
from bridge.stylegan import load_network
from bridge.tracking import body
from bridge.tracking.mediapipe_pose import MediaPipePoseTracker
from bridge.tracking.model import load_model
from bridge.tracking.performer import telemetry_values

from conftest import IMAGES, REPO, STYLEGAN_FIXTURES, free_port

EXAMPLE = REPO / "examples" / "camera_sg2_body_face_td.toml"
PHOTO = cv2.cvtColor(cv2.imread(str(IMAGES / "basketball1.png")), cv2.COLOR_BGR2RGB)
PERSON = PHOTO[:, :220]


def settings(tmp_path, **overrides):
    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    shutil.copy(IMAGES / "basketball1.png", photos)
    return {**config.load_show_file(str(EXAMPLE)), "network": str(STYLEGAN_FIXTURES / "sg2_tiny.pkl"),
            "source": f"images:{photos}", "sink": (), "osc_in": "off", "osc_out": [], "oscquery": "off",
            "preview": "off", "demo_encoder": True, "encoder_weights": "", "hands": "off", **overrides}


def test_the_example_routes_body_distance_onto_the_const_corruption_monotonically():
    """Real tracking of the player walking from the middle of the picture to its edge, through the show file's
    routes, into the lever on the fixture StyleGAN2: body.distance, const.corrupt and the constant's change
    all grow together."""
    show = config.load_show_file(str(EXAMPLE))
    known = catalogue()
    assert {"body.distance", "body.present", "face.smile"} <= set(known)
    table = RouteTable(parse_route(entry, known) for entry in show["route"])
    params = {**DEFAULTS, **{k: v for k, v in show.items() if k in DEFAULTS}}
    bus = SignalBus(body.SIGNALS)
    tracker = MediaPipePoseTracker(load_model("pose"), lambda: params, bus)
    generator = load_network(STYLEGAN_FIXTURES / "sg2_tiny.pkl")
    tensor = dict(generator.named_parameters())["synthesis.b4.const"]
    original = tensor.detach().clone()
    lever = ConstCorruption()
    distances, corrupt, moved = [], [], []
    try:
        for i, x0 in enumerate([210, 170, 120, 70, 20, 0]):  # the player's left edge: centred .. at the edge
            canvas = np.empty((480, 640, 3), np.uint8)
            canvas[:] = PERSON[0, -1]
            canvas[:, x0:x0 + 220] = PERSON
            for repeat in range(12):  # hold each position ~0.4 s so the routes' smoothing settles
                t = 10.0 + i + repeat / 30.0
                tracker.process(Frame(rgb=canvas, index=i * 12 + repeat, t_capture=t))
                snapshot = table.evaluate(params, bus.values(), t)
                lever.apply(generator, snapshot, 3.0)  # one noise phase: only the strength changes
            distances.append(bus.value("body.distance"))
            corrupt.append(snapshot["const.corrupt"])
            moved.append(float((tensor - original).norm()))
    finally:
        tracker.close()
        lever.restore()
    assert distances[0] < 0.12 and np.all(np.diff(distances) > 0.02), distances
    assert corrupt[0] < 0.05 and np.all(np.diff(corrupt) > 0), corrupt
    assert np.all(np.diff(moved) > 0), moved
    assert torch.equal(tensor, original)  # restored


def test_pose_and_face_run_in_the_engine_beside_the_render_loop(tmp_path):
    """The example's settings on a photo source, telemetry to a real listener on loopback."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.2)
    engine = build_engine(settings(tmp_path, osc_in=f"127.0.0.1:{free_port()}",
                                   osc_out=[f"127.0.0.1:{listener.getsockname()[1]}"]))
    kinds = sorted(getattr(t, "kind", "") for t in engine.trackers)
    assert kinds == ["face", "pose"]
    assert any("mediapipe pose" in line for line in engine.describe())
    reports, seen = [], {}
    wanted = ("/vrb/p1/present", "/vrb/p1/right_ankle/y", "/vrb/track/pose/ms", "/vrb/track/face/ms",
              "/vrb/signal/body/distance", "/vrb/f1/present")
    engine.add_report_observer(reports.append)
    engine.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (seen.get("/vrb/p1/present") == 1 and all(k in seen for k in wanted)):
            try:
                data = listener.recv(65536)
            except socket.timeout:
                continue
            for _, message in codec.iter_messages(codec.decode(data)):
                if message.args:
                    seen[message.address] = message.args[0]
        frames_before = len(reports)
        time.sleep(0.5)
        health = engine.health()
    finally:
        engine.stop()
        listener.close()
    assert engine.signals.value("body.present") == 1.0
    assert engine.signals.value("body.distance") > 0.4  # the player stands on the left of the picture
    assert engine.signals.value("face.present") in (0.0, None)  # his face is too small for the face detector
    assert len(reports) > frames_before  # the render loop kept publishing while tracking ran
    trackers = {stats["name"]: stats for stats in health["trackers"].values()}
    assert trackers["pose"]["frames"] > 0 and trackers["pose"]["track_ms"] > 0 and trackers["pose"]["errors"] == 0
    line = format_status(health)
    assert "track ms pose " in line and " face " in line
    # the route of the example is live: the body's distance drove const.corrupt on the render thread
    assert reports[-1].params.get("const.corrupt", 0.0) > 0.1
    # telemetry: the performer's keypoints (the example mirrors, pose.mirror = true: the player on the picture's
    # left is on the mirror's right), each tracker's cost, every signal
    assert seen["/vrb/p1/present"] == 1 and seen["/vrb/f1/present"] == 0
    assert 0.7 < seen["/vrb/p1/nose/x"] < 1.0 and 0.9 < seen["/vrb/p1/right_ankle/y"] <= 1.0
    assert seen["/vrb/track/pose/ms"] > 0 and seen["/vrb/signal/body/distance"] > 0.4


def test_telemetry_gets_the_performers_keypoints_and_each_trackers_cost():
    params = dict(DEFAULTS)
    tracker = MediaPipePoseTracker(load_model("pose"), lambda: params)
    try:
        tracker.process(Frame(rgb=PHOTO, index=0, t_capture=1.0))
        values = telemetry_values([tracker])
    finally:
        tracker.close()
    assert values["/vrb/p1/present"] == 1 and 0.0 < values["/vrb/p1/nose/x"] < 0.3
    assert values["/vrb/track/pose/ms"] > 0 and values["/vrb/track/pose/frames"] == 1


@pytest.mark.parametrize("overrides, message", [
    ({"pose_model": "/nowhere/pose.task"}, "pose_model: no such file '/nowhere/pose.task' \\(--pose-model FILE\\)"),
    ({"face_model": str(REPO / "README.md")}, "README.md is not a MediaPipe .task bundle"),
    ({"face_model": "official", "allow_download": False}, "official face bundle is not in .*--allow-download"),
    ({"performer_input": "osc"}, "performer_input = osc needs the OSC control input"),
    ({"track": ["pose", "fase"]}, "track: 'fase' is not one of .*did you mean face"),
])
def test_bad_settings_stop_start_up_with_one_line(tmp_path, monkeypatch, overrides, message):
    monkeypatch.setenv("VRB_MODEL_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(StartupError, match=message):
        build_engine(settings(tmp_path, **overrides))


def test_the_calibrate_action_reaches_the_face_tracker(tmp_path):
    engine = build_engine(settings(tmp_path, track=["face"]))
    face = next(t for t in engine.trackers if t.kind == "face")
    engine.params.set("face.calibrate", "0.5", source="osc")
    assert face.stage.features._request == pytest.approx(0.5)
    engine.params.set("face.calibrate", "", source="osc")  # no argument: face.calibrate_s (1.5 in the example)
    assert face.stage.features._request == pytest.approx(1.5)
    for tracker in engine.trackers:
        tracker.close()
    engine.source.close()

