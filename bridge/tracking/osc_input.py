"""Hand keypoints received over OSC, so a rig that already tracks hands (TouchDesigner's MediaPipe component)
does not track twice. The result is the same :class:`Keypoints` the MediaPipe tracker makes.

Accepted messages (N = hand slot 1..4, LM = a name from ``HAND_LANDMARK_NAMES``, A = x | y | z):

  /vrb/in/hN/LM/A f        one coordinate           /vrb/in/hN/LM f f [f]   x y [z] at once
  /vrb/in/hN:LM:A f        TouchDesigner channel names sent with an address prefix (OSC Out CHOP)
  /hN:LM:A f               the same channel names without a prefix
  /vrb/in/hN/present i     0 hides the hand at once   /vrb/in/hN/score f    /vrb/in/hN/handedness s (left|right)
  /vrb/in/aspect f         width / height of the picture the keypoints were tracked in

Coordinates are MediaPipe's: 0..1 of the picture, y down (``hand.osc_y_up`` flips y for senders with y up).
A slot is a visible hand while it has all 21 landmarks, is not all zeros (what senders send for "no hand"),
was not hidden with ``present 0``, and was updated within :attr:`OscHandTracker.stale_s`. Handedness defaults to
"right" for h1 and "left" for h2 when the sender does not say. The aspect ratio comes from ``/vrb/in/aspect`` or
else from the engine's own camera frames (the usual rig films one scene), else 1.

Bad input (unknown landmark or slot, wrong argument type) raises a ParamError, which the OSC server answers
and counts like any other bad control message; the hand data is left unchanged.
"""
from __future__ import annotations

import math
import re
import threading
import time
from typing import Any

import numpy as np

from bridge.frames import HAND_LANDMARK_NAMES, Hand, Keypoints
from bridge.params import UnknownParam, WrongType
from bridge.tracking.base import HandTracker, ParamsFn

MAX_SLOTS = 4
_LANDMARK_INDEX = {name: i for i, name in enumerate(HAND_LANDMARK_NAMES)}
_AXES = {"x": 0, "y": 1, "z": 2}
# (slot, rest) from the two spellings: "/vrb/in/h1/wrist/x" and "h1:wrist:x" (with or without /vrb/in/ or /)
_ADDRESS = re.compile(r"^(?:/vrb/in/|/)h(\d+)(?:[/:](.*))?$")

# Patterns the tracker registers with the OSC server (OSC wildcards never cross '/').
OSC_PATTERNS = ("/vrb/in/aspect", "/vrb/in/h[0-9]*", "/vrb/in/h[0-9]*/*", "/vrb/in/h[0-9]*/*/*", "/h[0-9]*:*")


class _Slot:
    def __init__(self, index: int) -> None:
        self.landmarks = np.full((len(HAND_LANDMARK_NAMES), 3), np.nan, dtype=np.float32)
        self.landmarks[:, 2] = 0.0  # z is optional
        self.handedness = "right" if index == 0 else "left"
        self.score = 1.0
        self.present = True
        self.updated = -math.inf

    def visible(self, now: float, stale_s: float) -> bool:
        xy = self.landmarks[:, :2]
        return (self.present and now - self.updated <= stale_s and bool(np.isfinite(xy).all())
                and bool(np.any(xy != 0.0)))


class OscHandTracker(HandTracker):
    """Keypoints from OSC messages. Register :meth:`handle` with the OSC server (``attach`` does)."""

    kind = "osc"
    stale_s = 0.5  # a slot not updated for this long counts as gone

    def __init__(self, params: ParamsFn | None = None, clock=time.monotonic) -> None:
        super().__init__(params)
        self._clock = clock
        self._slots = [_Slot(i) for i in range(MAX_SLOTS)]
        self._state = threading.Lock()
        self._dirty = False
        self._shown: tuple[int, ...] = ()
        self._aspect_from_sender: float | None = None
        self._aspect_from_frames = 1.0
        self._last_message = 0.0
        self.messages = 0
        self._index = 0

    def describe(self) -> str:
        return "osc hands (/vrb/in/hN/..., hN:landmark:axis)"

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "messages": self.messages}

    def submit(self, frame) -> None:
        """Camera frames only tell us the picture's aspect ratio (unless the sender states it)."""
        shape = getattr(frame.rgb, "shape", ())
        if len(shape) >= 2 and shape[0] > 0:
            self._aspect_from_frames = shape[1] / shape[0]

    # -- OSC in (server thread) ----------------------------------------------------------------------
    def handle(self, address: str, args: tuple, sender=None) -> None:
        """One OSC message; raises a ParamError (answered by the server) for anything it cannot use."""
        if address == "/vrb/in/aspect":
            value = _number(address, args, 1)[0]
            if not 0.1 <= value <= 10.0:
                raise WrongType(address, f"aspect {value} is not a width/height ratio in 0.1..10")
            with self._state:
                self._aspect_from_sender = value
                self._dirty = True
                self.messages += 1
            return
        match = _ADDRESS.match(address)
        if not match:
            raise UnknownParam(address, "not a hand keypoint address (/vrb/in/hN/landmark/axis or hN:landmark:axis)")
        slot_no, rest = int(match.group(1)), (match.group(2) or "")
        if not 1 <= slot_no <= MAX_SLOTS:
            raise UnknownParam(address, f"hand slot h{slot_no} is not one of h1..h{MAX_SLOTS}")
        parts = re.split(r"[/:]", rest) if rest else []
        with self._state:
            self._apply(self._slots[slot_no - 1], address, parts, args)
            self._slots[slot_no - 1].updated = self._clock()
            self._last_message = self._slots[slot_no - 1].updated
            self._dirty = True
            self.messages += 1

    def _apply(self, slot: _Slot, address: str, parts: list[str], args: tuple) -> None:
        if len(parts) == 1 and parts[0] == "present":
            slot.present = bool(_number(address, args, 1)[0])
        elif len(parts) == 1 and parts[0] == "score":
            slot.score = min(1.0, max(0.0, _number(address, args, 1)[0]))
        elif len(parts) == 1 and parts[0] == "handedness":
            if len(args) != 1 or str(args[0]).lower() not in ("left", "right"):
                raise WrongType(address, f"expects 'left' or 'right', got {args!r}")
            slot.handedness = str(args[0]).lower()
        elif len(parts) == 1 and parts[0] in _LANDMARK_INDEX:
            values = _number(address, args, len(args) if len(args) in (2, 3) else 2)
            slot.landmarks[_LANDMARK_INDEX[parts[0]], :len(values)] = values
            slot.present = True
        elif len(parts) == 2 and parts[0] in _LANDMARK_INDEX and parts[1] in _AXES:
            slot.landmarks[_LANDMARK_INDEX[parts[0]], _AXES[parts[1]]] = _number(address, args, 1)[0]
            slot.present = True
        else:
            raise UnknownParam(address, "expects hN/<landmark>/<x|y|z>, hN/<landmark> x y [z], "
                                        "hN/present, hN/score or hN/handedness")

    # -- render thread ---------------------------------------------------------------------------------
    def latest(self) -> Keypoints | None:
        """Publish new keypoints when messages arrived or a hand went stale; else the same object as before."""
        now = self._clock()
        with self._state:
            shown = tuple(i for i, s in enumerate(self._slots) if s.visible(now, self.stale_s))
            if not self._dirty and shown == self._shown:
                return self._latest
            self._dirty = False
            self._shown = shown
            y_up = bool(self._params().get("hand.osc_y_up", False))
            hands = [self._hand(self._slots[i], y_up) for i in shown]
            aspect = self._aspect_from_sender or self._aspect_from_frames
            self._index += 1
            t = self._last_message if shown else now
        return self.publish(hands, t, self._index, aspect, "osc")

    @staticmethod
    def _hand(slot: _Slot, y_up: bool) -> Hand:
        landmarks = slot.landmarks.copy()
        if y_up:
            landmarks[:, 1] = 1.0 - landmarks[:, 1]
        return Hand(landmarks=landmarks, handedness=slot.handedness, score=slot.score)


def _number(address: str, args: tuple, count: int) -> list[float]:
    """``count`` finite numbers from ``args`` or a WrongType naming the address."""
    if len(args) != count:
        raise WrongType(address, f"expects {count} number(s), got {len(args)} argument(s)")
    out = []
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, (int, float)) or not math.isfinite(arg):
            raise WrongType(address, f"expects numbers, got {arg!r}")
        out.append(float(arg))
    return out
