"""What every source is: something that yields the newest :class:`~bridge.frames.Frame`.

The engine runs each source on a capture thread that calls :meth:`Source.read` in a loop and puts
what it gets into a Latest box. ``read`` returns None when no new frame came in time (the engine then
keeps the last frame); it raises only for a fault the source cannot recover from by itself. Sources
that can vanish (a camera unplugged, a file deleted, a rig sender gone) reconnect inside ``read``
with backoff and say so in ``status``.
"""
from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from bridge.frames import Frame

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)
STALE_S = 3.0  # a rig input with no frame for this long whose sender reports no connection is treated as gone


MAX_SOURCE_SIDE = 1920  # pixels: the encoder reads ~224-518 px and previews/recordings are at most full HD;
#                        a bigger input (an 8000x8000 photo) is shrunk once where it enters, not on every frame


class SourceUnavailable(RuntimeError):
    """A source cannot run here (missing package or platform, bad spec). The message is the one line shown."""


class FramePacer:
    """A self-paced source's (pattern, slideshow) camera clock: frames are captured at ``fps`` on a fixed clock,
    whether anyone reads them or not, and a read gets the newest one, as from a camera with a one-frame buffer.

    ``wait`` sleeps until a frame newer than the last one read exists (never longer than the caller's
    timeout); ``mark`` takes it and returns its capture time. A reader slower than the camera therefore gets
    frames up to one period old (what it missed is gone), and one faster than the camera waits for each: so a
    latency measured from the capture time means the same as with a real camera, for the engine's capture
    thread and for a loop that reads only when it is ready alike.
    """

    def __init__(self, fps: float) -> None:
        self.fps = float(fps)
        self.restart()

    def restart(self) -> None:
        self._t0 = time.monotonic()
        self._last = -1  # the number of the last frame read on the clock

    def _newest(self, now: float) -> int:
        return math.floor((now - self._t0) * self.fps)

    def wait(self, timeout: float) -> bool:
        """True once a frame newer than the last one read exists; False if it is more than ``timeout`` away
        (after sleeping that)."""
        now = time.monotonic()
        if self._newest(now) > self._last:
            return True
        wait = self._t0 + (self._last + 1) / self.fps - now
        if wait > timeout:
            time.sleep(timeout)
            return False
        time.sleep(max(0.0, wait))
        return True

    def mark(self) -> float:
        """Take the newest frame captured by now and return its capture time."""
        self._last = max(self._newest(time.monotonic()), self._last + 1)
        return self._t0 + self._last / self.fps


class Backoff:
    """When a source that vanished is tried again: after 0.5 s, doubling up to 5 s; from 0.5 s after a success.

    One schedule for every source that reconnects (camera, video file, rig inputs), so they all behave alike.
    """

    START_S = 0.5
    MAX_S = 5.0

    def __init__(self) -> None:
        self.delay = self.START_S
        self.retry_at = 0.0

    def failed(self) -> None:
        self.retry_at = time.monotonic() + self.delay
        self.delay = min(self.delay * 2, self.MAX_S)

    def succeeded(self) -> None:
        self.delay = self.START_S

    def wait(self, timeout: float) -> bool:
        """True when the next try is due; otherwise sleep towards it (at most ``timeout``) and return False."""
        remaining = self.retry_at - time.monotonic()
        if remaining > 0:
            time.sleep(min(timeout, remaining))
            return False
        return True


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


class RigSource(Source):
    """Connect, read, and on any loss hold (return None) and reconnect with back-off.

    Subclasses implement ``_connect() -> str`` (raise to say why it failed; return a description of what it
    connected to), ``_grab(timeout) -> (H, W, 3) uint8 RGB | None``, ``_sender_gone() -> bool`` and
    ``_disconnect()``. All of them run on the engine's capture thread.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._connected = False
        self._ever_connected = False
        self._backoff = Backoff()
        self._index = 0
        self._last_frame_at = 0.0
        self.connected_to = ""
        self.last_error = ""

    def open(self) -> None:
        """Try once; a sender that is not there yet is reported and retried from ``read``."""
        self.status = "connecting"
        if not self._try_connect():
            log.warning("%s: %s; the output keeps running, retrying every %.1f-%.0f s", self.describe(),
                        self.last_error, Backoff.START_S, Backoff.MAX_S)

    def read(self, timeout: float = 0.1) -> Frame | None:
        if not self._connected:
            if not self._backoff.wait(timeout):
                return None
            if not self._try_connect():
                return None
        try:
            rgb = self._grab(timeout)
        except Exception as exc:  # noqa: BLE001 - the sender went away mid-frame: hold and reconnect
            self._drop(f"receive failed: {exc}")
            return None
        now = time.monotonic()
        if rgb is None:
            if now - self._last_frame_at > STALE_S and self._sender_gone():
                self._drop("the sender stopped (no frames, no connection)")
            return None
        self._last_frame_at = now
        frame = Frame(rgb=rgb, index=self._index, t_capture=now, source=self.describe())
        self._index += 1
        self.frames += 1
        return frame

    def close(self) -> None:
        if self._connected:
            self._safe_disconnect()
        self._connected = False
        self.status = "closed"

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "connected_to": self.connected_to, "last_error": self.last_error}

    # -- the loop -----------------------------------------------------------------------------------
    def _try_connect(self) -> bool:
        try:
            self.connected_to = self._connect()
        except Exception as exc:  # noqa: BLE001 - reported in status, retried
            self._schedule_retry(str(exc) or type(exc).__name__)
            return False
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self._connected = True
        self._backoff.succeeded()
        self._last_frame_at = time.monotonic()
        self.status = "running"
        self.last_error = ""
        log.info("%s: connected to %s", self.describe(), self.connected_to)
        return True

    def _drop(self, why: str) -> None:
        log.warning("%s: %s; holding the last frame and reconnecting", self.describe(), why)
        self._safe_disconnect()
        self._connected = False
        self._schedule_retry(why)

    def _safe_disconnect(self) -> None:
        try:
            self._disconnect()
        except Exception as exc:  # noqa: BLE001
            log.debug("%s: disconnect failed: %s", self.describe(), exc)

    def _schedule_retry(self, why: str) -> None:
        self.last_error = why
        self.status = f"reconnecting: {why}"
        self._backoff.failed()

    # -- to implement -----------------------------------------------------------------------------
    def _connect(self) -> str:
        raise NotImplementedError

    def _grab(self, timeout: float) -> np.ndarray | None:
        raise NotImplementedError

    def _sender_gone(self) -> bool:
        return True

    def _disconnect(self) -> None:
        pass
