"""The MediaPipe tracker on real photos with the shipped model: where it finds hands, which hand it calls
left, how features move on a synthetic clip, and that the lock holds with a hand and its mirror image in view."""
from __future__ import annotations

import math
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from bridge.frames import HAND_LANDMARK_NAMES, Frame
from bridge.params import DEFAULTS
from bridge.tracking.features import raw_features
from bridge.tracking.mediapipe_hands import MediaPipeHandTracker
from bridge.tracking.model import load_hand_model

from conftest import IMAGES, REPO

WRIST, INDEX_TIP = HAND_LANDMARK_NAMES.index("wrist"), HAND_LANDMARK_NAMES.index("index_tip")


def load_rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(IMAGES / name)), cv2.COLOR_BGR2RGB)


_OPEN: list[MediaPipeHandTracker] = []


@pytest.fixture(autouse=True)
def _close_trackers():
    yield
    while _OPEN:
        _OPEN.pop().close()


def tracker(**overrides) -> MediaPipeHandTracker:
    params = {**DEFAULTS, **overrides}
    t = MediaPipeHandTracker(load_hand_model(), lambda: params, num_hands=2)
    _OPEN.append(t)
    return t


def frames(images, t0: float = 100.0, fps: float = 30.0):
    for i, rgb in enumerate(images):
        yield Frame(rgb=np.ascontiguousarray(rgb), index=i, t_capture=t0 + i / fps, source="test")


def pixel(hand, index: int, rgb: np.ndarray) -> tuple[float, float]:
    h, w = rgb.shape[:2]
    return float(hand.landmarks[index, 0] * w), float(hand.landmarks[index, 1] * h)


# -- a synthetic clip: the open-hand photo moved and turned on a plain canvas ---------------------------
HAND = load_rgb("Histogram_Comparison_Source_0.jpg")  # open left hand, palm to camera, fingers up
BACKGROUND = tuple(int(v) for v in np.median(np.concatenate([HAND[0], HAND[-1]]), axis=0))


def place(centre: tuple[int, int], angle_cw: float = 0.0, size: int = 220, mirror: bool = False,
          canvas: np.ndarray | None = None) -> np.ndarray:
    """A 640x480 canvas with the hand photo scaled to ``size``, turned clockwise by ``angle_cw`` degrees."""
    if canvas is None:
        canvas = np.empty((480, 640, 3), np.uint8)
        canvas[:] = BACKGROUND
    patch = cv2.resize(HAND[:, ::-1] if mirror else HAND, (size, size), interpolation=cv2.INTER_AREA)
    turn = cv2.getRotationMatrix2D((size / 2, size / 2), -angle_cw, 1.0)  # cv2: positive = counter-clockwise
    patch = cv2.warpAffine(patch, turn, (size, size), borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND)
    x0, y0 = centre[0] - size // 2, centre[1] - size // 2
    canvas[y0:y0 + size, x0:x0 + size] = patch
    return canvas


# -- where the hands are ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name, wrist, index_tip", [
    ("handDst.jpg", (24, 155), (574, 214)),
    ("Histogram_Comparison_Source_0.jpg", (109, 181), (64, 20)),
])
def test_finds_the_hand_where_the_notes_say(name, wrist, index_tip):
    rgb = load_rgb(name)
    t = tracker()
    kp = t.process(next(frames([rgb])))
    assert kp is not None and len(kp.hands) == 1 and kp.active == 0
    hand = kp.active_hand
    assert math.dist(pixel(hand, WRIST, rgb), wrist) < 12
    assert math.dist(pixel(hand, INDEX_TIP, rgb), index_tip) < 12
    assert hand.score > 0.9
    assert hand.landmarks.shape == (21, 3) and hand.landmarks.dtype == np.float32
    # Both photos show an anatomical LEFT hand, palm to the camera (thumb on the picture's left when the
    # fingers point up): the performer's own hand, as documented in bridge.tracking.
    assert hand.handedness == "left"
    assert kp.aspect == pytest.approx(rgb.shape[1] / rgb.shape[0])


def test_input_mirrored_swaps_handedness_labels():
    rgb = load_rgb("Histogram_Comparison_Source_0.jpg")
    kp = tracker(**{"hand.input_mirrored": True}).process(next(frames([rgb])))
    assert kp.active_hand.handedness == "right"


def test_no_hand_gives_keypoints_without_an_active_hand():
    blank = np.full((480, 640, 3), 128, np.uint8)
    kp = tracker().process(next(frames([blank])))
    assert kp is not None and kp.hands == () and kp.active is None and kp.active_hand is None


def test_bad_frames_are_counted_and_skipped_not_raised():
    t = tracker()
    for bad in (np.zeros((480, 640), np.uint8), np.zeros((480, 640, 3), np.float32), np.zeros((0, 0, 3), np.uint8)):
        assert t.process(Frame(rgb=bad, index=0, t_capture=1.0)) is None
    assert t.errors == 3 and "not an (H, W, 3) uint8" in t.last_error
    assert t.latest() is None  # nothing published from bad input
    good = t.process(next(frames([load_rgb("handDst.jpg")], t0=2.0)))
    assert good is not None and len(good.hands) == 1


def test_timestamps_that_repeat_or_go_back_are_nudged_forward():
    """VIDEO mode refuses non-increasing timestamps; the tracker keeps them increasing itself."""
    rgb = load_rgb("handDst.jpg")
    t = tracker()
    for stamp in (5.0, 5.0, 4.0, 5.0005):
        assert t.process(Frame(rgb=rgb, index=0, t_capture=stamp)) is not None
    assert t.errors == 0


def test_the_threaded_tracker_takes_the_newest_frame_and_never_blocks_submit():
    rgb = load_rgb("handDst.jpg")
    t = tracker()
    t.start()
    try:
        t0 = time.perf_counter()
        for frame in frames([rgb] * 20, t0=time.monotonic()):
            t.submit(frame)
        submit_s = time.perf_counter() - t0
        deadline = time.monotonic() + 20
        while (t.latest() is None or t.latest().frame_index != 19) and time.monotonic() < deadline:
            time.sleep(0.02)
        kp = t.latest()
        assert kp is not None and kp.frame_index == 19 and kp.active == 0
        stats = t.stats()
        assert stats["frames"] < 20 and stats["dropped"] > 0  # stale frames were skipped, not queued
        assert stats["status"] == "running" and stats["errors"] == 0
        assert submit_s < 1.0  # 20 submits while tracking runs: a put each, nothing waits on MediaPipe
    finally:
        t.close()
    assert t.stats()["status"] == "closed"


def test_no_model_download_is_attempted():
    """Tracking with the shipped model opens no network connection and fetches no URL."""
    events = []
    watching = [True]

    def hook(event, args):
        if watching[0] and event in ("socket.connect", "socket.getaddrinfo", "urllib.Request", "http.client.connect"):
            events.append((event, args))

    sys.addaudithook(hook)  # cannot be removed: it stops recording at the end of the test
    try:
        t = tracker()
        kp = t.process(next(frames([load_rgb("handDst.jpg")])))
        assert kp is not None and len(kp.hands) == 1
    finally:
        watching[0] = False
    assert events == []


# -- the clip ---------------------------------------------------------------------------------------------
def track_clip(images, **overrides):
    t = tracker(**overrides)
    out = []
    for frame in frames(images):
        kp = t.process(frame)
        assert kp is not None and kp.active is not None, f"hand lost in frame {frame.index}"
        out.append(raw_features(kp.active_hand.landmarks, kp.aspect, bool(overrides.get("hand.mirror", False))))
    return np.array(out)


def test_turning_the_hand_clockwise_makes_the_angle_grow_positive():
    angles = [0, 10, 20, 30, 40]
    feats = track_clip([place((320, 240), a) for a in angles])
    measured = feats[:, 3]
    assert np.all(np.diff(measured) > 4), measured  # clockwise on screen = positive, growing
    assert np.abs(measured - (np.array(angles) + measured[0])).max() < 8, measured
    # mirrored features see the same turn as counter-clockwise
    mirrored = track_clip([place((320, 240), a) for a in angles], **{"hand.mirror": True})[:, 3]
    assert np.all(np.diff(mirrored) < -4), mirrored


def test_moving_the_hand_toward_a_corner_makes_the_distance_grow():
    centres = [(320, 240), (360, 270), (400, 300), (440, 320), (500, 350)]
    feats = track_clip([place(c) for c in centres])
    distance, x = feats[:, 2], feats[:, 0]
    assert distance[0] < 0.15 and np.all(np.diff(distance) > 0.03), distance
    assert np.all(np.diff(x) > 0), x
    mirrored_x = track_clip([place(c) for c in centres], **{"hand.mirror": True})[:, 0]
    assert np.all(np.diff(mirrored_x) < 0), mirrored_x


# -- two hands: the photo and its mirror image --------------------------------------------------------------
def two_hands(shift: int) -> np.ndarray:
    canvas = place((170 + shift, 240 - shift))
    return place((470 - shift, 240 + shift), mirror=True, canvas=canvas)


@pytest.mark.parametrize("overrides, side", [
    ({"hand.lock.mode": "first"}, None),
    ({"hand.lock.mode": "handedness", "hand.lock.prefer": "left"}, "left"),
    ({"hand.lock.mode": "handedness", "hand.lock.prefer": "right"}, "right"),
    ({"hand.lock.mode": "nearest"}, None),
])
def test_lock_stays_on_one_hand_with_its_mirror_image_in_view(overrides, side):
    shifts = [0, 6, 12, 6, 0, -6, -12, -6, 0, 8]
    t = tracker(**overrides)
    sides = []
    for frame in frames([two_hands(s) for s in shifts]):
        kp = t.process(frame)
        assert len(kp.hands) == 2, f"frame {frame.index}: {len(kp.hands)} hands"
        hand = kp.active_hand
        sides.append("picture-left" if raw_features(hand.landmarks, kp.aspect)[0] < 0.5 else "picture-right")
        if side is not None:
            assert hand.handedness == side
    assert len(set(sides)) == 1, sides  # never flipped
    assert t.lock.switches == 1
    if side == "left":  # the unmirrored photo (a left hand) is on the picture's left
        assert sides[0] == "picture-left"
    if side == "right":
        assert sides[0] == "picture-right"


def test_mediapipe_start_up_chatter_stays_off_the_terminal():
    """LiteRT prints ~12 INFO lines and absl a few W0000 notes to fd 2 when a landmarker starts; a real
    error line written meanwhile still gets through."""
    code = (
        "import sys, time, numpy as np\n"
        "from bridge.frames import Frame\n"
        "from bridge.tracking.mediapipe_hands import MediaPipeHandTracker\n"
        "from bridge.tracking.model import load_hand_model\n"
        "from bridge.tracking import quiet\n"
        "t = MediaPipeHandTracker(load_hand_model())\n"
        "with quiet.native_chatter_muted():\n"
        "    print('a real error line', file=sys.stderr)\n"
        "for i in range(3):\n"
        "    t.process(Frame(rgb=np.zeros((240, 320, 3), np.uint8), index=i, t_capture=time.monotonic()))\n"
        "t.close()\n"
        "print('tracked', flush=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                            cwd=str(REPO))
    assert result.returncode == 0 and "tracked" in result.stdout, result.stderr[-2000:]
    noise = [line for line in result.stderr.splitlines() if line.startswith(("INFO:", "W0000", "I0000"))]
    assert noise == [], noise
    assert "a real error line" in result.stderr
