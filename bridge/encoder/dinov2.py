"""DINOv2 ViT-S/14 (Oquab et al. 2023) in plain PyTorch, reading Meta's published ``dinov2_vits14`` backbone.

The paper's future work names self-supervised features such as DINOv2. The network is Meta's hub model
``dinov2_vits14``: patch 14, width 384, 12 blocks of 6 heads, MLP ratio 4 (GELU), LayerNorm eps 1e-6, LayerScale,
no register tokens; position embeddings for a 518x518 input (37x37 patches + the CLS token). 22.06 M
parameters. Keys are Meta's: ``cls_token``, ``pos_embed``, ``mask_token`` (used in training only),
``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}``,
``norm``. Meta's code and these weights are Apache-2.0.

Resolution: both input sides must be multiples of 14 (the encoder crops the frame to such a size's aspect and
resizes to it: 426x320 becomes 420x308, 30x22 patches). The position embeddings are resized bicubically from
the 37x37 grid to the input's patch grid as Meta's ``interpolate_pos_encoding`` does (including its scale
factor of (n + 0.1) / 37), once per grid size.

Taps, for N = 1..12 (every block):

* ``patchN``: the patch tokens after block N, through the final LayerNorm (as Meta's
  ``get_intermediate_layers(norm=True)``), as a (384, H/14, W/14) map, so regions work on the patch grid;
* ``clsN``: the CLS token after block N, through the same LayerNorm (a 384 vector; ``cls12`` is Meta's
  ``x_norm_clstoken``, the image embedding).

The default tap, patch12, is the last layer's patch tokens, DINOv2's usual dense features.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from bridge.encoder.backbone import Backbone, UninitConv2d, UninitLinear, WeightsSpec, init_random_modules

PATCH = 14
DIM = 384
DEPTH = 12
HEADS = 6
MLP_HIDDEN = 4 * DIM
PRETRAIN_GRID = 37  # 518 / 14
EPS = 1e-6
INTERPOLATE_OFFSET = 0.1  # Meta's kludge against floating-point error in the resize; kept for identical results


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = UninitLinear(DIM, 3 * DIM)
        self.proj = UninitLinear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(64)) v
        return self.proj(x.transpose(1, 2).reshape(batch, tokens, DIM))


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = UninitLinear(DIM, MLP_HIDDEN)
        self.act = nn.GELU()
        self.fc2 = UninitLinear(MLP_HIDDEN, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x)))."""

    def __init__(self) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(DIM, eps=EPS)
        self.attn = Attention()
        self.ls1 = LayerScale()
        self.norm2 = nn.LayerNorm(DIM, eps=EPS)
        self.mlp = Mlp()
        self.ls2 = LayerScale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = UninitConv2d(3, DIM, PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (N, DIM, H/14, W/14)


# tap -> the block it is taken after (1-based), shallow to deep
_TAP_DEPTH = {name: n for n in range(1, DEPTH + 1) for name in (f"patch{n}", f"cls{n}")}


class DINOv2ViTS14(Backbone):
    """DINOv2 ViT-S/14 truncated after the deepest requested block; frozen (eval mode, no gradients)."""

    name = "dinov2_vits14"
    TAPS = tuple(_TAP_DEPTH)
    DEFAULT_TAPS = ("patch12",)
    min_size = PATCH
    size_multiple = PATCH
    FORMAT_HINT = ("Meta's dinov2_vits14 format (cls_token, pos_embed, mask_token, patch_embed.proj, "
                   "blocks.0-11.*, norm)")
    weights_spec = WeightsSpec(
        filename="dinov2_vits14_pretrain.pth",
        url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",
        description="Meta's DINOv2 ViT-S/14 backbone weights (dinov2_vits14, 85 MB)",
    )

    def __init__(self, taps: Sequence[str]):
        super().__init__()
        self.taps = self.check_taps(taps)
        self.depth = _TAP_DEPTH[self.deepest(self.taps)]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, PRETRAIN_GRID * PRETRAIN_GRID + 1, DIM))
        self.patch_embed = PatchEmbed()
        self.blocks = nn.ModuleList(Block() for _ in range(self.depth))
        self.norm = nn.LayerNorm(DIM, eps=EPS)
        self._pos_cache: dict[tuple[int, int], torch.Tensor] = {}
        self.requires_grad_(False)
        self.eval()

    def tap_channels(self, tap: str) -> int:
        return DIM

    @classmethod
    def expected_state_shapes(cls) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {
            "cls_token": (1, 1, DIM),
            "pos_embed": (1, PRETRAIN_GRID * PRETRAIN_GRID + 1, DIM),
            "mask_token": (1, DIM),
            "patch_embed.proj.weight": (DIM, 3, PATCH, PATCH),
            "patch_embed.proj.bias": (DIM,),
        }
        for n in range(DEPTH):
            b = f"blocks.{n}."
            shapes.update({
                b + "norm1.weight": (DIM,), b + "norm1.bias": (DIM,),
                b + "attn.qkv.weight": (3 * DIM, DIM), b + "attn.qkv.bias": (3 * DIM,),
                b + "attn.proj.weight": (DIM, DIM), b + "attn.proj.bias": (DIM,),
                b + "ls1.gamma": (DIM,),
                b + "norm2.weight": (DIM,), b + "norm2.bias": (DIM,),
                b + "mlp.fc1.weight": (MLP_HIDDEN, DIM), b + "mlp.fc1.bias": (MLP_HIDDEN,),
                b + "mlp.fc2.weight": (DIM, MLP_HIDDEN), b + "mlp.fc2.bias": (DIM,),
                b + "ls2.gamma": (DIM,),
            })
        shapes["norm.weight"] = (DIM,)
        shapes["norm.bias"] = (DIM,)
        return shapes

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = x.shape[-2] // PATCH, x.shape[-1] // PATCH  # a remainder is cropped off, as Meta's model does
        x = self.patch_embed(x[..., :height * PATCH, :width * PATCH])
        batch = x.shape[0]
        x = x.flatten(2).transpose(1, 2)  # (N, h*w, DIM), row-major over the patch grid
        x = torch.cat((self.cls_token.expand(batch, -1, -1), x), dim=1) + self._position(height, width)
        out: dict[str, torch.Tensor] = {}
        for n, block in enumerate(self.blocks, start=1):
            x = block(x)
            patch, cls = f"patch{n}", f"cls{n}"
            if patch in self.taps or cls in self.taps:
                normed = self.norm(x)
                if patch in self.taps:
                    out[patch] = normed[:, 1:].transpose(1, 2).reshape(batch, DIM, height, width)
                if cls in self.taps:
                    out[cls] = normed[:, 0]
        return out

    def _position(self, height: int, width: int) -> torch.Tensor:
        """Position embeddings for an h x w patch grid (CLS first), resized once per grid size."""
        key = (height, width)
        if key not in self._pos_cache:
            self._pos_cache[key] = interpolate_pos_embed(self.pos_embed, height, width)
        return self._pos_cache[key]

    def weights_changed(self) -> None:
        self._pos_cache.clear()

    def _apply(self, fn, recurse=True):
        self._pos_cache.clear()  # moved to another device or dtype: resize again there
        return super()._apply(fn, recurse)

    def init_random(self, seed: int) -> None:
        """Seeded random init: variance-preserving linears (as the CNNs), LayerScale 1 (Meta's hub models are
        built with init_values=1.0), position embeddings N(0, 0.02^2), CLS token N(0, 1e-6^2) as Meta's."""
        gen = torch.Generator().manual_seed(seed)
        init_random_modules(self, gen)
        with torch.no_grad():
            self.pos_embed.normal_(0.0, 0.02, generator=gen)
            self.cls_token.normal_(0.0, 1e-6, generator=gen)
            for module in self.modules():
                if isinstance(module, LayerScale):
                    module.gamma.fill_(1.0)
        self.weights_changed()


def interpolate_pos_embed(pos_embed: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(1, 1 + 37*37, D) -> (1, 1 + height*width, D): bicubic resize of the patch part, CLS part kept.

    Unchanged for the 37x37 grid. Elsewhere, Meta's resize: scale factors (n + 0.1) / 37, output n.
    """
    if (height, width) == (PRETRAIN_GRID, PRETRAIN_GRID):
        return pos_embed.detach()
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:].float()
    side = int(math.isqrt(patch_pos.shape[1]))
    grid = patch_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    scale = ((height + INTERPOLATE_OFFSET) / side, (width + INTERPOLATE_OFFSET) / side)
    grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
    if grid.shape[-2:] != (height, width):  # cannot happen for sides up to thousands of patches; be loud if it does
        raise RuntimeError(f"position embedding resize gave {tuple(grid.shape[-2:])}, wanted {(height, width)}")
    patch_pos = grid.permute(0, 2, 3, 1).reshape(1, height * width, -1).to(pos_embed.dtype)
    return torch.cat((cls_pos, patch_pos), dim=1).detach()


BACKBONE = DINOv2ViTS14
