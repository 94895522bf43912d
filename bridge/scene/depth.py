"""``--track depth``: Depth-Anything-V2-Small on the camera frames, as ``scene.depth.*`` signals.

The weights are found the way the encoder's VGG16 weights are (:mod:`bridge.encoder.weights`):

1. an explicit file, ``--depth-weights FILE`` (the official ``depth_anything_v2_vits.pth``, or a
   ``.safetensors`` with the same names); a named file that cannot be used is an error, never skipped;
2. torch's hub cache, ``<torch hub>/checkpoints/depth_anything_v2_vits.pth``;
3. only with ``--allow-download``: the authors' published file, checked against a pinned SHA-256 before it is
   used. No SHA-256 is pinned yet (none was stated by a public source we could read), so the download is
   refused with a line that says how to fetch and pass the file by hand: an unchecked file is never used.

Without weights, ``--depth-demo`` (or the embedded demo network) runs a seeded random-init network and says
so: the signals then move with the picture but mean nothing about depth.

The network gives relative inverse depth (larger = nearer) with an unknown scale and shift per image, so each
frame is normalised between its 2nd and 98th percentiles into a *nearness* n in 0..1. Signals:
``scene.depth.mean`` = mean of 1 - n (0 = everything near, 1 = everything far; the paper's "normalised
average depth of the scene"), ``scene.depth.near`` = fraction of the frame with n above the live
``scene.depth.near_threshold``, and ``scene.depth.cx`` / ``cy`` = the centroid of that near region.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from bridge.scene.analyser import FrameAnalyser
from bridge.signals import SignalSpec

log = logging.getLogger(__name__)
SOURCE = "depth"
DEFAULT_SIDE = 252  # 18 x 14: the shorter side the frame is resized to; 518 is the authors' (slow on a CPU)
DEMO_SEED = 0
LOW_PERCENTILE, HIGH_PERCENTILE = 2.0, 98.0

SIGNALS: tuple[SignalSpec, ...] = tuple(SignalSpec(name, 0.0, 1.0, "", text, SOURCE) for name, text in (
    ("scene.depth.mean", "Normalised average depth of the scene (0 all near .. 1 all far)."),
    ("scene.depth.near", "Fraction of the frame nearer than scene.depth.near_threshold."),
    ("scene.depth.cx", "Horizontal centre of the near region (0 left .. 1 right)."),
    ("scene.depth.cy", "Vertical centre of the near region (0 top .. 1 bottom)."),
))


class DepthError(RuntimeError):
    """The depth network cannot be set up as asked. The message is the one line the user sees."""


@dataclasses.dataclass(frozen=True)
class DepthWeights:
    filename: str = "depth_anything_v2_vits.pth"
    url: str = "https://huggingface.co/depth-anything/Depth-Anything-V2-Small/resolve/main/depth_anything_v2_vits.pth"
    page: str = "https://huggingface.co/depth-anything/Depth-Anything-V2-Small"
    sha256: str = ""  # pin only from a public statement of the publisher (the model page lists it per file)


WEIGHTS = DepthWeights()


def hub_cache_path(spec: DepthWeights = WEIGHTS) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / spec.filename


def find_depth_weights(explicit: str | None = None, allow_download: bool = False,
                       spec: DepthWeights = WEIGHTS) -> tuple[Mapping, str]:
    """(state dict, where it came from), or DepthError saying where we looked and how to fix it."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise DepthError(f"depth weights file not found: {path}")
        return _read(path), f"file {path}"
    cached = hub_cache_path(spec)
    if cached.is_file():
        return _read(cached, fix="; fix: delete that cached file"), f"hub cache {cached}"
    if allow_download:
        return _read(download(spec, cached)), f"download {cached}"
    raise DepthError(f"no Depth-Anything-V2-Small weights found (looked in: --depth-weights not given; torch hub "
                     f"cache {cached}); fix: pass --depth-weights FILE ({spec.filename} from {spec.page}), or "
                     f"--depth-demo to try a random-init network")


def download(spec: DepthWeights, dest: Path) -> Path:
    """Fetch the published file into the hub cache, refusing it unless its SHA-256 matches the pinned one."""
    if not spec.sha256:
        raise DepthError(f"--allow-download: no SHA-256 is pinned for {spec.filename}, so it is not fetched "
                         f"unchecked; fix: download it from {spec.page}, compare its SHA-256 with the one shown "
                         f"there, and pass --depth-weights FILE (or put it at {dest})")
    import torch

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    os.close(fd)
    try:
        torch.hub.download_url_to_file(spec.url, tmp, hash_prefix=None, progress=True)
        digest = _sha256(Path(tmp))
        if digest != spec.sha256:
            raise DepthError(f"downloaded {spec.filename} has SHA-256 {digest}, expected {spec.sha256}: not used")
        os.replace(tmp, dest)
    except DepthError:
        raise
    except Exception as exc:  # URLError, HTTPError, disk full...
        raise DepthError(f"could not download {spec.url}: {exc}; fix: fetch it yourself and pass "
                         f"--depth-weights FILE") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read(path: Path, fix: str = "") -> Mapping:
    from bridge.encoder.backbone import EncoderError
    from bridge.encoder.weights import read_state_dict

    try:
        return read_state_dict(path, what="depth weights")
    except EncoderError as exc:
        raise DepthError(f"{exc}{fix}") from None


def load_depth_model(weights: str | None = None, allow_download: bool = False, demo: bool = False,
                     device: str = "cpu"):
    """(model in eval mode on ``device``, description, is_demo). A named file is never replaced by the demo."""
    import torch

    from bridge.scene.depth_model import DepthAnythingV2Small

    model = DepthAnythingV2Small()
    try:
        state, origin = find_depth_weights(weights, allow_download)
    except DepthError as exc:
        if not demo or weights:
            raise
        log.warning("depth: %s -- using the random-init demo depth network instead (NOT pretrained)", exc)
        model.init_random(DEMO_SEED)
        return model.to(device).eval().requires_grad_(False), "random-init demo (NOT pretrained)", True
    try:
        model.load_checkpoint(state)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise DepthError(f"{origin} is not a Depth-Anything-V2-Small (ViT-S) checkpoint: {first}") from None
    return model.to(device).eval().requires_grad_(False), f"Depth-Anything-V2-Small from {origin}", False


class DepthAnalysis:
    """Frame -> nearness map -> signals. Call from one thread."""

    def __init__(self, model, side: int = DEFAULT_SIDE, device: str = "cpu") -> None:
        import torch

        from bridge.scene.depth_model import MEAN, STD

        self.model = model
        self.side = int(side)
        self.device = device
        self._torch = torch
        self._mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(STD).view(1, 3, 1, 1)

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        """(h, w) float32 relative inverse depth at the network's input size (shorter side ``side``)."""
        import cv2

        from bridge.scene.depth_model import input_size

        height, width = input_size(rgb.shape[0], rgb.shape[1], self.side)
        small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
        torch = self._torch
        x = torch.from_numpy(small).permute(2, 0, 1)[None].float().div_(255.0)
        from bridge.device import torch_turn

        with torch_turn(self.device), torch.inference_mode():  # MPS: one thread at a time (bridge.device)
            x = ((x - self._mean) / self._std).to(self.device)
            return self.model(x)[0].float().cpu().numpy()

    def __call__(self, rgb: np.ndarray, near_threshold: float = 0.6) -> dict[str, float]:
        return depth_signals(self.infer(rgb), near_threshold)


def nearness(disparity: np.ndarray) -> np.ndarray:
    """Per-frame 0..1 nearness (1 = nearest) between the 2nd and 98th percentile; 0.5 for a flat map."""
    low, high = np.percentile(disparity, (LOW_PERCENTILE, HIGH_PERCENTILE))
    if high - low < 1e-6 * max(1.0, abs(float(high))):
        return np.full(disparity.shape, 0.5, np.float32)
    return np.clip((disparity - low) / (high - low), 0.0, 1.0).astype(np.float32)


def depth_signals(disparity: np.ndarray, near_threshold: float) -> dict[str, float]:
    n = nearness(disparity)
    near = n > near_threshold
    weights = np.where(near, n, 0.0) if near.any() else n
    total = float(weights.sum())
    if total > 0:
        height, width = n.shape
        cx = float((weights.sum(axis=0) * ((np.arange(width) + 0.5) / width)).sum()) / total
        cy = float((weights.sum(axis=1) * ((np.arange(height) + 0.5) / height)).sum()) / total
    else:
        cx = cy = 0.5
    return {"scene.depth.mean": float(1.0 - n.mean()), "scene.depth.near": float(near.mean()),
            "scene.depth.cx": cx, "scene.depth.cy": cy}


class DepthAnalyser(FrameAnalyser):
    """The depth network on its own thread at most ``max_hz`` times a second (newest frame wins)."""

    source = SOURCE

    def __init__(self, bus, model, description: str, is_demo: bool, side: int = DEFAULT_SIDE,
                 max_hz: float = 10.0, device: str = "cpu",
                 params: Callable[[], Mapping[str, Any]] | None = None) -> None:
        super().__init__(bus, max_hz)
        self.analysis = DepthAnalysis(model, side, device)
        self.model_description = description
        self.is_demo = is_demo
        self._params = params

    def signal_specs(self) -> tuple[SignalSpec, ...]:
        return SIGNALS

    def analyse(self, rgb: np.ndarray, t: float) -> Mapping[str, float]:
        threshold = float(self._params()["scene.depth.near_threshold"]) if self._params else 0.6
        return self.analysis(rgb, threshold)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "demo": self.is_demo}

    def describe(self) -> str:
        note = " -- DEMO: random weights, the depth signals are not meaningful" if self.is_demo else ""
        return (f"depth: {self.model_description}, shorter side {self.analysis.side} px, "
                f"at most {self.max_hz:g} Hz{note}")
