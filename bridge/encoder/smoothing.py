"""Temporal smoothing of z, so camera noise and autofocus hunting do not make the generated image jump.

(The paper's user tests complained of exactly that.) Two filters share one state, so switching between them
live continues from the current value instead of jumping:

* ``ema``: exponential moving average. ``amount`` is the weight of the old value per frame *at 30 fps*;
  at other frame rates the per-frame weight is amount ** (30 * dt), so the visual lag is the same whatever
  the frame rate (amount 0.9 -> time constant about 0.32 s; 0.99 -> 3.3 s).
* ``one_euro``: the 1-euro filter (Casiez, Roussel & Vogel, CHI 2012), per dimension: a low-pass whose
  cutoff rises with speed, ``cutoff = min_cutoff + beta * |dz/dt|``, so a still scene is strongly smoothed
  while a fast gesture follows with little lag. z is in N(0, 1) units, so dz/dt is in units per second.
"""
from __future__ import annotations

import torch

from bridge.one_euro import one_euro_step

REFERENCE_FPS = 30.0


class Smoother:
    """Filters one z (a tensor of any shape) over time. ``dt`` <= 0 or the first call passes the value through."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None
        self.speed: torch.Tensor | None = None  # smoothed derivative (the 1-euro filter's second state)

    def reset(self) -> None:
        self.value = self.speed = None

    def ema(self, x: torch.Tensor, dt: float, amount: float) -> torch.Tensor:
        if amount <= 0.0 or not self._continues(x, dt):
            return self._restart(x)
        keep = amount ** (REFERENCE_FPS * dt)
        new = keep * self.value + (1.0 - keep) * x
        self.speed = (new - self.value) / dt
        self.value = new
        return new

    def one_euro(self, x: torch.Tensor, dt: float, min_cutoff: float, beta: float) -> torch.Tensor:
        if not self._continues(x, dt):
            return self._restart(x)
        self.value, self.speed = one_euro_step(x, self.value, self.speed, dt, min_cutoff, beta)
        return self.value

    def _continues(self, x: torch.Tensor, dt: float) -> bool:
        return self.value is not None and self.value.shape == x.shape and dt > 0.0

    def _restart(self, x: torch.Tensor) -> torch.Tensor:
        self.value = x
        self.speed = torch.zeros_like(x) if self.speed is None or self.speed.shape != x.shape else self.speed
        return x
