"""Small picture conversions shared by the engine and the sinks: tensor -> uint8 RGB, output sizing, side by side.

Kept here (and nowhere else) so every sink sees exactly the same pixels the engine made, and so the sizing
rules (letterbox / crop / stretch) have one definition.
"""
from __future__ import annotations

import re

import numpy as np

FIT_MODES = ("letterbox", "crop", "stretch")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX*]\s*(\d+)\s*$")
MAX_SIDE = 8192


def parse_size(text: str) -> tuple[int, int] | None:
    """``"1920x1080"`` -> ``(1920, 1080)`` (width, height); ``""`` -> None. Raises ValueError with the rule."""
    if text is None or str(text).strip() == "":
        return None
    match = _SIZE_RE.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not WIDTHxHEIGHT (e.g. 1920x1080)")
    width, height = int(match.group(1)), int(match.group(2))
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"{text!r}: each side must be 1..{MAX_SIDE} pixels")
    return width, height


def tensor_to_rgb(img) -> np.ndarray:
    """A generator image (1, C, H, W) or (C, H, W) float in [-1, 1] -> (H, W, 3) uint8 RGB, C-contiguous.

    Uses NVIDIA's own mapping (x * 127.5 + 128, clamped) so frames match their tools pixel for pixel.
    Grey (C=1) is repeated to RGB; extra channels (alpha) are dropped.
    """
    import torch

    if img.ndim == 4:
        img = img[0]
    img = (img.detach().float() * 127.5 + 128.0).clamp(0, 255).to(torch.uint8)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    elif img.shape[0] > 3:
        img = img[:3]
    return np.ascontiguousarray(img.permute(1, 2, 0).cpu().numpy())


def fit(rgb: np.ndarray, size: tuple[int, int] | None, mode: str = "letterbox") -> np.ndarray:
    """Resize ``rgb`` (H, W, 3) to ``size`` = (width, height): letterbox (pad black), crop (fill) or stretch."""
    if size is None:
        return rgb
    width, height = size
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    if mode not in FIT_MODES:
        raise ValueError(f"fit mode {mode!r} is not one of {', '.join(FIT_MODES)}")
    if mode == "stretch":
        return _resize(rgb, width, height)
    scale = min(width / w, height / h) if mode == "letterbox" else max(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    scaled = _resize(rgb, new_w, new_h)
    if mode == "crop":
        x0, y0 = (new_w - width) // 2, (new_h - height) // 2
        return np.ascontiguousarray(scaled[y0:y0 + height, x0:x0 + width])
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - new_w) // 2, (height - new_h) // 2
    out[y0:y0 + new_h, x0:x0 + new_w] = scaled
    return out


def limit_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` shrunk (aspect kept) so its longer side is at most ``max_side``; unchanged when it fits."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    return _resize(rgb, max(1, round(w * scale)), max(1, round(h * scale)))


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    shrinking = width * height < w * h
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interp)


def side_by_side(left: np.ndarray, right: np.ndarray | None) -> np.ndarray:
    """``left`` and ``right`` next to each other at ``left``'s height (right letterboxed to keep its aspect)."""
    if right is None:
        return left
    h = left.shape[0]
    rh, rw = right.shape[:2]
    width = max(1, round(rw * h / rh))
    return np.ascontiguousarray(np.concatenate([left, _resize(right, width, h)], axis=1))


def rgb_to_bgr(rgb: np.ndarray) -> np.ndarray:
    """For OpenCV writers (JPEG, PNG, mp4), which take BGR."""
    return np.ascontiguousarray(rgb[:, :, ::-1])
