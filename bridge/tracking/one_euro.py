"""The One-Euro filter (Casiez, Roussel, Vogel, CHI 2012), over a whole vector of values at once.

Why this filter: a hand held still jitters by a pixel or two, and a hand moving fast must not lag. One-Euro
is a low-pass whose cutoff rises with speed: ``min_cutoff`` (Hz) sets how still a still hand looks, ``beta``
how quickly the cutoff opens up as the value moves. It is time-based, so it behaves the same whatever rate the
tracker runs at. All features share one filter object (one numpy expression per update, no Python loop).
"""
from __future__ import annotations

import numpy as np

from bridge.one_euro import one_euro_step


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
