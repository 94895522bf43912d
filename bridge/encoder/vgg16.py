"""VGG16 (Simonyan & Zisserman 2014) in plain PyTorch, reading torchvision's published weights.

torchvision itself does not import with the CPU torch build used here, and we need only the forward pass,
so the network is rebuilt from its configuration. Module indices match torchvision's ``vgg16()`` exactly
(``features.0`` is conv1_1, ``features.28`` conv5_3, ``classifier.0/3/6`` the three fully connected
layers), so a torchvision ``state_dict`` maps onto it key for key.

Taps (every layer is offered):

* ``convB_L`` is taken AFTER that convolution's ReLU (what "the conv4_1 feature map" means in the paper and
  in most perceptual-loss code); ``convB_L_pre`` is the same convolution BEFORE its ReLU (signed values).
* ``pool1`` .. ``pool5``: after each 2x2 max pool.
* ``avgpool``: torchvision's adaptive average pool to 7x7 (of pool5).
* ``fc1`` / ``fc2``: the first two fully connected layers after their ReLU, ``fc1_pre`` / ``fc2_pre`` before;
  ``fc3``: the 1000 ImageNet logits. These are vectors (N, C) with no spatial layout.

For a 256x256 input the 512-channel maps have the shapes of the paper's Table 1: conv4_x 512x32x32,
conv5_x 512x16x16, avgpool 512x7x7 (each pool halves the side: 256 -> 128 -> 64 -> 32 -> 16 -> 8).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import nn

from bridge.encoder import backbone as _backbone
from bridge.encoder.backbone import Backbone, UninitConv2d, UninitLinear, WeightsSpec

# torchvision's "D" configuration: channel counts, "M" = 2x2 max pool.
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_FC = ((512 * 7 * 7, 4096), (4096, 4096), (4096, 1000))  # classifier.0, .3, .6


def _layer_table() -> tuple[list[tuple[str, int, int]], dict[str, tuple[str, int]]]:
    """Walk the configuration once: the conv layers as (name, in, out) in ``features`` index order, and
    every tap as ``name -> (where, index)`` with where "features" (output of features[index]),
    "avgpool" or "classifier" (output of classifier[index])."""
    convs: list[tuple[str, int, int]] = []
    taps: dict[str, tuple[str, int]] = {}
    block, layer, index, channels = 1, 1, 0, 3
    for item in _CFG:
        if item == "M":
            taps[f"pool{block}"] = ("features", index)
            block, layer, index = block + 1, 1, index + 1
            continue
        name = f"conv{block}_{layer}"
        convs.append((name, channels, item))
        taps[f"{name}_pre"] = ("features", index)
        taps[name] = ("features", index + 1)  # its ReLU
        channels, layer, index = item, layer + 1, index + 2
    taps["avgpool"] = ("avgpool", 0)
    taps["fc1_pre"], taps["fc1"] = ("classifier", 0), ("classifier", 1)
    taps["fc2_pre"], taps["fc2"] = ("classifier", 3), ("classifier", 4)
    taps["fc3"] = ("classifier", 6)
    return convs, taps


_CONVS, _TAP_AT = _layer_table()
_CONV_INDEX = {name: i for i, name in enumerate(n for n, _, _ in _CONVS)}


def expected_state_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of torchvision's VGG16 state dict with its shape (32 tensors, 138 M numbers)."""
    shapes: dict[str, tuple[int, ...]] = {}
    index = 0
    conv_iter = iter(_CONVS)
    for item in _CFG:
        if item == "M":
            index += 1
            continue
        _, cin, cout = next(conv_iter)
        shapes[f"features.{index}.weight"] = (cout, cin, 3, 3)
        shapes[f"features.{index}.bias"] = (cout,)
        index += 2
    for i, (fin, fout) in zip((0, 3, 6), _FC):
        shapes[f"classifier.{i}.weight"] = (fout, fin)
        shapes[f"classifier.{i}.bias"] = (fout,)
    return shapes


def _tap_channels(tap: str) -> int:
    if tap.startswith("conv"):
        return _CONVS[_CONV_INDEX[tap.removesuffix("_pre")]][2]
    if tap.startswith("pool") or tap == "avgpool":
        return 512 if tap in ("pool4", "pool5", "avgpool") else (64, 128, 256)[int(tap[4]) - 1]
    return {"fc1": 4096, "fc2": 4096, "fc3": 1000}[tap.removesuffix("_pre")]


def _tap_order() -> tuple[str, ...]:
    where_rank = {"features": 0, "avgpool": 1, "classifier": 2}
    # a conv's _pre tap comes just before its post-ReLU tap
    return tuple(sorted(_TAP_AT, key=lambda t: (where_rank[_TAP_AT[t][0]], _TAP_AT[t][1])))


class VGG16(Backbone):
    """VGG16 truncated after the deepest requested tap; frozen (eval mode, no gradients)."""

    name = "vgg16"
    TAPS = _tap_order()
    min_size = 32  # five 2x2 pools
    DEFAULT_TAPS = ("conv4_1",)
    FORMAT_HINT = "torchvision's VGG16 format (features.N.weight ..., classifier.0/3/6.*)"
    weights_spec = WeightsSpec(
        filename="vgg16-397923af.pth",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        description="torchvision VGG16 ImageNet weights (IMAGENET1K_V1, 528 MB)",
    )

    def __init__(self, taps: Sequence[str]):
        super().__init__()
        self.taps = self.check_taps(taps)
        where, last = _TAP_AT[self.deepest(self.taps)]
        n_features = 31 if where != "features" else last + 1
        n_classifier = last + 1 if where == "classifier" else 0
        self.features = nn.Sequential(*_feature_modules()[:n_features])
        self.classifier = nn.Sequential(*_classifier_modules()[:n_classifier])
        self.use_avgpool = where in ("avgpool", "classifier")
        self._features_taps = {i: t for t in self.taps for w, i in [_TAP_AT[t]] if w == "features"}
        self._classifier_taps = {i: t for t in self.taps for w, i in [_TAP_AT[t]] if w == "classifier"}
        self.requires_grad_(False)
        self.eval()

    def tap_channels(self, tap: str) -> int:
        return _tap_channels(tap)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self._features_taps:
                out[self._features_taps[i]] = x
        if not self.use_avgpool:
            return out
        x = nn.functional.adaptive_avg_pool2d(x, (7, 7))
        if "avgpool" in self.taps:
            out["avgpool"] = x
        x = torch.flatten(x, 1)
        for i, module in enumerate(self.classifier):
            x = module(x)
            if i in self._classifier_taps:
                out[self._classifier_taps[i]] = x
        return out

    @classmethod
    def expected_state_shapes(cls) -> dict[str, tuple[int, ...]]:
        return expected_state_shapes()

    def init_random(self, seed: int) -> None:
        """torchvision's initialisation (Kaiming-normal fan-out convs, N(0, 0.01) linears, zero biases), seeded."""
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
                    module.weight.normal_(0.0, math.sqrt(2.0 / fan_out), generator=gen)
                    module.bias.zero_()
                elif isinstance(module, nn.Linear):
                    module.weight.normal_(0.0, 0.01, generator=gen)
                    module.bias.zero_()


def check_state_dict(state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Strict check against torchvision's VGG16 format: every key present, none extra, every shape right.

    Only shapes are read, so a memory-mapped 528 MB file costs nothing here.
    """
    _backbone.check_state_dict(state, expected_state_shapes(), origin, VGG16.FORMAT_HINT)


def random_state_dict(seed: int = 0, compact_classifier: bool = True) -> dict[str, torch.Tensor]:
    """A seeded random state dict with torchvision's exact VGG16 keys and shapes (tests, benchmarks).

    Conv weights are Kaiming-normal like a real network's. With ``compact_classifier`` the three classifier
    matrices are one random row broadcast to full shape (stride 0): every key and shape is exactly
    torchvision's, but ``torch.save`` writes 0.5 MB for them instead of 500 MB. Only the fc taps read them.
    """
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in expected_state_shapes().items():
        if key.startswith("features.") and key.endswith(".weight"):
            fan_out = shape[0] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_out)
        elif key.endswith(".bias"):
            state[key] = torch.randn(shape, generator=gen) * 0.01
        elif compact_classifier:
            state[key] = (torch.randn(shape[1], generator=gen) * 0.01).expand(shape)
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.01
    return state


def _feature_modules() -> list[nn.Module]:
    modules: list[nn.Module] = []
    channels = 3
    for item in _CFG:
        if item == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            # not inplace: a *_pre tap must keep its signed values after the ReLU runs
            modules += [UninitConv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            channels = item
    return modules


def _classifier_modules() -> list[nn.Module]:
    (a_in, a_out), (b_in, b_out), (c_in, c_out) = _FC
    # Dropout is the identity in eval mode; kept so indices match torchvision's keys
    return [UninitLinear(a_in, a_out), nn.ReLU(), nn.Dropout(), UninitLinear(b_in, b_out), nn.ReLU(), nn.Dropout(),
            UninitLinear(c_in, c_out)]


BACKBONE = VGG16
