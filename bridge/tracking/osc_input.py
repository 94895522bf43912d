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


MAX_VALUE = 1e6  # far beyond any frame-normalised coordinate, far inside float32


def _number(address: str, args: tuple, count: int) -> list[float]:
    """``count`` finite numbers within ±MAX_VALUE from ``args`` or a WrongType naming the address (keypoints are
    stored as float32: a larger double would become infinity there)."""
    if len(args) != count:
        raise WrongType(address, f"expects {count} number(s), got {len(args)} argument(s)")
    out = []
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, (int, float)) or not math.isfinite(arg):
            raise WrongType(address, f"expects numbers, got {arg!r}")
        if abs(arg) > MAX_VALUE:
            raise WrongType(address, f"expects numbers within ±{MAX_VALUE:g} (frame-normalised), got {arg!r}")
        out.append(float(arg))
    return out


# ------------------------------------------------------------------------------------------------------
# Body and face keypoints over OSC
# ------------------------------------------------------------------------------------------------------
BODY_FACE_PATTERNS = ("/vrb/in/p[0-9]*", "/vrb/in/p[0-9]*/*", "/vrb/in/p[0-9]*/*/*", "/p[0-9]*:*",
                      "/vrb/in/f[0-9]*", "/vrb/in/f[0-9]*/*", "/vrb/in/f[0-9]*/*/*", "/f[0-9]*:*")
_BODY_FACE_ADDRESS = re.compile(r"^(?:/vrb/in/|/)([pf])(\d+)(?:[/:](.*))?$")
_POSE_AXES = {"x": 0, "y": 1, "z": 2, "visibility": 3}


class _PointSlot:
    """One person's (or face's) points as they arrive, coordinate by coordinate."""

    def __init__(self, points: int, dims: int) -> None:
        self.points = np.full((points, dims), np.nan, dtype=np.float32)
        if dims == 4:
            self.points[:, 3] = 1.0  # visibility is optional
        self.points[:, 2] = 0.0  # z is optional
        self.blend: dict[str, float] = {}
        self.present = True
        self.updated = -math.inf

    def visible(self, now: float, stale_s: float, needed: np.ndarray) -> bool:
        xy = self.points[needed, :2]
        return (self.present and now - self.updated <= stale_s and bool(np.isfinite(xy).all())
                and bool(np.any(xy != 0.0)))


class OscBodyFaceInput:
    """Pose and face keypoints from the rig (TouchDesigner's MediaPipe component or any OSC sender).

    Accepted messages (N = person / face slot 1..4, A = x | y | z, plus ``visibility`` for pose):

      /vrb/in/pN/LM/A f     /vrb/in/pN/LM f f [f [f]]   /pN:LM:A f   /vrb/in/pN/present i     (LM: pose names)
      /vrb/in/fN/PT/A f     /vrb/in/fN/PT f f [f]       /fN:PT:A f   /vrb/in/fN/present i
      /vrb/in/fN/blend/NAME f   /fN:blend:NAME f        (MediaPipe blendshape scores, e.g. jawOpen)

    Pose landmark names are MediaPipe's 33 (``nose``, ``left_wrist``, ...); face points are the names of
    :data:`bridge.tracking.face.FACE_POINTS` or mesh indices 0..477 (the face signals need only the named
    points). Coordinates are MediaPipe's (0..1, y down; ``hand.osc_y_up`` flips y for senders with y up, as for
    hands). A slot counts while it has its points, is not all zeros, was not hidden with ``present 0`` and was
    updated within :attr:`stale_s`. The same :class:`~bridge.tracking.body.BodyStage` and
    :class:`~bridge.tracking.face.FaceStage` as in-process tracking turn them into ``body.*`` and ``face.*``,
    at most :attr:`rate_hz` times a second, on this input's own thread.
    """

    kind = "osc-body-face"
    stale_s = 0.5
    rate_hz = 60.0

    def __init__(self, params=None, bus=None, pose: bool = True, face: bool = True, clock=time.monotonic) -> None:
        from bridge.params import DEFAULTS
        from bridge.tracking.body import POSE_LANDMARK_NAMES, BodyStage
        from bridge.tracking.face import FACE_MESH_POINTS, FACE_POINTS, FaceStage

        self._params = params or (lambda: DEFAULTS)
        self._clock = clock
        self._pose_names = {n: i for i, n in enumerate(POSE_LANDMARK_NAMES)}
        self._face_names = dict(FACE_POINTS)
        self._face_needed = np.array(sorted(set(FACE_POINTS.values())))
        self._pose_needed = np.arange(len(POSE_LANDMARK_NAMES))
        self._slots = {"p": [_PointSlot(len(POSE_LANDMARK_NAMES), 4) for _ in range(MAX_SLOTS)],
                       "f": [_PointSlot(FACE_MESH_POINTS, 3) for _ in range(MAX_SLOTS)]}
        self.body = BodyStage(self._params, bus, source="pose") if pose else None
        self.face = FaceStage(self._params, bus, source="face") if face else None
        self._state = threading.Lock()
        self._dirty = {"p": False, "f": False}
        self._shown: dict[str, tuple[int, ...]] = {"p": (), "f": ()}
        self._aspect = 1.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.messages = 0
        self.errors = 0
        self.last_error = ""
        self.status = "idle"

    # -- service ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self.status = "running"
        self._thread = threading.Thread(target=self._run, name="osc-body-face", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.status = "closed"

    def submit(self, frame) -> None:
        """Camera frames only tell the picture's aspect ratio (the rig films the same scene)."""
        shape = getattr(frame.rgb, "shape", ())
        if len(shape) >= 2 and shape[0] > 0:
            self._aspect = shape[1] / shape[0]

    def stats(self) -> dict[str, Any]:
        return {"status": self.status, "messages": self.messages, "errors": self.errors,
                "last_error": self.last_error, "people": len(self._shown["p"]), "faces": len(self._shown["f"])}

    def describe(self) -> str:
        return "osc body/face (/vrb/in/pN/..., pN:landmark:axis, /vrb/in/fN/..., fN:point:axis)"

    def calibrate(self, seconds: float) -> None:
        if self.face is not None:
            self.face.features.calibrate(seconds)

    def telemetry(self) -> dict:
        out: dict[str, Any] = {}
        for stage in (self.body, self.face):
            if stage is not None:
                out.update(stage.telemetry())
        return out

    # -- OSC in (server thread) ------------------------------------------------------------------------
    def handle(self, address: str, args: tuple, sender=None) -> None:
        """One OSC message; raises a ParamError (answered by the server) for anything it cannot use."""
        match = _BODY_FACE_ADDRESS.match(address)
        if not match:
            raise UnknownParam(address, "not a pose or face keypoint address (/vrb/in/pN/..., /vrb/in/fN/...)")
        kind, slot_no, rest = match.group(1), int(match.group(2)), match.group(3) or ""
        if (kind == "p" and self.body is None) or (kind == "f" and self.face is None):
            raise UnknownParam(address, f"{'pose' if kind == 'p' else 'face'} input is not enabled (--track)")
        if not 1 <= slot_no <= MAX_SLOTS:
            raise UnknownParam(address, f"slot {kind}{slot_no} is not one of {kind}1..{kind}{MAX_SLOTS}")
        parts = re.split(r"[/:]", rest) if rest else []
        with self._state:
            slot = self._slots[kind][slot_no - 1]
            self._apply(kind, slot, address, parts, args)
            slot.updated = self._clock()
            self._dirty[kind] = True
            self.messages += 1

    def _apply(self, kind: str, slot: _PointSlot, address: str, parts: list[str], args: tuple) -> None:
        if parts == ["present"]:
            slot.present = bool(_number(address, args, 1)[0])
            return
        if kind == "f" and len(parts) == 2 and parts[0] == "blend":
            if not re.fullmatch(r"[A-Za-z_]{1,40}", parts[1]):
                raise UnknownParam(address, f"blendshape name {parts[1]!r} is not a MediaPipe category name")
            if len(slot.blend) >= 64 and parts[1] not in slot.blend:
                raise UnknownParam(address, "more than 64 blendshape names")
            slot.blend[parts[1]] = min(1.0, max(0.0, _number(address, args, 1)[0]))
            return
        axes = _POSE_AXES if kind == "p" else _AXES
        index = self._point_index(kind, parts[0]) if parts else None
        if index is None:
            what = "a pose landmark name" if kind == "p" else "a face point name or mesh index 0..477"
            raise UnknownParam(address, f"expects {kind}N/<{what}>/<{'|'.join(axes)}> or {kind}N/present")
        if len(parts) == 1:
            values = _number(address, args, len(args) if 2 <= len(args) <= slot.points.shape[1] else 2)
            slot.points[index, :len(values)] = values
        elif len(parts) == 2 and parts[1] in axes and axes[parts[1]] < slot.points.shape[1]:
            slot.points[index, axes[parts[1]]] = _number(address, args, 1)[0]
        else:
            raise UnknownParam(address, f"axis must be one of {', '.join(axes)}")
        slot.present = True

    def _point_index(self, kind: str, name: str) -> int | None:
        if kind == "p":
            return self._pose_names.get(name)
        if name.isdigit() and int(name) < self._slots["f"][0].points.shape[0]:
            return int(name)
        return self._face_names.get(name)

    # -- publishing (own thread; tests call step) ----------------------------------------------------------
    def step(self) -> None:
        """Publish body and face signals if messages arrived or a slot went stale since the last step."""
        now = self._clock()
        y_up = bool(self._params().get("hand.osc_y_up", False))
        for kind, stage in (("p", self.body), ("f", self.face)):
            if stage is None:
                continue
            needed = self._pose_needed if kind == "p" else self._face_needed
            with self._state:
                shown = tuple(i for i, s in enumerate(self._slots[kind]) if s.visible(now, self.stale_s, needed))
                if not self._dirty[kind] and shown == self._shown[kind]:
                    continue
                self._dirty[kind] = False
                self._shown[kind] = shown
                points = [self._slots[kind][i].points.copy() for i in shown]
                blends = [dict(self._slots[kind][i].blend) or None for i in shown]
            if y_up:
                for p in points:
                    p[:, 1] = 1.0 - p[:, 1]
            if kind == "p":
                stage.take(points, now, self._aspect)
            else:
                stage.take(points, blends, now, self._aspect)

    def _run(self) -> None:
        while not self._stop.wait(1.0 / self.rate_hz):
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - a bad packet's aftermath must not end the input
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
