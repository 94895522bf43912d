"""Scene signals from a real video file (written with OpenCV, read back through the video source): a still
scene gives motion energy ~0, then a moving object clearly more, with the flow direction's sign right."""
from __future__ import annotations

import numpy as np
import pytest

from bridge.scene.motion import MotionAnalysis, colour_stats
from bridge.sources.video import VideoSource
from conftest import read_frames

W, H, FPS = 320, 240, 30


def write_video(path, step: tuple[int, int], still: int = 20, moving: int = 20) -> None:
    """``still`` frames of a textured scene, then a textured box moving ``step`` px per frame over it."""
    import cv2

    rng = np.random.RandomState(0)
    background = cv2.GaussianBlur((rng.rand(H, W, 3) * 255).astype(np.uint8), (7, 7), 0)
    box = cv2.GaussianBlur((rng.rand(80, 80, 3) * 255).astype(np.uint8), (3, 3), 0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    x, y = 80, 80
    for i in range(still + moving):
        frame = background.copy()
        if i >= still:
            x, y = x + step[0], y + step[1]
        frame[y:y + 80, x:x + 80] = box
        writer.write(frame)
    writer.release()


def analyse_video(path) -> list[dict[str, float]]:
    source = VideoSource(str(path))
    source.open()
    try:
        frames = read_frames(source, 40)
    finally:
        source.close()
    assert len(frames) == 40
    motion = MotionAnalysis((160, 120))
    return [motion(f.rgb, f.index / FPS) for f in frames]  # capture times of a steady 30 fps camera


@pytest.mark.parametrize("step, axis, sign", [((4, 0), "x", 1), ((0, -3), "y", -1)])
def test_still_then_moving_object(tmp_path, step, axis, sign):
    path = tmp_path / "scene.avi"
    write_video(path, step)
    values = analyse_video(path)
    still, moving = values[2:19], values[22:40]
    assert max(v["scene.motion.energy"] for v in still) < 0.02
    assert max(v["scene.diff"] for v in still) < 0.01
    energy = np.median([v["scene.motion.energy"] for v in moving])
    assert energy > 0.1, energy  # an 80 px box at 90-120 px/s over a 320 px frame
    direction = np.median([v[f"scene.motion.{axis}"] for v in moving])
    assert direction * sign > 0.5, direction
    cx = np.median([v["scene.motion.cx"] for v in moving])
    assert 0.3 < cx < 0.7  # the box moves around the middle-left of the frame
    assert np.median([v["scene.diff"] for v in moving]) > 0.005


def test_colour_signals():
    import cv2

    red = np.zeros((60, 80, 3), np.uint8)
    red[..., 0] = 200
    grey = cv2.cvtColor(red, cv2.COLOR_RGB2GRAY)
    stats = colour_stats(red, grey, cv2)
    assert stats["scene.hue"] < 0.05 or stats["scene.hue"] > 0.95
    assert stats["scene.saturation"] == pytest.approx(1.0)
    assert stats["scene.contrast"] == pytest.approx(0.0, abs=1e-6)
    blue_half = red.copy()
    blue_half[:, 40:] = (0, 0, 255)
    stats = colour_stats(blue_half, cv2.cvtColor(blue_half, cv2.COLOR_RGB2GRAY), cv2)
    assert stats["scene.contrast"] > 0.05
    green = np.zeros((60, 80, 3), np.uint8)
    green[..., 1] = 180
    assert colour_stats(green, cv2.cvtColor(green, cv2.COLOR_RGB2GRAY), cv2)["scene.hue"] == pytest.approx(1 / 3, abs=0.03)
    white = np.full((60, 80, 3), 255, np.uint8)
    assert colour_stats(white, white[..., 0], cv2)["scene.brightness"] == pytest.approx(1.0)
