"""What the tensor levers share: find the tensor by NVIDIA name once, write it per frame, restore it exactly.

A lever reads only the frame's parameter snapshot (never a tracker): routes (:mod:`bridge.routes`) have already
written whatever the hand, the body, the audio or a fader wants into its parameters. A subclass names its
tensor (``tensor_name``) and writes it in :meth:`TensorLever._write`; when the parameters ask for nothing the
original tensor is copied back bit for bit, once, so "no effect" is exactly the untouched network.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch

log = logging.getLogger(__name__)


def find_tensor(generator, name: str) -> torch.Tensor | None:
    """The parameter or buffer called ``name`` (NVIDIA's dotted name), or None."""
    for named in (generator.named_parameters(), generator.named_buffers()):
        for tensor_name, tensor in named:
            if tensor_name == name:
                return tensor
    return None


class TensorLever:
    """Base class: binds to ``tensor_name`` in whichever generator it is given, writes, restores."""

    tensor_name = ""
    needs = ""  # which networks have the tensor, for the one-time "does not apply" message

    def __init__(self) -> None:
        self._generator = None
        self._tensor: torch.Tensor | None = None
        self._original: torch.Tensor | None = None
        self._neutral = True
        self.applies = False

    # -- the engine's interface ------------------------------------------------------------------
    def apply(self, generator, params: Mapping[str, Any], now: float) -> None:
        """Update the tensor for this frame (render thread, before synthesis)."""
        if generator is not self._generator:
            self._bind(generator)
        if self._tensor is None:
            return
        with torch.no_grad():
            if self._write(self._tensor, params, now):
                self._neutral = False
            else:
                self._restore_once()

    def features(self) -> dict[str, float]:
        return {}

    @property
    def settling(self) -> bool:
        """True while the output changes with time alone: the render loop should keep rendering."""
        return False

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

    def _write(self, tensor: torch.Tensor, params: Mapping[str, Any], now: float) -> bool:
        """Write the manipulated tensor; return False when the result would be the original (then it is restored)."""
        raise NotImplementedError
