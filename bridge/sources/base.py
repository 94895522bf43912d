"""What every source is: something that yields the newest :class:`~bridge.frames.Frame`.

The engine runs each source on a capture thread that calls :meth:`Source.read` in a loop and puts
what it gets into a Latest box. ``read`` returns None when no new frame came in time (the engine then
keeps the last frame); it raises only for a fault the source cannot recover from by itself. Sources
that can vanish (a camera unplugged, a file deleted, a rig sender gone) reconnect inside ``read``
with backoff and say so in ``status``.
"""
from __future__ import annotations

import time
from typing import Any

from bridge.frames import Frame


class SourceUnavailable(RuntimeError):
    """A source cannot run here (missing package or platform, bad spec). The message is the one line shown."""


class FramePacer:
    """Keeps a self-paced source (pattern, video file, slideshow) at ``fps`` the way a camera would.

    ``wait`` sleeps until the next frame is due, but never longer than the caller's timeout; ``mark`` books
    the frame just taken. After a stall the schedule restarts from now instead of bursting to catch up: the
    engine wants the newest frame, not a backlog.
    """

    def __init__(self, fps: float) -> None:
        self.fps = float(fps)
        self._next = time.monotonic()

    def restart(self) -> None:
        self._next = time.monotonic()

    def wait(self, timeout: float) -> bool:
        """True once the next frame is due; False if it is more than ``timeout`` away (after sleeping that)."""
        wait = self._next - time.monotonic()
        if wait > timeout:
            time.sleep(timeout)
            return False
        if wait > 0:
            time.sleep(wait)
        return True

    def mark(self) -> float:
        """Book a frame taken now and return its time."""
        now = time.monotonic()
        self._next = max(self._next + 1.0 / self.fps, now - 1.0 / self.fps)
        return now


class Source:
    kind = "source"

    def __init__(self, name: str = "") -> None:
        self.name = name or self.kind
        self.status = "starting"
        self.frames = 0
        self.reconnects = 0

    def open(self) -> None:
        """Acquire the device/file; may raise SourceUnavailable."""

    def read(self, timeout: float = 0.1) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {"status": self.status, "frames": self.frames, "reconnects": self.reconnects}

    def describe(self) -> str:
        return f"{self.kind}:{self.name}"
