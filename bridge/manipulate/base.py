"""What the hand manipulations share: find the tensor by NVIDIA name once, ease in and out, restore exactly.

A subclass names its tensor (``tensor_name``), its parameters' prefix (``prefix``: ``hand.const`` reads
``hand.const.enable``), and writes the tensor in :meth:`HandManipulation._write` from the smoothed hand
features and an engagement level 0..1 (the :class:`~bridge.manipulate.curves.Ramp`). When the level is 0 the
original tensor is copied back bit for bit, once, so "no hand" is exactly the untouched network.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch

from bridge.frames import Keypoints
from bridge.manipulate.curves import Ramp
from bridge.tracking.features import HandFeatures

log = logging.getLogger(__name__)


def find_tensor(generator, name: str) -> torch.Tensor | None:
    """The parameter or buffer called ``name`` (NVIDIA's dotted name), or None."""
    for named in (generator.named_parameters(), generator.named_buffers()):
        for tensor_name, tensor in named:
            if tensor_name == name:
                return tensor
    return None


class HandManipulation:
    """Base class: binds to ``tensor_name`` in whichever generator it is given, eases, restores."""

    tensor_name = ""
    prefix = ""
    needs = ""  # which networks have the tensor, for the one-time "does not apply" message

    def __init__(self, features: HandFeatures | None = None) -> None:
        self.hand = features or HandFeatures()
        self.ramp = Ramp()
        self._generator = None
        self._tensor: torch.Tensor | None = None
        self._original: torch.Tensor | None = None
        self._neutral = True
        self.applies = False

    # -- the engine's interface ------------------------------------------------------------------
    def apply(self, generator, params: Mapping[str, Any], keypoints: Keypoints | None, now: float) -> None:
        """Update the tensor for this frame (render thread, before synthesis)."""
        if generator is not self._generator:
            self._bind(generator)
        if self._tensor is None:
            return
        present = self.hand.update(keypoints, params)
        target = 1.0 if present and params.get(f"{self.prefix}.enable", True) else 0.0
        level = self.ramp.update(target, now, float(params.get("hand.ease_s", 0.5)))
        with torch.no_grad():
            if level <= 0.0:
                self._idle()
                self._restore_once()
            elif self._write(self._tensor, params, level, now):
                self._neutral = False
            else:
                self._restore_once()

    def features(self) -> dict[str, float]:
        return {}

    @property
    def settling(self) -> bool:
        """True while the output changes with time alone (easing in/out): the render loop should keep rendering."""
        return self.applies and 0.0 < self.ramp.level < 1.0

    def restore(self) -> None:
        """Put the original tensor back (bit-exact)."""
        if self._tensor is not None:
            with torch.no_grad():
                self._tensor.copy_(self._original)
            self._neutral = True

    # -- internals ---------------------------------------------------------------------------------
    def _bind(self, generator) -> None:
        self._generator = generator
        tensor = find_tensor(generator, self.tensor_name)
        self._tensor = None if tensor is None else tensor.detach()  # shares storage with the network's tensor
        self.applies = tensor is not None
        self.ramp = Ramp()
        if tensor is None:
            log.info("%s does not apply to this network (no %s: %s only); it stays off",
                     type(self).__name__, self.tensor_name, self.needs)
            return
        self._original = self._tensor.clone()
        self._neutral = True
        self._on_bind(self._tensor)

    def _restore_once(self) -> None:
        if not self._neutral:
            self._tensor.copy_(self._original)
            self._neutral = True

    def _on_bind(self, tensor: torch.Tensor) -> None:
        """Preallocate what :meth:`_write` needs (called once per network)."""

    def _idle(self) -> None:
        """No hand (fully eased out): reset what :meth:`features` reports."""

    def _write(self, tensor: torch.Tensor, params: Mapping[str, Any], level: float, now: float) -> bool:
        """Write the manipulated tensor; return False when the result would be the original (then it is restored)."""
        raise NotImplementedError
