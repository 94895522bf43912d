"""A video file played in a loop at its own frame rate: ``video:PATH``.

A file that is missing at start is a user mistake (SourceUnavailable). A file that disappears or breaks
during the show is not fatal: ``read`` returns None (the engine holds the last frame), the status says so,
and the file is retried with back-off until it is back.
"""
from __future__ import annotations

import logging
import os

from bridge.frames import Frame
from bridge.sources.base import Backoff, FramePacer, SourceUnavailable
from bridge.sources.camera import CaptureSource, to_rgb

log = logging.getLogger(__name__)
DEFAULT_FPS = 30.0


class VideoSource(CaptureSource):
    kind = "video"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path
        self.fps = DEFAULT_FPS
        self.loops = 0
        self._index = 0
        self._pacer = FramePacer(DEFAULT_FPS)
        self._backoff = Backoff()
        self._frames_this_pass = 0

    def open(self) -> None:
        if not os.path.isfile(self.path):
            raise SourceUnavailable(f"video: no such file {self.path!r}")
        if not self._open_capture():
            raise SourceUnavailable(f"video: OpenCV cannot decode {self.path!r} ({self.last_error})")
        self._pacer.restart()

    def _open_capture(self) -> bool:
        import cv2

        if not os.path.isfile(self.path):
            self.last_error = "file missing"
            return False
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            self.last_error = "cannot open"
            return False
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1.0 <= fps <= 240.0 else DEFAULT_FPS
        self._pacer.fps = self.fps
        self._cap = cap
        self._frames_this_pass = 0
        self.status = "running"
        return True

    def read(self, timeout: float = 0.1) -> Frame | None:
        if self._cap is None and not self._retry():
            return None
        if not self._pacer.wait(timeout):
            return None
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            self._rewind()
            return None
        now = self._pacer.mark()
        self._frames_this_pass += 1
        frame = Frame(rgb=to_rgb(bgr), index=self._index, t_capture=now, source=f"video:{self.path}")
        self._index += 1
        self.frames += 1
        return frame

    def _rewind(self) -> None:
        """End of file (loop) or a broken/deleted file (hold and retry): reopen either way."""
        self._cap.release()
        self._cap = None
        if self._frames_this_pass > 0:
            self.loops += 1
            if self._open_capture():
                return
        self._hold(self.last_error or "no frames decoded")

    def _hold(self, why: str) -> None:
        if not self.status.startswith("holding"):
            log.warning("video %s: %s; holding the last frame and retrying", self.path, why)
        self.last_error = why
        self.status = f"holding last frame: {why}"
        self._backoff.failed()

    def _retry(self) -> bool:
        if not self._backoff.wait(0.1):
            return False
        self.reconnects += 1
        if self._open_capture():
            log.info("video %s is back", self.path)
            self._backoff.succeeded()
            self._pacer.restart()
            return True
        self._hold(self.last_error)
        return False

    def stats(self) -> dict:
        return {**super().stats(), "loops": self.loops}

    def describe(self) -> str:
        return f"video {self.path} (looping, {self.fps:g} fps)"


def make(arg: str = "", **_options) -> VideoSource:
    if not arg:
        raise SourceUnavailable("video needs a file: --source video:PATH")
    return VideoSource(os.path.expanduser(arg))
