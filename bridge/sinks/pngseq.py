"""Write output frames as numbered PNGs (``frame_000042.png``, the engine's frame index) into a folder.

For stills and offline editing. PNG encoding is slow (~10-30 ms at 1024px), so on a fast engine this sink
keeps up by skipping frames like every sink (``stats()['dropped']`` says how many); a gap in the numbers is
a skipped frame. Low compression keeps it quick.

Alpha follows the ``alpha.*`` rows like the Spout/Syphon/NDI sinks: with ``alpha.mode`` luma or mask the PNGs
are RGBA with that alpha (one converter, :class:`bridge.sinks.convert.FrameConverter`); opaque writes RGB.
"""
from __future__ import annotations

import os

from bridge import imageops
from bridge.frames import RenderedFrame
from bridge.sinks.base import Sink, SinkUnavailable
from bridge.sinks.convert import AlphaSettings, FrameConverter

PNG_COMPRESSION = 1


class PngSequenceSink(Sink):
    kind = "png"

    def __init__(self, folder: str, params=None) -> None:
        super().__init__(folder)
        self.folder = folder
        self.params = params
        self.converter = FrameConverter("bgra", params)
        self.written = 0

    def _open(self) -> None:
        os.makedirs(self.folder, exist_ok=True)

    def _send(self, frame: RenderedFrame) -> None:
        import cv2

        path = os.path.join(self.folder, f"frame_{frame.index:06d}.png")
        if AlphaSettings.from_params(self.params).mode == "opaque":
            pixels = imageops.rgb_to_bgr(frame.rgb)
        else:
            pixels = self.converter.convert(frame.rgb)  # BGRA, as OpenCV writes a 4-channel PNG
        ok = cv2.imwrite(path, pixels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
        if not ok:
            raise OSError(f"cannot write {path!r}")
        self.written += 1

    def close(self, timeout: float = 1.0) -> None:
        """Let a PNG being written finish (the process may exit right after)."""
        super().close(max(timeout, 3.0))

    def _reopen_after_error(self) -> bool:
        return False  # a full disk or a bad file is retried frame by frame, nothing to reopen

    def stats(self) -> dict:
        return {**super().stats(), "written": self.written, "folder": self.folder}

    def describe(self) -> str:
        return f"png {self.folder}/frame_NNNNNN.png"


def make(arg: str = "", params=None, **_options) -> PngSequenceSink:
    folder = os.path.expanduser(arg)
    if not folder:
        raise SinkUnavailable("png needs a folder: --png-dir FRAMES/")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise SinkUnavailable(f"png: {folder!r} exists and is not a folder")
    parent = os.path.dirname(os.path.abspath(folder))
    if not os.path.isdir(parent):
        raise SinkUnavailable(f"png: parent folder {parent!r} does not exist")
    return PngSequenceSink(folder, params)
