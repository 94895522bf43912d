"""NDI out (``--sink ndi:NAME``): frames as an NDI source any machine on the network (or this one) can pick up.

Uses ``ndi-python`` (PyPI ``ndi-python``, MIT; the NDI runtime it bundles is under the NDI SDK licence).
Why ndi-python and not cyndilib: it is a thin 1:1 binding of the SDK's structs, so each video frame's
``timecode`` and per-frame XML ``metadata`` can be set from Python and read back by a receiver; in cyndilib
0.1.3 the timecode is not settable from Python and its receiver drops per-frame metadata. It is also the
smaller install (80 MB against 150 MB).

What a receiver (TouchDesigner's NDI In TOP, Resolume, OBS) gets:
* the source ``HOST (NAME)``; a name already taken on this host gets `` (2)``, `` (3)`` ... and the sink
  reports the name it actually got (``actual_name``, the start-up line, ``stats()``);
* BGRA with the alpha of ``alpha.mode`` (or UYVY, no alpha: ``ndi.format``), declared at ``ndi.fps``;
* per frame: ``timecode`` = the render time in 100 ns units since the UNIX epoch (NDI's own convention) and
  XML metadata ``<vrb frame="I" source_frame="S" t_rendered="T"/>``: ``frame`` is the index the telemetry
  bundle of the same frame carries, so pixels and OSC data can be matched.

A clocked send (``ndi.clock``, the default) blocks until the frame's slot at ``ndi.fps``; it runs on the
sink's own thread, and the engine's ``publish`` only drops the frame into a single-slot box, so the render
loop never waits for NDI and a slow receiver only causes skipped frames (``stats()['dropped']``).

Discovery: NDI announces with mDNS on every interface, which is its purpose (the VJ machine is usually
another computer). To keep it on this machine, point ``NDI_CONFIG_DIR`` at a folder whose
``ndi-config.v1.json`` is ``{"ndi": {"networks": {"ips": "127.0.0.1", "discovery": ""}}}`` (docs/sinks.md).
"""
from __future__ import annotations

import logging
import threading
import time
from fractions import Fraction
from typing import Any

from bridge.frames import RenderedFrame
from bridge.registry import install_hint
from bridge.sinks.base import Sink, SinkUnavailable
from bridge.sinks.convert import FrameConverter

log = logging.getLogger(__name__)

APP_NAME = "vrbridge"
INSTALL_HINT = f"NDI needs {install_hint('ndi')} (the ndi-python package, NDI runtime included)"
MAX_NAME_TRIES = 20
CONNECTIONS_EVERY = 30  # frames between two (cheap) connection-count queries

_init_lock = threading.Lock()
_initialized = False


def load_ndi():
    """The ndi-python module, or SinkUnavailable with the one line the user sees."""
    try:
        import NDIlib
    except ImportError as exc:
        raise SinkUnavailable(INSTALL_HINT) from exc
    return NDIlib


def ensure_initialized(lib) -> None:
    """``NDIlib.initialize()`` once per process (it reads NDI_CONFIG_DIR then); never torn down while running."""
    global _initialized
    with _init_lock:
        if _initialized:
            return
        if not lib.initialize():
            raise SinkUnavailable("NDI cannot run on this CPU (NDIlib.initialize() failed: it needs SSE4.2 or NEON)")
        _initialized = True


def check_name(name: str) -> str:
    """An NDI source name: non-empty after trimming, printable, at most 200 characters."""
    name = name.strip() or APP_NAME
    if len(name) > 200 or not name.isprintable():
        raise ValueError(f"ndi: sender name {name!r} must be printable and at most 200 characters")
    return name


def frame_metadata(frame: RenderedFrame) -> str:
    """The per-frame XML a receiver reads to match pixels with telemetry (frame index = telemetry index)."""
    return (f'<vrb frame="{frame.index}" source_frame="{frame.source_index}" '
            f't_rendered="{frame.t_rendered:.6f}"/>')


class NdiSink(Sink):
    kind = "ndi"

    def __init__(self, name: str, lib, *, fps: float = 60.0, clock: bool = True, fmt: str = "bgra",
                 groups: str = "", params: Any = None) -> None:
        super().__init__(name)
        self.lib = lib
        rate = Fraction(fps).limit_denominator(1001)
        self.fps_n, self.fps_d = rate.numerator, rate.denominator
        self.clock = bool(clock)
        self.groups = groups
        self.converter = FrameConverter("uyvy" if fmt == "uyvy" else "bgra", params)
        self.actual_name = ""
        self.connections = 0
        self._sender = None
        self._video = None
        self._wall_offset = 0.0

    # -- sink thread ------------------------------------------------------------------------------
    def _open(self) -> None:
        ensure_initialized(self.lib)
        self._sender, self.actual_name = self._create_sender()
        if self.actual_name and self.actual_name != self.name:
            log.warning("NDI name %r is taken on this host: publishing as %r", self.name, self.actual_name)
        self._video = self._new_video_frame()
        self._wall_offset = time.time() - time.monotonic()
        log.info("NDI sender %s up (%s, %.3g fps, %s)", self.full_name(), self.converter.layout,
                 self.fps_n / self.fps_d, "clocked" if self.clock else "unclocked")

    def _create_sender(self):
        """Try NAME, then NAME (2), NAME (3)...: NDI refuses a name already used on this host."""
        for attempt in range(1, MAX_NAME_TRIES + 1):
            candidate = self.name if attempt == 1 else f"{self.name} ({attempt})"
            create = self.lib.SendCreate()
            create.ndi_name = candidate
            create.clock_video = self.clock
            create.clock_audio = False
            if self.groups:
                create.groups = self.groups
            sender = self.lib.send_create(create)
            if sender is not None:
                return sender, candidate
        raise RuntimeError(f"NDI refused the names {self.name!r} .. {self.name!r} ({MAX_NAME_TRIES}): all taken?")

    def _new_video_frame(self):
        video = self.lib.VideoFrameV2()
        layout = self.converter.layout
        video.FourCC = self.lib.FOURCC_VIDEO_TYPE_UYVY if layout == "uyvy" else self.lib.FOURCC_VIDEO_TYPE_BGRA
        video.frame_rate_N, video.frame_rate_D = self.fps_n, self.fps_d
        video.frame_format_type = self.lib.FRAME_FORMAT_TYPE_PROGRESSIVE
        return video

    def _send(self, frame: RenderedFrame) -> None:
        pixels = self.converter.convert(frame.rgb)
        height, width = frame.rgb.shape[:2]
        video = self._video
        video.data = pixels  # ndi-python keeps a pointer: the converter's buffer lives until the next frame
        video.xres, video.yres = width, height  # UYVY rows hold 2 bytes per pixel: set the real size
        video.line_stride_in_bytes = pixels.strides[0]
        video.picture_aspect_ratio = width / height
        video.timecode = int(round((frame.t_rendered + self._wall_offset) * 1e7))
        video.metadata = frame_metadata(frame)
        self.lib.send_send_video_v2(self._sender, video)  # synchronous: NDI is done with the buffer on return
        if self.sent % CONNECTIONS_EVERY == 0:
            self.connections = int(self.lib.send_get_no_connections(self._sender, 0))

    def _close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            self.lib.send_destroy(sender)

    # -- reporting ------------------------------------------------------------------------------
    def full_name(self) -> str:
        """What receivers list: ``HOST (NAME)``."""
        if self._sender is None:
            return self.actual_name or self.name
        try:
            return self.lib.send_get_source_name(self._sender).ndi_name
        except Exception:  # noqa: BLE001 - reporting only
            return self.actual_name

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(actual_name=self.actual_name, connections=self.connections, layout=self.converter.layout)
        if self.converter.warning:
            out["alpha_warning"] = self.converter.warning
        return out

    def describe(self) -> str:
        shown = self.actual_name or self.name
        return f"ndi:{shown}"


def _setting(params: Any, name: str, default: Any) -> Any:
    if params is None:
        return default
    try:
        return params.get(name)
    except Exception:  # noqa: BLE001 - a mapping without the row
        return default


def make(arg: str = "", params: Any = None, fps: float | None = None, clock: bool | None = None,
         fmt: str | None = None, groups: str | None = None, **_options) -> NdiSink:
    """``ndi:NAME``; settings from the ``ndi.*`` rows of ``params`` unless given here."""
    lib = load_ndi()
    name = check_name(arg)
    fps = float(fps if fps is not None else _setting(params, "ndi.fps", 60.0))
    if not 1.0 <= fps <= 240.0:
        raise ValueError(f"ndi: fps {fps:g} is outside [1, 240]")
    fmt = fmt if fmt is not None else _setting(params, "ndi.format", "bgra")
    if fmt not in ("bgra", "uyvy"):
        raise ValueError(f"ndi: format {fmt!r} is not one of bgra, uyvy")
    return NdiSink(name, lib, fps=fps,
                   clock=bool(clock if clock is not None else _setting(params, "ndi.clock", True)),
                   fmt=fmt, groups=str(groups if groups is not None else _setting(params, "ndi.groups", "")),
                   params=params)
