"""The performer's body as a few smoothed numbers (signals ``body.*``), from MediaPipe's 33 pose landmarks.

Conventions: landmarks are MediaPipe's (x, y in 0..1 of the picture, y down; ``left_*`` is the person's own
left). Lengths and angles are taken in pixels (x scaled by the aspect ratio). With ``pose.mirror`` the
features are computed on the mirrored picture (x becomes 1 - x, lean changes sign), as a performer watching
the output like a mirror expects; landmark names stay anatomical.

The *body points* are the visible torso and limb keypoints: shoulders, elbows, wrists, hips, knees, ankles
(visibility >= ``pose.min_visibility``; all twelve when fewer than three are visible).

=====================  ==========================================================================================
``body.distance``      the paper's Test 2 distance: from the frame centre to the centroid of the body points, in
                       pixels over the centre-to-corner length (0 = centred, 1 = in a corner)
``body.x``, ``body.y`` that centroid, 0..1 of the frame
``body.height``        vertical extent of all visible landmarks, fraction of the frame height
``body.size``          area of their bounding box, fraction of the frame area
``body.arm_spread``    wrist-to-wrist distance over the reach of both arms plus the shoulders: 0 wrists
                       together, 1 arms stretched out in a line
``body.left_hand_up``  the wrist's height above its shoulder, in torso lengths (shoulders' midpoint to hips'),
``body.right_hand_up`` -1..1: 0 at shoulder height, + above, - below
``body.lean``          sine of the torso's tilt from upright, -1..1, + when the shoulders lean to the picture's
                       right of the hips
``body.energy``        motion energy: mean speed of the body points (frame heights per second) over
                       ``pose.energy.full``, smoothed over about 0.3 s, 0..1
``body.present``       1 while an active performer is tracked, else 0 (the others hold their last values)
``body.count``         people in view
=====================  ==========================================================================================
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from bridge.tracking.lock import PersonLock
from bridge.one_euro import OneEuroFilter

POSE_LANDMARK_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index")
_I = {name: i for i, name in enumerate(POSE_LANDMARK_NAMES)}
BODY_POINTS = np.array([_I[f"{side}_{joint}"] for joint in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
                        for side in ("left", "right")])
# Smoothed together by one One-Euro filter, in this order (energy and count are handled apart).
FEATURE_NAMES: tuple[str, ...] = ("distance", "x", "y", "height", "size", "arm_spread", "left_hand_up",
                                  "right_hand_up", "lean")
ENERGY_TAU_S = 0.3


def _signal_specs():
    from bridge.signals import SignalSpec

    text = {
        "distance": "distance of the body's centroid from the frame centre, 0 centre .. 1 corner (paper's Test 2)",
        "x": "body centroid x, 0 left .. 1 right of the picture", "y": "body centroid y, 0 top .. 1 bottom",
        "height": "body height in frame (fraction of the frame height)",
        "size": "body bounding box (fraction of the frame area)",
        "arm_spread": "wrists apart over full reach: 0 together .. 1 arms stretched out",
        "left_hand_up": "left wrist above the left shoulder, in torso lengths (-1 .. 1)",
        "right_hand_up": "right wrist above the right shoulder, in torso lengths (-1 .. 1)",
        "lean": "sine of the torso's tilt, + toward the picture's right (-1 .. 1)",
        "energy": "skeleton motion energy, 0 still .. 1 at pose.energy.full",
        "present": "1 while an active performer is tracked", "count": "people in view",
    }
    signed = {"left_hand_up", "right_hand_up", "lean"}
    return tuple(SignalSpec(f"body.{name}", -1.0 if name in signed else 0.0, 6.0 if name == "count" else 1.0,
                            "", description, "pose") for name, description in text.items())


SIGNALS = _signal_specs()


def body_points(landmarks: np.ndarray, min_visibility: float) -> np.ndarray:
    """Indices of the body points used for the centroid (see the module docstring)."""
    visible = BODY_POINTS[np.asarray(landmarks)[BODY_POINTS, 3] >= min_visibility]
    return visible if len(visible) >= 3 else BODY_POINTS


def raw_features(landmarks: np.ndarray, aspect: float = 1.0, mirror: bool = False,
                 min_visibility: float = 0.5) -> np.ndarray:
    """The unsmoothed features (:data:`FEATURE_NAMES` order) of one person's (33, 4) x, y, z, visibility."""
    lm = np.asarray(landmarks, dtype=np.float64)
    pts = lm[:, :2].copy()
    if mirror:
        pts[:, 0] = 1.0 - pts[:, 0]
    px = pts * (aspect, 1.0)  # frame-height units
    chosen = body_points(lm, min_visibility)
    cx, cy = pts[chosen].mean(axis=0)
    distance = math.hypot((cx - 0.5) * aspect, cy - 0.5) / math.hypot(0.5 * aspect, 0.5)
    seen = lm[:, 3] >= min_visibility
    box = pts[seen] if seen.sum() >= 3 else pts
    height = float(np.clip(box[:, 1].max(), 0, 1) - np.clip(box[:, 1].min(), 0, 1))
    width = float(np.clip(box[:, 0].max(), 0, 1) - np.clip(box[:, 0].min(), 0, 1))

    def at(name: str) -> np.ndarray:
        return px[_I[name]]

    shoulders = (at("left_shoulder") + at("right_shoulder")) / 2
    hips = (at("left_hip") + at("right_hip")) / 2
    torso = max(float(np.hypot(*(shoulders - hips))), 1e-6)
    reach = sum(float(np.hypot(*(at(f"{s}_shoulder") - at(f"{s}_elbow")))) +
                float(np.hypot(*(at(f"{s}_elbow") - at(f"{s}_wrist")))) for s in ("left", "right"))
    reach += float(np.hypot(*(at("left_shoulder") - at("right_shoulder"))))
    spread = float(np.hypot(*(at("left_wrist") - at("right_wrist")))) / max(reach, 1e-6)
    up = [float(np.clip((at(f"{s}_shoulder")[1] - at(f"{s}_wrist")[1]) / torso, -1.0, 1.0))
          for s in ("left", "right")]
    tilt = shoulders - hips
    lean = float(tilt[0] / max(float(np.hypot(*tilt)), 1e-6))
    return np.array([distance, cx, cy, height, width * height, min(spread, 1.0), up[0], up[1], lean])


class BodyFeatures:
    """Smoothed features of the active performer; one per pose source (MediaPipe or OSC), one thread."""

    def __init__(self) -> None:
        self._filter = OneEuroFilter()
        self._values = np.zeros(len(FEATURE_NAMES))
        self._last_pts: np.ndarray | None = None
        self._last_visible: np.ndarray | None = None
        self._last_t = 0.0
        self.energy = 0.0
        self.present = False
        self.count = 0

    def update(self, landmarks: np.ndarray | None, count: int, t: float, aspect: float,
               params: Mapping[str, Any]) -> dict[str, float]:
        """Take the active person's landmarks (None: nobody active); return every ``body.*`` signal."""
        self.count = count
        if landmarks is None:
            if self.present:
                self._filter.reset()
            self.present = False
            self._last_pts = None
            self.energy = 0.0
            return self.signals()
        min_vis = float(params.get("pose.min_visibility", 0.5))
        raw = raw_features(landmarks, aspect, bool(params.get("pose.mirror", False)), min_vis)
        self._filter.min_cutoff = float(params.get("pose.smooth.min_cutoff", 1.0))
        self._filter.beta = float(params.get("pose.smooth.beta", 0.5))
        self._values = self._filter.filter(raw, t)
        self._update_energy(np.asarray(landmarks, dtype=np.float64), t, aspect, min_vis,
                            float(params.get("pose.energy.full", 1.0)))
        self.present = True
        return self.signals()

    def _update_energy(self, lm: np.ndarray, t: float, aspect: float, min_vis: float, full: float) -> None:
        pts = lm[BODY_POINTS, :2] * (aspect, 1.0)
        visible = lm[BODY_POINTS, 3] >= min_vis
        if self._last_pts is not None and t > self._last_t:
            dt = t - self._last_t
            both = visible & self._last_visible
            if both.any():
                speed = float(np.hypot(*(pts[both] - self._last_pts[both]).T).mean()) / dt
                alpha = 1.0 - math.exp(-dt / ENERGY_TAU_S)
                self.energy += alpha * (min(speed / max(full, 1e-6), 1.0) - self.energy)
        self._last_pts, self._last_visible, self._last_t = pts, visible, t

    def signals(self) -> dict[str, float]:
        out = {f"body.{name}": float(v) for name, v in zip(FEATURE_NAMES, self._values)}
        out["body.energy"] = float(self.energy)
        out["body.present"] = 1.0 if self.present else 0.0
        out["body.count"] = float(self.count)
        return out


def telemetry_values(landmarks: np.ndarray | None, mirror: bool = False, prefix: str = "/vrb/p1") -> dict:
    """``/vrb/p1/<landmark>/x|y`` (0..1, y down; x mirrored only with ``pose.mirror``) and ``/vrb/p1/present``."""
    if landmarks is None:
        return {prefix + "/present": 0}
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    out: dict[str, Any] = {prefix + "/present": 1}
    for name, (x, y) in zip(POSE_LANDMARK_NAMES, pts.tolist()):
        out[f"{prefix}/{name}/x"] = 1.0 - x if mirror else x
        out[f"{prefix}/{name}/y"] = y
    return out


def person_centre(landmarks: np.ndarray, aspect: float, min_visibility: float) -> tuple[float, float]:
    """Centroid of the body points in frame-height units (x scaled by the aspect ratio), for the lock."""
    lm = np.asarray(landmarks, dtype=np.float64)
    x, y = lm[body_points(lm, min_visibility), :2].mean(axis=0)
    return float(x) * aspect, float(y)


class BodyStage:
    """People in, signals out: the performer lock, the smoothed features, publishing, telemetry.

    Shared by the MediaPipe tracker and the OSC input, so both give the same signals for the same keypoints.
    One thread calls :meth:`take`; :meth:`telemetry` may be called from any thread (it reads one reference).
    """

    def __init__(self, params, bus=None, source: str = "pose") -> None:
        self._params = params
        self.bus = bus
        self.source = source
        self.lock = PersonLock()
        self.features = BodyFeatures()
        self.active: np.ndarray | None = None  # the active person's (33, 4) landmarks, or None
        self.people = 0
        self.last_signals: dict[str, float] = self.features.signals()

    def take(self, people: list[np.ndarray], t: float, aspect: float) -> dict[str, float]:
        """Choose the performer among ``people`` ((33, 4) arrays), update and publish the signals."""
        params = self._params()
        min_vis = float(params.get("pose.min_visibility", 0.5))
        centres = [person_centre(p, aspect, min_vis) for p in people]
        sizes = [float(np.ptp(np.asarray(p)[:, 1])) for p in people]
        scores = [float(np.mean(np.asarray(p)[BODY_POINTS, 3])) for p in people]
        index = self.lock.choose(centres, sizes, scores, t, params.get("performer.lock.mode", "first"),
                                 float(params.get("performer.lock.hold_s", 1.0)),
                                 float(params.get("performer.lock.radius", 0.3)), (0.5 * aspect, 0.5))
        self.active = None if index is None else np.asarray(people[index], dtype=np.float32)
        self.people = len(people)
        signals = self.features.update(self.active, len(people), t, aspect, params)
        self.last_signals = signals
        if self.bus is not None:
            self.bus.publish_many(signals, source=self.source)
        return signals

    def telemetry(self) -> dict:
        return telemetry_values(self.active, bool(self._params().get("pose.mirror", False)))
