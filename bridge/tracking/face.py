"""The performer's face as a few smoothed numbers (signals ``face.*``): gestures and head angles.

Sources: MediaPipe's 478 face landmarks (x, y in 0..1 of the picture, y down) and, when the face model bundle
carries a blendshape model (Google's official ``face_landmarker.task`` does, the shipped one does not), its
52 blendshape scores. ``left``/``right`` are the person's own (MediaPipe's mesh point 263 is the outer corner
of the person's left eye, which a camera that does not mirror shows on the picture's right).

=====================  =========================================================================================
``face.mouth_open``    0 closed .. 1 wide open (blendshape ``jawOpen``; else inner-lip gap over mouth width)
``face.smile``         0 .. 1 (``mouthSmileLeft/Right``; else mouth width and corner lift over eye distance)
``face.brows_up``      0 .. 1 (``browInnerUp``, ``browOuterUpLeft/Right``; else brow-to-eyelid over eye distance)
``face.eye_left_closed``, ``face.eye_right_closed``  0 open .. 1 closed (``eyeBlink*``; else eyelid gap over
                       eye width)
``face.yaw``           -1..1, + when the nose turns toward the picture's right (about 1 at 60 degrees)
``face.pitch``         -1..1, + when the head tilts up
``face.roll``          -1..1, + when the head leans clockwise in the picture (1 = 45 degrees)
``face.present``       1 while a face is tracked, else 0 (the others hold their last values)
=====================  =========================================================================================

Calibration: each value is measured from a *neutral face*, so a relaxed face reads near 0 whoever performs.
The neutral is a built-in average until a calibration has run: for ``face.calibrate_s`` seconds after the first
face is seen (0 = never automatically), and whenever the ``face.calibrate`` action is triggered (an optional
argument gives the seconds). The performer holds a relaxed face, looking at the camera, meanwhile.
With ``face.mirror`` the features are taken on the mirrored picture (yaw and roll change sign).
"""
from __future__ import annotations

import math
import threading
from typing import Any, Mapping

import numpy as np

from bridge.one_euro import OneEuroFilter
from bridge.tracking.lock import PersonLock

# Named mesh points (telemetry /vrb/f1/<name>/x|y and the OSC input's names).
FACE_POINTS: dict[str, int] = {
    "nose_tip": 1, "chin": 152, "forehead": 10, "mouth_upper": 13, "mouth_lower": 14, "mouth_left": 291,
    "mouth_right": 61, "left_eye_outer": 263, "left_eye_inner": 362, "left_eye_top": 386, "left_eye_bottom": 374,
    "right_eye_outer": 33, "right_eye_inner": 133, "right_eye_top": 159, "right_eye_bottom": 145,
    "left_brow": 334, "right_brow": 105, "left_cheek": 454, "right_cheek": 234, "left_iris": 473,
    "right_iris": 468,
}
FACE_MESH_POINTS = 478
_NAMED = np.array(sorted(set(FACE_POINTS.values())))
GESTURES: tuple[str, ...] = ("mouth_open", "smile", "brows_up", "eye_left_closed", "eye_right_closed",
                             "yaw", "pitch", "roll")
_ANGLES = ("yaw", "pitch", "roll")
# Raw measurements (see raw_measures) and a typical relaxed face's values, used until a calibration has run.
MEASURES: tuple[str, ...] = ("mouth_gap", "mouth_width", "corner_lift", "brow_height", "left_eye_open",
                             "right_eye_open", "nose_across", "nose_down", "roll_deg")
DEFAULT_NEUTRAL = np.array([0.03, 0.62, 0.04, 0.19, 0.33, 0.33, 0.5, 0.40, 0.0])
# Blendshape names feeding each gesture when the bundle has a blendshape model (their scores are averaged).
BLENDSHAPES: dict[str, tuple[str, ...]] = {
    "mouth_open": ("jawOpen",), "smile": ("mouthSmileLeft", "mouthSmileRight"),
    "brows_up": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
    "eye_left_closed": ("eyeBlinkLeft",), "eye_right_closed": ("eyeBlinkRight",),
}


def _signal_specs():
    from bridge.signals import SignalSpec

    text = {
        "mouth_open": "mouth opening, 0 closed .. 1 wide open", "smile": "smile, 0 neutral .. 1 broad",
        "brows_up": "eyebrows raised, 0 neutral .. 1 high", "eye_left_closed": "left eye, 0 open .. 1 closed",
        "eye_right_closed": "right eye, 0 open .. 1 closed",
        "yaw": "head turn, + nose toward the picture's right (-1 .. 1)", "pitch": "head tilt, + up (-1 .. 1)",
        "roll": "head lean, + clockwise in the picture; 1 = 45 degrees (-1 .. 1)",
        "present": "1 while a face is tracked",
    }
    return tuple(SignalSpec(f"face.{name}", -1.0 if name in _ANGLES else 0.0, 1.0, "", description, "face")
                 for name, description in text.items())


SIGNALS = _signal_specs()


def _p(px: np.ndarray, name: str) -> np.ndarray:
    return px[FACE_POINTS[name]]


def _dist(px: np.ndarray, a: str, b: str) -> float:
    return float(np.hypot(*(_p(px, a) - _p(px, b))))


def raw_measures(landmarks: np.ndarray, aspect: float = 1.0, mirror: bool = False) -> np.ndarray:
    """Scale-free measurements (:data:`MEASURES` order) of one face's landmarks, in pixels, roll removed.

    mouth_gap: inner-lip gap / mouth width. mouth_width: mouth width / eye distance (outer corners).
    corner_lift: how far the mouth corners sit above the lips' centre / eye distance. brow_height: brow to upper
    eyelid / eye distance (both sides averaged). *_eye_open: eyelid gap / eye width. nose_across: the nose tip's
    position between the cheeks (0.5 = facing the camera). nose_down: the nose tip's height between the eye line
    (0) and the chin (1). roll_deg: the eye line's angle, clockwise in the picture.
    """
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2].copy()
    if mirror:
        pts[:, 0] = 1.0 - pts[:, 0]
    px = pts * (aspect, 1.0)
    # the person's right eye is on the picture's left (unmirrored): the eye line runs right eye -> left eye
    eye_line = _p(px, "left_eye_outer") - _p(px, "right_eye_outer")
    if mirror:
        eye_line = -eye_line
    roll = math.atan2(eye_line[1], eye_line[0])
    c, s = math.cos(-roll), math.sin(-roll)
    px = px @ np.array([[c, s], [-s, c]])  # rotate by -roll: the eye line becomes horizontal
    eyes = max(float(np.hypot(*eye_line)), 1e-6)
    mouth_w = max(_dist(px, "mouth_left", "mouth_right"), 1e-6)
    lips_y = (_p(px, "mouth_upper")[1] + _p(px, "mouth_lower")[1]) / 2
    corners_y = (_p(px, "mouth_left")[1] + _p(px, "mouth_right")[1]) / 2
    brow = (_dist(px, "left_brow", "left_eye_top") + _dist(px, "right_brow", "right_eye_top")) / 2
    left_open = _dist(px, "left_eye_top", "left_eye_bottom") / max(_dist(px, "left_eye_outer", "left_eye_inner"), 1e-6)
    right_open = (_dist(px, "right_eye_top", "right_eye_bottom")
                  / max(_dist(px, "right_eye_outer", "right_eye_inner"), 1e-6))
    cheeks = sorted((_p(px, "left_cheek")[0], _p(px, "right_cheek")[0]))
    across = (_p(px, "nose_tip")[0] - cheeks[0]) / max(cheeks[1] - cheeks[0], 1e-6)
    eye_y = (_p(px, "left_eye_outer")[1] + _p(px, "right_eye_outer")[1]) / 2
    down = (_p(px, "nose_tip")[1] - eye_y) / max(_p(px, "chin")[1] - eye_y, 1e-6)
    return np.array([_dist(px, "mouth_upper", "mouth_lower") / mouth_w, mouth_w / eyes, (lips_y - corners_y) / eyes,
                     brow / eyes, left_open, right_open, across, down, math.degrees(roll)])


def gestures_from_measures(m: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """The :data:`GESTURES` from raw measures, relative to a neutral face's measures."""
    d = m - neutral
    mouth_open = d[0] / 0.5
    smile = (d[1] / 0.15 + d[2] / 0.06) / 2
    brows = d[3] / 0.12
    left = -d[4] / max(0.8 * neutral[4], 1e-6)
    right = -d[5] / max(0.8 * neutral[5], 1e-6)
    yaw = d[6] * 2.5
    pitch = -d[7] * 4.0
    roll = d[8] / 45.0
    out = np.array([mouth_open, smile, brows, left, right, yaw, pitch, roll])
    out[:5] = np.clip(out[:5], 0.0, 1.0)
    out[5:] = np.clip(out[5:], -1.0, 1.0)
    return out


def blendshape_scores(categories) -> dict[str, float]:
    """MediaPipe blendshape categories -> {name: score}."""
    return {c.category_name: float(c.score) for c in categories}


class FaceFeatures:
    """Calibrated, smoothed gestures of the active face. :meth:`update` from one thread; :meth:`calibrate` any."""

    def __init__(self) -> None:
        self._filter = OneEuroFilter()
        self._values = np.zeros(len(GESTURES))
        self.neutral = DEFAULT_NEUTRAL.copy()
        self.neutral_blend: dict[str, float] = {}
        self.present = False
        self.calibrated = False
        self.auto_done = False
        self._request: float | None = None
        self._request_lock = threading.Lock()
        self._collecting: tuple[float, list, list] | None = None  # (until, measures, blendshape dicts)

    def calibrate(self, seconds: float) -> None:
        """Start a neutral-face calibration of ``seconds`` at the next face seen (any thread)."""
        with self._request_lock:
            self._request = max(0.05, float(seconds))

    @property
    def calibrating(self) -> bool:
        return self._collecting is not None

    def update(self, landmarks: np.ndarray | None, blend: dict[str, float] | None, t: float, aspect: float,
               params: Mapping[str, Any]) -> dict[str, float]:
        if landmarks is None:
            if self.present:
                self._filter.reset()
            self.present = False
            return self.signals()
        mirror = bool(params.get("face.mirror", False))
        measures = raw_measures(landmarks, aspect, mirror)
        self._calibration_step(measures, blend, t, params)
        raw = gestures_from_measures(measures, self.neutral)
        if blend:
            for i, name in enumerate(GESTURES[:5]):
                if name == "eye_left_closed" and mirror:
                    name = "eye_right_closed"
                elif name == "eye_right_closed" and mirror:
                    name = "eye_left_closed"
                keys = BLENDSHAPES[name]
                score = float(np.mean([blend.get(k, 0.0) for k in keys]))
                base = float(np.mean([self.neutral_blend.get(k, 0.0) for k in keys]))
                raw[i] = min(1.0, max(0.0, (score - base) / max(1.0 - base, 1e-6)))
        self._filter.min_cutoff = float(params.get("face.smooth.min_cutoff", 1.0))
        self._filter.beta = float(params.get("face.smooth.beta", 0.5))
        self._values = self._filter.filter(raw, t)
        self.present = True
        return self.signals()

    def _calibration_step(self, measures: np.ndarray, blend, t: float, params: Mapping[str, Any]) -> None:
        with self._request_lock:
            request, self._request = self._request, None
        if request is None and not self.auto_done:
            self.auto_done = True
            auto = float(params.get("face.calibrate_s", 1.0))
            request = auto if auto > 0 else None
        if request is not None:
            self._collecting = (t + request, [], [])
        if self._collecting is None:
            return
        until, seen, blends = self._collecting
        seen.append(measures)
        if blend:
            blends.append(blend)
        if t >= until:
            self.neutral = np.median(np.array(seen), axis=0)
            if blends:
                self.neutral_blend = {k: float(np.median([b.get(k, 0.0) for b in blends])) for k in blends[0]}
            self.calibrated = True
            self._collecting = None
            self._filter.reset()  # the new neutral applies at once, not through the smoothing's lag

    def signals(self) -> dict[str, float]:
        out = {f"face.{name}": float(v) for name, v in zip(GESTURES, self._values)}
        out["face.present"] = 1.0 if self.present else 0.0
        return out


def telemetry_values(landmarks: np.ndarray | None, mirror: bool = False, prefix: str = "/vrb/f1") -> dict:
    """``/vrb/f1/<point>/x|y`` for the named points (0..1, y down; x mirrored only with ``face.mirror``)."""
    if landmarks is None:
        return {prefix + "/present": 0}
    pts = np.asarray(landmarks, dtype=np.float64)
    out: dict[str, Any] = {prefix + "/present": 1}
    for name, index in FACE_POINTS.items():
        x, y = float(pts[index, 0]), float(pts[index, 1])
        out[f"{prefix}/{name}/x"] = 1.0 - x if mirror else x
        out[f"{prefix}/{name}/y"] = y
    return out


class FaceStage:
    """Faces in, signals out: the performer lock, calibrated smoothed gestures, publishing, telemetry.

    Shared by the MediaPipe tracker and the OSC input. One thread calls :meth:`take`.
    """

    def __init__(self, params, bus=None, source: str = "face") -> None:
        self._params = params
        self.bus = bus
        self.source = source
        self.lock = PersonLock()
        self.features = FaceFeatures()
        self.active: np.ndarray | None = None
        self.faces = 0
        self.last_signals: dict[str, float] = self.features.signals()

    def take(self, faces: list[np.ndarray], blends: list[dict[str, float] | None], t: float,
             aspect: float) -> dict[str, float]:
        """Choose the performer's face among ``faces`` ((N, 2+) landmark arrays), update and publish."""
        params = self._params()
        centres = [(float(f[FACE_POINTS["nose_tip"], 0]) * aspect, float(f[FACE_POINTS["nose_tip"], 1]))
                   for f in faces]
        sizes = [float(np.ptp(np.asarray(f)[_NAMED, 1])) for f in faces]  # named points: OSC may send only those
        index = self.lock.choose(centres, sizes, sizes, t, params.get("performer.lock.mode", "first"),
                                 float(params.get("performer.lock.hold_s", 1.0)),
                                 float(params.get("performer.lock.radius", 0.3)), (0.5 * aspect, 0.5))
        self.active = None if index is None else np.asarray(faces[index], dtype=np.float32)
        self.faces = len(faces)
        blend = None if index is None or index >= len(blends) else blends[index]
        signals = self.features.update(self.active, blend, t, aspect, params)
        self.last_signals = signals
        if self.bus is not None:
            self.bus.publish_many(signals, source=self.source)
        return signals

    def telemetry(self) -> dict:
        return telemetry_values(self.active, bool(self._params().get("face.mirror", False)))
