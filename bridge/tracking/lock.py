"""The active-hand lock: one hand steers, and it does not change hands behind the performer's back.

Why: in the paper's user tests two tracked hands made the controlling hand jump unpredictably; one stable
active hand fixed it. MediaPipe gives no track ids and lists hands in no stable order, so identity is kept
here by position: the locked hand is the one nearest to where it was last seen, within ``hand.lock.radius``
(frame heights, counting a handedness mismatch as half a radius further away).

Rules:
- No lock: pick a hand by ``hand.lock.mode``: ``first`` (the first hand to appear; if several appear at once,
  the most confident), ``handedness`` (the ``hand.lock.prefer`` hand if visible, else the most confident),
  ``nearest`` (nearest to where the last active hand was, or to the frame centre).
- Locked: keep following the matching hand; another hand in view never takes over while it is matched.
- Lost: the lock holds, with no active hand, for ``hand.lock.timeout_s``; if the hand comes back near where
  it vanished it is the same hand. After the timeout the lock is released and the rules above pick again.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from bridge.frames import Hand
from bridge.tracking.features import PALM


def palm_centre(hand: Hand, aspect: float) -> tuple[float, float]:
    """Palm centroid in frame-height units (x scaled by the aspect ratio), for distances between hands."""
    x, y = np.asarray(hand.landmarks, dtype=np.float64)[PALM, :2].mean(axis=0)
    return float(x) * aspect, float(y)


class HandLock:
    """Chooses the active hand among each frame's hands. Not thread-safe: one tracker thread calls it."""

    def __init__(self) -> None:
        self.locked = False
        self.handedness = ""
        self.position: tuple[float, float] | None = None  # last seen, frame-height units
        self.last_seen = -math.inf
        self.switches = 0  # times the lock went to a new hand (telemetry: should be rare)

    def choose(self, hands: Sequence[Hand], t: float, params: Mapping[str, Any], aspect: float = 1.0) -> int | None:
        """Index of the active hand in ``hands`` (None: no active hand this frame)."""
        centres = [palm_centre(h, aspect) for h in hands]
        if self.locked:
            index = self._match(hands, centres, float(params.get("hand.lock.radius", 0.25)))
            if index is not None:
                return self._keep(hands, centres, index, t)
            if t - self.last_seen <= float(params.get("hand.lock.timeout_s", 0.6)):
                return None
            self.locked = False
        if not hands:
            return None
        index = self._pick(hands, centres, params, aspect)
        self.switches += 1
        self.locked = True
        return self._keep(hands, centres, index, t)

    def release(self) -> None:
        """Forget the locked hand (the next frame picks afresh)."""
        self.locked = False

    def _keep(self, hands: Sequence[Hand], centres: list, index: int, t: float) -> int:
        self.position = centres[index]
        self.handedness = hands[index].handedness
        self.last_seen = t
        return index

    def _match(self, hands: Sequence[Hand], centres: list, radius: float) -> int | None:
        best, best_cost = None, radius
        for i, (hand, centre) in enumerate(zip(hands, centres)):
            cost = math.dist(centre, self.position)
            if self.handedness and hand.handedness != self.handedness:
                cost += 0.5 * radius
            if cost < best_cost:
                best, best_cost = i, cost
        return best

    def _pick(self, hands: Sequence[Hand], centres: list, params: Mapping[str, Any], aspect: float) -> int:
        mode = params.get("hand.lock.mode", "first")
        by_score = max(range(len(hands)), key=lambda i: hands[i].score)
        if mode == "handedness":
            prefer = params.get("hand.lock.prefer", "right")
            preferred = [i for i, h in enumerate(hands) if h.handedness == prefer]
            return max(preferred, key=lambda i: hands[i].score) if preferred else by_score
        if mode == "nearest":
            target = self.position if self.position is not None else (0.5 * aspect, 0.5)
            return min(range(len(hands)), key=lambda i: math.dist(centres[i], target))
        return by_score


class PersonLock:
    """The active-performer lock for bodies and faces: one person steers, and it does not flip between two.

    MediaPipe gives no track ids, so identity is kept by position: each frame the locked person is the one
    nearest to where they were last seen, if within ``radius`` (frame heights). While matched, nobody else can
    take over, however large, central or confident. Lost: the lock holds, with nobody active, for ``hold_s``;
    someone reappearing near where the performer vanished is the performer. After that a new one is picked by
    ``mode``: ``first`` (the most confident of those in view, i.e. the first seen when people arrive one by
    one), ``largest`` (biggest in frame: usually the nearest to the camera), ``nearest`` (nearest to where the
    last performer was, else to the centre), ``central`` (nearest to the frame centre).

    Positions and sizes are passed in frame-height units (x scaled by the aspect ratio). Not thread-safe: one
    tracker thread calls it.
    """

    MODES = ("first", "largest", "nearest", "central")

    def __init__(self) -> None:
        self.locked = False
        self.position: tuple[float, float] | None = None
        self.last_seen = -math.inf
        self.switches = 0

    def choose(self, centres: Sequence[tuple[float, float]], sizes: Sequence[float], scores: Sequence[float],
               t: float, mode: str = "first", hold_s: float = 1.0, radius: float = 0.3,
               frame_centre: tuple[float, float] = (0.5, 0.5)) -> int | None:
        """Index of the active person among this frame's (None: nobody active this frame)."""
        if self.locked:
            if centres:
                nearest = min(range(len(centres)), key=lambda i: math.dist(centres[i], self.position))
                if math.dist(centres[nearest], self.position) <= radius:
                    return self._keep(centres, nearest, t)
            if t - self.last_seen <= hold_s:
                return None
            self.locked = False
        if not centres:
            return None
        index = self._pick(centres, sizes, scores, mode, frame_centre)
        self.switches += 1
        self.locked = True
        return self._keep(centres, index, t)

    def release(self) -> None:
        """Forget the performer (the next frame picks afresh)."""
        self.locked = False

    def _keep(self, centres, index: int, t: float) -> int:
        self.position = tuple(centres[index])
        self.last_seen = t
        return index

    def _pick(self, centres, sizes, scores, mode: str, frame_centre) -> int:
        people = range(len(centres))
        if mode == "largest":
            return max(people, key=lambda i: sizes[i])
        if mode == "nearest" and self.position is not None:
            return min(people, key=lambda i: math.dist(centres[i], self.position))
        if mode in ("nearest", "central"):
            return min(people, key=lambda i: math.dist(centres[i], frame_centre))
        return max(people, key=lambda i: scores[i])
