"""What every encoder backbone is: a frozen image network that returns named intermediate activations ("taps").

The encoder (``bridge.encoder.encoder``) only talks to this interface, so another network (MobileNetV3,
EfficientNet-B0, DINOv2: the paper's future work) is one new file that subclasses :class:`Backbone`, gives
its :class:`WeightsSpec`, adds a line to :data:`BACKBONES` and its name to the choices of the
``encoder_backbone`` row in ``bridge/params.py`` (kept import-light, so it cannot read this registry; a test
checks the two agree). Nothing else changes.

A backbone:
* takes a float batch (N, 3, H, W) already normalised with its own ``mean``/``std`` (the encoder does that,
  once, from uint8 RGB), and any H, W it supports (``min_size``);
* returns ``{tap: tensor}`` for exactly the taps asked for, running no further than the deepest of them;
  spatial taps are (N, C, h, w), vector taps (fully connected layers) are (N, C);
* is built *truncated*: layers after the deepest tap are never created, so a conv4_1 encoder neither holds
  nor loads the 120 M classifier weights.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Mapping, Sequence

import torch


class EncoderError(RuntimeError):
    """The encoder cannot be built or cannot take this input. The message is one line a user can act on."""


class EncoderInputError(EncoderError, ValueError):
    """A frame or setting the encoder refuses (wrong shape/dtype, bad size): nothing was changed."""


@dataclasses.dataclass(frozen=True)
class WeightsSpec:
    """Where a backbone's pretrained weights come from (see ``bridge.encoder.weights``).

    ``filename`` is the name torch's hub cache uses (``<hub>/checkpoints/<filename>``); torchvision puts the
    first 8 hex digits of the file's SHA-256 in it, which ``load_state_dict_from_url(check_hash=True)`` checks.
    """

    filename: str
    url: str
    description: str


class Backbone(torch.nn.Module):
    """Base class of a frozen feature extractor with named taps."""

    name = "backbone"
    #: every tap name this backbone offers, shallow to deep (the order defines "deepest")
    TAPS: tuple[str, ...] = ()
    #: ImageNet normalisation by default; a backbone trained otherwise overrides these
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    #: the smallest input side the deepest tap still has at least one position for
    min_size: int = 32
    weights_spec: WeightsSpec | None = None

    def tap_channels(self, tap: str) -> int:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def check_taps(cls, taps: Sequence[str]) -> tuple[str, ...]:
        """Return ``taps`` as a tuple, or raise EncoderError naming the unknown tap and what exists."""
        taps = tuple(taps)
        if not taps:
            raise EncoderError(f"{cls.name}: no taps given (e.g. conv4_1)")
        for tap in taps:
            if tap not in cls.TAPS:
                raise EncoderError(f"{cls.name}: unknown tap {tap!r}; taps are {', '.join(cls.TAPS)}")
        if len(set(taps)) != len(taps):
            raise EncoderError(f"{cls.name}: a tap is listed twice in {', '.join(taps)}")
        return taps

    @classmethod
    def deepest(cls, taps: Sequence[str]) -> str:
        return max(taps, key=cls.TAPS.index)

    def load_weights(self, state: Mapping[str, torch.Tensor], origin: str) -> None:
        """Check ``state`` strictly against this backbone's full published format, then copy what it uses."""
        raise NotImplementedError

    def init_random(self, seed: int) -> None:
        """Seeded random initialisation (the demo encoder when no pretrained weights exist)."""
        raise NotImplementedError


# backbone name -> module defining ``BACKBONE`` (a Backbone subclass); imported only when asked for.
BACKBONES: dict[str, str] = {
    "vgg16": "bridge.encoder.vgg16",
}


def backbone_class(name: str) -> type[Backbone]:
    if name not in BACKBONES:
        raise EncoderError(f"unknown encoder backbone {name!r}; available: {', '.join(BACKBONES)}")
    return importlib.import_module(BACKBONES[name]).BACKBONE
