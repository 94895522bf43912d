"""Network bending (Broad, Leymarie & Grierson 2021): deterministic transforms of one synthesis layer's features.

A bend takes the feature maps a synthesis layer produced, transforms some of their channels inside a region,
and hands them on to the next layer, so the network paints its own picture around the edit.

Where (``bend.<i>.layer``, NVIDIA's names): StyleGAN2 ``b4`` .. ``b1024``, the block's features after its
second convolution (before its ToRGB, so the block's own colour contribution is bent too); StyleGAN3
``input`` or a layer name such as ``L5_84_1024``, or just its index ``L5``. The synthesis networks call
``module.bend(x)`` at those points when it is set (:class:`Bender` sets and clears it); with no bend it is
None and the forward pass is the unbent one, operation for operation (bit-identical output, and no change to
a compiled graph until a bend is switched on).

What (``bend.<i>.kind``), with a = ``bend.<i>.amount`` in [-1, 1]; every kind is the identity at a = 0:

    rotate       about the centre by a * 180 degrees, counter-clockwise on screen (bilinear, zeros outside)
    scale        zoom about the centre by 2 ** a (a > 0 enlarges)
    translate_x  shift right by round(a * width) pixels (zeros shifted in; a < 0 shifts left)
    translate_y  shift down by round(a * height) pixels
    flip_x       blend toward the left-right mirror image by |a|
    flip_y       blend toward the upside-down image by |a|
    dilate       grey-scale dilation (max over a square), radius round(|a| * min(height, width) / 4) pixels
    erode        grey-scale erosion (min over the square), same radius
    invert       blend by |a| toward (min + max) - x, per sample and channel (the range is kept)
    threshold    blend by |a| toward the binarised map: max where x > the channel mean, else min
    ablate       multiply by 1 - |a| (a = 1 switches the channels off)

Which channels (``bend.<i>.channels``): empty or ``all``; a list of indices and ranges ``0-15,32``
(inclusive; indices beyond the layer's channels are dropped); or ``random:F`` = a seeded random fraction F
of the channels (the same ones every time: the seed is the slot number).
Which region (``bend.<i>.mask``): all, left, right, top, bottom (halves), circle (the centred disc of
diameter min(height, width)) or outside_circle; outside the region the features pass unchanged.
"""
from __future__ import annotations

import logging
import math
import re
import threading
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from bridge.params import BEND_KINDS, BEND_MASKS, BEND_SLOTS

log = logging.getLogger(__name__)

KINDS, MASKS = BEND_KINDS, BEND_MASKS
_CHANNEL_PART = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


class BendError(ValueError):
    """A bend setting that cannot apply (unknown layer, bad channel list): reported once, the bend stays off."""


# ------------------------------------------------------------------------------------------------ parsing
def parse_channels(spec: str, channels: int, seed: int = 0) -> torch.Tensor | None:
    """Channel indices (sorted, unique) a spec selects out of ``channels``; None = all of them."""
    text = (spec or "").strip().lower()
    if text in ("", "all"):
        return None
    if text.startswith("random:"):
        try:
            fraction = float(text.partition(":")[2])
        except ValueError:
            raise BendError(f"channels {spec!r}: random:F needs a fraction F in (0, 1]") from None
        if not 0.0 < fraction <= 1.0:
            raise BendError(f"channels {spec!r}: random:F needs a fraction F in (0, 1]")
        count = max(1, round(fraction * channels))
        order = torch.randperm(channels, generator=torch.Generator().manual_seed(int(seed)))
        return order[:count].sort().values
    picked: set[int] = set()
    for part in text.split(","):
        m = _CHANNEL_PART.match(part)
        if not m:
            raise BendError(f"channels {spec!r}: use all, a list like 0-15,32, or random:0.5")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise BendError(f"channels {spec!r}: range {part.strip()} runs backwards")
        picked.update(range(lo, min(hi, channels - 1) + 1))
    if not picked:
        raise BendError(f"channels {spec!r}: none of these exist (this layer has {channels} channels)")
    return torch.tensor(sorted(picked), dtype=torch.long)


def region_mask(mask: str, height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor | None:
    """(1, 1, H, W) 0/1 mask of a region; None for all."""
    if mask == "all":
        return None
    if mask not in MASKS:
        raise BendError(f"mask {mask!r}: one of {', '.join(MASKS)}")
    ys = torch.arange(height, device=device, dtype=torch.float32).view(-1, 1) + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, -1) + 0.5
    if mask == "left":
        m = (xs < width / 2).expand(height, width)
    elif mask == "right":
        m = (xs >= width / 2).expand(height, width)
    elif mask == "top":
        m = (ys < height / 2).expand(height, width)
    elif mask == "bottom":
        m = (ys >= height / 2).expand(height, width)
    else:
        radius = min(height, width) / 2
        inside = (xs - width / 2) ** 2 + (ys - height / 2) ** 2 <= radius ** 2
        m = inside if mask == "circle" else ~inside
    return m.to(dtype).view(1, 1, height, width)


# ------------------------------------------------------------------------------------------- transforms
def _affine(x: torch.Tensor, matrix: list[list[float]]) -> torch.Tensor:
    """Resample x at matrix @ (u, v, 1) (normalised coordinates, align_corners=False): bilinear, zero outside."""
    theta = torch.tensor(matrix, dtype=torch.float32, device=x.device).unsqueeze(0).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


def _shift(x: torch.Tensor, pixels: int, dim: int) -> torch.Tensor:
    """Shift along dim (2 = down, 3 = right) by ``pixels`` (negative: up / left), zeros shifted in."""
    size = x.shape[dim]
    if pixels == 0:
        return x
    if abs(pixels) >= size:
        return torch.zeros_like(x)
    out = torch.zeros_like(x)
    if pixels > 0:
        out.narrow(dim, pixels, size - pixels).copy_(x.narrow(dim, 0, size - pixels))
    else:
        out.narrow(dim, 0, size + pixels).copy_(x.narrow(dim, -pixels, size + pixels))
    return out


def _max_filter(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Running max over windows of 2r + 1 samples along ``dim`` (-inf outside), in log2(2r + 1) passes.

    Doubling: after k passes m[i] = max(p[i : i + 2**k]) of the padded p; a window of any length is then the
    max of two overlapping power-of-two windows. Equal to max_pool with that kernel, and several times
    faster on the CPU even for small r; large r (big maps at full amount) stays cheap.
    """
    n, size = x.shape[dim], 2 * r + 1
    pad = [0, 0, r, r] if dim == 2 else [r, r, 0, 0]
    m = F.pad(x, pad, value=float("-inf"))
    width = 1
    while 2 * width <= size:
        length = m.shape[dim] - width
        m = torch.maximum(m.narrow(dim, 0, length), m.narrow(dim, width, length))
        width *= 2
    return torch.maximum(m.narrow(dim, 0, n), m.narrow(dim, size - width, n))


def _channel_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.flatten(2)
    return flat.amin(dim=2)[..., None, None], flat.amax(dim=2)[..., None, None]


def bend_features(x: torch.Tensor, kind: str, amount: float) -> torch.Tensor:
    """``kind`` applied with ``amount`` to every channel of x (N, C, H, W); a new tensor (see the module doc)."""
    a = float(amount)
    if kind not in KINDS:
        raise BendError(f"kind {kind!r}: one of {', '.join(KINDS)}")
    if a == 0.0:
        return x.clone()  # every kind's identity, exactly (resampling would round the coordinates)
    height, width = x.shape[-2], x.shape[-1]
    if kind == "rotate":
        t = math.radians(a * 180.0)
        c, s = math.cos(t), math.sin(t)
        return _affine(x, [[c, -s, 0.0], [s, c, 0.0]])
    if kind == "scale":
        k = 2.0 ** -a
        return _affine(x, [[k, 0.0, 0.0], [0.0, k, 0.0]])
    if kind == "translate_x":
        return _shift(x, round(a * width), 3)
    if kind == "translate_y":
        return _shift(x, round(a * height), 2)
    if kind in ("flip_x", "flip_y"):
        return torch.lerp(x, x.flip(3 if kind == "flip_x" else 2), abs(a))
    if kind in ("dilate", "erode"):
        r = round(abs(a) * min(height, width) / 4)
        if r == 0:
            return x.clone()
        sign = 1.0 if kind == "dilate" else -1.0  # erosion = -dilation(-x)
        # The max over a square is the max over its rows of the max over its columns.
        return sign * _max_filter(_max_filter(sign * x, r, 2), r, 3)
    if kind == "invert":
        lo, hi = _channel_range(x)
        return torch.lerp(x, lo + hi - x, abs(a))
    if kind == "threshold":
        lo, hi = _channel_range(x)
        mean = x.mean(dim=(2, 3), keepdim=True)
        return torch.lerp(x, torch.where(x > mean, hi, lo), abs(a))
    if kind == "ablate":
        return x * (1.0 - abs(a))
    raise BendError(f"kind {kind!r}: one of {', '.join(KINDS)}")


class Bend:
    """One configured bend: kind, amount, channel selection and region; ``__call__(x)`` bends a feature map."""

    def __init__(self, kind: str, amount: float, channels: str = "", mask: str = "all", seed: int = 0):
        if kind not in KINDS:
            raise BendError(f"kind {kind!r}: one of {', '.join(KINDS)}")
        if mask not in MASKS:
            raise BendError(f"mask {mask!r}: one of {', '.join(MASKS)}")
        self.kind, self.amount, self.channels, self.mask, self.seed = kind, float(amount), channels, mask, seed
        self._index_cache: dict[tuple, Any] = {}
        self._mask_cache: dict[tuple, Any] = {}

    def _index(self, channels: int, device) -> torch.Tensor | None:
        key = (channels, str(device))
        if key not in self._index_cache:
            index = parse_channels(self.channels, channels, self.seed)
            self._index_cache[key] = None if index is None else index.to(device)
        return self._index_cache[key]

    def _region(self, height: int, width: int, device, dtype) -> torch.Tensor | None:
        key = (height, width, str(device), dtype)
        if key not in self._mask_cache:
            self._mask_cache[key] = region_mask(self.mask, height, width, device, dtype)
        return self._mask_cache[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        index = self._index(x.shape[1], x.device)
        part = x if index is None else x.index_select(1, index)
        bent = bend_features(part, self.kind, self.amount)
        region = self._region(x.shape[2], x.shape[3], x.device, x.dtype)
        if region is not None:
            bent = part + region * (bent - part)
        if index is None:
            return bent
        out = x.clone()
        out.index_copy_(1, index, bent)
        return out


# --------------------------------------------------------------------------------- where bends go in a net
def bend_points(generator) -> dict[str, torch.nn.Module]:
    """NVIDIA name -> the module whose ``bend`` attribute the synthesis forward consults."""
    synthesis = generator.synthesis
    if not hasattr(synthesis, "block_resolutions") and not hasattr(synthesis, "layer_names"):
        return {}  # not our torch network (e.g. ONNX Runtime's graph): nothing to bend
    if hasattr(synthesis, "block_resolutions"):  # StyleGAN2
        return {f"b{res}": getattr(synthesis, f"b{res}") for res in synthesis.block_resolutions}
    points = {"input": synthesis.input}
    points.update({name: getattr(synthesis, name) for name in synthesis.layer_names})
    return points


def resolve_layer(name: str, points: Mapping[str, Any]) -> str:
    """The bend point a user's layer name means: exact, or a StyleGAN3 index prefix like ``L5``."""
    text = name.strip()
    if text in points:
        return text
    matches = [p for p in points if p.startswith(text + "_")]
    if len(matches) == 1:
        return matches[0]
    raise BendError(f"layer {name!r}: not in this network (layers: {', '.join(points)})")


def _chain(bends: list[Bend]) -> Callable[[torch.Tensor], torch.Tensor]:
    if len(bends) == 1:
        return bends[0]

    def run(x: torch.Tensor) -> torch.Tensor:
        for bend in bends:
            x = bend(x)
        return x

    return run


class Bender:
    """Reads the ``bend.<i>.*`` rows each frame and sets the synthesis network's bend points accordingly.

    Used as an engine manipulation (``apply(generator, snapshot, keypoints, now)`` before synthesis). A bend
    is active when enabled, its amount is non-zero and its layer names a point of this network; a setting
    that cannot apply is reported once per distinct value and that bend stays off. The show goes on: this
    never raises.
    """

    def __init__(self) -> None:
        self._generator = None
        self._points: dict[str, torch.nn.Module] = {}
        self._key: tuple | None = None
        self._bends: dict[int, Bend] = {}
        self._reported: set[tuple] = set()
        self._lock = threading.Lock()
        self.active = 0

    def apply(self, generator, snapshot: Mapping[str, Any], keypoints=None, now: float = 0.0) -> None:
        if generator is not self._generator:
            self.clear()
            self._generator = generator
            self._points = bend_points(generator)
        wanted = self._wanted(snapshot)
        key = tuple((i, s["kind"], s["amount"], s["channels"], s["mask"], s["layer"]) for i, s in wanted)
        if key == self._key:
            return
        self._key = key
        plan: dict[str, list[Bend]] = {}
        for i, s in wanted:
            try:
                layer = resolve_layer(s["layer"], self._points)
                bend = self._bends.get(i)
                if bend is None or (bend.kind, bend.channels, bend.mask) != (s["kind"], s["channels"], s["mask"]):
                    bend = self._bends[i] = Bend(s["kind"], s["amount"], s["channels"], s["mask"], seed=i)
                    parse_channels(s["channels"], 1 << 16, seed=i)  # syntax check now, not in the forward pass
                bend.amount = s["amount"]
            except BendError as exc:
                self._report(i, exc)
                continue
            plan.setdefault(layer, []).append(bend)
        for name, module in self._points.items():
            module.bend = _chain(plan[name]) if name in plan else None
        self.active = sum(len(b) for b in plan.values())

    def clear(self) -> None:
        """Take every bend out of the network (its forward is the unbent one again)."""
        for module in self._points.values():
            module.bend = None
        self._key, self.active = None, 0

    def features(self) -> dict[str, float]:
        return {"bends_active": float(self.active)}

    @staticmethod
    def _wanted(snapshot: Mapping[str, Any]) -> list[tuple[int, dict]]:
        out = []
        for i in range(BEND_SLOTS):
            p = f"bend.{i}."
            amount = float(snapshot.get(p + "amount", 0.0))
            layer = str(snapshot.get(p + "layer", "")).strip()
            if not snapshot.get(p + "enable", False) or amount == 0.0 or not layer:
                continue
            out.append((i, {"kind": snapshot.get(p + "kind", KINDS[0]), "amount": amount, "layer": layer,
                            "channels": str(snapshot.get(p + "channels", "")), "mask": snapshot.get(p + "mask", "all")}))
        return out

    def _report(self, slot: int, exc: BendError) -> None:
        key = (slot, str(exc))
        if key not in self._reported:
            self._reported.add(key)
            log.warning("bend.%d: %s; this bend stays off", slot, exc)
