"""EfficientNet-B0 (Tan & Le 2019) in plain PyTorch, reading torchvision's published weights key for key.

The paper's future work names it beside MobileNetV3 for the edge: 5.29 M parameters. Module names follow
torchvision's ``efficientnet_b0()``: ``features.0`` is the stem (3x3 conv, stride 2, SiLU), ``features.1`` ..
``features.7`` the seven MBConv stages (``features.N.M.block.K``; each block's squeeze-excitation is
``.block.K.fc1/fc2``, 1x1 convs, squeezing to a quarter of the block's INPUT channels), ``features.8`` the last
1x1 conv (1280 channels, SiLU), then global mean and ``classifier.1`` (1280 -> 1000; ``classifier.0`` is
dropout). BatchNorm eps is torch's default 1e-5 (torchvision's B0-B7). Stochastic depth only acts in
training: it is left out.

Weights: torchvision's ``IMAGENET1K_V1`` (ported from Ross Wightman's timm, top-1 77.7 %). Its current file is
``efficientnet_b0_rwightman-7f5810bc.pth``; torchvision releases before 0.16 named the same weights
``efficientnet_b0_rwightman-3dd342df.pth``, also used when that is what the hub cache holds.

Taps (output of each torchvision stage: channels, stride = input pixels per map position; blocks, kernel):

* ``stage0``: the stem (32, /2); ``stage1`` (16, /2; 1 block, 3x3); ``stage2`` (24, /4; 2, 3x3);
* ``stage3`` (40, /8; 2, 5x5); ``stage4`` (80, /16; 3, 3x3); ``stage5`` (112, /16; 3, 5x5);
* ``stage6`` (192, /32; 4, 5x5); ``stage7`` (320, /32; 1, 3x3); ``stage8``: the last 1x1 conv (1280, /32);
* ``logits``: the 1000 ImageNet logits (a vector).

The default tap, stage5, ends the stride-16 part: mid-level features, like VGG16's conv4_1.
"""
from __future__ import annotations

import functools

from torch import nn

from bridge.encoder.backbone import WeightsSpec
from bridge.encoder.mobile_blocks import FeaturesBackbone, InvertedResidual, SqueezeExcitation, conv_bn, linear

EPS = 1e-5
# torchvision's B0 stages (width and depth multipliers 1.0): (expand ratio, kernel, stride, in, out, blocks)
_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
_LAST_CONV = 4 * _STAGES[-1][4]  # 1280


def _mbconv(expand: int, kernel: int, stride: int, cin: int, cout: int) -> InvertedResidual:
    expanded = cin * expand
    se = SqueezeExcitation(expanded, max(1, cin // 4), nn.SiLU, nn.Sigmoid)
    return InvertedResidual(cin, expanded, cout, kernel, stride, EPS, nn.SiLU, se)


def _stage(expand: int, kernel: int, stride: int, cin: int, cout: int, blocks: int) -> nn.Sequential:
    """The first block changes channels and stride; the others keep them (and add their input)."""
    return nn.Sequential(*(_mbconv(expand, kernel, stride if i == 0 else 1, cin if i == 0 else cout, cout)
                           for i in range(blocks)))


class EfficientNetB0(FeaturesBackbone):
    """EfficientNet-B0 truncated after the deepest requested tap; frozen (eval mode, no gradients)."""

    name = "efficientnet_b0"
    FEATURE_TAPS = {f"stage{i}": i for i in range(len(_STAGES) + 2)}
    FEATURE_CHANNELS = (_STAGES[0][3],) + tuple(s[4] for s in _STAGES) + (_LAST_CONV,)
    CLASSIFIER_TAPS = {"logits": (1, 1000)}
    TAPS = tuple(FEATURE_TAPS) + tuple(CLASSIFIER_TAPS)
    DEFAULT_TAPS = ("stage5",)
    min_size = 32  # five stride-2 steps
    FORMAT_HINT = "torchvision's efficientnet_b0 format (features.0-8, features.N.M.block.K, SE .fc1/.fc2, classifier.1)"
    weights_spec = WeightsSpec(
        filename="efficientnet_b0_rwightman-7f5810bc.pth",
        url="https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth",
        description="torchvision EfficientNet-B0 ImageNet weights (IMAGENET1K_V1, 21 MB)",
        also_cached=("efficientnet_b0_rwightman-3dd342df.pth",),
    )

    @classmethod
    def feature_modules(cls) -> list[nn.Module]:
        stem = conv_bn(3, _STAGES[0][3], 3, stride=2, eps=EPS, act=nn.SiLU)
        last = conv_bn(_STAGES[-1][4], _LAST_CONV, 1, eps=EPS, act=nn.SiLU)
        return [stem, *(_stage(*s) for s in _STAGES), last]

    @classmethod
    def classifier_modules(cls) -> list[nn.Module]:
        return [nn.Dropout(0.2), linear(_LAST_CONV, 1000)]  # Dropout: identity in evaluation, keeps the index

    @classmethod
    def expected_state_shapes(cls) -> dict[str, tuple[int, ...]]:
        return dict(_shapes())


@functools.lru_cache(maxsize=1)
def _shapes() -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Every key of torchvision's file with its shape, read off the full network built from the table above."""
    full = EfficientNetB0(["logits"])
    return tuple((k, tuple(v.shape)) for k, v in full.state_dict().items() if not k.endswith("num_batches_tracked"))


BACKBONE = EfficientNetB0
