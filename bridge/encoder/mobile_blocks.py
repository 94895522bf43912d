"""The pieces MobileNetV3 and EfficientNet share, named as torchvision names them so its files load key for key.

* :func:`conv_bn` is torchvision's ``Conv2dNormActivation``: ``Sequential(conv, bn[, activation])``, the conv
  without bias, "same" padding. Without an activation it has two entries, as torchvision's, so the indices
  (``.0`` conv, ``.1`` bn) match.
* :class:`SqueezeExcitation` is torchvision's: global mean -> ``fc1`` (1x1 conv) -> activation -> ``fc2``
  (1x1 conv) -> gate, and the input scaled by the gate.
* :class:`InvertedResidual` is the block both networks are made of (``block`` = Sequential of the expansion,
  depthwise, optional SE and projection; a residual sum when shape allows). MobileNetV3 calls it
  InvertedResidual, EfficientNet MBConv (whose stochastic depth is the identity in evaluation).
* :class:`FeaturesBackbone` is the common frame: ``features.0 .. features.N`` (torchvision's ``features``),
  then global average pool and ``classifier``; taps are outputs of ``features.i`` (spatial) or of the
  classifier's layers (vectors), and the network is built only up to the deepest tap.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from bridge.encoder.backbone import Backbone, UninitConv2d, UninitLinear, init_random_modules


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, eps: float = 1e-5,
            act: Callable[[], nn.Module] | None = None) -> nn.Sequential:
    layers: list[nn.Module] = [
        UninitConv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=eps),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel attention: scale = gate(fc2(act(fc1(mean over the picture)))); out = scale * x."""

    def __init__(self, channels: int, squeeze: int, act: Callable[[], nn.Module], gate: Callable[[], nn.Module]):
        super().__init__()
        self.fc1 = UninitConv2d(channels, squeeze, 1)
        self.act = act()
        self.fc2 = UninitConv2d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(dim=(2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(scale))))


class InvertedResidual(nn.Module):
    """1x1 expansion (skipped when it would not expand) -> depthwise kxk -> [SE] -> 1x1 projection (no
    activation); plus the input when stride is 1 and the channels stay the same."""

    def __init__(self, cin: int, expanded: int, cout: int, kernel: int, stride: int, eps: float,
                 act: Callable[[], nn.Module], se: SqueezeExcitation | None):
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(conv_bn(cin, expanded, 1, eps=eps, act=act))
        layers.append(conv_bn(expanded, expanded, kernel, stride=stride, groups=expanded, eps=eps, act=act))
        if se is not None:
            layers.append(se)
        layers.append(conv_bn(expanded, cout, 1, eps=eps))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: the nearest multiple of ``divisor``, never under 90 % of ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class FeaturesBackbone(Backbone):
    """``features`` (a list of stages/blocks), global mean, ``classifier``; truncated after the deepest tap.

    Subclasses define ``FEATURE_TAPS`` (tap -> features index), ``FEATURE_CHANNELS`` (channels out of each
    features index), ``CLASSIFIER_TAPS`` (tap -> (classifier index, channels)) and the module factories.
    """

    FEATURE_TAPS: dict[str, int] = {}
    FEATURE_CHANNELS: tuple[int, ...] = ()
    CLASSIFIER_TAPS: dict[str, tuple[int, int]] = {}

    def __init__(self, taps: Sequence[str]):
        super().__init__()
        self.taps = self.check_taps(taps)
        deepest = self.deepest(self.taps)
        in_classifier = deepest in self.CLASSIFIER_TAPS
        features = self.feature_modules()
        n_features = len(features) if in_classifier else self.FEATURE_TAPS[deepest] + 1
        self.features = nn.Sequential(*features[:n_features])
        n_classifier = self.CLASSIFIER_TAPS[deepest][0] + 1 if in_classifier else 0
        self.classifier = nn.Sequential(*self.classifier_modules()[:n_classifier])
        self._feature_taps = {self.FEATURE_TAPS[t]: t for t in self.taps if t in self.FEATURE_TAPS}
        self._classifier_taps = {self.CLASSIFIER_TAPS[t][0]: t for t in self.taps if t in self.CLASSIFIER_TAPS}
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def feature_modules(cls) -> list[nn.Module]:
        raise NotImplementedError

    @classmethod
    def classifier_modules(cls) -> list[nn.Module]:
        raise NotImplementedError

    def tap_channels(self, tap: str) -> int:
        if tap in self.CLASSIFIER_TAPS:
            return self.CLASSIFIER_TAPS[tap][1]
        return self.FEATURE_CHANNELS[self.FEATURE_TAPS[tap]]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self._feature_taps:
                out[self._feature_taps[i]] = x
        if len(self.classifier):
            x = x.mean(dim=(2, 3))  # torchvision's AdaptiveAvgPool2d(1) + flatten
            for i, module in enumerate(self.classifier):
                x = module(x)
                if i in self._classifier_taps:
                    out[self._classifier_taps[i]] = x
        return out

    def init_random(self, seed: int) -> None:
        init_random_modules(self, torch.Generator().manual_seed(seed))

    def prepare_for_inference(self) -> None:
        """Fold every BatchNorm into the convolution before it (evaluation only: the running statistics are
        fixed): conv weight * s per output channel, bias = shift - mean * s, s = scale / sqrt(var + eps).
        The same numbers up to rounding, and 15-35 % less CPU time for these depthwise networks (most of their
        layers are cheap, so the separate normalisation passes over memory weighed a lot)."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Sequential) and len(module) >= 2 and isinstance(module[0], nn.Conv2d) \
                        and isinstance(module[1], nn.BatchNorm2d):
                    conv, bn = module[0], module[1]
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    conv.weight.mul_(scale.view(-1, 1, 1, 1))
                    conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=False)
                    module[1] = nn.Identity()
        self._prepared = True


def linear(cin: int, cout: int) -> nn.Linear:
    return UninitLinear(cin, cout)
