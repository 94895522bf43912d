"""What the pose and face trackers share: a MediaPipe task on its own thread, fed the newest camera frame.

The engine's capture thread calls :meth:`FrameWorker.submit` with every frame; that only replaces the frame in
a single-slot box (newest wins), so a slow tracker runs at its own rate and never blocks capture or render. On
a small machine the trackers still share the cores with the render loop; ``max_hz`` (``pose_hz``, ``face_hz``)
caps how often one runs, leaving the rest of the time to rendering. The
thread runs :meth:`FrameWorker.process`, which checks the frame, gives MediaPipe strictly increasing
timestamps (VIDEO mode refuses anything else: the capture time, nudged 1 ms forward when two frames would
share a millisecond), times the call and hands the result to the subclass's :meth:`_take`.

Failures (an unusable frame, an error inside MediaPipe, a model that will not load) are counted, logged a few
times and reported on the signal bus; the thread keeps going and the signals keep their last values.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Mapping

import numpy as np

from bridge.frames import Frame, Latest
from bridge.params import DEFAULTS
from bridge.tracking.quiet import FirstFramesMuted, native_chatter_muted

log = logging.getLogger(__name__)

ParamsFn = Callable[[], Mapping[str, Any]]


class FrameWorker:
    """Base of a MediaPipe tracker: ``start()``, ``submit(frame)``, ``process(frame)``, ``close()``, ``stats()``.

    Subclasses set :attr:`kind` and implement ``_create()`` (the MediaPipe landmarker), ``_detect(landmarker,
    image, ts_ms)`` and ``_take(result, frame)`` (turn a result into signals; return something truthy when it
    found its subject).
    """

    kind = "tracker"

    def __init__(self, params: ParamsFn | None = None, bus=None, max_hz: float = 0.0) -> None:
        self._params = params or (lambda: DEFAULTS)
        self.bus = bus
        self.max_hz = float(max_hz)  # at most this many frames a second on the thread (0 = every new frame)
        self._landmarker = None
        self._box: Latest[Frame] = Latest()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_ts_ms = -1
        self._first_frames_muted = FirstFramesMuted()
        self.status = "idle"
        self.frames = 0
        self.found = 0
        self.errors = 0
        self.last_error = ""
        self.last_ms = 0.0
        self.avg_ms = 0.0

    # -- the service interface the engine uses ---------------------------------------------------------
    def start(self) -> None:
        self.status = "starting"
        self._thread = threading.Thread(target=self._run, name=f"tracker-{self.kind}", daemon=True)
        self._thread.start()

    def submit(self, frame: Frame) -> None:
        """Offer a camera frame; never blocks (the previous unprocessed frame, if any, is dropped)."""
        self._box.put(frame)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and release MediaPipe (by the thread itself if it is still inside a frame)."""
        self._stop.set()
        self._box.close()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._release()
        self.status = "closed"

    def stats(self) -> dict[str, Any]:
        """Health and cost: ``track_ms`` is the running mean per processed frame (status line, telemetry)."""
        return {"name": self.kind, "status": self.status, "frames": self.frames, "found": self.found, "dropped": self._box.dropped,
                "errors": self.errors, "last_error": self.last_error, "track_ms": round(self.avg_ms, 2),
                "last_ms": round(self.last_ms, 2)}

    def describe(self) -> str:
        return self.kind

    # -- tracking ------------------------------------------------------------------------------------------
    def process(self, frame: Frame):
        """Track one frame now, in the calling thread (the tracker thread; tests and benchmarks call it too).

        Returns what :meth:`_take` returns, or None when the frame was unusable (counted in ``errors``).
        """
        rgb = frame.rgb
        if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
                and rgb.shape[0] > 0 and rgb.shape[1] > 0):
            self.record_error("frame", ValueError(f"frame {frame.index} is not an (H, W, 3) uint8 RGB image: "
                                                  f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}"))
            return None
        landmarker = self._ensure_landmarker()
        import mediapipe as mp

        t0 = time.perf_counter()
        ts_ms = max(int(frame.t_capture * 1000.0), self._last_ts_ms + 1)
        self._last_ts_ms = ts_ms
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        with self._first_frames_muted():
            result = self._detect(landmarker, image, ts_ms)
        ms = (time.perf_counter() - t0) * 1000.0
        self.last_ms = ms
        self.avg_ms = ms if self.frames == 0 else 0.9 * self.avg_ms + 0.1 * ms
        self.frames += 1
        taken = self._take(result, frame)
        self.found += int(bool(taken))
        return taken

    def record_error(self, what: str, exc: BaseException) -> None:
        """Count, log (the first few, then every 100th) and report a failure the tracker survives."""
        self.errors += 1
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"
        if self.errors <= 3 or self.errors % 100 == 0:
            log.warning("%s %s failed (%d so far): %s", self.describe(), what, self.errors, exc)
        if self.bus is not None:
            try:
                self.bus.report_error(self.kind, exc)
            except Exception:  # noqa: BLE001 - reporting must never raise
                pass

    # -- for subclasses -------------------------------------------------------------------------------------
    def _create(self):
        raise NotImplementedError

    def _detect(self, landmarker, image, ts_ms: int):
        return landmarker.detect_for_video(image, ts_ms)

    def _take(self, result, frame: Frame):
        raise NotImplementedError

    # -- internals -----------------------------------------------------------------------------------------
    def _ensure_landmarker(self):
        if self._landmarker is None:
            with native_chatter_muted():  # LiteRT's INFO lines
                self._landmarker = self._create()
        return self._landmarker

    def _release(self) -> None:
        landmarker, self._landmarker = self._landmarker, None
        if landmarker is not None:
            try:
                with native_chatter_muted():  # LiteRT's DestroyAccelerator INFO lines
                    landmarker.close()
            except Exception as exc:  # noqa: BLE001 - closing must not raise at shutdown
                self.record_error("close", exc)

    def _run(self) -> None:
        try:
            self._ensure_landmarker()
        except Exception as exc:  # noqa: BLE001 - no tracking, but the show goes on
            self.record_error("start", exc)
            self.status = f"failed: {exc}"
            return
        self.status = "running"
        seq = 0
        while not self._stop.is_set():
            seq, frame = self._box.get(seq, timeout=0.25)
            if frame is None:
                continue
            started = time.monotonic()
            try:
                self.process(frame)
            except Exception as exc:  # noqa: BLE001 - a bad frame or a MediaPipe hiccup skips one frame
                self.record_error("track", exc)
            if self.max_hz > 0:  # leave the cores to the render loop until the next tracking is due
                self._stop.wait(max(0.0, 1.0 / self.max_hz - (time.monotonic() - started)))
        self._release()
