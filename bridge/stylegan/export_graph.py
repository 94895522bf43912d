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


class FrameCoverage:
    """Which frames a synthesis graph fixed at one moment still computes exactly as the eager network would.

    Shared by the compiled package (bridge.aot) and the CUDA graph (bridge.cuda_graph): batch-1 float32 ws on
    the graph's device, noise const, no network bend set, and every parameter and buffer unchanged since the
    graph was made (same storage, same in-place version), except the lever tensor, which the levers edit every
    frame and the graph reads live. Checked per frame in microseconds.
    """

    def __init__(self, generator, device_type: str) -> None:
        from bridge.bending import bend_points

        self.lever = lever_input(generator)[1]
        self._device_type = device_type
        self._ws_shape = (1, int(generator.num_ws), int(generator.w_dim))
        self._bend_points = list(bend_points(generator).values())
        lever_ptr = self.lever.data_ptr()
        self._fixed = [t for t in (*generator.synthesis.parameters(), *generator.synthesis.buffers())
                       if t.data_ptr() != lever_ptr]
        self._signature = self._stamp()

    def covers(self, ws: torch.Tensor, noise_mode: str = "const") -> bool:
        return (noise_mode == "const" and tuple(ws.shape) == self._ws_shape and ws.device.type == self._device_type
                and ws.dtype == torch.float32 and not any(getattr(m, "bend", None) is not None
                                                          for m in self._bend_points)
                and self._stamp() == self._signature)

    def _stamp(self) -> tuple:
        """Changes when a tensor is edited in place (its version) or swapped for another storage."""
        return tuple((t._version, t.data_ptr()) for t in self._fixed)
