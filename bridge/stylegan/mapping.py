"""StyleGAN mapping network: z [+ class c] -> w, broadcast to num_ws style slots, with truncation.

One class serves StyleGAN2, 2-ADA and StyleGAN3: their mapping networks compute the same function and use
the same tensor names (fc{i}.weight/bias, embed.weight/bias, w_avg); only the default depth differs
(8 layers for SG2, 2 for SG3), which the Generator passes from the architecture.

    x = normalise(z)            (unit RMS per sample; z is cast to float32)
    x = cat(x, normalise(embed(c)))  when c_dim > 0
    x = fc_{n-1}(... fc0(x))    lrelu layers, equalised lr with lr_multiplier 0.01
    ws = x repeated num_ws times
    ws[:, :cutoff] = lerp(w_avg, ws[:, :cutoff], psi)   truncation toward the average w
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from bridge.stylegan.ops import FullyConnectedLayer, normalize_2nd_moment

log = logging.getLogger(__name__)


class MappingNetwork(nn.Module):
    """z (N, z_dim) [+ c (N, c_dim)] -> ws (N, num_ws, w_dim). NVIDIA's argument names and defaults."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.998, **ignored):
        super().__init__()
        if ignored:
            log.debug("MappingNetwork ignores training-only kwargs %s", sorted(ignored))
        if z_dim <= 0 and c_dim <= 0:
            raise ValueError("a mapping network needs z_dim > 0 or c_dim > 0")
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.num_ws, self.num_layers = int(num_ws), int(num_layers)
        self.w_avg_beta = w_avg_beta  # training-only (EMA of w_avg); kept for the config round trip
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim > 0 else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [self.z_dim + embed_features] + [layer_features] * (self.num_layers - 1) + [self.w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(self.num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if w_avg_beta is not None:  # NVIDIA's SG2 keeps no average w when w_avg_beta is None
            self.register_buffer("w_avg", torch.zeros([self.w_dim]))
        else:
            self.w_avg = None

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        x = self._embed_inputs(z, c)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        return self.truncate(x.unsqueeze(1).repeat([1, self.num_ws, 1]), truncation_psi, truncation_cutoff)

    def truncate(self, ws: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
        """Pull ws (N, num_ws, w_dim) toward w_avg by psi in the slots below cutoff (all when None)."""
        if psi == 1:
            return ws
        if self.w_avg is None:
            raise ValueError("this network tracks no average w (w_avg_beta=None): truncation_psi must be 1")
        ws = ws.clone()
        ws[:, :cutoff] = self.w_avg.to(ws.dtype).lerp(ws[:, :cutoff], psi)
        return ws

    def _embed_inputs(self, z, c) -> torch.Tensor:
        """Check shapes (clear errors beat a matmul traceback) and build the first layer's input."""
        parts = []
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must have shape (N, {self.z_dim}), got "
                                 f"{None if z is None else tuple(z.shape)}")
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            n = parts[0].shape[0] if parts else None
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim or (n is not None and c.shape[0] != n):
                raise ValueError(f"this model is conditional: c must have shape ({n or 'N'}, {self.c_dim}), got "
                                 f"{None if c is None else tuple(c.shape)}")
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
                f"num_layers={self.num_layers}")
