"""StyleGAN3 input transform: the hand turns, moves and zooms the picture through ``synthesis.input.transform``.

StyleGAN3 draws its first layer from Fourier features sampled on a grid; the 3x3 ``input.transform`` buffer
moves that grid, and the whole (equivariant) network follows. NVIDIA's convention, used by their tools and
by this project's fixtures, is that the buffer holds the *inverse* of the user's transform

    m = [[ k cos r,  k sin r,  tx],
         [-k sin r,  k cos r,  ty],
         [       0,        0,   1]]          (r in radians, k the zoom)

so this module writes ``T0 @ inv(m)``, where ``T0`` is the buffer the network came with (a trained network
stores the identity there, but an edited one need not), i.e. the hand's transform is applied on top of the
network's own. With m = identity the buffer is ``T0`` bit for bit.

The levers (live parameters; routes drive them):
* ``sg3.rotate``: rotation in degrees (positive turns the picture clockwise on screen);
* ``sg3.translate.x`` / ``sg3.translate.y``: translation in StyleGAN3 input units (about one image width per
  unit; positive moves the picture right / down);
* ``sg3.zoom``: zoom in octaves, k = 2 ** zoom (positive enlarges).
With hands on, the default routes (``bridge.tracking.default_routes``) set them from the hand: rotation =
angle * ``hand.transform.rotate``, translation = (centroid - frame centre) * ``hand.transform.translate``,
zoom = ``hand.transform.scale`` * 0.5 * log2(area / ``hand.transform.area_ref``), each scaled by the
engagement ``hand.present``, so a lost hand eases the picture back to the network's own transform.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch

from bridge.manipulate.base import TensorLever

MIN_ZOOM, MAX_ZOOM = 0.25, 4.0
# Signs that make the picture follow the hand. Measured on the fixture networks (tests/test_manipulate_sg3.py
# checks them): a positive m angle turns the picture counter-clockwise on screen (y down), a positive tx / ty
# moves it right / down, and k > 1 enlarges it.
_ROTATE_SIGN = -1.0
_TRANSLATE_SIGN = 1.0


def user_matrix(angle_deg: float, tx: float, ty: float, zoom: float = 1.0) -> np.ndarray:
    """NVIDIA's user transform m (float64) for a rotation in degrees, a translation and a zoom."""
    r = math.radians(angle_deg)
    c, s = zoom * math.cos(r), zoom * math.sin(r)
    return np.array([[c, s, tx], [-s, c, ty], [0.0, 0.0, 1.0]])


class InputTransform(TensorLever):
    tensor_name = "synthesis.input.transform"
    needs = "StyleGAN3"

    def __init__(self) -> None:
        super().__init__()
        self.current = {"angle": 0.0, "tx": 0.0, "ty": 0.0, "zoom": 1.0}

    def _on_bind(self, tensor: torch.Tensor) -> None:
        self._t0 = self._original.detach().cpu().double().numpy()
        self._staging = torch.empty(tuple(tensor.shape), dtype=tensor.dtype)  # CPU, reused every frame

    def _write(self, tensor: torch.Tensor, params: Mapping[str, Any], now: float) -> bool:
        angle = float(params.get("sg3.rotate", 0.0))
        tx, ty = float(params.get("sg3.translate.x", 0.0)), float(params.get("sg3.translate.y", 0.0))
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, 2.0 ** float(params.get("sg3.zoom", 0.0))))
        self.current = {"angle": angle, "tx": tx, "ty": ty, "zoom": zoom}
        m = user_matrix(_ROTATE_SIGN * angle, _TRANSLATE_SIGN * tx, _TRANSLATE_SIGN * ty, zoom)
        if np.array_equal(m, np.eye(3)):
            return False
        self._staging.copy_(torch.from_numpy(self._t0 @ np.linalg.inv(m)))
        tensor.copy_(self._staging)
        return True

    def features(self) -> dict[str, float]:
        if not self.applies:
            return {}
        return {f"transform_{k}": float(v) for k, v in self.current.items()}
