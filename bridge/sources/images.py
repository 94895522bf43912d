"""A slideshow of the pictures in a folder: ``images:DIR`` (each up for ``slide_s``, in name order, looping).

Frames are emitted at ``fps`` like a camera looking at a print, so the encoder's running statistics and
smoothing behave as they do live. The folder is re-read at every wrap, so pictures can be added or removed
during the show; if it empties or vanishes the last picture is held.
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from bridge.frames import Frame
from bridge.imageops import limit_side
from bridge.sources.base import MAX_SOURCE_SIDE, FramePacer, Source, SourceUnavailable
from bridge.sources.camera import to_rgb

log = logging.getLogger(__name__)
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(folder: str) -> list[str]:
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [os.path.join(folder, n) for n in names if n.lower().endswith(EXTENSIONS)]


class ImageFolderSource(Source):
    kind = "images"

    def __init__(self, folder: str, slide_s: float = 5.0, fps: float = 30.0) -> None:
        super().__init__(folder)
        self.folder = folder
        self.slide_s = float(slide_s)
        self.fps = float(fps)
        self.slides = 0
        self.last_error = ""
        self._files: list[str] = []
        self._pos = -1
        self._current: np.ndarray | None = None
        self._slide_until = 0.0
        self._pacer = FramePacer(self.fps)
        self._index = 0

    def open(self) -> None:
        if not os.path.isdir(self.folder):
            raise SourceUnavailable(f"images: no such folder {self.folder!r}")
        self._files = list_images(self.folder)
        if not self._files:
            raise SourceUnavailable(f"images: no pictures ({', '.join(EXTENSIONS)}) in {self.folder!r}")
        self.status = "running"
        self._pacer.restart()
        self._advance()

    def _advance(self) -> None:
        """Show the next decodable picture; at the end of the list re-read the folder."""
        for _ in range(max(1, len(self._files)) + 1):
            self._pos += 1
            if self._pos >= len(self._files):
                self._pos = 0
                self._files = list_images(self.folder)
                if not self._files:
                    break
            rgb = self._load(self._files[self._pos])
            if rgb is not None:
                self._current = rgb
                self.slides += 1
                self.status = f"showing {os.path.basename(self._files[self._pos])}"
                break
        else:
            self.status = "holding last picture: none of the files decode"
        if not self._files:
            self.status = f"holding last picture: {self.folder!r} is empty or gone"
        self._slide_until = time.monotonic() + self.slide_s

    def _load(self, path: str) -> np.ndarray | None:
        """The picture as RGB, no larger than MAX_SOURCE_SIDE (decoded at 1/2, 1/4 or 1/8 when huge)."""
        import cv2

        bgr = cv2.imread(path, _reduced_decode_flag(path))
        if bgr is None:
            self.last_error = f"cannot decode {path!r}"
            log.warning("images: %s; skipping it", self.last_error)
            return None
        return limit_side(to_rgb(bgr), MAX_SOURCE_SIDE)

    def read(self, timeout: float = 0.1) -> Frame | None:
        if not self._pacer.wait(timeout):
            return None
        now = self._pacer.mark()
        if now >= self._slide_until:
            self._advance()
        if self._current is None:
            return None
        frame = Frame(rgb=self._current, index=self._index, t_capture=now, source=f"images:{self.folder}")
        self._index += 1
        self.frames += 1
        return frame

    def stats(self) -> dict:
        return {**super().stats(), "slides": self.slides, "last_error": self.last_error}

    def describe(self) -> str:
        return f"images {self.folder} ({len(self._files)} pictures, {self.slide_s:g} s each)"


def _reduced_decode_flag(path: str) -> int:
    """OpenCV's reduced-size decode for a picture far bigger than needed: an 8000x8000 JPEG decodes about
    3x faster at 1/4 (the JPEG decoder scales in the DCT) and never needs its full 192 MB in memory."""
    import cv2

    try:
        from PIL import Image

        with Image.open(path) as img:  # reads the header only
            longest = max(img.size)
    except Exception:  # noqa: BLE001 - no PIL, or a format it does not know: decode at full size
        return cv2.IMREAD_COLOR
    for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                         (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if longest / factor >= MAX_SOURCE_SIDE:
            return flag
    return cv2.IMREAD_COLOR


def make(arg: str = "", slide_s: float = 5.0, fps: float = 30.0, **_options) -> ImageFolderSource:
    if not arg:
        raise SourceUnavailable("images needs a folder: --source images:DIR")
    return ImageFolderSource(os.path.expanduser(arg), slide_s=slide_s, fps=fps)
