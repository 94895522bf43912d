"""The live direction slots: ``dir.<i>.amount`` / ``.component`` / ``.layers`` added to one frame's w.

For every slot i with a non-zero amount (each slot reads its own rows of the per-frame snapshot):

    w[start:end] += amount * scale[k] * v[k]        k = dir.<i>.component, [start, end) = dir.<i>.layers

before truncation (so psi still pulls the edited w toward the average). ``layers`` (-1, -1) means every style
layer; start >= end means none (GANSpace edits a range, e.g. (0, 4) for pose-like components). A slot whose
component is beyond what the source has is skipped, and said so once. Amount 0 changes nothing: the w tensor
is returned untouched, bit for bit.

The directions can arrive late (PCA computed off the render thread): until :meth:`DirectionSlots.set` is
called every slot is a no-op.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Mapping

import torch

from bridge.directions.compute import Directions
from bridge.params import DIRECTION_SLOTS

log = logging.getLogger(__name__)


def slot_layers(value: Any, num_ws: int) -> tuple[int, int]:
    """``dir.<i>.layers`` -> a clipped [start, end) (any negative = every layer)."""
    start, end = value
    if start < 0 or end < 0:
        return 0, num_ws
    return max(0, min(int(start), num_ws)), max(0, min(int(end), num_ws))


class DirectionSlots:
    """Holds the directions (as tensors on the generator's device) and applies the slots to w."""

    def __init__(self, num_ws: int, device: "str | torch.device" = "cpu") -> None:
        self.num_ws = int(num_ws)
        self.device = device
        self.directions: Directions | None = None
        self._vectors: torch.Tensor | None = None
        self._scales: list[float] = []
        self._warned: set[tuple[int, int]] = set()
        self._lock = threading.Lock()
        # Called once (with this object) the first time a slot is used while no directions are loaded: how a
        # lazily computed source (PCA) gets started. It must return at once and call set() when done.
        self.request: Callable[["DirectionSlots"], None] | None = None

    def set(self, directions: Directions | None) -> None:
        """Install a new set (any thread); the render thread picks it up on its next frame."""
        vectors = None if directions is None else torch.from_numpy(directions.vectors).to(self.device)
        with self._lock:
            self.directions = directions
            self._vectors = vectors
            self._scales = [] if directions is None else [float(s) for s in directions.scales]
            self._warned.clear()

    def active(self, snapshot: Mapping[str, Any]) -> bool:
        return any(float(snapshot.get(f"dir.{i}.amount", 0.0)) != 0.0 for i in range(DIRECTION_SLOTS))

    def apply(self, w: torch.Tensor, snapshot: Mapping[str, Any]) -> torch.Tensor:
        """w (num_ws, w_dim) with every active slot added (in place on w; w itself when none is active)."""
        with self._lock:
            vectors, scales = self._vectors, self._scales
        if vectors is None:
            if self.request is not None and self.active(snapshot):
                request, self.request = self.request, None
                request(self)
            return w
        for i in range(DIRECTION_SLOTS):
            amount = float(snapshot.get(f"dir.{i}.amount", 0.0))
            if amount == 0.0:
                continue
            k = int(snapshot.get(f"dir.{i}.component", i))
            if k >= len(scales):
                self._warn_once(i, k, len(scales))
                continue
            start, end = slot_layers(snapshot.get(f"dir.{i}.layers", (-1, -1)), self.num_ws)
            if end > start:
                w[start:end] += (amount * scales[k]) * vectors[k].to(w.dtype)
        return w

    def _warn_once(self, slot: int, k: int, count: int) -> None:
        if (slot, k) not in self._warned:
            self._warned.add((slot, k))
            log.warning("dir.%d.component %d: only %d directions are loaded; the slot is skipped", slot, k, count)
