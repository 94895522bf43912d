"""Model mixing: a second network of the same architecture (``network_b``) blended into the running one.

Every floating-point tensor of the running generator (weights and buffers, mapping and synthesis) is set to

    t = 1                  for a synthesis tensor whose style layer lies in ``model.swap`` [start, end)
    t = ``model.mix``      for every other tensor (the mapping network and w_avg included)
    tensor = A + t (B - A)   written as an exact copy of A at t = 0 and of B at t = 1

so ``model.mix`` 0 is network A bit for bit, 1 is network B bit for bit, and ``model.swap`` is layer
swapping (e.g. StyleGAN2 1024 px: [8, 18) = coarse and middle from A, fine detail from B; set model.mix to
1 and the swap to [0, 8) for the opposite). A tensor's style layer is the ws slot its layer reads
(StyleGAN2: const and conv1 of b4 -> 0, a block's conv0 / conv1 / torgb -> their slots; StyleGAN3:
``input`` -> 0, ``L<i>_*`` -> i + 1).

The tensors are rewritten only when the blend changes, or when someone else wrote one of them since
(e.g. a hand manipulation restoring its own copy of the constant): the mix is re-applied to that tensor on
the next frame. Both networks' tensors are kept (A's originals and B), so memory is three copies of the
weights.

The two networks must agree on architecture, resolution, dimensions and every structural setting; the
start-up error names the first difference (:func:`compatibility_problem`).
"""
from __future__ import annotations

import logging
import re
from typing import Any, Mapping

import torch

log = logging.getLogger(__name__)

# Config entries that only matter while training: they may differ between the two networks.
TRAINING_ONLY = {("mapping_kwargs", "w_avg_beta"), ("synthesis_kwargs", "magnitude_ema_beta"), ("random_init", None)}


def compatibility_problem(a, b) -> str:
    """'' when B can be mixed into A; else one phrase naming the first mismatch."""
    ca, cb = a.config, b.config
    for key in ("arch", "img_resolution", "img_channels", "z_dim", "w_dim", "c_dim"):
        if ca.get(key) != cb.get(key):
            return f"{key} {cb.get(key)!r} differs from the network's {ca.get(key)!r}"
    if int(a.num_ws) != int(b.num_ws):
        return f"num_ws {b.num_ws} differs from the network's {a.num_ws}"
    for section in ("mapping_kwargs", "synthesis_kwargs"):
        sa, sb = ca.get(section, {}), cb.get(section, {})
        for key in sorted(set(sa) | set(sb)):
            if (section, key) in TRAINING_ONLY:
                continue
            if sa.get(key) != sb.get(key):
                return f"{section}.{key} {sb.get(key)!r} differs from the network's {sa.get(key)!r}"
    sda, sdb = a.state_dict(), b.state_dict()
    for name, tensor in sda.items():
        if name not in sdb:
            return f"tensor {name} is missing"
        if tuple(sdb[name].shape) != tuple(tensor.shape):
            return f"tensor {name} has shape {tuple(sdb[name].shape)}, the network's {tuple(tensor.shape)}"
    extra = sorted(set(sdb) - set(sda))
    if extra:
        return f"tensor {extra[0]} is not in the network"
    return ""


_SG3_LAYER = re.compile(r"^synthesis\.L(\d+)_")


def tensor_slots(generator) -> dict[str, int | None]:
    """Tensor name -> the ws slot its synthesis layer reads; None for the mapping network (see the docstring)."""
    slots: dict[str, int | None] = {}
    synthesis = generator.synthesis
    names = [n for n, _ in generator.named_parameters()] + [n for n, _ in generator.named_buffers()]
    if hasattr(synthesis, "block_resolutions"):  # StyleGAN2: the forward pass's slot walk
        starts, w_idx = {}, 0
        for res in synthesis.block_resolutions:
            block = getattr(synthesis, f"b{res}")
            first = w_idx
            conv0 = first if block.in_channels else None
            conv1 = first + (1 if block.in_channels else 0)
            starts[f"b{res}"] = {"const": first, "conv0": conv0, "skip": conv0, "conv1": conv1,
                                 "torgb": first + block.num_conv, "resample_filter": conv0 if conv0 is not None else first}
            w_idx += block.num_conv
        last = int(generator.num_ws) - 1
        for name in names:
            parts = name.split(".")
            if parts[0] != "synthesis":
                slots[name] = None
                continue
            slot = starts[parts[1]].get(parts[2])
            slots[name] = min(slot, last) if slot is not None else None
        return slots
    for name in names:
        m = _SG3_LAYER.match(name)
        if m:
            slots[name] = int(m.group(1)) + 1
        elif name.startswith("synthesis.input."):
            slots[name] = 0
        else:
            slots[name] = None
    return slots


class ModelMixer:
    """Applies ``model.mix`` / ``model.swap`` to the running generator (an engine manipulation)."""

    def __init__(self, generator, network_b) -> None:
        problem = compatibility_problem(generator, network_b)
        if problem:
            raise ValueError(problem)
        self.generator = generator
        device = next(iter(generator.parameters())).device
        self.num_ws = int(generator.num_ws)
        slots = tensor_slots(generator)
        targets = dict(generator.named_parameters())
        targets.update(dict(generator.named_buffers()))
        b_tensors = dict(network_b.named_parameters())
        b_tensors.update(dict(network_b.named_buffers()))
        self._entries = []  # (target tensor, A copy, B copy, slot)
        with torch.no_grad():
            for name, target in targets.items():
                if target is None or not target.is_floating_point():
                    continue
                b = b_tensors[name].detach().to(device=device, dtype=target.dtype)
                a = target.detach().clone()
                if torch.equal(a, b):
                    continue  # identical in both (e.g. designed filters): nothing to mix
                self._entries.append((target.detach(), a, b, slots.get(name)))
        self._weights: list[float | None] = [None] * len(self._entries)
        self._versions: list[int | None] = [None] * len(self._entries)
        self.mix = 0.0

    @property
    def tensors(self) -> int:
        return len(self._entries)

    def weight_of(self, slot: int | None, mix: float, swap: tuple[int, int]) -> float:
        start, end = swap
        if slot is not None and start <= slot < end:
            return 1.0
        return mix

    def apply(self, generator, snapshot: Mapping[str, Any], keypoints=None, now: float = 0.0) -> None:
        if generator is not self.generator:
            return
        mix = min(max(float(snapshot.get("model.mix", 0.0)), 0.0), 1.0)
        swap = tuple(int(v) for v in snapshot.get("model.swap", (0, 0)))
        self.mix = mix
        with torch.no_grad():
            for i, (target, a, b, slot) in enumerate(self._entries):
                t = self.weight_of(slot, mix, swap)
                if t == self._weights[i] and self._versions[i] == _version(target):
                    continue
                if t == 0.0:
                    target.copy_(a)
                elif t == 1.0:
                    target.copy_(b)
                else:
                    torch.lerp(a, b, t, out=target)
                self._weights[i], self._versions[i] = t, _version(target)

    def restore(self) -> None:
        """Put network A back exactly."""
        with torch.no_grad():
            for i, (target, a, _, _) in enumerate(self._entries):
                target.copy_(a)
                self._weights[i], self._versions[i] = 0.0, _version(target)

    def features(self) -> dict[str, float]:
        return {"model_mix": float(self.mix)}


def _version(tensor: torch.Tensor) -> int | None:
    return None if tensor.is_inference() else tensor._version
