"""Syphon out (``--sink syphon:NAME``, macOS 12+): frames as a Metal texture any Syphon client picks up.

Uses syphon-python (PyPI ``syphon-python`` 0.2.0, MIT; pure PyObjC over Syphon.framework). On the sink's
thread: ``SyphonMetalServer(NAME)`` once, an RGBA8 texture per output size (``create_mtl_texture``), and per
frame ``copy_image_to_mtl_texture(rgba (H, W, 4), texture)`` then ``publish_frame_texture(texture)``.

The run loop: Syphon announces servers with distributed notifications, which macOS delivers on the MAIN
thread only; a headless process must pump that run loop or other apps never see the server. The sink
therefore has :meth:`SyphonSink.main_thread_tick`, which the program's main loop must call (``vrbridge run``
registers it with ``Engine.add_main_loop_hook``); it pumps once for each frame published since the last tick
(``SyphonServerDirectory().update_run_loop()`` with a 1 ms limit) and counts it in ``stats()``.

Syphon does not make names unique (servers are told apart by UUID): two servers may share NAME; the sink
reports the name the server actually has (``server.name``). GPU interop: none (frames come from host memory).
"""
from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from bridge.frames import RenderedFrame
from bridge.registry import install_hint
from bridge.sinks.base import Sink, SinkUnavailable
from bridge.sinks.convert import FrameConverter
from bridge.sinks.spout import check_name

log = logging.getLogger(__name__)

RUN_LOOP_INTERVAL_S = 0.001


def load_syphon():
    """syphon-python's ``syphon`` package (and its Metal helpers), or SinkUnavailable with one line."""
    where = "" if sys.platform == "darwin" else "macOS 12+ and "
    try:
        import syphon
        from syphon.utils.numpy import copy_image_to_mtl_texture
        from syphon.utils.raw import create_mtl_texture
    except ImportError as exc:
        raise SinkUnavailable(f"Syphon needs {where}{install_hint('syphon')}") from exc
    return syphon, create_mtl_texture, copy_image_to_mtl_texture


class SyphonSink(Sink):
    kind = "syphon"

    def __init__(self, name: str, modules, params: Any = None) -> None:
        super().__init__(name)
        self.syphon, self._create_texture, self._copy_image = modules
        self.converter = FrameConverter("rgba", params)
        self.actual_name = ""
        self.run_loop_pumps = 0
        self._server = None
        self._texture = None
        self._directory = None
        self._published = 0
        self._pumped = 0
        self._lock = threading.Lock()

    # -- sink thread ------------------------------------------------------------------------------
    def _open(self) -> None:
        self._server = self.syphon.SyphonMetalServer(self.name)  # raises if there is no Metal device
        self._texture = None
        self.actual_name = self._server.name
        log.info("Syphon server %r up (Metal, device %s)", self.actual_name, _device_name(self._server.device))

    def _send(self, frame: RenderedFrame) -> None:
        rgba = self.converter.convert(frame.rgb)
        height, width = rgba.shape[:2]
        texture = self._texture
        if texture is None or (texture.width(), texture.height()) != (width, height):
            texture = self._texture = self._create_texture(self._server.device, width, height)
        self._copy_image(rgba, texture)
        self._server.publish_frame_texture(texture, is_flipped=False)
        with self._lock:
            self._published += 1

    def _close(self) -> None:
        server, self._server, self._texture = self._server, None, None
        if server is not None:
            server.stop()

    # -- main thread ------------------------------------------------------------------------------
    def main_thread_tick(self) -> None:
        """Pump the main run loop once per frame published since the last call (no-op when nothing new)."""
        with self._lock:
            pending = self._published - self._pumped
            self._pumped = self._published
        if pending <= 0:
            return
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("Syphon's run loop must be pumped from the main thread")
        if self._directory is None:
            self._directory = self.syphon.SyphonServerDirectory()
            self._directory.run_loop_interval = RUN_LOOP_INTERVAL_S
        self._directory.update_run_loop()
        self.run_loop_pumps += 1

    def close(self, timeout: float = 1.0) -> None:
        super().close(timeout)
        directory, self._directory = self._directory, None
        if directory is not None:
            directory.close()

    # -- reporting ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(actual_name=self.actual_name, run_loop_pumps=self.run_loop_pumps)
        if self.converter.warning:
            out["alpha_warning"] = self.converter.warning
        return out

    def describe(self) -> str:
        return f"syphon:{self.actual_name or self.name}"


def _device_name(device) -> str:
    try:
        return str(device.name())
    except Exception:  # noqa: BLE001 - cosmetic
        return "?"


def make(arg: str = "", params: Any = None, **_options) -> SyphonSink:
    modules = load_syphon()
    return SyphonSink(check_name("syphon", arg), modules, params)
