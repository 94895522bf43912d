"""Spout out (``--sink spout:NAME``, Windows): frames as a shared GPU texture TouchDesigner/Resolume pick up.

Uses SpoutGL (PyPI ``SpoutGL`` 0.1.1, BSD-3), the pybind11 wrapper of the Spout 2.007 SDK. A headless
process has no OpenGL context, so the sink asks Spout for its own hidden one: ``createOpenGL()`` once, on the
sink's thread (a GL context is current on one thread only), then every ``sendImage`` from that same thread,
and ``releaseSender()`` + ``closeOpenGL()`` there at the end. Each frame: RGBA (with ``alpha.mode``) through
``sendImage(pixels, width, height, GL_RGBA, False, 0)``, then ``setFrameSync(name)`` so receivers that wait
for frames (``waitFrameSync``) wake up.

Names: NAME defaults to the app name ``vrbridge``. Spout appends ``_1``, ``_2`` ... to a name another sender
already uses; the sink finds the free name first (``getSenderInfo`` on each candidate), confirms it after the
first frame, and reports it (``actual_name``, ``describe()``, ``stats()``).

GPU interop is NOT implemented: on a CUDA machine the frame still comes to host memory (see
``bridge.sinks.convert.as_host_rgb``); Spout's ``sendTexture`` with a CUDA-OpenGL-shared texture would avoid
that copy, but cannot be built or measured here.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

from bridge.frames import RenderedFrame
from bridge.registry import install_hint
from bridge.sinks.base import Sink, SinkUnavailable
from bridge.sinks.convert import FrameConverter

log = logging.getLogger(__name__)

APP_NAME = "vrbridge"
MAX_NAME_LEN = 255  # Spout's SpoutMaxSenderNameLen is 256 bytes including the terminator
MAX_SUFFIX = 99


def load_spoutgl():
    """The SpoutGL module, or SinkUnavailable with the one line the user sees."""
    try:
        import SpoutGL
    except ImportError as exc:
        where = "" if sys.platform == "win32" else "Windows and "
        raise SinkUnavailable(f"Spout needs {where}{install_hint('spout')}") from exc
    return SpoutGL


def check_name(kind: str, name: str) -> str:
    """A sender name: printable ASCII (Spout names are ANSI C strings), at most 255 characters."""
    name = name.strip() or APP_NAME
    if len(name) > MAX_NAME_LEN or not (name.isascii() and name.isprintable()):
        raise ValueError(f"{kind}: sender name {name!r} must be printable ASCII, at most {MAX_NAME_LEN} characters")
    return name


class SpoutSink(Sink):
    kind = "spout"

    def __init__(self, name: str, lib, params: Any = None) -> None:
        super().__init__(name)
        self.lib = lib
        self.converter = FrameConverter("rgba", params)
        self.actual_name = ""
        self._sender = None
        self._confirmed = False

    # -- sink thread ------------------------------------------------------------------------------
    def _open(self) -> None:
        sender = self.lib.SpoutSender()
        if not sender.createOpenGL():  # Spout's own hidden window + context, current on this thread
            raise RuntimeError("Spout could not create its hidden OpenGL context (no GPU driver?)")
        self._sender = sender
        self.actual_name = self._free_name(sender)
        self._confirmed = False
        if self.actual_name != self.name:
            log.warning("Spout name %r is taken: publishing as %r", self.name, self.actual_name)
        sender.setSenderName(self.name)

    def _free_name(self, sender) -> str:
        """The name Spout will give us: NAME, else NAME_1, NAME_2 ... (what Spout appends to a taken name)."""
        for n in range(MAX_SUFFIX + 1):
            candidate = self.name if n == 0 else f"{self.name}_{n}"
            if not _exists(sender.getSenderInfo(candidate)):
                return candidate
        raise RuntimeError(f"Spout names {self.name!r} .. {self.name}_{MAX_SUFFIX} are all taken")

    def _send(self, frame: RenderedFrame) -> None:
        pixels = self.converter.convert(frame.rgb)
        height, width = pixels.shape[:2]
        if not self._sender.sendImage(pixels, width, height, self.lib.enums.GL_RGBA, False, 0):
            raise RuntimeError("Spout sendImage failed")
        if not self._confirmed:
            self._confirm_name(width, height)
        self._sender.setFrameSync(self.actual_name)

    def _confirm_name(self, width: int, height: int) -> None:
        info = self._sender.getSenderInfo(self.actual_name)
        if not _exists(info) or (info.width, info.height) != (width, height):
            log.warning("Spout: could not confirm the sender name %r (another sender took it meanwhile?)",
                        self.actual_name)
        self._confirmed = True
        log.info("Spout sender %r up (%dx%d RGBA)", self.actual_name, width, height)

    def _close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.releaseSender()
            sender.closeOpenGL()

    # -- reporting ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["actual_name"] = self.actual_name
        if self.converter.warning:
            out["alpha_warning"] = self.converter.warning
        return out

    def describe(self) -> str:
        return f"spout:{self.actual_name or self.name}"


def _exists(info) -> bool:
    """getSenderInfo's answer names a live sender (0.1.1 returns no info, or a zero size, for unknown names)."""
    return info is not None and bool(getattr(info, "width", 0))


def make(arg: str = "", params: Any = None, **_options) -> SpoutSink:
    lib = load_spoutgl()
    return SpoutSink(check_name("spout", arg), lib, params)
