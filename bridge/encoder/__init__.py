"""Visual encoder: camera frame -> fake latents z through a frozen pretrained network (the paper's Appendix A).

    from bridge.encoder import build_encoder, EncoderError
    enc = build_encoder(z_dim=512, taps=("conv4_1",), weights=None, allow_download=False, demo=False)
    zs = enc.encode(rgb, params_snapshot)   # {"coarse": z, "middle": z, "fine": z}, each (z_dim,) float32

Modules: ``backbone`` (the interface every network implements, the registry and the strict state-dict check),
the backbones ``vgg16``, ``mobilenet_v3`` and ``efficientnet`` (sharing ``mobile_blocks``) and ``dinov2``,
``weights`` (where pretrained weights come from; no download unless allowed), ``reduce`` (the reduction g: means, projection, Eq. 2, standardisation), ``regions`` (layouts: which part of the
picture drives which layer group), ``smoothing`` (EMA, One-Euro), ``encoder`` (the pipeline).
"""
from __future__ import annotations

from bridge.encoder.backbone import BACKBONES, Backbone, EncoderError, EncoderInputError
from bridge.encoder.encoder import (DEFAULT_ENCODE_SIZE, DEMO_ENCODE_SIZE, DEMO_ENCODER, Tap, VisualEncoder,
                                    build_encoder, parse_taps)
from bridge.encoder.regions import GROUPS, NAMED_LAYOUTS, Layout, parse_layout

__all__ = [
    "BACKBONES", "Backbone", "DEFAULT_ENCODE_SIZE", "DEMO_ENCODE_SIZE", "DEMO_ENCODER", "EncoderError", "EncoderInputError", "GROUPS",
    "Layout", "NAMED_LAYOUTS", "Tap", "VisualEncoder", "build_encoder", "parse_layout", "parse_taps",
]
