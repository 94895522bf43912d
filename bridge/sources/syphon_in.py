"""Frames from the VJ rig over Syphon (``--source syphon:NAME``, macOS 12+), e.g. TouchDesigner's Syphon Spout Out.

syphon-python 0.2.0: find the server named NAME (or whose app name is NAME) in ``SyphonServerDirectory``,
connect a ``SyphonMetalClient``, and on each ``read`` take ``new_frame_image`` when ``has_new_frame`` and
copy it to host memory (``copy_mtl_texture_to_image``; Syphon's Metal surfaces are BGRA8, handled by the
texture's pixel format). A server that stops is held and retried with back-off
(:class:`bridge.sources.base.RigSource`). Discovery itself needs the main run loop pumped (see
``bridge.sinks.syphon``); the directory is asked with a 1 ms run-loop limit so ``read`` never blocks long.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from bridge.registry import install_hint
from bridge.sinks.spout import check_name
from bridge.sources.base import RigSource, SourceUnavailable

POLL_S = 0.005


class SyphonSource(RigSource):
    kind = "syphon"

    def __init__(self, name: str, syphon, copy_texture) -> None:
        super().__init__(name)
        self.syphon = syphon
        self._copy_texture = copy_texture
        self._directory = None
        self._client = None

    def _connect(self) -> str:
        if self._directory is None:
            self._directory = self.syphon.SyphonServerDirectory()
            self._directory.run_loop_interval = 0.001
        found = self._directory.servers_matching_name(name=self.name) or \
            self._directory.servers_matching_name(app_name=self.name)
        if not found:
            raise ConnectionError(f"no Syphon server named {self.name!r}")
        self._client = self.syphon.SyphonMetalClient(found[0])
        return f"{found[0].app_name}: {found[0].name}"

    def _grab(self, timeout: float) -> np.ndarray | None:
        import cv2

        deadline = time.monotonic() + timeout
        while not self._client.has_new_frame:
            if not self._client.is_valid:
                raise ConnectionError("the Syphon server stopped")
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)
        texture = self._client.new_frame_image
        if texture is None:
            return None
        four = self._copy_texture(texture)
        bgra = texture.pixelFormat() == self.syphon_bgra_format()
        return cv2.cvtColor(four, cv2.COLOR_BGRA2RGB if bgra else cv2.COLOR_RGBA2RGB)

    @staticmethod
    def syphon_bgra_format() -> int:
        import Metal

        return Metal.MTLPixelFormatBGRA8Unorm

    def _sender_gone(self) -> bool:
        return self._client is None or not self._client.is_valid

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.stop()

    def close(self) -> None:
        super().close()
        directory, self._directory = self._directory, None
        if directory is not None:
            directory.close()

    def describe(self) -> str:
        return f"syphon:{self.name}"


def make(arg: str = "", **_options) -> SyphonSource:
    if not arg.strip():
        raise SourceUnavailable("syphon: name the Syphon server to receive, e.g. --source syphon:TDSyphonSpoutOut")
    where = "" if sys.platform == "darwin" else "macOS 12+ and "
    try:
        import syphon
        from syphon.utils.numpy import copy_mtl_texture_to_image
    except ImportError as exc:
        raise SourceUnavailable(f"Syphon in needs {where}{install_hint('syphon')}") from exc
    try:
        name = check_name("syphon", arg)
    except ValueError as exc:
        raise SourceUnavailable(str(exc)) from exc
    return SyphonSource(name, syphon, copy_mtl_texture_to_image)
