"""Hand features, their smoothing, and the active-hand lock, on hands drawn from a simple hand model."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bridge.frames import Hand, Keypoints
from bridge.params import DEFAULTS
from bridge.tracking.features import FEATURE_NAMES, HandFeatures, raw_features
from bridge.tracking.lock import HandLock
from bridge.one_euro import OneEuroFilter


# An open right-ish hand, fingers up, in frame-height units around the palm centre (y down).
_OPEN = np.array([
    (0.00, 0.10),                                                   # wrist
    (-0.04, 0.07), (-0.07, 0.03), (-0.09, -0.01), (-0.11, -0.04),  # thumb
    (-0.03, -0.03), (-0.035, -0.08), (-0.04, -0.11), (-0.045, -0.14),  # index
    (0.00, -0.035), (0.00, -0.09), (0.00, -0.125), (0.00, -0.155),     # middle
    (0.03, -0.03), (0.033, -0.08), (0.036, -0.11), (0.039, -0.14),     # ring
    (0.055, -0.02), (0.06, -0.06), (0.065, -0.085), (0.07, -0.105),    # pinky
])


def hand_points(cx: float, cy: float, angle_cw: float = 0.0, scale: float = 1.0, aspect: float = 4 / 3,
                curl: float = 0.0) -> np.ndarray:
    """(21, 3) normalised landmarks of the model hand, palm centre at (cx, cy), turned clockwise on screen."""
    pts = _OPEN.copy()
    if curl:  # fold the finger joints toward the palm
        for base in (5, 9, 13, 17):
            pts[base + 1:base + 4] = pts[base] + (pts[base + 1:base + 4] - pts[base]) * (1 - curl) + [0, curl * 0.05]
    r = math.radians(angle_cw)
    rot = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])  # clockwise with y down
    pts = pts @ rot.T * scale
    palm = [0, 1, 5, 9, 13, 17]
    pts = pts - pts[palm].mean(axis=0) + [cx * aspect, cy]
    out = np.zeros((21, 3), np.float32)
    out[:, 0], out[:, 1] = pts[:, 0] / aspect, pts[:, 1]
    return out


def feats(points, aspect=4 / 3, mirror=False) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, raw_features(points, aspect, mirror)))


# -- raw features -------------------------------------------------------------------------------------------
def test_centroid_and_distance_to_the_centre():
    assert feats(hand_points(0.5, 0.5))["distance"] == pytest.approx(0.0, abs=1e-6)
    f = feats(hand_points(0.25, 0.75))
    assert (f["x"], f["y"]) == (pytest.approx(0.25, abs=1e-6), pytest.approx(0.75, abs=1e-6))
    assert f["distance"] == pytest.approx(0.5, abs=1e-6)  # half way to the corner, in pixels
    assert feats(hand_points(1.0, 0.0))["distance"] == pytest.approx(1.0, abs=1e-6)
    # distance is in pixels: on a 16:9 frame, the same pixel offset sideways or down gives the same distance
    wide = 16 / 9
    sideways = feats(hand_points(0.5 + 0.1 / wide, 0.5, aspect=wide), aspect=wide)["distance"]
    down = feats(hand_points(0.5, 0.6, aspect=wide), aspect=wide)["distance"]
    assert sideways == pytest.approx(down, abs=1e-6)


@pytest.mark.parametrize("aspect", [1.0, 4 / 3, 16 / 9])
@pytest.mark.parametrize("turn", [-120, -45, -10, 0, 10, 45, 90, 170])
def test_angle_is_clockwise_positive_in_pixels(turn, aspect):
    base = feats(hand_points(0.5, 0.5, aspect=aspect), aspect)["angle"]
    got = feats(hand_points(0.5, 0.5, turn, aspect=aspect), aspect)["angle"]
    assert base == pytest.approx(0.0, abs=1e-6)  # the model hand's middle finger points straight up
    assert got == pytest.approx(turn, abs=1e-4)


def test_mirror_flips_x_and_angle_but_not_size():
    pts = hand_points(0.3, 0.4, 25)
    plain, mirrored = feats(pts), feats(pts, mirror=True)
    assert mirrored["x"] == pytest.approx(1 - plain["x"])
    assert mirrored["angle"] == pytest.approx(-plain["angle"])
    for name in ("y", "distance", "area", "pinch", "openness"):
        assert mirrored[name] == pytest.approx(plain[name])


def test_area_grows_with_hand_size_and_pinch_and_openness_respond():
    small, big = feats(hand_points(0.5, 0.5, scale=1.0)), feats(hand_points(0.5, 0.5, scale=2.0))
    assert big["area"] == pytest.approx(4 * small["area"], rel=1e-6)
    assert big["pinch"] == pytest.approx(small["pinch"], rel=1e-6)  # pinch is relative to the palm: size-free
    assert small["openness"] > 0.95
    assert feats(hand_points(0.5, 0.5, curl=0.8))["openness"] < small["openness"] - 0.3
    pinched = hand_points(0.5, 0.5)
    pinched[4] = pinched[8]  # thumb tip on index tip
    assert feats(pinched)["pinch"] == pytest.approx(0.0, abs=1e-6)


# -- smoothing ------------------------------------------------------------------------------------------------
def test_one_euro_steadies_jitter_and_follows_a_move():
    rng = np.random.default_rng(0)
    still = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    out = [still.filter(np.array([0.5 + 0.01 * rng.standard_normal()]), i / 60)[0] for i in range(120)]
    assert np.std(out[60:]) < 0.3 * 0.01
    quick = OneEuroFilter(min_cutoff=1.0, beta=50.0)
    slow = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    ramp = [i / 60 for i in range(60)]  # a steady move of 1 unit per second
    lag_quick = ramp[-1] - [quick.filter(np.array([v]), v)[0] for v in ramp][-1]
    lag_slow = ramp[-1] - [slow.filter(np.array([v]), v)[0] for v in ramp][-1]
    assert 0 < lag_quick < 0.25 * lag_slow  # beta opens the cutoff when the value moves
    assert still.filter(np.array([9.0]), 119 / 60)[0] == out[-1]  # same timestamp: not filtered twice


def keypoints(*hands: Hand, t: float, index: int = 0, active: int | None = 0, aspect: float = 4 / 3) -> Keypoints:
    return Keypoints(hands=hands, active=active if hands else None, t_capture=t, frame_index=index, aspect=aspect)


def test_hand_features_smooth_unwrap_the_angle_and_reset_when_lost():
    hf = HandFeatures()
    params = {**DEFAULTS, "hand.smooth.beta": 0.0}
    assert hf.update(None, params) is False and hf.values()["present"] == 0.0
    hf.update(keypoints(Hand(hand_points(0.5, 0.5, 178), "right", 1.0), t=0.0), params)
    assert hf.values()["angle"] == pytest.approx(178, abs=1e-3)
    hf.update(keypoints(Hand(hand_points(0.5, 0.5, -178), "right", 1.0), t=0.02, index=1), params)
    # -178 is 4 degrees from 178 the short way round: the smoothed angle stays near +-180, never sweeps through 0
    assert abs(hf.values()["angle"]) > 175
    hf.update(keypoints(t=0.04, index=2), params)
    assert hf.values()["present"] == 0.0
    hf.update(keypoints(Hand(hand_points(0.2, 0.2), "right", 1.0), t=0.06, index=3), params)
    assert hf.values()["x"] == pytest.approx(0.2, abs=1e-6)  # a returning hand starts fresh, no sweep


# -- the lock ----------------------------------------------------------------------------------------------------
def hand(cx, cy, side="right", score=0.9) -> Hand:
    return Hand(hand_points(cx, cy), side, score)


def test_first_mode_keeps_the_first_hand_while_another_comes_and_goes():
    lock, p = HandLock(), dict(DEFAULTS)
    assert lock.choose([hand(0.3, 0.5)], 0.0, p) == 0
    other = hand(0.7, 0.5, "left", score=0.99)
    for i in range(1, 20):  # the second hand is more confident and listed first: still not chosen
        assert lock.choose([other, hand(0.3 + 0.005 * i, 0.5)], i / 30, p) == 1
    assert lock.switches == 1


def test_lost_hand_keeps_the_lock_until_the_timeout():
    lock, p = HandLock(), {**DEFAULTS, "hand.lock.timeout_s": 0.5}
    lock.choose([hand(0.3, 0.5)], 0.0, p)
    other = hand(0.8, 0.5, "left")
    assert lock.choose([other], 0.2, p) is None  # the active hand is gone; the other may not take over yet
    assert lock.choose([other, hand(0.32, 0.5)], 0.4, p) == 1  # back in time, near where it vanished
    assert lock.choose([other], 0.85, p) is None
    assert lock.choose([other], 0.95, p) == 0  # lost for more than 0.5 s: the other hand takes over
    assert lock.switches == 2


def test_handedness_mode_prefers_the_chosen_hand_and_falls_back():
    p = {**DEFAULTS, "hand.lock.mode": "handedness", "hand.lock.prefer": "left"}
    assert HandLock().choose([hand(0.3, 0.5, "right", 0.99), hand(0.7, 0.5, "left", 0.6)], 0.0, p) == 1
    assert HandLock().choose([hand(0.3, 0.5, "right", 0.7), hand(0.7, 0.5, "right", 0.9)], 0.0, p) == 1


def test_nearest_mode_picks_the_hand_nearest_to_the_last_one():
    p = {**DEFAULTS, "hand.lock.mode": "nearest", "hand.lock.timeout_s": 0.1}
    lock = HandLock()
    assert lock.choose([hand(0.2, 0.5), hand(0.55, 0.5)], 0.0, p) == 1  # nearest to the centre at first
    lock.choose([hand(0.2, 0.5), hand(0.8, 0.5)], 0.05, p)  # both too far from 0.55: lost
    assert lock.choose([hand(0.2, 0.5), hand(0.8, 0.5)], 0.2, p) == 1  # after the timeout: nearest to 0.55


def test_two_hands_crossing_slowly_never_flip():
    lock, p = HandLock(), dict(DEFAULTS)
    chosen = []
    for i in range(40):
        a, b = hand(0.3 + 0.01 * i, 0.5, "right"), hand(0.7 - 0.01 * i, 0.52, "left")
        order = [a, b] if i % 2 else [b, a]  # MediaPipe lists hands in no stable order
        chosen.append(order[lock.choose(order, i / 30, p)].handedness)
    assert set(chosen) == {chosen[0]}


from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402


@hsettings(max_examples=200, deadline=None)
@given(points=arrays(np.float32, (21, 3), elements=st.floats(-2, 3, width=32)),
       aspect=st.floats(0.1, 10), mirror=st.booleans())
def test_features_of_any_landmarks_are_finite(points, aspect, mirror):
    """Degenerate hands (all points on one spot, a line, outside the frame) give numbers, never NaN or errors."""
    values = raw_features(points, aspect, mirror)
    assert np.isfinite(values).all()
    f = dict(zip(FEATURE_NAMES, values))
    assert -180 <= f["angle"] <= 180 and 0 <= f["openness"] <= 1 and f["area"] >= 0 and f["distance"] >= 0
