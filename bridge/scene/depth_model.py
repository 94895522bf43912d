"""Depth-Anything-V2-Small in plain torch: a DINOv2 ViT-S/14 backbone and a DPT head.

The module names and parameter shapes are the official checkpoint's (``depth_anything_v2_vits.pth``), so its
state dict loads with ``strict=True``: ``pretrained.*`` is DINOv2 (cls_token, pos_embed for 37x37 patches,
mask_token, patch_embed.proj, blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2,
ls2.gamma}, norm) and ``depth_head.*`` is the DPT head (projects, resize_layers, scratch.layerN_rn,
scratch.refinenetN.{resConfUnit1, resConfUnit2, out_conv}, scratch.output_conv1, scratch.output_conv2).
The backbone is the encoder's DINOv2 (:mod:`bridge.encoder.dinov2`, tapped after blocks 3, 6, 9 and 12 through
its final norm, as Depth Anything's ``get_intermediate_layers``). The head is written from the published
architecture (Yang et al. 2024; Ranftl et al. 2021 for DPT); the Small model and its code are Apache-2.0.

The output is relative inverse depth (disparity-like: larger = nearer), affine-invariant per image, at the
input's resolution. Inputs are ImageNet-normalised RGB with sides that are multiples of 14.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bridge.encoder.dinov2 import DIM as EMBED_DIM
from bridge.encoder.dinov2 import PATCH, DINOv2ViTS14

TRAIN_SIDE = 518  # 37 x 14: the pos_embed grid the checkpoint was trained at
TAPS = ("patch3", "patch6", "patch9", "patch12")  # after blocks 3, 6, 9, 12 (the authors' layers 2, 5, 8, 11)
FEATURES = 64
OUT_CHANNELS = (48, 96, 192, 384)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# ---- DPT head -----------------------------------------------------------------------------------
class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FusionBlock(nn.Module):
    """Adds a skip input (through resConfUnit1), refines (resConfUnit2), upsamples, projects (out_conv)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)  # noqa: N815 - the checkpoint's name
        self.resConfUnit2 = ResidualConvUnit(features)  # noqa: N815

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size=None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class Scratch(nn.Module):
    def __init__(self, features: int, out_channels) -> None:
        super().__init__()
        for i, channels in enumerate(out_channels, start=1):
            setattr(self, f"layer{i}_rn", nn.Conv2d(channels, features, 3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(self, f"refinenet{i}", FusionBlock(features))
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(),
                                          nn.Conv2d(32, 1, 1), nn.ReLU(), nn.Identity())


class DPTHead(nn.Module):
    def __init__(self, in_channels: int = EMBED_DIM, features: int = FEATURES, out_channels=OUT_CHANNELS) -> None:
        super().__init__()
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, c, 1) for c in out_channels)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(out_channels[0], out_channels[0], 4, stride=4),
            nn.ConvTranspose2d(out_channels[1], out_channels[1], 2, stride=2),
            nn.Identity(),
            nn.Conv2d(out_channels[3], out_channels[3], 3, stride=2, padding=1),
        ])
        self.scratch = Scratch(features, out_channels)

    def forward(self, features: list[torch.Tensor], grid_h: int, grid_w: int) -> torch.Tensor:
        """``features``: the four (B, 384, grid_h, grid_w) patch-token maps, shallow to deep."""
        s = self.scratch
        maps = [resize(project(x)) for x, project, resize in zip(features, self.projects, self.resize_layers)]
        l1, l2, l3, l4 = (getattr(s, f"layer{i}_rn")(m) for i, m in enumerate(maps, start=1))
        path = s.refinenet4(l4, size=l3.shape[2:])
        path = s.refinenet3(path, l3, size=l2.shape[2:])
        path = s.refinenet2(path, l2, size=l1.shape[2:])
        path = s.refinenet1(path, l1)
        out = s.output_conv1(path)
        out = F.interpolate(out, (grid_h * PATCH, grid_w * PATCH), mode="bilinear", align_corners=True)
        return s.output_conv2(out)


class DepthAnythingV2Small(nn.Module):
    """(B, 3, H, W) normalised RGB, H and W multiples of 14 -> (B, H, W) relative inverse depth (>= 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.pretrained = DINOv2ViTS14(TAPS)
        # DINOv2's mask token is used in training only; the checkpoint has it, so the module holds it too
        self.pretrained.mask_token = nn.Parameter(torch.zeros(1, EMBED_DIM), requires_grad=False)
        self.depth_head = DPTHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid_h, grid_w = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        maps = self.pretrained(x)
        features = [maps[tap] for tap in TAPS]
        return F.relu(self.depth_head(features, grid_h, grid_w)).squeeze(1)

    def load_checkpoint(self, state) -> None:
        """Load the official state dict strictly (every name and shape must match); RuntimeError otherwise."""
        self.load_state_dict(state, strict=True)
        self.pretrained.weights_changed()  # drop position embeddings resized from the old weights

    def init_random(self, seed: int) -> None:
        """Seeded random weights for the demo: DINOv2's own random init, the head's torch defaults, and a
        positive last bias so the final ReLU does not zero the whole map (the output then follows the picture)."""
        self.pretrained.init_random(seed)
        with torch.no_grad():
            self.depth_head.scratch.output_conv2[2].bias.fill_(1.0)


def input_size(height: int, width: int, side: int = TRAIN_SIDE) -> tuple[int, int]:
    """(h, w) the frame is resized to: the shorter side ``side`` (rounded to 14), aspect kept, multiples of 14."""
    scale = side / min(height, width)
    return (max(PATCH, int(round(height * scale / PATCH)) * PATCH),
            max(PATCH, int(round(width * scale / PATCH)) * PATCH))
