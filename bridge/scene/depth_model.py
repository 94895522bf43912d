"""Depth-Anything-V2-Small in plain torch: a DINOv2 ViT-S/14 backbone and a DPT head.

The module names and parameter shapes are the official checkpoint's (``depth_anything_v2_vits.pth``), so its
state dict loads with ``strict=True``: ``pretrained.*`` is DINOv2 (cls_token, pos_embed for 37x37 patches,
mask_token, patch_embed.proj, blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2,
ls2.gamma}, norm) and ``depth_head.*`` is the DPT head (projects, resize_layers, scratch.layerN_rn,
scratch.refinenetN.{resConfUnit1, resConfUnit2, out_conv}, scratch.output_conv1, scratch.output_conv2).
Written from the published architecture (Yang et al. 2024, Ranftl et al. 2021 for DPT, Oquab et al. 2023 for
DINOv2); the Small model and its code are Apache-2.0.

The output is relative inverse depth (disparity-like: larger = nearer), affine-invariant per image, at the
input's resolution. Inputs are ImageNet-normalised RGB with sides that are multiples of 14.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PATCH = 14
EMBED_DIM = 384
DEPTH = 12
HEADS = 6
TRAIN_SIDE = 518  # 37 x 14: the pos_embed grid the checkpoint was trained at
LAYERS = (2, 5, 8, 11)  # blocks whose outputs feed the DPT head
FEATURES = 64
OUT_CHANNELS = (48, 96, 192, 384)
INTERPOLATE_OFFSET = 0.1  # DINOv2's trick so the bicubic resize of pos_embed lands on the right grid size
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# ---- DINOv2 ViT-S/14 ----------------------------------------------------------------------------
class PatchEmbed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, EMBED_DIM, PATCH, PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(EMBED_DIM, EMBED_DIM * 3)
        self.proj = nn.Linear(EMBED_DIM, EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, HEADS, c // HEADS).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(EMBED_DIM, EMBED_DIM * 4)
        self.fc2 = nn.Linear(EMBED_DIM * 4, EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(EMBED_DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(EMBED_DIM, eps=1e-6)
        self.attn = Attention()
        self.ls1 = LayerScale()
        self.norm2 = nn.LayerNorm(EMBED_DIM, eps=1e-6)
        self.mlp = Mlp()
        self.ls2 = LayerScale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV2Small(nn.Module):
    """DINOv2 ViT-S/14 (no register tokens) as Depth Anything uses it: the intermediate layers, normed."""

    def __init__(self) -> None:
        super().__init__()
        grid = TRAIN_SIDE // PATCH
        self.patch_embed = PatchEmbed()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, EMBED_DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, EMBED_DIM))
        self.mask_token = nn.Parameter(torch.zeros(1, EMBED_DIM))  # training only; kept for the checkpoint
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.norm = nn.LayerNorm(EMBED_DIM, eps=1e-6)

    def pos_embedding(self, height: int, width: int) -> torch.Tensor:
        """pos_embed resized (bicubic) from the 37x37 training grid to (height/14, width/14) patches."""
        grid_h, grid_w = height // PATCH, width // PATCH
        n = self.pos_embed.shape[1] - 1
        if grid_h * grid_w == n and grid_h == grid_w:
            return self.pos_embed
        side = int(math.sqrt(n))
        patches = self.pos_embed[:, 1:].float().reshape(1, side, side, EMBED_DIM).permute(0, 3, 1, 2)
        scale = ((grid_h + INTERPOLATE_OFFSET) / side, (grid_w + INTERPOLATE_OFFSET) / side)
        patches = F.interpolate(patches, scale_factor=scale, mode="bicubic", align_corners=False)
        patches = patches.permute(0, 2, 3, 1).reshape(1, -1, EMBED_DIM)
        return torch.cat([self.pos_embed[:, :1].float(), patches], dim=1).to(self.pos_embed.dtype)

    def intermediate_layers(self, x: torch.Tensor, layers=LAYERS) -> list[torch.Tensor]:
        """Patch tokens (B, N, C) after each block in ``layers``, through the final norm (class token dropped)."""
        _, _, height, width = x.shape
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.pos_embedding(height, width)
        out = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in layers:
                out.append(self.norm(tokens)[:, 1:])
        return out


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

    def forward(self, tokens: list[torch.Tensor], grid_h: int, grid_w: int) -> torch.Tensor:
        s = self.scratch
        maps = []
        for i, x in enumerate(tokens):
            x = x.permute(0, 2, 1).reshape(x.shape[0], x.shape[-1], grid_h, grid_w)
            maps.append(self.resize_layers[i](self.projects[i](x)))
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
        self.pretrained = DinoV2Small()
        self.depth_head = DPTHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid_h, grid_w = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        tokens = self.pretrained.intermediate_layers(x)
        return F.relu(self.depth_head(tokens, grid_h, grid_w)).squeeze(1)


def input_size(height: int, width: int, side: int = TRAIN_SIDE) -> tuple[int, int]:
    """(h, w) the frame is resized to: the shorter side ``side`` (rounded to 14), aspect kept, multiples of 14."""
    scale = side / min(height, width)
    return (max(PATCH, int(round(height * scale / PATCH)) * PATCH),
            max(PATCH, int(round(width * scale / PATCH)) * PATCH))
