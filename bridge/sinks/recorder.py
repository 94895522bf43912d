"""Record the output to a video file (mp4 via OpenCV's mp4v codec; .avi gets MJPG), optionally with the camera
input side by side.

The engine renders at whatever rate the machine manages, but a video file has a fixed frame rate, so frames
are written by their render time: repeated when rendering is slower than ``fps`` and skipped when faster.
The recording therefore plays back in real time. The file is opened on the first frame (its size is known
only then) and finalised on close.
"""
from __future__ import annotations

import logging
import os

from bridge import imageops
from bridge.frames import RenderedFrame
from bridge.sinks.base import Sink, SinkUnavailable

log = logging.getLogger(__name__)
CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}
MAX_REPEAT_S = 2.0  # after a long stall, repeat at most this much of the held frame


class RecorderSink(Sink):
    kind = "record"
    retry_s = 2.0

    def __init__(self, path: str, fps: float = 30.0, side_by_side: bool = False) -> None:
        super().__init__(path)
        self.path = path
        self.fps = float(fps)
        self.side_by_side = side_by_side
        self.written = 0
        self._writer = None
        self._size: tuple[int, int] | None = None
        self._t0: float | None = None
        self.audio = None  # an AudioTrack once attach_audio gave the sound (bridge.sinks.audio_track)

    def attach_audio(self, service) -> None:
        """Record the sound the audio service hears too (muxed into the file by ffmpeg when it closes)."""
        from bridge.sinks.audio_track import AudioTrack

        self.audio = AudioTrack(self.path, service.rate)
        service.add_tap(self.audio.write)

    def _compose(self, frame: RenderedFrame):
        rgb = frame.rgb
        if self.side_by_side:
            rgb = imageops.side_by_side(rgb, frame.input_rgb if frame.input_rgb is not None else rgb * 0)
        return rgb

    def _send(self, frame: RenderedFrame) -> None:
        rgb = self._compose(frame)
        if self._writer is None:
            self._open_writer(rgb.shape[1], rgb.shape[0])
            self._t0 = frame.t_rendered
        if (rgb.shape[1], rgb.shape[0]) != self._size:
            rgb = imageops.fit(rgb, self._size, "letterbox")
        due = int((frame.t_rendered - self._t0) * self.fps) + 1  # frames the file should hold by now
        repeats = min(max(due - self.written, 0), int(MAX_REPEAT_S * self.fps))
        if repeats == 0:
            return
        bgr = imageops.rgb_to_bgr(rgb)
        for _ in range(repeats):
            self._writer.write(bgr)
        self.written += repeats

    def _open_writer(self, width: int, height: int) -> None:
        import cv2

        fourcc = cv2.VideoWriter_fourcc(*CODECS.get(os.path.splitext(self.path)[1].lower(), "mp4v"))
        writer = cv2.VideoWriter(self.path, fourcc, self.fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {self.path!r} at {width}x{height}")
        self._writer = writer
        self._size = (width, height)
        if self.audio is not None:
            self.audio.start()
        log.info("recording %dx%d at %g fps to %s%s", width, height, self.fps, self.path,
                 " with sound" if self.audio is not None else "")

    def close(self, timeout: float = 1.0) -> None:
        """Wait for the file to be finalised (an unfinished mp4 is unreadable): longer than other sinks."""
        super().close(max(timeout, 10.0 if self.audio is None else 60.0))  # muxing the sound takes longer

    def _reopen_after_error(self) -> bool:
        return False  # a failed write keeps the file; reopening would overwrite what was recorded

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            log.info("recording closed: %d frames (%.1f s) in %s", self.written, self.written / self.fps, self.path)
            if self.audio is not None:
                self.audio.finish()

    def stats(self) -> dict:
        return {**super().stats(), "written": self.written, "path": self.path}

    def describe(self) -> str:
        extra = ", output | input side by side" if self.side_by_side else ""
        extra += ", with sound" if self.audio is not None else ""
        return f"record {self.path} ({self.fps:g} fps{extra})"


def make(arg: str = "", fps: float = 30.0, side_by_side: bool = False, **_options) -> RecorderSink:
    path = os.path.expanduser(arg)
    if not path:
        raise SinkUnavailable("record needs a file: --record out.mp4")
    ext = os.path.splitext(path)[1].lower()
    if ext not in CODECS:
        raise SinkUnavailable(f"record: {path!r} must end in one of {', '.join(CODECS)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SinkUnavailable(f"record: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise SinkUnavailable(f"record: folder {folder!r} is not writable")
    return RecorderSink(path, fps=fps, side_by_side=side_by_side)
