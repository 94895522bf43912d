"""Frames from the VJ rig: ``--source ndi:NAME`` receives an NDI source (e.g. TouchDesigner's NDI Out TOP).

TouchDesigner often owns the stage camera; it can send us that picture over NDI instead of us opening the
camera. NAME matches a discovered source's full name ``HOST (NAME)``, its NAME part, or any part of it;
``ndi:HOST:PORT`` (e.g. ``ndi:127.0.0.1:5961``) connects to that address without discovery.

A sender that vanishes (TouchDesigner closed) is held and retried by :class:`bridge.sources.base.RigSource`,
the reconnect loop every rig input (NDI, Spout, Syphon) shares.
"""
from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np

from bridge.registry import install_hint
from bridge.sinks.base import SinkUnavailable
from bridge.sinks.ndi import ensure_initialized
from bridge.sources.base import RigSource, SourceUnavailable

log = logging.getLogger(__name__)

DISCOVERY_WAIT_S = 0.5  # open() gives NDI discovery this long before the first try
INSTALL_HINT = f"NDI in needs {install_hint('ndi')} (the ndi-python package, NDI runtime included)"
_URL = re.compile(r"^[\w.\-]+:\d{1,5}$")


# --------------------------------------------------------------------------------------------------
# NDI
# --------------------------------------------------------------------------------------------------
def inner_name(full_name: str) -> str:
    """NAME of an NDI source called ``HOST (NAME)``."""
    start, end = full_name.find("("), full_name.rfind(")")
    return full_name[start + 1:end] if 0 <= start < end else full_name


def pick_source(wanted: str, sources: list) -> Any:
    """The source named exactly ``wanted`` (full or NAME part), else the first whose name contains it, else None."""
    exact = [s for s in sources if wanted in (s.ndi_name, inner_name(s.ndi_name))]
    loose = [s for s in sources if wanted in s.ndi_name]
    return (exact or loose or [None])[0]


class NdiSource(RigSource):
    kind = "ndi"

    def __init__(self, name: str, lib) -> None:
        super().__init__(name)
        self.lib = lib
        self._finder = None
        self._receiver = None

    def open(self) -> None:
        try:
            ensure_initialized(self.lib)  # one NDI runtime per process, shared with the NDI sinks
        except SinkUnavailable as exc:
            raise SourceUnavailable(str(exc)) from exc
        if not _URL.match(self.name):
            self._finder = self.lib.find_create_v2(self.lib.FindCreate())
            self.lib.find_wait_for_sources(self._finder, int(DISCOVERY_WAIT_S * 1000))  # the first poll is empty
        super().open()

    def _find(self):
        if _URL.match(self.name):
            return self.lib.Source(p_ndi_name="", p_url_address=self.name)
        self.lib.find_wait_for_sources(self._finder, 0)
        sources = list(self.lib.find_get_current_sources(self._finder))
        found = pick_source(self.name, sources)
        if found is None:
            seen = ", ".join(s.ndi_name for s in sources) or "none"
            raise ConnectionError(f"no NDI source matching {self.name!r} (seen: {seen})")
        return found

    def _connect(self) -> str:
        source = self._find()
        create = self.lib.RecvCreateV3()
        create.color_format = self.lib.RECV_COLOR_FORMAT_BGRX_BGRA
        create.bandwidth = self.lib.RECV_BANDWIDTH_HIGHEST
        create.ndi_recv_name = "vrbridge"
        receiver = self.lib.recv_create_v3(create)
        if receiver is None:
            raise ConnectionError("NDI could not create a receiver")
        self.lib.recv_connect(receiver, source)
        self._receiver = receiver
        return source.ndi_name or source.url_address

    def _grab(self, timeout: float) -> np.ndarray | None:
        import cv2

        kind, video, _audio, metadata = self.lib.recv_capture_v2(self._receiver, max(0, int(timeout * 1000)))
        if kind == self.lib.FRAME_TYPE_METADATA:
            self.lib.recv_free_metadata(self._receiver, metadata)
            return None
        if kind != self.lib.FRAME_TYPE_VIDEO:
            return None
        try:
            data = video.data  # a view of NDI's buffer: convert (copy) before freeing it
            if data.ndim != 3 or data.shape[2] != 4:
                raise ValueError(f"unexpected NDI frame layout {data.shape} ({video.FourCC})")
            return cv2.cvtColor(data, cv2.COLOR_BGRA2RGB)
        finally:
            self.lib.recv_free_video_v2(self._receiver, video)

    def _sender_gone(self) -> bool:
        return self._receiver is None or self.lib.recv_get_no_connections(self._receiver) == 0

    def _disconnect(self) -> None:
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            self.lib.recv_destroy(receiver)

    def close(self) -> None:
        super().close()
        finder, self._finder = self._finder, None
        if finder is not None:
            self.lib.find_destroy(finder)

    def describe(self) -> str:
        return f"ndi:{self.name}"


def make(arg: str = "", **_options) -> NdiSource:
    name = arg.strip()
    if not name:
        raise SourceUnavailable("ndi: name the NDI source to receive, e.g. --source ndi:TDSyphonSpoutOut "
                                "or ndi:HOST:PORT")
    try:
        import NDIlib
    except ImportError as exc:
        raise SourceUnavailable(INSTALL_HINT) from exc
    return NdiSource(name, NDIlib)
