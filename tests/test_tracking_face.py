"""Face tracking with the shipped face model on a real photo (scikit-image's public-domain astronaut): the 478
points where MediaPipe's own face-mesh graph puts them, anatomical left and right, head angles that move the
right way on a synthetic clip, the neutral-face calibration, blendshapes when a bundle has them, no download."""
from __future__ import annotations

import json
import sys
import time

import cv2
import numpy as np
import pytest

from bridge.frames import Frame
from bridge.params import DEFAULTS
from bridge.signals import SignalBus
from bridge.tracking.face import (FACE_POINTS, GESTURES, SIGNALS, FaceFeatures, raw_measures, telemetry_values)
from bridge.tracking.mediapipe_face import MediaPipeFaceTracker
from bridge.tracking.model import load_model

from conftest import DATA, IMAGES

REFERENCE = json.loads((DATA / "tracking" / "reference_landmarks.json").read_text())["face"]
FACE = cv2.cvtColor(cv2.imread(str(IMAGES / "astronaut_face.jpg")), cv2.COLOR_BGR2RGB)  # 240x240
BACKGROUND = tuple(int(v) for v in np.median(np.concatenate([FACE[0], FACE[-1]]), axis=0))
_OPEN: list[MediaPipeFaceTracker] = []


@pytest.fixture(autouse=True)
def _close_trackers():
    yield
    while _OPEN:
        _OPEN.pop().close()


def tracker(bus=None, **overrides) -> MediaPipeFaceTracker:
    params = {**DEFAULTS, "face.calibrate_s": 0.0, **overrides}
    t = MediaPipeFaceTracker(load_model("face"), lambda: params, bus=bus)
    _OPEN.append(t)
    return t


def frames(images, t0: float = 100.0, fps: float = 30.0):
    for i, rgb in enumerate(images):
        yield Frame(rgb=np.ascontiguousarray(rgb), index=i, t_capture=t0 + i / fps, source="test")


def place(angle_cw: float = 0.0, turn: float = 0.0, nod: float = 0.0, size: int = 360,
          centre: tuple[int, int] = (320, 240)) -> np.ndarray:
    """The photo on a 640x480 canvas, turned clockwise by ``angle_cw`` degrees; ``turn`` / ``nod`` bend the
    picture so the middle of the face (the nose) moves right / up by that fraction of its size while its
    outline stays: how a head turning or tilting up looks in 2D."""
    patch = cv2.resize(FACE, (size, size), interpolation=cv2.INTER_AREA)
    grid = np.arange(size, dtype=np.float32)
    map_x = grid[None, :] - turn * size * np.sin(np.pi * grid[None, :] / size)
    map_y = grid[:, None] + nod * size * np.sin(np.pi * grid[:, None] / size)
    patch = cv2.remap(patch, np.broadcast_to(map_x, (size, size)).copy(), np.broadcast_to(map_y, (size, size)).copy(),
                      cv2.INTER_LINEAR, borderValue=BACKGROUND)
    patch = cv2.warpAffine(patch, cv2.getRotationMatrix2D((size / 2, size / 2), -angle_cw, 1.0), (size, size),
                           borderValue=BACKGROUND)
    out = np.empty((480, 640, 3), np.uint8)
    out[:] = BACKGROUND
    x0, y0 = centre[0] - size // 2, centre[1] - size // 2
    out[y0:y0 + size, x0:x0 + size] = patch
    return out


# -- where the points are -----------------------------------------------------------------------------------
def test_points_land_where_mediapipes_own_face_mesh_graph_puts_them():
    bus = SignalBus(SIGNALS)
    t = tracker(bus)
    signals = t.process(next(frames([FACE])))
    face = t.stage.active
    assert face is not None and face.shape == (478, 3)
    reference = np.array(REFERENCE["landmarks"])
    assert np.abs((face[:, :2] - reference[:, :2]) * 240).max() < 1.0  # measured 0.003 px
    assert not t.blendshapes and "gestures from landmarks" in t.describe()
    assert signals["face.present"] == 1.0 and bus.value("face.present") == 1.0
    # anatomical left: the astronaut faces the camera, so her left eye is on the picture's right
    assert face[FACE_POINTS["left_eye_outer"], 0] > face[FACE_POINTS["right_eye_outer"], 0]
    assert face[FACE_POINTS["mouth_left"], 0] > face[FACE_POINTS["mouth_right"], 0]
    assert face[FACE_POINTS["chin"], 1] > face[FACE_POINTS["mouth_lower"], 1] > face[FACE_POINTS["nose_tip"], 1]


def test_she_smiles_and_faces_the_camera_before_any_calibration():
    """The built-in neutral face: her broad smile reads as a smile; her head is nearly straight."""
    signals = tracker().process(next(frames([place()])))
    assert signals["face.smile"] > 0.5
    assert signals["face.eye_left_closed"] < 0.2 and signals["face.eye_right_closed"] < 0.2
    assert abs(signals["face.yaw"]) < 0.15 and abs(signals["face.roll"]) < 0.15


# -- a synthetic clip ------------------------------------------------------------------------------------------
def measure(images, **overrides) -> np.ndarray:
    t = tracker(**overrides)
    out = []
    for frame in frames(images):
        t.process(frame)
        assert t.stage.active is not None, f"face lost in frame {frame.index}"
        out.append(raw_measures(t.stage.active, 640 / 480, bool(overrides.get("face.mirror", False))))
    return np.array(out)


def test_turning_the_picture_clockwise_makes_roll_grow_by_the_angle():
    angles = [-20, -10, 0, 10, 20]
    roll = measure([place(angle_cw=a) for a in angles])[:, 8]
    assert np.all(np.diff(roll) > 6), roll
    assert np.abs((roll - roll[2]) - angles).max() < 5, roll
    mirrored = measure([place(angle_cw=a) for a in angles], **{"face.mirror": True})[:, 8]
    assert np.all(np.diff(mirrored) < -6), mirrored


def test_the_nose_moving_right_reads_as_yaw_and_up_as_pitch():
    across = measure([place(turn=t) for t in (-0.06, 0.0, 0.06)])[:, 6]
    assert across[0] < across[1] < across[2] and across[2] - across[0] > 0.05, across
    down = measure([place(nod=n) for n in (-0.05, 0.0, 0.05)])[:, 7]
    assert down[0] > down[1] > down[2], down  # the nose rises toward the eye line: pitch up


def test_moving_and_scaling_the_face_leaves_the_gestures_alone():
    images = [place(), place(size=300, centre=(250, 220)), place(size=420, centre=(380, 250))]
    m = np.concatenate([measure([image]) for image in images])  # a tracker each: no tracking across the jumps
    assert np.abs(m[:, :8] - m[0, :8]).max() < 0.05, m  # scale-free ratios (roll in degrees excluded)


def test_mouth_opening_and_eye_closing_move_their_signals():
    """Landmark edits stand in for the gestures (a photo cannot open its mouth): the measures respond."""
    face = np.array(REFERENCE["landmarks"], dtype=np.float32)
    base = raw_measures(face)
    opened = face.copy()
    opened[FACE_POINTS["mouth_lower"], 1] += 0.03
    closed = face.copy()
    closed[FACE_POINTS["left_eye_top"], :2] = closed[FACE_POINTS["left_eye_bottom"], :2]
    assert raw_measures(opened)[0] > base[0] + 0.15
    assert raw_measures(closed)[4] < 0.05 < base[4]
    features = FaceFeatures()
    features.neutral = base
    params = {**DEFAULTS, "face.calibrate_s": 0.0}
    assert features.update(face, None, 1.0, 1.0, params)["face.mouth_open"] == pytest.approx(0.0, abs=1e-6)
    features.update(None, None, 1.1, 1.0, params)  # a lost face resets the smoothing: no glide
    assert features.update(opened, None, 2.0, 1.0, params)["face.mouth_open"] > 0.3
    features.update(None, None, 2.1, 1.0, params)
    assert features.update(closed, None, 3.0, 1.0, params)["face.eye_left_closed"] > 0.8


# -- calibration -------------------------------------------------------------------------------------------------
def test_calibration_makes_her_face_the_neutral_one():
    t = tracker(**{"face.calibrate_s": 0.2})
    clip = [place()] * 9  # 0.27 s at 30 fps: the calibration ends inside it
    signals = None
    for frame in frames(clip):
        signals = t.process(frame)
    assert t.stage.features.calibrated and not t.stage.features.calibrating
    for name in GESTURES:
        assert abs(signals[f"face.{name}"]) < 0.1, (name, signals)
    # a later calibration on request (the face.calibrate action) runs again
    t.calibrate(0.1)
    t.process(Frame(rgb=place(angle_cw=15), index=20, t_capture=200.0))
    assert t.stage.features.calibrating
    t.process(Frame(rgb=place(angle_cw=15), index=21, t_capture=200.2))
    assert not t.stage.features.calibrating and abs(t.stage.features.neutral[8] - 15 - 3) < 5


def test_blendshapes_drive_the_gestures_when_the_bundle_has_them():
    """Google's official bundle reports blendshape scores; they replace the landmark estimates (calibrated)."""
    face = np.array(REFERENCE["landmarks"], dtype=np.float32)
    features = FaceFeatures()
    params = {**DEFAULTS, "face.calibrate_s": 0.0}
    blend = {"jawOpen": 0.7, "mouthSmileLeft": 0.2, "mouthSmileRight": 0.4, "eyeBlinkLeft": 0.9, "eyeBlinkRight": 0.0,
             "browInnerUp": 0.3, "browOuterUpLeft": 0.3, "browOuterUpRight": 0.3}
    signals = features.update(face, blend, 1.0, 1.0, params)
    assert signals["face.mouth_open"] == pytest.approx(0.7) and signals["face.smile"] == pytest.approx(0.3)
    assert signals["face.eye_left_closed"] == pytest.approx(0.9) and signals["face.eye_right_closed"] == 0.0
    mirrored = FaceFeatures().update(face, blend, 1.0, 1.0, {**params, "face.mirror": True})
    assert mirrored["face.eye_right_closed"] == pytest.approx(0.9)  # the mirrored picture swaps the eyes


# -- the thread, downloads, telemetry ------------------------------------------------------------------------------
def test_the_threaded_tracker_publishes_and_never_blocks_submit():
    bus = SignalBus(SIGNALS)
    t = tracker(bus)
    t.start()
    try:
        t0 = time.perf_counter()
        for frame in frames([place()] * 20, t0=time.monotonic()):
            t.submit(frame)
        assert time.perf_counter() - t0 < 1.0
        deadline = time.monotonic() + 30
        while bus.value("face.present") != 1.0 and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = t.stats()
        assert bus.value("face.present") == 1.0 and stats["errors"] == 0 and stats["track_ms"] > 0
        assert stats["frames"] < 20 and stats["dropped"] > 0
    finally:
        t.close()


def test_no_model_download_is_attempted():
    events, watching = [], [True]

    def hook(event, args):
        if watching[0] and event in ("socket.connect", "socket.getaddrinfo", "urllib.Request", "http.client.connect"):
            events.append((event, args))

    sys.addaudithook(hook)
    try:
        t = tracker()
        t.process(next(frames([FACE])))
        assert t.stage.active is not None
    finally:
        watching[0] = False
    assert events == []


def test_telemetry_sends_the_named_points_in_image_coordinates():
    face = np.array(REFERENCE["landmarks"], dtype=np.float32)
    values = telemetry_values(face)
    for name in ("nose_tip", "chin", "mouth_upper", "mouth_lower", "mouth_left", "mouth_right", "left_eye_outer",
                 "right_eye_outer"):
        assert values[f"/vrb/f1/{name}/x"] == pytest.approx(face[FACE_POINTS[name], 0])
        assert values[f"/vrb/f1/{name}/y"] == pytest.approx(face[FACE_POINTS[name], 1])
    assert telemetry_values(face, mirror=True)["/vrb/f1/chin/x"] == pytest.approx(1 - face[152, 0])
    assert telemetry_values(None) == {"/vrb/f1/present": 0}
