"""The built-in animated test pattern: moving shapes and drifting colour, so the encoder always sees change.

It is the embedded default's source (no camera needed) and the benchmark's source (deterministic: the
picture is a pure function of the frame index, so two runs see the same frames).
"""
from __future__ import annotations

import math

import numpy as np

from bridge.frames import Frame
from bridge.sources.base import FramePacer, Source, SourceUnavailable

DEFAULT_SIZE = (640, 480)


class PatternSource(Source):
    kind = "pattern"

    def __init__(self, size: tuple[int, int] | None = None, fps: float = 30.0) -> None:
        super().__init__("pattern")
        self.size = size or DEFAULT_SIZE
        self.fps = float(fps)
        self._pacer = FramePacer(self.fps)
        self._index = 0

    def open(self) -> None:
        self.status = "running"
        self._pacer.restart()

    def read(self, timeout: float = 0.1) -> Frame | None:
        """Wait for the next frame time (at most ``timeout``), then draw it."""
        if not self._pacer.wait(timeout):
            return None
        now = self._pacer.mark()
        rgb = render_pattern(self._index, self.size)
        frame = Frame(rgb=rgb, index=self._index, t_capture=now, source="pattern")
        self._index += 1
        self.frames += 1
        return frame

    def describe(self) -> str:
        return f"pattern {self.size[0]}x{self.size[1]} @ {self.fps:g} fps (built-in test pattern)"


def render_pattern(index: int, size: tuple[int, int]) -> np.ndarray:
    """Frame ``index`` of the pattern, (H, W, 3) uint8 RGB: a drifting colour field, an orbiting disc, a
    rotating bar and a sweeping inverted band. One full cycle takes 600 frames (20 s at 30 fps).

    Cheap by design (under a millisecond at 640x480): the engine's capture thread draws every frame beside the
    torch stages, and on a 2-core CPU every millisecond it takes is one they wait for.
    """
    import cv2

    width, height = size
    phase = 2 * math.pi * (index / 30.0) / 20.0
    rgb = _colour_field(width, height, phase)
    side = min(width, height)
    cx = int(width / 2 + 0.35 * width * math.cos(1.3 * phase * 3))
    cy = int(height / 2 + 0.35 * height * math.sin(2.1 * phase * 3))
    colour = tuple(int(c) for c in (255 * (0.5 + 0.5 * math.sin(phase * 5 + k)) for k in (0, 2, 4)))
    cv2.circle(rgb, (cx, cy), max(2, side // 7), colour, -1, cv2.LINE_AA)
    angle = math.degrees(phase * 4)
    box = cv2.boxPoints(((width * 0.5, height * 0.5), (side * 0.7, side * 0.08), angle)).astype(np.int32)
    cv2.fillPoly(rgb, [box], (255, 255, 255), cv2.LINE_AA)
    band = int((index * 4) % (height + 40)) - 20
    rows = slice(max(0, band), max(0, band + 12))
    rgb[rows] = 255 - rgb[rows]
    return rgb


def _colour_field(width: int, height: int, phase: float) -> np.ndarray:
    """The drifting background, (H, W, 3) uint8: red a wave along x, green along y, blue along the diagonal.

    Every wave is smooth (at most 1.5 periods across the frame), so the field is computed on a grid a quarter
    the size and resized bilinearly: off by a level or two from computing every pixel, at a fraction of the
    cost (the full computation took ~5 ms of a 640x480 frame, ~15 % of a core at 30 fps)."""
    import cv2

    small_w, small_h = max(2, width // 4), max(2, height // 4)
    x = np.linspace(0.0, 1.0, small_w, dtype=np.float32)
    y = np.linspace(0.0, 1.0, small_h, dtype=np.float32)[:, None]
    field = np.empty((small_h, small_w, 3), np.float32)
    field[:, :, 0] = np.sin(2 * math.pi * (x + 0.3 * math.sin(phase)) + phase)
    field[:, :, 1] = np.sin(2 * math.pi * 1.5 * y - 2 * phase)
    field[:, :, 2] = np.sin(2 * math.pi * 0.7 * (x + y) + 3 * phase)
    small = (100 + 100 * field).astype(np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def make(arg: str = "", size: tuple[int, int] | None = None, fps: float = 30.0, **_options) -> PatternSource:
    if arg:
        raise SourceUnavailable(f"pattern takes no argument (got {arg!r}); use --source pattern")
    return PatternSource(size=size, fps=fps)
