"""A live camera through OpenCV: ``camera:N`` (device index) or ``camera:/dev/video2`` (a path or URL).

A camera that is missing or unplugged does not stop the show: ``read`` returns None (the engine holds the
last frame and keeps rendering) and the source reopens with growing back-off (0.5 s doubling to 5 s),
saying so in ``status``. That also covers a camera that is only plugged in after the start.
"""
from __future__ import annotations

import contextlib
import logging
import time

import numpy as np

from bridge.frames import Frame
from bridge.sources.base import Backoff, Source, SourceUnavailable

log = logging.getLogger(__name__)
FAILS_BEFORE_RECONNECT = 5  # a few empty grabs in a row means the device is gone


class CaptureSource(Source):
    """What the OpenCV-backed sources (camera, video file) share: the ``cv2.VideoCapture`` and its release."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._cap = None
        self.last_error = ""

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.status = "closed"

    def stats(self) -> dict:
        return {**super().stats(), "last_error": self.last_error}


class CameraSource(CaptureSource):
    kind = "camera"

    def __init__(self, device: int | str, size: tuple[int, int] | None = None, fps: float = 30.0) -> None:
        super().__init__(str(device))
        self.device = device
        self.size = size
        self.fps = fps
        self._index = 0
        self._fails = 0
        self._backoff = Backoff()

    def open(self) -> None:
        """Try once; a missing camera is reported (once, here) and retried from ``read``, never fatal."""
        if not self._try_open():
            log.warning("camera %s: %s (tried OpenCV's %s); the output keeps running and the camera is "
                        "retried every %.1f-%.0f s; list cameras with: vrbridge devices", self.device,
                        self.last_error, ", ".join(_camera_backends()) or "camera backends",
                        Backoff.START_S, Backoff.MAX_S)

    def _try_open(self) -> bool:
        import cv2

        with quiet_opencv():  # OpenCV prints ~12 lines per failed open (each backend): we say it once
            cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            self._schedule_retry(f"cannot open camera {self.device!r}")
            return False
        if self.size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        self._cap = cap
        self._fails = 0
        self._backoff.succeeded()
        self.status = "running"
        return True

    def _schedule_retry(self, why: str) -> None:
        self.last_error = why
        self.status = f"reconnecting: {why}"
        self._backoff.failed()

    def read(self, timeout: float = 0.1) -> Frame | None:
        if self._cap is None:
            if not self._backoff.wait(timeout):
                return None
            self.reconnects += 1
            if not self._try_open():
                return None
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            self._fails += 1
            if self._fails >= FAILS_BEFORE_RECONNECT:
                self._drop(f"camera {self.device!r} stopped delivering frames")
            else:
                time.sleep(min(timeout, 0.02))
            return None
        self._fails = 0
        frame = Frame(rgb=to_rgb(bgr), index=self._index, t_capture=time.monotonic(), source=f"camera:{self.device}")
        self._index += 1
        self.frames += 1
        return frame

    def _drop(self, why: str) -> None:
        log.warning("%s; holding the last frame and reconnecting", why)
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        self._schedule_retry(why)

    def describe(self) -> str:
        size = f" {self.size[0]}x{self.size[1]}" if self.size else ""
        return f"camera {self.device}{size} @ {self.fps:g} fps"


@contextlib.contextmanager
def quiet_opencv():
    """OpenCV's own log silenced for the duration (its warnings go straight to stderr, not to logging)."""
    import cv2

    logging_api = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_api is None:
        yield
        return
    previous = logging_api.getLogLevel()
    logging_api.setLogLevel(logging_api.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging_api.setLogLevel(previous)


def _camera_backends() -> list[str]:
    import cv2

    try:
        return [cv2.videoio_registry.getBackendName(b) for b in cv2.videoio_registry.getCameraBackends()]
    except Exception:  # noqa: BLE001 - an OpenCV build without the registry: say it generally
        return []


def to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or grey / BGRA) -> C-contiguous RGB uint8: the one conversion, done at the source."""
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image)
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def make(arg: str = "", size: tuple[int, int] | None = None, fps: float = 30.0, **_options) -> CameraSource:
    arg = arg.strip() or "0"
    if arg.isdigit():
        device: int | str = int(arg)
    elif arg.startswith(("/", "rtsp:", "http:", "https:")) or ":" in arg or "\\" in arg:
        device = arg
    else:
        raise SourceUnavailable(f"camera: {arg!r} is neither a device index (camera:0) nor a path "
                                "(camera:/dev/video2); list cameras with: vrbridge devices")
    return CameraSource(device, size=size, fps=fps)
