"""The synthesis network as a graph with plain tensor inputs, for exporters (ONNX, AOTInductor).

The two tensor levers the engine edits each frame, StyleGAN2's learned constant ``b4.const`` and StyleGAN3's
inverse input transform ``input.transform``, become inputs, so an exported graph still follows the hand
manipulations. Noise is baked in as const.
"""
from __future__ import annotations

import torch
from torch import nn


class SynthesisGraph(nn.Module):
    """ws [+ the lever tensor] -> img, noise_mode const.

    fused_modconv=False (StyleGAN2) runs one shared convolution with the per-sample scales on the activations,
    which any batch size can use (the ONNX graphs have a free batch); True is the grouped per-sample form."""

    def __init__(self, synthesis, arch: str, fused_modconv: bool = False):
        super().__init__()
        self.synthesis = synthesis
        self.arch = arch
        self.fused_modconv = fused_modconv

    def forward(self, ws, lever):
        if self.arch == "stylegan2":
            return self.synthesis(ws, noise_mode="const", fused_modconv=self.fused_modconv, const=lever)
        return self.synthesis(ws, noise_mode="const", transform=lever)


def lever_input(generator) -> tuple[str, torch.Tensor]:
    """The synthesis graph's lever input: its name and the model's current value (the live tensor)."""
    if generator.arch == "stylegan2":
        return "const", generator.synthesis.blocks()[0].const.detach()
    return "transform", generator.synthesis.input.transform.detach()
