"""The 1-euro filter's update (Casiez, Roussel & Vogel, CHI 2012), written once for the hand features (numpy)
and the encoder's z (torch): arithmetic operators and ``abs()`` only, so both array types run the same lines.

A low-pass whose cutoff rises with speed: ``cutoff = min_cutoff + beta * |dx/dt|`` (Hz), so a still input is
strongly smoothed while a fast gesture follows with little lag. It is time-based: it behaves the same
whatever rate its input arrives at.
"""
from __future__ import annotations

import math

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
