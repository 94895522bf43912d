"""Response curves (0..1 -> 0..1) and the easing ramp shared by the manipulations.

A curve shapes how a hand feature (e.g. distance from the frame centre) becomes a manipulation strength, so
a performer can have a dead zone near the centre (``ease_in``), a quick response (``ease_out``), or the
reverse (``inverse``: the hand at the centre corrupts most). The names are the choices of the
``hand.*.curve`` parameters, which read :data:`CURVE_NAMES`.
"""
from __future__ import annotations

from typing import Callable


def _clip01(x: float) -> float:
    return 0.0 if x <= 0.0 else 1.0 if x >= 1.0 else x


CURVES: dict[str, Callable[[float], float]] = {
    "linear": lambda x: x,
    "smooth": lambda x: x * x * (3.0 - 2.0 * x),
    "ease_in": lambda x: x * x,
    "ease_out": lambda x: 1.0 - (1.0 - x) * (1.0 - x),
    "inverse": lambda x: 1.0 - x,
}
CURVE_NAMES: tuple[str, ...] = tuple(CURVES)


def apply_curve(name: str, x: float) -> float:
    """``CURVES[name]`` of ``x`` clipped to 0..1 (an unknown name raises KeyError: the table validates names)."""
    return CURVES[name](_clip01(float(x)))


class Ramp:
    """An engagement level 0..1 that walks toward a target at 1/``ease_s`` per second.

    Why: when the hand appears or is lost, a manipulation must not jump; it scales its effect by this ramp,
    which takes ``ease_s`` seconds to go all the way (``ease_s`` = 0 jumps). The output is smoothstepped
    so the motion starts and ends gently.
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
