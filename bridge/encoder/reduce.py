"""The reduction g: feature maps -> fake latents z (the paper's Appendix A, Eq. 2), as small composable steps.

Per frame, for R regions and taps l with weights alpha_l:

1. ``region_means``: the channel-wise spatial mean of F^l over each region's positions -> (R, C_l).
   With one region covering everything this is exactly the paper's g = mean over h, w.
2. ``Projection``: when C_l != z_dim, a fixed seeded Gaussian matrix (z_dim x C_l, entries N(0, 1/C_l)) maps
   the C_l means to z_dim numbers. Seeded by tap name and sizes, so the same tap always gives the same z for
   the same picture, across runs and machines. Identity when C_l == z_dim (every 512-channel VGG tap).
3. ``weighted_sum``: Eq. 2, z_raw = sum_l alpha_l * P_l(mean(F^l)).
4. Standardisation to N(0, I): ``standardize_vector`` (each z_raw to zero mean, unit variance over its
   dimensions) or :class:`RunningStandardizer` (each dimension against its own running mean/variance over
   time, so a static scene sits at the centre of Z and what changes in the scene is what moves z).

Note for whoever consumes z: StyleGAN's mapping network first divides z by its RMS, so only z's direction
reaches the picture. "vector" z's are unit-RMS and steady for a steady scene (the default). "running" z's
shrink towards 0 in a static scene, where what is left is camera noise, whose direction is random; a consumer
that wants "static scene = centre" should weigh the camera's influence by z's RMS rather than map a near-zero z.

All functions work on torch tensors on the encoder's device, in float32.
"""
from __future__ import annotations

import math
import zlib

import torch

EPS = 1e-6


def region_means(feature: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``feature`` (1, C, h, w) or (1, C); ``weights`` (R, h*w), rows summing to 1 -> (R, C) weighted means.

    A vector tap (1, C) has a single position, so every region gets the vector itself.
    """
    if feature.ndim == 2:
        return feature.expand(weights.shape[0], -1)
    flat = feature[0].flatten(1)  # (C, h*w)
    return weights @ flat.transpose(0, 1)


class Projection:
    """A fixed seeded linear map from C channels to z_dim (the identity when they are equal)."""

    def __init__(self, tap: str, channels: int, z_dim: int, device: torch.device | str = "cpu"):
        self.identity = channels == z_dim
        self.matrix: torch.Tensor | None = None
        if not self.identity:
            seed = zlib.crc32(f"{tap}:{channels}:{z_dim}".encode())
            gen = torch.Generator().manual_seed(seed)
            matrix = torch.randn(z_dim, channels, generator=gen) / math.sqrt(channels)
            self.matrix = matrix.to(device)

    def __call__(self, vectors: torch.Tensor) -> torch.Tensor:
        """(R, C) -> (R, z_dim)."""
        return vectors if self.identity else vectors @ self.matrix.T


def weighted_sum(vectors: list[torch.Tensor], alphas: list[float]) -> torch.Tensor:
    """Eq. 2: sum_l alpha_l * v_l for same-shaped (R, z_dim) tensors."""
    total = vectors[0] * alphas[0]
    for vector, alpha in zip(vectors[1:], alphas[1:]):
        total = total + vector * alpha
    return total


def standardize_vector(z: torch.Tensor) -> torch.Tensor:
    """Each row to mean 0 and (population) standard deviation 1 over its dimensions.

    A constant row (no spread at all) becomes all zeros instead of dividing by zero.
    """
    mean = z.mean(dim=-1, keepdim=True)
    std = z.std(dim=-1, keepdim=True, correction=0)
    return (z - mean) / std.clamp_min(EPS)


class RunningStandardizer:
    """Per-dimension standardisation with exponentially weighted running mean and variance over time.

    ``adapt_s`` is the time constant: after a change in the scene, z drifts back towards the centre over
    roughly that many seconds. The variance is estimated from what was seen (it starts at zero: nothing has
    varied yet) and the divisor never drops below ``floor * spread``, where spread is the running
    cross-dimension standard deviation of z_raw (the scene's own feature scale). So a change of 10 % of that
    scale moves z by about one unit at first; without the floor a perfectly static scene would divide
    camera noise by almost zero and fill z with amplified noise.
    """

    def __init__(self, floor: float = 0.1):
        self.floor = floor
        self.mean: torch.Tensor | None = None
        self.var: torch.Tensor | None = None
        self.spread: torch.Tensor | None = None

    def reset(self) -> None:
        self.mean = self.var = self.spread = None

    def update(self, z: torch.Tensor, dt: float, adapt_s: float) -> torch.Tensor:
        """Fold ``z`` (R, D) into the statistics (``dt`` seconds after the last one); return it standardised."""
        spread = z.std(dim=-1, keepdim=True, correction=0).clamp_min(EPS)
        if self.mean is None or self.mean.shape != z.shape:
            self.mean = z.clone()
            self.var = torch.zeros_like(z)
            self.spread = spread
        else:
            a = 1.0 - math.exp(-max(dt, 0.0) / max(adapt_s, EPS))
            delta = z - self.mean
            self.mean = self.mean + a * delta
            self.var = (1.0 - a) * (self.var + a * delta.square())
            self.spread = self.spread + a * (spread - self.spread)
        return (z - self.mean) / torch.sqrt(self.var + (self.floor * self.spread).square())
