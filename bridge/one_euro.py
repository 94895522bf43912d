"""The 1-euro filter (Casiez, Roussel & Vogel, CHI 2012): its update step, written once for numpy (the tracked
features) and torch (the encoder's z) with arithmetic operators and ``abs()`` only, and :class:`OneEuroFilter`,
the vector filter the trackers use.

A low-pass whose cutoff rises with speed: ``cutoff = min_cutoff + beta * |dx/dt|`` (Hz), so a still input is
strongly smoothed while a fast gesture follows with little lag. It is time-based: it behaves the same
whatever rate its input arrives at.
"""
from __future__ import annotations

import math

import numpy as np

DERIVATIVE_CUTOFF_HZ = 1.0


def lowpass_alpha(cutoff_hz, dt: float):
    """Blend factor of a first-order low-pass with this cutoff, sampled ``dt`` seconds apart.

    dt / (dt + tau) with tau = 1 / (2 pi cutoff), written without dividing by the cutoff so that a cutoff of
    0 holds the value instead of failing.
    """
    r = (2.0 * math.pi * dt) * cutoff_hz
    return r / (1.0 + r)


def one_euro_step(x, x_prev, dx_prev, dt: float, min_cutoff: float, beta: float,
                  d_cutoff: float = DERIVATIVE_CUTOFF_HZ):
    """One update (``dt`` > 0): returns ``(smoothed x, smoothed derivative)`` to pass back in next time."""
    dx = dx_prev + lowpass_alpha(d_cutoff, dt) * ((x - x_prev) / dt - dx_prev)
    cutoff = min_cutoff + beta * abs(dx)
    return x_prev + lowpass_alpha(cutoff, dt) * (x - x_prev), dx


class OneEuroFilter:
    """Smooth a fixed-length float vector sampled at irregular times.

    ``filter(values, t)`` returns the smoothed vector. The first sample (and any after :meth:`reset`) passes
    through unchanged. A sample whose time does not advance returns the previous output: the same keypoints
    seen twice are not filtered twice.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t = 0.0

    def filter(self, values: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(values, dtype=np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return self._x.copy()
        dt = t - self._t
        if dt <= 0:
            return self._x.copy()
        self._x, self._dx = one_euro_step(x, self._x, self._dx, dt, self.min_cutoff, self.beta, self.d_cutoff)
        self._t = t
        return self._x.copy()
