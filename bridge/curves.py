"""Response curves (0..1 -> 0..1) shared by every route (signal routes and rig-map routes), and the easing ramp.

A curve shapes how an input becomes a parameter: a dead zone near the start (``ease_in``), a quick response
(``ease_out``), an S (``smooth``), the reverse (``inverse``: the hand at the centre corrupts most), or the
exponential pair ``exp`` / ``log`` for perceptual controls (exact inverses of each other; ``k`` sets how
strongly they bend). The ``hand.const.curve`` parameter offers the first five (:data:`SHAPE_NAMES`).
"""
from __future__ import annotations

import math
from typing import Callable


def clip01(x: float) -> float:
    return 0.0 if x <= 0.0 else 1.0 if x >= 1.0 else x


_SHAPES: dict[str, Callable[[float], float]] = {
    "linear": lambda x: x,
    "smooth": lambda x: x * x * (3.0 - 2.0 * x),
    "ease_in": lambda x: x * x,
    "ease_out": lambda x: 1.0 - (1.0 - x) * (1.0 - x),
    "inverse": lambda x: 1.0 - x,
}
SHAPE_NAMES: tuple[str, ...] = tuple(_SHAPES)
CURVE_NAMES: tuple[str, ...] = SHAPE_NAMES + ("exp", "log")
DEFAULT_K = 4.0


def unit(x: float, low: float, high: float, invert: bool = False) -> float:
    """Where ``x`` sits in [low, high] as 0..1 (clamped), inverted if asked: the first step of every route."""
    t = (x - low) / (high - low)
    t = 0.0 if t <= 0.0 else 1.0 if t >= 1.0 else t
    return 1.0 - t if invert else t


def apply_curve(name: str, x: float, k: float = DEFAULT_K) -> float:
    """Curve ``name`` of ``x`` clipped to 0..1 (an unknown name raises KeyError: callers validate names)."""
    t = clip01(float(x))
    if name == "exp":
        return (math.exp(k * t) - 1.0) / (math.exp(k) - 1.0)
    if name == "log":
        return math.log1p(t * (math.exp(k) - 1.0)) / k
    return _SHAPES[name](t)


class Ramp:
    """An engagement level 0..1 that walks toward a target at 1/``ease_s`` per second.

    Why: when a hand appears or is lost, what it drives must not jump; it is scaled by this ramp, which takes
    ``ease_s`` seconds to go all the way (``ease_s`` = 0 jumps). The output is smoothstepped so the motion
    starts and ends gently.
    """

    def __init__(self) -> None:
        self.level = 0.0
        self._t: float | None = None

    def update(self, target: float, now: float, ease_s: float) -> float:
        dt = 0.0 if self._t is None else max(0.0, now - self._t)
        self._t = now
        if ease_s <= 0.0:
            self.level = target
        else:
            step = dt / ease_s
            if self.level < target:
                self.level = min(target, self.level + step)
            else:
                self.level = max(target, self.level - step)
        return self.value

    @property
    def value(self) -> float:
        x = self.level
        return x * x * (3.0 - 2.0 * x)
