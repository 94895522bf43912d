"""StyleGAN2 learned-constant corruption: the ``const.corrupt`` lever scrambles ``synthesis.b4.const``.

The paper's Test 2: StyleGAN2 starts every image from one learned 4x4 constant; blending it toward a random
constant makes the network lose track of where to put things. Here

    const' = (1 - a) * const + a * noise_const,      a = const.corrupt

With hands on, the default routes (``bridge.tracking.default_routes``) make ``a = curve(distance) * amount *
engagement`` from the hand, as the paper does; any other signal can be routed to ``const.corrupt`` instead.

``noise_const`` is a slowly moving random constant that loops: ``A cos(phi) + B sin(phi)`` with A, B seeded
standard-normal tensors and ``phi = 2 pi t / period``, so every element stays N(0, 1) at every moment (no dip
in strength mid-loop) and the motion repeats exactly each period. It is rescaled to each channel's own mean
and spread so the corrupted constant stays in the range the next layer expects. Other modes:
``additive`` (const + a * per-channel spread * noise) and ``shuffle`` (blend toward the constant with its
channels in a seeded random order).

Per frame this is a few whole-tensor torch ops into preallocated buffers; at a = 0 the original constant is
restored bit for bit.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from bridge.manipulate.base import TensorLever


class ConstCorruption(TensorLever):
    tensor_name = "synthesis.b4.const"
    needs = "StyleGAN2"

    def __init__(self) -> None:
        super().__init__()
        self.a = 0.0
        self._mode = "blend"
        self._seed: int | None = None

    def _on_bind(self, tensor: torch.Tensor) -> None:
        reduce_dims = tuple(range(1, tensor.ndim))  # per channel: (C, H, W) -> (C, 1, 1)
        self._mean = tensor.mean(dim=reduce_dims, keepdim=True)
        self._std = tensor.std(dim=reduce_dims, keepdim=True).clamp_min(1e-6)
        self._noise = torch.empty_like(tensor)
        self._seed = None

    def _reseed(self, seed: int) -> None:
        """New random directions and channel order (only when ``hand.const.seed`` changes)."""
        gen = torch.Generator().manual_seed(seed)
        shape, device, dtype = self._original.shape, self._original.device, self._original.dtype
        self._a = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)
        self._b = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)
        perm = torch.randperm(shape[0], generator=gen).to(device)
        self._shuffled = self._original[perm].clone()
        self._seed = seed

    def noise_unit(self, now: float, period_s: float) -> torch.Tensor:
        """The looping unit-variance random constant at time ``now`` (into a preallocated buffer)."""
        phi = 2.0 * math.pi * (now / period_s)
        torch.mul(self._a, math.cos(phi), out=self._noise)
        return self._noise.add_(self._b, alpha=math.sin(phi))

    def _write(self, tensor: torch.Tensor, params: Mapping[str, Any], now: float) -> bool:
        self.a = float(params.get("const.corrupt", 0.0))
        if self.a <= 0.0:
            return False
        seed = int(params.get("hand.const.seed", 0))
        if seed != self._seed:
            self._reseed(seed)
        mode = self._mode = params.get("hand.const.mode", "blend")
        if mode == "shuffle":
            torch.lerp(self._original, self._shuffled, self.a, out=tensor)
            return True
        noise = self.noise_unit(now, float(params.get("hand.const.period_s", 20.0)))
        if mode == "additive":
            noise.mul_(self._std)
            torch.add(self._original, noise, alpha=self.a, out=tensor)
        else:  # blend
            noise.mul_(self._std).add_(self._mean)
            torch.lerp(self._original, noise, self.a, out=tensor)
        return True

    def features(self) -> dict[str, float]:
        return {"const_a": float(self.a)} if self.applies else {}

    @property
    def settling(self) -> bool:
        """Corrupting with the moving noise constant (it changes every frame)."""
        return self.a > 0.0 and self._mode != "shuffle"
