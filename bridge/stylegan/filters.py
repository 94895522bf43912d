"""FIR low-pass filter design for StyleGAN3's random initialisation, in numpy only.

StyleGAN3 designs each layer's up/down-sampling filters from its cutoff, transition width and sampling rate:
a Kaiser-windowed sinc (what ``scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)`` returns) applied
separably, or for StyleGAN3-R's non-critically-sampled layers a radially symmetric Kaiser-windowed jinc.

These designs are used ONLY to initialise a network built from a config (``Generator.from_config``). A loaded
network keeps the filter buffers it was saved with: trained or edited networks need not match the design,
and the test fixtures deliberately perturb them.

scipy is not a dependency of the package, so the Kaiser attenuation/beta formulas and the Bessel function J1
are written out here; tests compare them with scipy where it is installed.
"""
from __future__ import annotations

import math

import numpy as np


def kaiser_atten(numtaps: int, width: float) -> float:
    """Attenuation (dB) a Kaiser FIR of `numtaps` taps reaches for a transition `width` (a fraction of Nyquist).

    Kaiser's empirical formula, the one scipy.signal.kaiser_atten uses.
    """
    return 2.285 * (numtaps - 1) * math.pi * width + 7.95


def kaiser_beta(atten: float) -> float:
    """Kaiser window shape parameter beta that reaches attenuation `atten` dB (Kaiser's empirical formula)."""
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def bessel_j1(x) -> np.ndarray:
    """Bessel function of the first kind, order 1, for real x (float64, accurate to ~1e-15 absolute).

    Uses Bessel's integral J1(x) = 1/(2 pi) * integral over one period of cos(t - x sin t) dt. The integrand is
    periodic and analytic, so the trapezoidal rule converges geometrically once the number of samples exceeds
    |x| by a margin (the error is of the order of J_N(x)); we take N = 1.5 |x| + 64.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x.copy()
    n = int(1.5 * float(np.max(np.abs(x)))) + 64
    t = (np.arange(n) + 0.5) * (2 * np.pi / n)
    integrand = np.cos(t - x[..., None] * np.sin(t))
    return integrand.mean(axis=-1)


def _kaiser_window(numtaps: int, width: float, fs: float) -> np.ndarray:
    """Symmetric Kaiser window sized for a transition of `width` Hz at sampling rate `fs`."""
    beta = kaiser_beta(kaiser_atten(numtaps, width / (fs / 2)))
    return np.kaiser(numtaps, beta)


def lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray | None:
    """1-D Kaiser-windowed sinc low-pass (scipy.signal.firwin's design), normalised to unit DC gain.

    cutoff and width are in the same units as fs (StyleGAN3 passes cycles per image-unit). Returns None for a
    single tap: StyleGAN3 stores no filter where no resampling happens.
    """
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    if not 0 < cutoff < fs / 2:
        raise ValueError(f"cutoff {cutoff} must lie strictly between 0 and fs/2 = {fs / 2}")
    m = np.arange(numtaps) - (numtaps - 1) / 2
    c = cutoff / (fs / 2)  # cutoff as a fraction of Nyquist
    h = c * np.sinc(c * m) * _kaiser_window(numtaps, width, fs)
    return h / h.sum()


def radial_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray | None:
    """2-D radially symmetric Kaiser-windowed jinc low-pass (StyleGAN3-R), normalised to unit DC gain.

    The ideal 2-D disc low-pass with cutoff fc has impulse response J1(2 pi fc r) / (pi r); the window is the
    outer product of the 1-D Kaiser window. At r = 0 (odd numtaps only) the limit fc is used.
    """
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = bessel_j1(2 * cutoff * np.pi * r) / (np.pi * r)
    f = np.where(r == 0, cutoff, f)
    w = _kaiser_window(numtaps, width, fs)
    f = f * np.outer(w, w)
    return f / f.sum()


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> np.ndarray | None:
    """StyleGAN3's filter for one resampling step: separable 1-D unless `radial`; None for a single tap."""
    if radial:
        return radial_lowpass_filter(numtaps, cutoff, width, fs)
    return lowpass_filter(numtaps, cutoff, width, fs)


__all__ = ["bessel_j1", "design_lowpass_filter", "kaiser_atten", "kaiser_beta", "lowpass_filter",
           "radial_lowpass_filter"]
