"""Latent directions: unit vectors in w space that move the picture along one meaningful axis.

Three sources, one result type (:class:`Directions`: unit rows ordered by importance, each with a scale):

* ``pca``  GANSpace (Härkönen et al. 2020): principal components of w over N sampled z. Each row's scale is
  that component's standard deviation, so ``dir.<i>.amount = 2`` means "two standard deviations". Computed
  once per mapping network and cached on disk (:mod:`bridge.directions.cache`).
* ``sefa`` SeFa (Shen & Zhou 2021): eigenvectors of AᵀA, A = every style affine weight of the synthesis
  network stacked (each output channel's weight row scaled to unit length). No sampling; scale 1 (w units).
* a ``.npy`` file the user brings, shape (K, w_dim) or (w_dim,) (e.g. InterFaceGAN's boundaries); rows are
  normalised to unit length; scale 1.

Live use (:mod:`bridge.directions.live`): ``DIRECTION_SLOTS`` slots ``dir.<i>.amount`` / ``.component`` /
``.layers``, summed onto the mixed w before truncation.
"""
from __future__ import annotations

from bridge.directions.compute import (Directions, DirectionsError, load_direction_file, pca_directions,
                                       sample_w, sefa_directions, style_affine_weights)

__all__ = ["Directions", "DirectionsError", "load_direction_file", "pca_directions", "sample_w",
           "sefa_directions", "style_affine_weights"]
