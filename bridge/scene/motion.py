"""Scene signals from the camera picture: motion (dense optical flow), frame difference, light and colour.

Optical flow is OpenCV's DIS (Kroeger et al. 2016, in opencv-contrib and plain OpenCV alike) at the
ultra-fast preset on a small greyscale copy of the frame: at 160x120 it costs about a millisecond, and
motion energy is a whole-frame average, so the analysis size barely changes the signal (BENCHMARKS.md).

Signals (picture convention: x to the right, y down, 0..1 across the frame):

* ``scene.motion.energy`` mean flow speed over the frame, in frame widths per second, divided by the live
  ``scene.motion.full`` (the speed that reads as 1) and clipped to 0..1. Per second, so the analysis rate
  does not change it.
* ``scene.motion.x`` / ``scene.motion.y`` direction: the mean flow vector over the mean flow speed, -1..1.
  Everything moving right gives x = 1; motion in all directions (or none) gives ~0.
* ``scene.motion.cx`` / ``scene.motion.cy`` where the motion is: the speed-weighted centroid (held while
  the scene is still).
* ``scene.diff`` mean absolute grey-level change since the previous analysed frame, 0..1 (typically < 0.1;
  use the route's input range).
* ``scene.brightness`` mean luma, ``scene.contrast`` RMS contrast (2 x std of luma, 0..1),
  ``scene.hue`` the dominant hue (0..1 around the colour wheel, weighted by saturation and value),
  ``scene.saturation`` mean saturation.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from bridge.scene.analyser import FrameAnalyser
from bridge.signals import SignalSpec

SOURCE = "scene"
DEFAULT_SIZE = (160, 120)
STILL_SPEED = 0.002  # frame widths / s below which the centroid is held (sensor noise on a still scene)
HUE_BINS = 36

SIGNALS: tuple[SignalSpec, ...] = tuple(SignalSpec(name, low, high, "", text, SOURCE) for name, low, high, text in (
    ("scene.motion.energy", 0.0, 1.0, "Mean optical-flow speed over the frame / scene.motion.full, clipped."),
    ("scene.motion.x", -1.0, 1.0, "Horizontal direction of the motion (1 = all moving right)."),
    ("scene.motion.y", -1.0, 1.0, "Vertical direction of the motion (1 = all moving down)."),
    ("scene.motion.cx", 0.0, 1.0, "Horizontal centre of the motion (0 left .. 1 right)."),
    ("scene.motion.cy", 0.0, 1.0, "Vertical centre of the motion (0 top .. 1 bottom)."),
    ("scene.diff", 0.0, 1.0, "Mean absolute grey change since the previous analysed frame."),
    ("scene.brightness", 0.0, 1.0, "Mean luma of the frame."),
    ("scene.contrast", 0.0, 1.0, "RMS contrast: 2 x standard deviation of luma."),
    ("scene.hue", 0.0, 1.0, "Dominant hue around the colour wheel (0 red, 1/3 green, 2/3 blue)."),
    ("scene.saturation", 0.0, 1.0, "Mean colour saturation."),
))


class MotionAnalysis:
    """Stateful per-frame analysis (it keeps the previous grey frame); call it from one thread only."""

    def __init__(self, size: tuple[int, int] = DEFAULT_SIZE) -> None:
        import cv2

        self.size = size
        self._cv2 = cv2
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._prev: np.ndarray | None = None
        self._prev_t = 0.0
        self._centroid = (0.5, 0.5)
        width, height = size
        self._xs = (np.arange(width, dtype=np.float32) + 0.5) / width
        self._ys = (np.arange(height, dtype=np.float32) + 0.5) / height

    def __call__(self, rgb: np.ndarray, t: float, full_speed: float = 0.25) -> dict[str, float]:
        cv2 = self._cv2
        small = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        out = colour_stats(small, grey, cv2)
        prev, dt = self._prev, t - self._prev_t
        self._prev, self._prev_t = grey, t
        if prev is None or dt <= 0:
            out.update({"scene.motion.energy": 0.0, "scene.motion.x": 0.0, "scene.motion.y": 0.0,
                        "scene.motion.cx": self._centroid[0], "scene.motion.cy": self._centroid[1],
                        "scene.diff": 0.0})
            return out
        out["scene.diff"] = float(cv2.absdiff(grey, prev).mean()) / 255.0
        flow = self._flow.calc(prev, grey, None)
        out.update(self._motion(flow, dt, full_speed))
        return out

    def _motion(self, flow: np.ndarray, dt: float, full_speed: float) -> dict[str, float]:
        width = self.size[0]
        speed = np.hypot(flow[..., 0], flow[..., 1]) / (width * dt)  # frame widths per second
        mean_speed = float(speed.mean())
        if mean_speed > 1e-9:
            vx = float(flow[..., 0].mean()) / (width * dt) / mean_speed
            vy = float(flow[..., 1].mean()) / (width * dt) / mean_speed
        else:
            vx = vy = 0.0
        if mean_speed > STILL_SPEED:
            total = float(speed.sum())
            self._centroid = (float((speed.sum(axis=0) * self._xs).sum()) / total,
                              float((speed.sum(axis=1) * self._ys).sum()) / total)
        return {"scene.motion.energy": min(1.0, mean_speed / max(full_speed, 1e-6)),
                "scene.motion.x": max(-1.0, min(1.0, vx)), "scene.motion.y": max(-1.0, min(1.0, vy)),
                "scene.motion.cx": self._centroid[0], "scene.motion.cy": self._centroid[1]}


def colour_stats(rgb: np.ndarray, grey: np.ndarray, cv2) -> dict[str, float]:
    """Brightness, RMS contrast, dominant hue and mean saturation of a small RGB frame."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # uint8: H 0..179, S and V 0..255
    hue, sat, val = hsv[..., 0], hsv[..., 1].astype(np.float32) / 255.0, hsv[..., 2].astype(np.float32) / 255.0
    weights = (sat * val).ravel()
    hist = np.bincount((hue.ravel().astype(np.int32) * HUE_BINS) // 180, weights=weights, minlength=HUE_BINS)
    dominant = (int(np.argmax(hist)) + 0.5) / HUE_BINS if hist.sum() > 1e-6 else 0.0
    luma = grey.astype(np.float32) / 255.0
    return {"scene.brightness": float(luma.mean()), "scene.contrast": min(1.0, 2.0 * float(luma.std())),
            "scene.hue": dominant, "scene.saturation": float(sat.mean())}


class SceneAnalyser(FrameAnalyser):
    """``--track scene``: :class:`MotionAnalysis` on its own thread, publishing ``scene.*``."""

    source = SOURCE

    def __init__(self, bus, size: tuple[int, int] = DEFAULT_SIZE, max_hz: float = 30.0,
                 params: Callable[[], Mapping[str, Any]] | None = None) -> None:
        super().__init__(bus, max_hz)
        self.analysis = MotionAnalysis(size)
        self._params = params

    def signal_specs(self) -> tuple[SignalSpec, ...]:
        return SIGNALS

    def analyse(self, rgb: np.ndarray, t: float) -> Mapping[str, float]:
        full = float(self._params()["scene.motion.full"]) if self._params else 0.25
        return self.analysis(rgb, t, full)

    def describe(self) -> str:
        width, height = self.analysis.size
        return f"scene: DIS optical flow + colour at {width}x{height}, at most {self.max_hz:g} Hz"
