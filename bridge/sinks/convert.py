"""One conversion per published frame: RGB from the engine -> the pixel layout a transport wants, with alpha.

Every platform sink (Spout, Syphon, NDI) hands its transport a different layout:

=========  ===============================  ==============================================
layout     bytes per pixel                  used by
=========  ===============================  ==============================================
``rgba``   R G B A                          Spout (``GL_RGBA``), Syphon (``MTLPixelFormatRGBA8Unorm``)
``bgra``   B G R A                          NDI (``FOURCC_VIDEO_TYPE_BGRA``)
``uyvy``   U Y0 V Y1 per pixel *pair*       NDI (``FOURCC_VIDEO_TYPE_UYVY``, 4:2:2, no alpha)
=========  ===============================  ==============================================

The alpha channel comes from the ``alpha.*`` rows of the parameter table (read live, once per frame):
``opaque`` (255), ``luma`` (a luminance key between ``alpha.luma_low`` and ``alpha.luma_high``) or ``mask``
(a greyscale image scaled to the output). Why OpenCV and not plain numpy slicing: writing 3 of 4 interleaved
bytes through numpy strides costs 7-37 ms at 1920x1080 on these machines, ``cv2.cvtColor`` ~1 ms
(``vrbridge bench sinks`` has the figures); cv2 is already a core dependency.

GPU seam: :func:`as_host_rgb` is the one place a frame may arrive as a torch tensor (on any device); it is
copied to host memory here. A zero-copy CUDA-OpenGL path for Spout's ``sendTexture`` is *not* implemented.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Mapping

import numpy as np

log = logging.getLogger(__name__)

LAYOUTS = ("rgba", "bgra", "uyvy")
ALPHA_MODES = ("opaque", "luma", "mask")

# Limited-range ("video") Rec.709 RGB -> Y'CbCr, rows Y, Cb, Cr (offsets Y +16, Cb/Cr +128). Measured, not
# assumed: the NDI 6.3 runtime decodes UYVY as Rec.709 at every size, SD included (a Rec.601 frame came back
# ~5 levels off per channel at 320x240..1024x576); tests/test_sinks_ndi.py checks it against the real runtime.
_REC709 = np.array([[46.559, 156.629, 15.812], [-25.664, -86.336, 112.0], [112.0, -101.730, -10.270]]) / 255.0
_YUV_OFFSET = np.array([16.0, 128.0, 128.0])


def as_host_rgb(image: Any) -> np.ndarray:
    """The frame as a C-contiguous (H, W, 3) uint8 numpy array, or a ValueError saying what is wrong.

    A torch tensor (any device, (H, W, 3) uint8) is accepted and copied to the host: this is the seam where a
    future GPU-interop sink would take the tensor *before* the copy instead.
    """
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # torch.Tensor, without importing torch
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ValueError(f"frame must be a numpy array or torch tensor, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"frame is empty: {image.shape}")
    return np.ascontiguousarray(image)


@dataclasses.dataclass(frozen=True)
class AlphaSettings:
    """The ``alpha.*`` parameters one frame is converted with."""

    mode: str = "opaque"
    mask: str = ""
    luma_low: float = 0.0
    luma_high: float = 1.0
    invert: bool = False

    @classmethod
    def from_params(cls, params: Any) -> "AlphaSettings":
        """From a ParamStore, a snapshot mapping, or None (opaque)."""
        if params is None:
            return cls()
        values: Mapping[str, Any] = params.snapshot() if hasattr(params, "snapshot") else params
        return cls(mode=str(values.get("alpha.mode", "opaque")), mask=str(values.get("alpha.mask", "")),
                   luma_low=float(values.get("alpha.luma_low", 0.0)),
                   luma_high=float(values.get("alpha.luma_high", 1.0)),
                   invert=bool(values.get("alpha.invert", False)))


def luma_key_table(low: float, high: float, invert: bool = False) -> np.ndarray:
    """256-entry lookup: brightness -> alpha, 0 at or below ``low``, 255 at or above ``high``, linear between."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    if high <= low:  # a hard key at ``low``
        ramp = (levels > low).astype(np.float64)
    else:
        ramp = np.clip((levels - low) / (high - low), 0.0, 1.0)
    if invert:
        ramp = 1.0 - ramp
    return np.round(ramp * 255.0).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W) uint8 brightness (OpenCV's grey: Rec.601 weights) — what the luma key keys on."""
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class MaskCache:
    """The ``alpha.mask`` image as (H, W) uint8 at the output size, loaded once per (path, mtime, size).

    A file that cannot be read changes nothing: the previous mask stays in use and ``warning`` says why.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._alpha: np.ndarray | None = None
        self._failed_key: tuple | None = None
        self.warning = ""

    def get(self, path: str, width: int, height: int) -> np.ndarray | None:
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError as exc:
            return self._keep_previous((path, None, width, height), f"alpha.mask {path!r}: {exc.strerror or exc}")
        key = (path, mtime, width, height)
        if key == self._key:
            self._failed_key, self.warning = None, ""  # back to the mask in use
            return self._alpha
        if key == self._failed_key:
            return self._alpha
        try:
            alpha = load_mask(path, width, height)
        except ValueError as exc:
            return self._keep_previous(key, str(exc))
        self._key, self._alpha, self._failed_key, self.warning = key, alpha, None, ""
        return alpha

    def _keep_previous(self, key: tuple, why: str) -> np.ndarray | None:
        if key != self._failed_key:
            log.warning("%s; keeping the previous mask", why)
        self._failed_key = key
        self.warning = why
        if self._alpha is not None and self._alpha.shape != (key[3], key[2]):
            return None  # the previous mask was for another output size: opaque until fixed
        return self._alpha


def load_mask(path: str, width: int, height: int) -> np.ndarray:
    """Read an image as alpha (H, W) uint8: its alpha channel if it has one, else its brightness; scaled to size."""
    import cv2

    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"alpha.mask {path!r}: not an image OpenCV can read")
    if image.dtype != np.uint8:  # 16-bit PNG and friends
        image = cv2.convertScaleAbs(image, alpha=255.0 / float(np.iinfo(image.dtype).max)) \
            if np.issubdtype(image.dtype, np.integer) else cv2.convertScaleAbs(image, alpha=255.0)
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, 3]
    elif image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.shape != (height, width):
        shrinking = width * height < image.shape[0] * image.shape[1]
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.ascontiguousarray(image)


class FrameConverter:
    """Converts frames to one layout, reusing its output buffer (valid until the next call: one sink thread).

    ``params`` is the live ParamStore (or a mapping, or None for opaque); its ``alpha.*`` values are read
    at every call, so a change over OSC shows on the next frame.
    """

    def __init__(self, layout: str, params: Any = None) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
        self.layout = layout
        self.params = params
        self.masks = MaskCache()
        self._out: np.ndarray | None = None
        self._lut_key: tuple | None = None
        self._lut: np.ndarray | None = None

    @property
    def warning(self) -> str:
        return self.masks.warning

    def convert(self, image: Any) -> np.ndarray:
        """(H, W, 4) uint8 for rgba/bgra, (H, W * 2) uint8 for uyvy."""
        rgb = as_host_rgb(image)
        if self.layout == "uyvy":
            return self._to_uyvy(rgb)
        alpha = self.alpha_for(rgb, AlphaSettings.from_params(self.params))
        return self._to_four_channels(rgb, alpha)

    def alpha_for(self, rgb: np.ndarray, settings: AlphaSettings) -> np.ndarray | None:
        """(H, W) uint8 alpha, or None for fully opaque (the cheap path)."""
        height, width = rgb.shape[:2]
        if settings.mode != "mask":
            self.masks.warning = ""
        if settings.mode == "luma":
            import cv2

            return cv2.LUT(luma(rgb), self._lut_for(settings.luma_low, settings.luma_high, settings.invert))
        if settings.mode == "mask" and settings.mask:
            mask = self.masks.get(settings.mask, width, height)
            if mask is None:
                return None
            return 255 - mask if settings.invert else mask
        if settings.mode == "mask":
            self.masks.warning = "alpha.mode is mask but alpha.mask is empty: publishing opaque"
        return None

    def _lut_for(self, low: float, high: float, invert: bool) -> np.ndarray:
        key = (low, high, invert)
        if key != self._lut_key:
            self._lut_key, self._lut = key, luma_key_table(low, high, invert)
        return self._lut

    def _buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        if self._out is None or self._out.shape != shape:
            self._out = np.empty(shape, np.uint8)
        return self._out

    def _to_four_channels(self, rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
        import cv2

        height, width = rgb.shape[:2]
        out = self._buffer((height, width, 4))
        code = cv2.COLOR_RGB2RGBA if self.layout == "rgba" else cv2.COLOR_RGB2BGRA
        cv2.cvtColor(rgb, code, dst=out)  # alpha = 255
        if alpha is not None:
            out[:, :, 3] = alpha
        return out

    def _to_uyvy(self, rgb: np.ndarray) -> np.ndarray:
        return rgb_to_uyvy(rgb, out=self._buffer((rgb.shape[0], rgb.shape[1] * 2)))


def rgb_to_uyvy(rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Packed 4:2:2 UYVY (H, W * 2) uint8, limited-range Rec.709 (what NDI decodes it as).

    Chroma is the mean of each horizontal pixel pair. The width must be even (UYVY packs pixel pairs).
    """
    import cv2

    height, width = rgb.shape[:2]
    if width % 2:
        raise ValueError(f"UYVY needs an even width, got {width}: choose an even --resolution or ndi.format bgra")
    transform = np.hstack([_REC709, _YUV_OFFSET[:, None]]).astype(np.float32)
    ycc = cv2.transform(rgb, transform)  # (H, W, 3) uint8, saturated and rounded
    pairs = cv2.resize(ycc, (width // 2, height), interpolation=cv2.INTER_AREA)  # mean of each pixel pair
    if out is None:
        out = np.empty((height, width * 2), np.uint8)
    packed = out.reshape(height, width // 2, 4)
    packed[:, :, 0] = pairs[:, :, 1]
    packed[:, :, 1] = ycc[:, 0::2, 0]
    packed[:, :, 2] = pairs[:, :, 2]
    packed[:, :, 3] = ycc[:, 1::2, 0]
    return out


def uyvy_to_rgb(uyvy: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_uyvy` (chroma repeated per pair): for tests and the NDI source."""
    height, width2 = uyvy.shape[:2]
    width = width2 // 2
    packed = uyvy.reshape(height, width // 2, 4).astype(np.float32)
    y = np.empty((height, width), np.float32)
    y[:, 0::2], y[:, 1::2] = packed[:, :, 1], packed[:, :, 3]
    cb = np.repeat(packed[:, :, 0], 2, axis=1)
    cr = np.repeat(packed[:, :, 2], 2, axis=1)
    ycc = np.stack([y, cb, cr], axis=-1) - _YUV_OFFSET.astype(np.float32)
    inverse = np.linalg.inv(_REC709).astype(np.float32)
    rgb = ycc @ inverse.T
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
