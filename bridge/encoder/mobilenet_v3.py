"""MobileNetV3-Large (Howard et al. 2019) in plain PyTorch, reading torchvision's published weights key for key.

The paper's future work names it for the edge: 5.48 M parameters against VGG16's 138 M. Module names follow
torchvision's ``mobilenet_v3_large()``: ``features.0`` is the stem (3x3 conv, stride 2, hardswish),
``features.1`` .. ``features.15`` the fifteen inverted-residual blocks (``features.N.block.M``; SE layers are
``features.N.block.M.fc1/fc2``), ``features.16`` the last 1x1 conv (960 channels, hardswish), then global mean
and ``classifier.0`` (960 -> 1280, hardswish) and ``classifier.3`` (1280 -> 1000). BatchNorm eps is 0.001.

Weights: torchvision's ``IMAGENET1K_V2`` file (its default, top-1 75.3 %) is downloaded; ``IMAGENET1K_V1``
(``mobilenet_v3_large-8738ca79.pth``, 74.0 %) is used as well when that is what the hub cache holds. Both have
the same keys and shapes.

Taps (output of each torchvision module: channels, stride = input pixels per map position):

* ``block0``: the stem (16, /2); ``block1`` (16, /2) ends the stride-2 stage;
* ``block2``, ``block3`` (24, /4); ``block4`` .. ``block6`` (40, /8, with SE);
* ``block7`` .. ``block10`` (80, /16, hardswish from here on); ``block11``, ``block12`` (112, /16, SE);
* ``block13`` .. ``block15`` (160, /32, SE); ``block16``: the last 1x1 conv (960, /32);
* ``fc1``: ``classifier.0`` after its hardswish (a 1280 vector); ``logits``: the 1000 ImageNet logits.

The default tap, block12, is the end of the stride-16 stage: mid-level features, like VGG16's conv4_1.
"""
from __future__ import annotations

import functools

from torch import nn

from bridge.encoder.backbone import WeightsSpec
from bridge.encoder.mobile_blocks import (FeaturesBackbone, InvertedResidual, SqueezeExcitation, conv_bn, linear,
                                          make_divisible)

EPS = 0.001
# torchvision's inverted residual setting for the large model:
# (input channels, kernel, expanded channels, output channels, squeeze-excitation, activation, stride)
_SETTING = (
    (16, 3, 16, 16, False, "RE", 1),
    (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1),
    (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2),
    (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
)
_LAST_CONV = 960
_LAST_CHANNEL = 1280
_ACT = {"RE": nn.ReLU, "HS": nn.Hardswish}


def _block(cin: int, kernel: int, expanded: int, cout: int, use_se: bool, act: str, stride: int) -> InvertedResidual:
    se = SqueezeExcitation(expanded, make_divisible(expanded // 4), nn.ReLU, nn.Hardsigmoid) if use_se else None
    return InvertedResidual(cin, expanded, cout, kernel, stride, EPS, _ACT[act], se)


class MobileNetV3Large(FeaturesBackbone):
    """MobileNetV3-Large truncated after the deepest requested tap; frozen (eval mode, no gradients)."""

    name = "mobilenet_v3_large"
    FEATURE_TAPS = {f"block{i}": i for i in range(len(_SETTING) + 2)}
    FEATURE_CHANNELS = (_SETTING[0][0],) + tuple(s[3] for s in _SETTING) + (_LAST_CONV,)
    CLASSIFIER_TAPS = {"fc1": (1, _LAST_CHANNEL), "logits": (3, 1000)}
    TAPS = tuple(FEATURE_TAPS) + tuple(CLASSIFIER_TAPS)
    DEFAULT_TAPS = ("block12",)
    min_size = 32  # five stride-2 steps
    FORMAT_HINT = ("torchvision's mobilenet_v3_large format (features.0-16 with .block.M, SE .fc1/.fc2, "
                   "classifier.0/3)")
    weights_spec = WeightsSpec(
        filename="mobilenet_v3_large-5c1a4163.pth",
        url="https://download.pytorch.org/models/mobilenet_v3_large-5c1a4163.pth",
        description="torchvision MobileNetV3-Large ImageNet weights (IMAGENET1K_V2, 21 MB)",
        also_cached=("mobilenet_v3_large-8738ca79.pth",),
    )

    @classmethod
    def feature_modules(cls) -> list[nn.Module]:
        stem = conv_bn(3, _SETTING[0][0], 3, stride=2, eps=EPS, act=nn.Hardswish)
        last = conv_bn(_SETTING[-1][3], _LAST_CONV, 1, eps=EPS, act=nn.Hardswish)
        return [stem, *(_block(*s) for s in _SETTING), last]

    @classmethod
    def classifier_modules(cls) -> list[nn.Module]:
        # Dropout is the identity in evaluation; kept so indices match torchvision's keys
        return [linear(_LAST_CONV, _LAST_CHANNEL), nn.Hardswish(), nn.Dropout(0.2), linear(_LAST_CHANNEL, 1000)]

    @classmethod
    def expected_state_shapes(cls) -> dict[str, tuple[int, ...]]:
        return dict(_shapes())


@functools.lru_cache(maxsize=1)
def _shapes() -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Every key of torchvision's file with its shape, read off the full network built from the table above."""
    full = MobileNetV3Large(["logits"])
    return tuple((k, tuple(v.shape)) for k, v in full.state_dict().items() if not k.endswith("num_batches_tracked"))


BACKBONE = MobileNetV3Large
