"""Pose and face keypoints over OSC (real UDP on loopback into the project's OSC server), as TouchDesigner's
MediaPipe component or any rig sends them: the same keypoints give the same body.* and face.* signals as
in-process tracking; bad messages are answered and change nothing; stale slots disappear."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from pythonosc import osc_bundle_builder, osc_message_builder
from pythonosc.udp_client import SimpleUDPClient

from bridge.frames import Frame
from bridge.osc.server import OscServer
from bridge.params import ParamStore
from bridge.signals import SignalBus
from bridge.tracking import body, face
from bridge.tracking.body import POSE_LANDMARK_NAMES
from bridge.tracking.face import FACE_POINTS
from bridge.tracking.mediapipe_face import MediaPipeFaceTracker
from bridge.tracking.mediapipe_pose import MediaPipePoseTracker
from bridge.tracking.model import load_model
from bridge.tracking.osc_input import BODY_FACE_PATTERNS, OscBodyFaceInput

from conftest import IMAGES, wait_for

NO_CALIBRATION = {"face.calibrate_s": 0.0}


def rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(IMAGES / name)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def tracked():
    """Pose on basketball1.png (640x480) and face on astronaut_face.jpg (240x240), tracked in-process."""
    store = ParamStore(NO_CALIBRATION)
    pose = MediaPipePoseTracker(load_model("pose"), store.snapshot)
    faces = MediaPipeFaceTracker(load_model("face"), store.snapshot)
    try:
        pose_signals = pose.process(Frame(rgb=rgb("basketball1.png"), index=0, t_capture=1.0))
        face_signals = faces.process(Frame(rgb=rgb("astronaut_face.jpg"), index=0, t_capture=1.0))
    finally:
        pose.close()
        faces.close()
    assert pose_signals["body.present"] == 1.0 and face_signals["face.present"] == 1.0
    return pose.stage.active, pose_signals, faces.stage.active, face_signals


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def rig():
    store = ParamStore(NO_CALIBRATION)
    server = OscServer(store, "127.0.0.1", 0)
    clock = Clock()
    bus = SignalBus(body.SIGNALS + face.SIGNALS)
    receiver = OscBodyFaceInput(store.snapshot, bus, clock=clock)
    for pattern in BODY_FACE_PATTERNS:
        server.add_handler(pattern, receiver.handle)
    server.start()
    try:
        yield store, server, receiver, bus, SimpleUDPClient("127.0.0.1", server.port), clock
    finally:
        server.close()


def send(client: SimpleUDPClient, messages, per_bundle: int = 30) -> None:
    for start in range(0, len(messages), per_bundle):  # bundles under one Ethernet datagram
        bundle = osc_bundle_builder.OscBundleBuilder(osc_bundle_builder.IMMEDIATELY)
        for address, *args in messages[start:start + per_bundle]:
            msg = osc_message_builder.OscMessageBuilder(address=address)
            for arg in args:
                msg.add_arg(float(arg))
            bundle.add_content(msg.build())
        client.send(bundle.build())


def pose_messages(person: np.ndarray, style: str) -> list:
    out = []
    for name, (x, y, z, v) in zip(POSE_LANDMARK_NAMES, person.tolist()):
        if style == "channels":  # TouchDesigner channel names (OSC Out CHOP), no prefix
            out += [(f"/p1:{name}:x", x), (f"/p1:{name}:y", y), (f"/p1:{name}:z", z), (f"/p1:{name}:visibility", v)]
        else:
            out.append((f"/vrb/in/p1/{name}", x, y, z, v))
    return out


def face_messages(points: np.ndarray, style: str) -> list:
    out = []
    for name, index in FACE_POINTS.items():
        x, y = points[index, :2].tolist()
        if style == "channels":
            out += [(f"/f1:{name}:x", x), (f"/f1:{name}:y", y)]
        else:
            out += [(f"/vrb/in/f1/{index}/x", x), (f"/vrb/in/f1/{index}/y", y)]  # mesh indices work too
    return out


def assert_same(received: dict, tracked_signals: dict) -> None:
    assert set(received) == set(tracked_signals)
    for name, value in tracked_signals.items():
        assert received[name] == pytest.approx(value, abs=1e-5), name


@pytest.mark.parametrize("style", ["channels", "path"])
def test_osc_keypoints_give_the_same_signals_as_in_process_tracking(rig, tracked, style):
    store, server, receiver, bus, client, clock = rig
    person, pose_signals, points, face_signals = tracked
    body_messages, face_msgs = pose_messages(person, style), face_messages(points, style)
    send(client, body_messages)
    assert wait_for(lambda: receiver.messages == len(body_messages))
    receiver.submit(Frame(rgb=np.zeros((480, 640, 3), np.uint8), index=0, t_capture=0.0))  # the picture's aspect
    receiver.step()
    assert_same(receiver.body.last_signals, pose_signals)
    assert bus.value("body.distance") == pytest.approx(pose_signals["body.distance"], abs=1e-5)
    # the face was tracked in a square photo: the receiver learns that from the frames, as on a rig
    receiver.submit(Frame(rgb=np.zeros((240, 240, 3), np.uint8), index=1, t_capture=0.0))
    send(client, face_msgs)
    assert wait_for(lambda: receiver.messages == len(body_messages) + len(face_msgs))
    receiver.step()
    assert_same(receiver.face.last_signals, face_signals)
    assert server.stats()["errors"] == 0
    telemetry = receiver.telemetry()
    assert telemetry["/vrb/p1/left_wrist/x"] == pytest.approx(float(person[15, 0]))
    assert telemetry["/vrb/f1/nose_tip/y"] == pytest.approx(float(points[1, 1]))


def test_bad_messages_are_answered_and_change_nothing(rig, tracked):
    store, server, receiver, bus, client, clock = rig
    person = tracked[0]
    send(client, pose_messages(person, "path"))
    assert wait_for(lambda: receiver.messages == 33)
    bad = [("/vrb/in/p1/tail/x", 0.5), ("/vrb/in/p9/nose/x", 0.5), ("/p1:nose:w", 0.5), ("/vrb/in/f1/999/x", 0.1),
           ("/vrb/in/f1/blend/jaw open!", 0.3)]
    send(client, bad)
    client.send_message("/vrb/in/p1/nose/x", "left")  # a string where a number belongs
    assert wait_for(lambda: server.stats()["errors"] == len(bad) + 1)
    assert receiver.messages == 33
    receiver.step()
    assert receiver.body.active is not None
    assert np.allclose(receiver.body.active[:, :2], person[:, :2])


def test_stale_and_hidden_people_disappear(rig, tracked):
    store, server, receiver, bus, client, clock = rig
    send(client, pose_messages(tracked[0], "path"))
    assert wait_for(lambda: receiver.messages == 33)
    receiver.step()
    assert bus.value("body.present") == 1.0
    clock.t += OscBodyFaceInput.stale_s + 0.1
    receiver.step()
    assert bus.value("body.present") == 0.0 and bus.value("body.count") == 0.0
    send(client, pose_messages(tracked[0], "path"))
    assert wait_for(lambda: receiver.messages == 66)
    receiver.step()
    assert bus.value("body.present") == 1.0
    client.send_message("/vrb/in/p1/present", 0)
    assert wait_for(lambda: receiver.messages == 67)
    receiver.step()
    assert bus.value("body.present") == 0.0


def test_y_up_senders_are_flipped(rig, tracked):
    store, server, receiver, bus, client, clock = rig
    store.set("hand.osc_y_up", True)
    flipped = tracked[0].copy()
    flipped[:, 1] = 1.0 - flipped[:, 1]
    send(client, pose_messages(flipped, "path"))
    assert wait_for(lambda: receiver.messages == 33)
    receiver.submit(Frame(rgb=np.zeros((480, 640, 3), np.uint8), index=0, t_capture=0.0))
    receiver.step()
    assert receiver.body.last_signals["body.y"] == pytest.approx(tracked[1]["body.y"], abs=1e-5)


def test_blendshapes_over_osc_drive_the_face_gestures(rig, tracked):
    store, server, receiver, bus, client, clock = rig
    send(client, face_messages(tracked[2], "channels") + [("/f1:blend:jawOpen", 0.8), ("/vrb/in/f1/blend/eyeBlinkLeft", 1.0)])
    assert wait_for(lambda: receiver.messages == 2 * len(FACE_POINTS) + 2)
    receiver.step()
    assert bus.value("face.mouth_open") == pytest.approx(0.8, abs=1e-5)
    assert bus.value("face.eye_left_closed") == pytest.approx(1.0, abs=1e-5)
