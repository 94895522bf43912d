"""Latent mixing, the paper's Test 1: camera z's -> mapping -> style mix with a static w (seed) -> truncation.

The encoder gives one z per layer group (coarse / middle / fine; the "whole" layout gives the same z to all
three). Each is mapped to w once, copied into its group's range of style layers over the static w of ``seed``
(blended by ``mix.amount``), the live latent directions (``dir.*``, :mod:`bridge.directions.live`) are added,
and the mixed w is truncated with ``psi``. A conditional model's class vector c (``class.*``,
:mod:`bridge.classes`) goes into every mapping call. The render thread calls :meth:`LatentMixer.mix` once
per frame with that frame's parameter snapshot.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np

from bridge.frames import GROUPS

log = logging.getLogger(__name__)


def normalise_groups(groups: Any, num_ws: int) -> dict[str, tuple[int, int]]:
    """``default_layer_groups`` output (a mapping name -> (start, end)) clipped to [0, num_ws]."""
    out = {}
    for name in GROUPS:
        start, end = groups[name] if name in groups else (0, 0)
        out[name] = (max(0, min(int(start), num_ws)), max(0, min(int(end), num_ws)))
    return out


def fallback_layer_groups(num_ws: int) -> dict[str, tuple[int, int]]:
    """StyleGAN's classic split (coarse 4-8 px, middle 16-32 px, fine the rest) when the generator has none."""
    a, b = min(4, num_ws), min(8, num_ws)
    return {"coarse": (0, a), "middle": (a, b), "fine": (b, num_ws)}


def resolve_ranges(snapshot: Mapping[str, Any], defaults: Mapping[str, tuple[int, int]],
                   num_ws: int) -> dict[str, tuple[int, int]]:
    """The live ``mix.*`` ranges: (-1, -1) (any negative) = the default split, start >= end = off."""
    out = {}
    for name in GROUPS:
        start, end = snapshot.get(f"mix.{name}", (-1, -1))
        if start < 0 or end < 0:
            start, end = defaults[name]
        out[name] = (max(0, min(start, num_ws)), max(0, min(end, num_ws)))
    return out


def seed_z(seed: int, z_dim: int, device="cpu"):
    """z of a seed as NVIDIA's gen_images.py draws it (RandomState(seed).randn(1, z_dim)), as float32 BEFORE it
    goes to the device: numpy gives float64, which MPS does not have and other devices only convert later."""
    import torch

    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim).astype(np.float32)).to(device)


class LatentMixer:
    """Turns the encoder's per-group z's into the ws one frame is synthesised from.

    The static w (seed) is cached per seed (and class vector, and mapping weights: model mixing can change
    them), untruncated; truncation is applied once to the mixed w
    (``w_avg + psi * (w - w_avg)`` on the first ``trunc_cutoff`` layers, NVIDIA's formula). Because mixing
    and truncation are both affine per layer, this equals mixing truncated ws, but psi can glide every
    frame without recomputing the static w.
    """

    def __init__(self, generator, device: str = "cpu"):
        import torch

        self.generator = generator
        self.device = device
        self.num_ws = int(generator.num_ws)
        self.z_dim = int(generator.z_dim)
        self.c_dim = int(getattr(generator, "c_dim", 0) or 0)
        try:
            from bridge.stylegan import default_layer_groups

            self.default_groups = normalise_groups(default_layer_groups(generator), self.num_ws)
        except (ImportError, AttributeError, KeyError, TypeError, ValueError) as exc:
            log.debug("default_layer_groups unavailable (%s); using the classic split", exc)
            self.default_groups = fallback_layer_groups(self.num_ws)
        self._static: dict[tuple, Any] = {}
        self._torch = torch
        from bridge.classes import ClassSource
        from bridge.directions.live import DirectionSlots

        self.directions = DirectionSlots(self.num_ws, device)  # no directions until the levers install some
        self.classes = ClassSource(self.c_dim)  # manual classes; the levers may replace it (camera classes)
        self._c: np.ndarray | None = None  # this frame's class vector (None: unconditional)

    def static_w(self, seed: int):
        """w (num_ws, w_dim) of z = RandomState(seed).randn(z_dim), untruncated; cached per seed and c."""
        key = (seed, None if self._c is None else self._c.tobytes(), self._mapping_version())
        if key not in self._static:
            z = seed_z(seed, self.z_dim, self.device)
            self._static.clear()  # one seed at a time is all a show needs; keeps memory flat under seed sweeps
            with self._torch.inference_mode():
                self._static[key] = self._map(z)[0]
        return self._static[key]

    def _mapping_version(self) -> tuple:
        """Changes whenever a mapping tensor is written in place (model mixing does): invalidates the cache."""
        return tuple(getattr(t, "_version", 0) for t in self.generator.mapping.state_dict(keep_vars=True).values()
                     if not t.is_inference())

    def _map(self, z):
        c = None
        if self.c_dim:
            if self._c is None:
                c = self._torch.zeros(z.shape[0], self.c_dim, device=z.device)
            else:
                c = self._torch.from_numpy(self._c).to(z.device).unsqueeze(0).expand(z.shape[0], -1)
        return self.generator.mapping(z, c, truncation_psi=1.0)

    def camera_ws(self, latents: Mapping[str, Any]) -> dict[str, Any]:
        """Map each distinct camera z once (the 'whole' layout gives one tensor for all three groups)."""
        unique: dict[int, Any] = {}
        for z in latents.values():
            unique.setdefault(id(z), z)
        keys = list(unique)
        for z in unique.values():
            if z.is_cuda:  # made on the encoder's stream: keep its memory until this stream's reads are done
                z.record_stream(self._torch.cuda.current_stream(z.device))
        batch = self._torch.stack([unique[k].reshape(-1).float().to(self.device) for k in keys])
        ws = self._map(batch)
        by_id = {k: ws[i] for i, k in enumerate(keys)}
        return {name: by_id[id(z)] for name, z in latents.items()}

    def mix(self, latents: Mapping[str, Any] | None, snapshot: Mapping[str, Any]):
        """ws (1, num_ws, w_dim) for one frame, from the camera latents (None = static w only) and the snapshot."""
        self._c = self.classes.vector(snapshot) if self.c_dim else None
        w = self.static_w(int(snapshot["seed"])).clone()
        amount = float(snapshot["mix.amount"])
        if latents and amount > 0:
            cam = self.camera_ws(latents)
            ranges = resolve_ranges(snapshot, self.default_groups, self.num_ws)
            for name in GROUPS:
                start, end = ranges[name]
                if name in cam and end > start:
                    w[start:end] = w[start:end].lerp(cam[name][start:end], amount)
        w = self.directions.apply(w, snapshot)
        cutoff = int(snapshot["trunc_cutoff"])  # the table's 0 means every layer: NVIDIA's None
        return self.generator.mapping.truncate(w[None], float(snapshot["psi"]), cutoff if cutoff > 0 else None)
