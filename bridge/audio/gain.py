"""Automatic gain: each feature divided by its own recent peak, so a quiet room and a loud club both use 0..1.

The peak follows a louder value at once (no overshoot past 1) and falls back exponentially with
``release_s`` (so after a loud passage a quiet one fills the range again within about that long). A floor per
feature stops silence from being blown up into noise. ``freeze`` holds every peak where it is: the mapping
stops adapting (e.g. once the sound check has set it), and a quiet passage then reads as quiet.
"""
from __future__ import annotations

import math
from typing import Mapping


class AutoGain:
    def __init__(self, floors: Mapping[str, float], release_s: float = 10.0) -> None:
        self.floors = dict(floors)
        self.release_s = float(release_s)
        self.peaks = dict(floors)
        self.frozen = False

    def apply(self, raw: Mapping[str, float], dt: float) -> dict[str, float]:
        """``raw`` values (only the names with a floor) -> 0..1, adapting over ``dt`` seconds unless frozen."""
        out = {}
        decay = math.exp(-dt / self.release_s) if self.release_s > 0 else 0.0
        for name, floor in self.floors.items():
            value = max(0.0, float(raw.get(name, 0.0)))
            peak = self.peaks[name]
            if not self.frozen:
                peak = max(value, floor, peak * decay)
                self.peaks[name] = peak
            out[name] = min(1.0, value / peak)
        return out
