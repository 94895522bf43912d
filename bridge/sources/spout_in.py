"""Frames from the VJ rig over Spout (``--source spout:NAME``, Windows): e.g. TouchDesigner's Syphon Spout Out TOP.

SpoutGL 0.1.1 receiver, on the engine's capture thread: ``createOpenGL()`` there once (Spout's hidden
context), ``setReceiverName(NAME)``, then ``receiveImage(buffer, GL_RGB, False, 0)``. The first call after a
connect (or a size change) only reports the new size (``isUpdated()``): the buffer is (re)allocated and the
next call fills it. ``waitFrameSync(NAME, ms)`` waits for the sender's next frame, so ``read`` does not spin.
A sender that goes away is held and retried with back-off (:class:`bridge.sources.base.RigSource`).
Note the 0.1.1 binding bug: ``getSenderName()`` returns the width, so it is never used here.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

from bridge.registry import install_hint
from bridge.sinks.spout import check_name
from bridge.sources.base import RigSource, SourceUnavailable


class SpoutSource(RigSource):
    kind = "spout"

    def __init__(self, name: str, lib) -> None:
        super().__init__(name)
        self.lib = lib
        self._receiver = None
        self._gl_thread = 0
        self._buffer: np.ndarray | None = None

    def open(self) -> None:
        """Connect lazily, from the first ``read``: the GL context must live on the capture thread."""
        self.status = "connecting"

    def _connect(self) -> str:
        if self._receiver is None:
            receiver = self.lib.SpoutReceiver()
            if not receiver.createOpenGL():
                raise ConnectionError("Spout could not create its hidden OpenGL context")
            receiver.setReceiverName(self.name)
            self._receiver, self._gl_thread = receiver, threading.get_ident()
        if not self._receiver.receiveImage(None, self.lib.enums.GL_RGB, False, 0):
            raise ConnectionError(f"no Spout sender named {self.name!r} "
                                  f"(senders: {', '.join(self._receiver.getSenderList()) or 'none'})")
        self._allocate()
        return self.name

    def _allocate(self) -> None:
        width, height = self._receiver.getSenderWidth(), self._receiver.getSenderHeight()
        self._buffer = np.zeros((height, width, 3), np.uint8)

    def _grab(self, timeout: float) -> np.ndarray | None:
        receiver = self._receiver
        receiver.waitFrameSync(self.name, max(0, int(timeout * 1000)))
        if not receiver.receiveImage(self._buffer, self.lib.enums.GL_RGB, False, 0):
            raise ConnectionError("the Spout sender is gone")
        if receiver.isUpdated():  # new size: reallocate, the pixels come with the next call
            self._allocate()
            return None
        if not receiver.isFrameNew():
            return None
        return self._buffer.copy()

    def _sender_gone(self) -> bool:
        return self._receiver is None or not self._receiver.isConnected()

    def _disconnect(self) -> None:
        """Release the connection; keep the receiver and its GL context for the next try (same thread)."""
        if self._receiver is not None:
            self._receiver.releaseReceiver()

    def close(self) -> None:
        super().close()
        receiver, self._receiver = self._receiver, None
        if receiver is not None and self._gl_thread == threading.get_ident():
            receiver.closeOpenGL()  # only the thread it is current on may close it; else it dies with that thread

    def describe(self) -> str:
        return f"spout:{self.name}"


def make(arg: str = "", **_options) -> SpoutSource:
    if not arg.strip():
        raise SourceUnavailable("spout: name the Spout sender to receive, e.g. --source spout:TDSyphonSpoutOut")
    try:
        import SpoutGL
    except ImportError as exc:
        where = "" if sys.platform == "win32" else "Windows and "
        raise SourceUnavailable(f"Spout in needs {where}{install_hint('spout')}") from exc
    try:
        name = check_name("spout", arg)
    except ValueError as exc:
        raise SourceUnavailable(str(exc)) from exc
    return SpoutSource(name, SpoutGL)
