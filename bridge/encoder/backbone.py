"""What every encoder backbone is: a frozen image network that returns named intermediate activations ("taps").

The encoder (``bridge.encoder.encoder``) only talks to this interface, so each network (VGG16, and the
paper's future-work MobileNetV3-Large, EfficientNet-B0 and DINOv2 ViT-S/14) is one file that subclasses
:class:`Backbone`, gives its :class:`WeightsSpec` and the full key -> shape table of its published state dict,
adds a line to :data:`BACKBONES` and its name to the choices of the ``encoder_backbone`` row in
``bridge/params.py`` (kept import-light, so it cannot read this registry; a test checks the two agree).
Nothing else changes.

A backbone:
* takes a float batch (N, 3, H, W) already normalised with its own ``mean``/``std`` (the encoder does that,
  once, from uint8 RGB), and any H, W it supports (``min_size``; a ViT also wants both sides a multiple of
  ``size_multiple``, its patch size: the encoder picks such an encode size);
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
    first 8 hex digits of the file's SHA-256 in it (``vgg16-397923af.pth``), which the download checks.
    ``also_cached`` are other names the same network's weights have in the hub cache (an older torchvision
    release of them), used when found there but never downloaded. ``sha256``, when known, is the whole digest,
    checked on download in addition; a file whose name carries no hash and has no ``sha256`` (Meta's DINOv2
    files) can only be checked by its exact format (keys, shapes, finite values) after the download.
    """

    filename: str
    url: str
    description: str
    also_cached: tuple[str, ...] = ()
    sha256: str = ""


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
    #: both input sides must be a multiple of this (a ViT's patch size); the encoder rounds its size down
    size_multiple: int = 1
    weights_spec: WeightsSpec | None = None
    #: the taps used when none are given (a mid-level feature map, like the paper's conv4_1 for VGG16)
    DEFAULT_TAPS: tuple[str, ...] = ()
    #: what the published state dict looks like, for error messages
    FORMAT_HINT: str = ""
    #: set by prepare_for_inference: the modules no longer have the published layout
    _prepared: bool = False

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

    @classmethod
    def expected_state_shapes(cls) -> dict[str, tuple[int, ...]]:
        """Every key of the published (full, untruncated) state dict with its shape."""
        raise NotImplementedError

    @classmethod
    def fit_size(cls, width: int, height: int) -> tuple[int, int]:
        """The largest (width, height) at most the given one that this backbone takes."""
        m = cls.size_multiple
        return width // m * m, height // m * m

    def load_weights(self, state: Mapping[str, torch.Tensor], origin: str) -> None:
        """Check ``state`` strictly against this backbone's full published format, then copy what it uses.

        All checks come before the first copy: a refused file leaves the network untouched. Only the tensors
        the truncated network holds are read, so a memory-mapped file's deeper layers stay on disk.
        """
        if self._prepared:
            raise EncoderError(f"{origin}: this {self.name} was already prepared for inference; build a new one to load weights")
        check_state_dict(state, self.expected_state_shapes(), origin, self.FORMAT_HINT)
        targets = {k: v for k, v in self.state_dict(keep_vars=True).items() if not k.endswith(OPTIONAL_SUFFIX)}
        for key in targets:
            if not torch.isfinite(state[key]).all():
                raise EncoderError(f"{origin}: {key} holds NaN or infinite values")
        with torch.no_grad():
            for key, tensor in targets.items():
                tensor.copy_(state[key].to(torch.float32))
        self.weights_changed()

    def weights_changed(self) -> None:
        """Hook for caches derived from the weights (a ViT's resized position embeddings)."""

    def prepare_for_inference(self) -> None:
        """Once the weights are in: rewrite the network into a faster equal form (BatchNorm folded into the
        convolutions before it). After this the module's state dict no longer has the published layout."""

    def init_random(self, seed: int) -> None:
        """Seeded random initialisation (the demo encoder when no pretrained weights exist)."""
        raise NotImplementedError


#: BatchNorm's step counter: torchvision files may or may not carry it; it plays no part in evaluation
OPTIONAL_SUFFIX = "num_batches_tracked"


def check_state_dict(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], origin: str,
                     format_hint: str) -> None:
    """Strict check of a state dict against ``expected`` (key -> shape): every key present, none extra, every
    shape right, floating-point values. One line naming the first problem (and how many more of its kind).

    ``<bn>.num_batches_tracked`` may be present or absent for every BatchNorm that ``expected`` has (its
    ``<bn>.running_mean``); when present it must be a single integer. Only shapes are read here, so a
    memory-mapped file costs nothing.
    """
    if not isinstance(state, Mapping):
        raise EncoderError(f"{origin}: not a state dict (got {type(state).__name__}); expected {format_hint}")
    missing = [k for k in expected if k not in state]
    if missing:
        raise EncoderError(f"{origin}: missing key {_first_of(missing)}; expected {format_hint}")
    unexpected = sorted(k for k in state if k not in expected and not _is_optional(k, expected))
    if unexpected:
        raise EncoderError(f"{origin}: unexpected key {_first_of(unexpected)}; expected {format_hint} "
                           "(another variant of the network, or another network?)")
    for key in state:
        if key not in expected:  # an optional counter
            tensor = state[key]
            if not isinstance(tensor, torch.Tensor) or tensor.is_floating_point() or tensor.numel() != 1:
                raise EncoderError(f"{origin}: {key} is not a single integer")
    for key, shape in expected.items():
        tensor = state[key]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise EncoderError(f"{origin}: {key} is not a floating-point tensor")
        if tuple(tensor.shape) != tuple(shape):
            raise EncoderError(f"{origin}: {key} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")


def _is_optional(key: str, expected: Mapping[str, tuple[int, ...]]) -> bool:
    stem = key.removesuffix(OPTIONAL_SUFFIX)
    return stem != key and stem + "running_mean" in expected


def _first_of(keys: list[str]) -> str:
    return keys[0] + (f" (and {len(keys) - 1} more)" if len(keys) > 1 else "")


def random_state_dict(backbone: type[Backbone], seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded random state dict with exactly ``backbone``'s published keys and shapes (tests, benchmarks).

    Weights are N(0, 1/fan_in); BatchNorm scales near 1 with variances near 1; biases and shifts small.
    Values are not a trained network's, but every tensor is the right kind of number for its place.
    """
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in backbone.expected_state_shapes().items():
        if key.endswith(("running_var", "gamma")) or (key.endswith(".weight") and len(shape) == 1):
            state[key] = 1.0 + 0.1 * torch.rand(shape, generator=gen)  # BN/LayerNorm scale, variance, LayerScale
        elif len(shape) >= 2 and key.endswith("weight"):
            fan_in = torch.Size(shape[1:]).numel()
            state[key] = torch.randn(shape, generator=gen) / fan_in ** 0.5
        else:  # biases, BN means and shifts, tokens, position embeddings
            state[key] = 0.1 * torch.randn(shape, generator=gen)
    return state


class UninitConv2d(torch.nn.Conv2d):
    """A Conv2d left uninitialised: the caller fills every tensor (load_weights or init_random), so torch's
    default init of numbers that are overwritten at once is skipped (the meta device would do it too, but its
    first use imports half of torch's compiler stack: seconds of start-up)."""

    def reset_parameters(self) -> None:
        pass


class UninitLinear(torch.nn.Linear):
    """A Linear left uninitialised, as :class:`UninitConv2d`."""

    def reset_parameters(self) -> None:
        pass


def init_random_modules(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Variance-preserving seeded init for a random-init demo network: convs and linears N(0, 2/fan_in)
    (fan-in per group, so depthwise convs are not starved), biases 0, BatchNorm as the identity
    (mean 0, variance 1, scale 1, shift 0), LayerNorm scale 1, shift 0. Keeps activations at a steady scale
    through depth, so a random network still answers visibly to the picture."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()


# backbone name -> module defining ``BACKBONE`` (a Backbone subclass); imported only when asked for.
BACKBONES: dict[str, str] = {
    "vgg16": "bridge.encoder.vgg16",
    "mobilenet_v3_large": "bridge.encoder.mobilenet_v3",
    "efficientnet_b0": "bridge.encoder.efficientnet",
    "dinov2_vits14": "bridge.encoder.dinov2",
}


def guess_backbone(state: object) -> str | None:
    """The registered backbone whose published keys are exactly ``state``'s (BatchNorm counters aside), if any:
    for a one-line hint when a file was given for the wrong ``--encoder-backbone``."""
    if not isinstance(state, Mapping):
        return None
    keys = {k for k in state if not k.endswith(OPTIONAL_SUFFIX)}
    for name in BACKBONES:
        if keys == set(backbone_class(name).expected_state_shapes()):
            return name
    return None


def backbone_class(name: str) -> type[Backbone]:
    if name not in BACKBONES:
        raise EncoderError(f"unknown encoder backbone {name!r}; available: {', '.join(BACKBONES)}")
    return importlib.import_module(BACKBONES[name]).BACKBONE
