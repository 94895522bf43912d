"""What the manipulations read from the active hand: a few smoothed numbers.

Conventions (all in the picture the tracker saw, x right, y down; with ``hand.mirror`` the picture is
mirrored left-right first, so x becomes 1 - x and the angle changes sign):

=============  =================================================================================================
``x``, ``y``   palm centroid (mean of wrist and the five finger bases), 0..1 of the frame
``distance``   from the frame centre to the centroid, in pixels over the centre-to-corner length: 0 centre, 1 corner
``angle``      degrees between "up" and the wrist -> middle-finger-base line, in pixels; 0 = fingers up,
               positive = the hand leans clockwise as seen in the picture (fingers toward the picture's right),
               -180..180
``area``       palm polygon (wrist, thumb base, four finger bases) as a fraction of the frame area
``pinch``      thumb tip to index tip, over the palm length (wrist -> middle-finger base): ~0 touching, ~1+ apart
``openness``   how straight the four fingers are, 0 (fist) .. 1 (flat open hand)
``present``    1 while an active hand is seen, else 0 (the other values then hold their last reading)
=============  =================================================================================================

Pixels matter for angles and lengths: landmarks are normalised per axis, so x is scaled by the frame's
aspect ratio (``Keypoints.aspect``) before any angle or length is taken.

:class:`HandFeatures` recomputes and smooths only when new keypoints arrive (by their capture time);
:class:`HandSignals` publishes them as the ``hand.*`` signals (:data:`SIGNALS`) that routes read.
"""
from __future__ import annotations

import math
import threading
from typing import Any, Mapping

import numpy as np

from bridge.curves import Ramp
from bridge.frames import HAND_LANDMARK_NAMES, Hand, Keypoints
from bridge.one_euro import OneEuroFilter
from bridge.signals import SignalSpec

_I = {name: i for i, name in enumerate(HAND_LANDMARK_NAMES)}
# The palm: wrist, thumb base, then the four finger bases, in order around its outline (for the polygon area).
PALM = np.array([_I[n] for n in ("wrist", "thumb_cmc", "index_mcp", "middle_mcp", "ring_mcp", "pinky_mcp")])
FINGERS = np.array([[_I[f"{f}_{j}"] for j in ("mcp", "pip", "dip", "tip")]
                    for f in ("index", "middle", "ring", "pinky")])  # (4 fingers, 4 joints)

FEATURE_NAMES: tuple[str, ...] = ("x", "y", "distance", "angle", "area", "pinch", "openness")
_ANGLE = FEATURE_NAMES.index("angle")
# A straight finger has tip-to-base distance equal to its bone lengths' sum (ratio 1); a curled one about half.
_CURLED_RATIO = 0.5


def raw_features(landmarks: np.ndarray, aspect: float = 1.0, mirror: bool = False) -> np.ndarray:
    """The unsmoothed feature vector (in :data:`FEATURE_NAMES` order) of one hand's (21, 3) landmarks."""
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2].copy()
    if mirror:
        pts[:, 0] = 1.0 - pts[:, 0]
    px = pts * (aspect, 1.0)  # "pixels" in units of the frame height
    cx, cy = pts[PALM].mean(axis=0)
    centre_px = np.array([(cx - 0.5) * aspect, cy - 0.5])
    distance = math.hypot(*centre_px) / math.hypot(0.5 * aspect, 0.5)
    wrist, middle = px[_I["wrist"]], px[_I["middle_mcp"]]
    up = middle - wrist
    angle = math.degrees(math.atan2(up[0], -up[1]))
    ring = pts[PALM]
    area = 0.5 * abs(float(np.dot(ring[:, 0], np.roll(ring[:, 1], -1)) - np.dot(ring[:, 1], np.roll(ring[:, 0], -1))))
    palm_len = max(float(np.hypot(*up)), 1e-6)
    pinch = float(np.hypot(*(px[_I["thumb_tip"]] - px[_I["index_tip"]]))) / palm_len
    joints = px[FINGERS]  # (4, 4, 2)
    bones = np.hypot(*np.moveaxis(np.diff(joints, axis=1), -1, 0)).sum(axis=1)
    reach = np.hypot(*np.moveaxis(joints[:, -1] - joints[:, 0], -1, 0))
    straightness = float(np.mean(reach / np.maximum(bones, 1e-6)))
    openness = min(1.0, max(0.0, (straightness - _CURLED_RATIO) / (1.0 - _CURLED_RATIO)))
    return np.array([cx, cy, distance, angle, area, pinch, openness])


def _wrap_angle(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0


class HandFeatures:
    """Smoothed features of the active hand, shared by the manipulations and reported in telemetry.

    :meth:`update` is called with each frame's keypoints (any thread, usually the render loop); it only
    does work when the keypoints are new. Losing the hand resets the filter so a returning hand does not
    sweep in from where the old one was (the manipulations ease in instead).
    """

    def __init__(self) -> None:
        self._filter = OneEuroFilter()
        self._lock = threading.Lock()
        self._last_key: tuple[float, int] | None = None
        self._values = np.zeros(len(FEATURE_NAMES))
        self.present = False
        self.handedness = ""

    def update(self, keypoints: Keypoints | None, params: Mapping[str, Any]) -> bool:
        """Take in ``keypoints`` (None = no tracker output); return whether an active hand is present."""
        hand = None if keypoints is None else keypoints.active_hand
        with self._lock:
            if hand is None:
                if self.present:
                    self._filter.reset()
                self.present = False
                self._last_key = None
                return False
            key = (keypoints.t_capture, keypoints.frame_index)
            if key != self._last_key:
                self._last_key = key
                self._take(hand, keypoints, params)
            return True

    def _take(self, hand: Hand, keypoints: Keypoints, params: Mapping[str, Any]) -> None:
        raw = raw_features(hand.landmarks, keypoints.aspect, bool(params.get("hand.mirror", False)))
        self._filter.min_cutoff = float(params.get("hand.smooth.min_cutoff", 1.0))
        self._filter.beta = float(params.get("hand.smooth.beta", 0.5))
        if self.present:  # unwrap the angle next to the last value so -179 -> 179 is a 2-degree move
            raw[_ANGLE] = self._values[_ANGLE] + _wrap_angle(raw[_ANGLE] - self._values[_ANGLE])
        self._values = self._filter.filter(raw, keypoints.t_capture)
        self.present = True
        self.handedness = hand.handedness

    def values(self) -> dict[str, float]:
        """The current smoothed features by name (angle wrapped to -180..180); telemetry sends /vrb/hand/<name>."""
        with self._lock:
            out = {name: float(v) for name, v in zip(FEATURE_NAMES, self._values)}
            out["angle"] = _wrap_angle(out["angle"])
            out["present"] = 1.0 if self.present else 0.0
            return out


# The hand's signals (bridge.signals): what routes can take from the active hand.
SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("hand.x", 0.0, 1.0, "", "palm centre, 0 left .. 1 right of the picture (mirrored with hand.mirror)", "hands"),
    SignalSpec("hand.y", 0.0, 1.0, "", "palm centre, 0 top .. 1 bottom of the picture", "hands"),
    SignalSpec("hand.distance", 0.0, 1.0, "", "palm centre to the frame centre: 0 centre .. 1 a corner", "hands"),
    SignalSpec("hand.angle", -180.0, 180.0, "deg", "0 fingers up, positive leaning clockwise in the picture", "hands"),
    SignalSpec("hand.size", 0.0, 1.0, "", "palm area as a fraction of the frame (a hand at arm's length ~0.02)", "hands"),
    SignalSpec("hand.zoom", -4.0, 4.0, "octaves",
               "palm size against hand.transform.area_ref: 0.5 * log2(area / area_ref), 0 at the reference", "hands"),
    SignalSpec("hand.pinch", 0.0, 2.0, "", "thumb tip to index tip over the palm length: ~0 touching, ~1+ apart", "hands"),
    SignalSpec("hand.openness", 0.0, 1.0, "", "0 fist .. 1 flat open hand", "hands"),
    SignalSpec("hand.present", 0.0, 1.0, "",
               "1 while a hand is locked, easing 0 <-> 1 over hand.ease_s as it appears and is lost", "hands"),
)
# hand.* signal <- feature vector entry
_SIGNAL_OF = {"x": "hand.x", "y": "hand.y", "distance": "hand.distance", "angle": "hand.angle", "area": "hand.size",
              "pinch": "hand.pinch", "openness": "hand.openness"}


class HandSignals:
    """The active hand as signals: updates the smoothed features from each frame's keypoints and publishes them.

    It runs on the render thread before the routes (``engine.add_signal_stage``), because the keypoints of a
    frame arrive with it; the engagement ramp (``hand.present``) eases over ``hand.ease_s`` so whatever a route
    drives from the hand fades in when it appears and back to rest when it is lost. Telemetry also gets
    ``/vrb/hand/<feature>`` from :meth:`features`.
    """

    def __init__(self, bus, features: HandFeatures | None = None) -> None:
        self.bus = bus
        self.hand = features or HandFeatures()
        self.ramp = Ramp()
        bus.declare(*SIGNALS)

    def update(self, keypoints: Keypoints | None, params: Mapping[str, Any], now: float) -> None:
        present = self.hand.update(keypoints, params)
        level = self.ramp.update(1.0 if present else 0.0, now, float(params.get("hand.ease_s", 0.5)))
        values = {"hand.present": level}
        if present or self.ramp.level > 0.0:
            features = self.hand.values()
            values.update({signal: features[name] for name, signal in _SIGNAL_OF.items()})
            ratio = max(features["area"], 1e-6) / float(params.get("hand.transform.area_ref", 0.03))
            values["hand.zoom"] = 0.5 * math.log2(ratio)
        self.bus.publish_many(values, source="hands")

    @property
    def settling(self) -> bool:
        """True while the hand eases in or out (the picture changes with time alone)."""
        return 0.0 < self.ramp.level < 1.0

    def features(self) -> dict[str, float]:
        return self.hand.values()
