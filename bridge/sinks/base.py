"""What every sink is: something that publishes the newest rendered frame without ever slowing the render loop.

A sink gets frames through :meth:`Sink.publish`, which only drops the frame into a :class:`~bridge.frames.Latest`
box and returns. Its own thread sends whatever is newest; when the receiver is slow, older frames are
skipped (counted in ``stats()['dropped']``). An exception while sending is counted and logged, the sink
waits ``retry_s`` and tries again: a receiver that quits never takes the show down.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from bridge.frames import Latest, RenderedFrame

log = logging.getLogger(__name__)


class SinkUnavailable(RuntimeError):
    """A sink cannot run here (missing package or platform). The message is the one line the user sees."""


class Sink:
    """Base class: subclasses implement ``_open``, ``_send`` and ``_close``; they run on the sink's thread."""

    kind = "sink"
    retry_s = 1.0

    def __init__(self, name: str = "") -> None:
        self.name = name or self.kind
        self._box: Latest[RenderedFrame] = Latest()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.sent = 0
        self.errors = 0
        self.last_error = ""
        self.last_send_ms = 0.0

    # -- called from the engine -----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.kind}-{self.name}", daemon=True)
        self._thread.start()

    def publish(self, frame: RenderedFrame) -> None:
        """Hand over a frame; never blocks."""
        self._box.put(frame)

    def close(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self._box.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        return {"sent": self.sent, "dropped": self._box.dropped, "errors": self.errors,
                "last_error": self.last_error, "send_ms": round(self.last_send_ms, 3)}

    def describe(self) -> str:
        """One line for the start-up report."""
        return f"{self.kind}:{self.name}"

    # -- the sink's own thread ------------------------------------------------------------------
    def _run(self) -> None:
        opened = False
        seq = 0
        while not self._stop.is_set():
            if not opened:
                try:
                    self._open()
                    opened = True
                except Exception as exc:  # noqa: BLE001 - reported, retried
                    self._record_error("open", exc)
                    self._stop.wait(self.retry_s)
                    continue
            seq, frame = self._box.get(seq, timeout=0.25)
            if frame is None:
                continue
            t0 = time.perf_counter()
            try:
                self._send(frame)
                self.sent += 1
            except Exception as exc:  # noqa: BLE001 - a failing receiver never stops the show
                self._record_error("send", exc)
                opened = not self._reopen_after_error()
                if not opened:
                    self._safe_close()
            self.last_send_ms = (time.perf_counter() - t0) * 1000.0
        if opened:
            self._safe_close()

    def _record_error(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{what}: {exc}"
        if self.errors <= 3 or self.errors % 100 == 0:
            log.warning("sink %s %s failed (%d so far): %s", self.describe(), what, self.errors, exc)

    def _safe_close(self) -> None:
        try:
            self._close()
        except Exception as exc:  # noqa: BLE001
            self._record_error("close", exc)

    def _reopen_after_error(self) -> bool:
        """Whether a send error means the sink must be reopened (default: yes)."""
        return True

    # -- to implement ---------------------------------------------------------------------------
    def _open(self) -> None:
        pass

    def _send(self, frame: RenderedFrame) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass
