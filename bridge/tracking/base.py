"""What every hand tracker shares: hands in, the active-hand lock, the newest :class:`Keypoints` out.

A tracker (MediaPipe on its own thread, or keypoints arriving over OSC) turns its input into ``Hand`` tuples and
calls :meth:`HandTracker.publish`; that drops unsure hands, runs the lock and stores one immutable Keypoints.
``latest()`` just returns that reference, so the render loop never waits for tracking.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Mapping, Sequence

from bridge.frames import Hand, Keypoints
from bridge.params import DEFAULTS

from bridge.tracking.lock import HandLock

log = logging.getLogger(__name__)

ParamsFn = Callable[[], Mapping[str, Any]]


def default_params() -> Mapping[str, Any]:
    """The table's defaults: what a tracker uses when it has no live parameter store (tests, benchmarks)."""
    return DEFAULTS


class HandTracker:
    """Base of the trackers: ``start()``, ``submit(frame)``, ``latest()``, ``close()``, ``stats()``."""

    kind = "hands"

    def __init__(self, params: ParamsFn | None = None) -> None:
        self._params = params or default_params
        self.lock = HandLock()
        self._latest: Keypoints | None = None
        self._publish_lock = threading.Lock()
        self.published = 0
        self.errors = 0
        self.last_error = ""
        self.status = "idle"

    # -- the service interface the engine uses ---------------------------------------------------
    def start(self) -> None:
        self.status = "running"

    def submit(self, frame) -> None:
        """Offer a camera frame (never blocks). Trackers that do not look at frames ignore it."""

    def latest(self) -> Keypoints | None:
        """The newest keypoints (the same object until something new is published), or None before any."""
        return self._latest

    def close(self) -> None:
        self.status = "closed"

    def stats(self) -> dict[str, Any]:
        kp = self._latest
        return {"status": self.status, "published": self.published, "errors": self.errors,
                "last_error": self.last_error, "hands": 0 if kp is None else len(kp.hands),
                "active": -1 if kp is None or kp.active is None else kp.active, "lock_switches": self.lock.switches}

    def describe(self) -> str:
        return self.kind

    # -- for subclasses --------------------------------------------------------------------------
    def publish(self, hands: Sequence[Hand], t_capture: float, frame_index: int, aspect: float,
                source: str) -> Keypoints:
        """Filter by ``hand.min_score``, choose the active hand, and make the result the latest keypoints."""
        params = self._params()
        min_score = float(params.get("hand.min_score", 0.0))
        kept = tuple(h for h in hands if h.score >= min_score)
        with self._publish_lock:
            active = self.lock.choose(kept, t_capture, params, aspect)
            keypoints = Keypoints(hands=kept, active=active, t_capture=t_capture, frame_index=frame_index,
                                  source=source, aspect=aspect)
            self._latest = keypoints
            self.published += 1
        return keypoints

    def record_error(self, what: str, exc: BaseException) -> None:
        """Count and log (the first few, then every 100th) a failure that the tracker survives."""
        self.errors += 1
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"
        if self.errors <= 3 or self.errors % 100 == 0:
            log.warning("%s %s failed (%d so far): %s", self.describe(), what, self.errors, exc)
