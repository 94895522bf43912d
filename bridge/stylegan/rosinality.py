"""rosinality stylegan2-pytorch checkpoints (``.pt``: StyleGAN-NADA, encoder4editing, Toonify, maua and
every fine-tune made with that code) as our StyleGAN2 generator.

Files: ``train.py`` saves ``{g, d, g_ema, g_optim, d_optim, args, ada_aug_p}`` (``args`` an
``argparse.Namespace``); ``convert_weight.py`` saves ``{g_ema, latent_avg}``; some tools save the bare g_ema
state dict; pSp / encoder4editing save ``{state_dict: {encoder.*, decoder.*}, latent_avg, opts}`` with the
generator as ``decoder.*``. They are read by ``torch.load(weights_only=True)`` with exactly one extra global allowed,
``argparse.Namespace`` (a plain attribute bag; constructing it runs nothing of the file's choosing).

The configuration is taken from the tensors, never from ``args`` (train.py does not record n_mlp):
n_mlp = number of ``style.{i}.weight``; size = 2 ** (number of ``to_rgbs`` + 2); the widths (which
channel_multiplier sets) from each layer's bias; style_dim from ``style.1.weight``.

Names and conventions, rosinality -> ours (NVIDIA's names):

    style.{i+1}.weight / .bias            mapping.fc{i}.*   (both store weight / lr_mlp and bias / lr_mlp)
    input.input [1, C, 4, 4]              synthesis.b4.const
    conv1 / convs.{2k} / convs.{2k+1}     b4.conv1 / b{8*2^k}.conv0 / b{8*2^k}.conv1:
        conv.weight [1, O, I, k, k]       .weight [O, I, k, k]  (their 1/sqrt(fan_in) scale is cancelled by
                                                                 demodulation, as NVIDIA's is)
        conv.modulation.weight / .bias    .affine.*             (their bias already includes the +1)
        noise.weight [1]                  .noise_strength []
        activate.bias                     .bias                  (fused lrelu: (x + b) -> lrelu -> * sqrt 2)
        conv.blur.kernel (x factor^2)     conv0.resample_filter (normalised)
    to_rgb1 / to_rgbs.{k}                 b4.torgb / b{8*2^k}.torgb  (bias [1, 3, 1, 1] -> [3]); the RGB
                                          upsample kernel -> b{r}.resample_filter
    noises.noise_{i} [1, 1, r, r]         noise_const of layer i (conv1 = 0, convs.{j} = j + 1)
    latent_avg (when saved)               mapping.w_avg

Latent slots agree: each ``to_rgbs[k]`` reads the same slot as the next block's first conv (NVIDIA's
skip-architecture rule). Truncation in their generate.py is ``mean + psi * (w - mean)`` with ``mean`` the
average of 4096 mapped random latents; without a stored ``latent_avg`` we compute that average once, from a
fixed seed (:data:`MEAN_LATENT_SAMPLES`, :data:`MEAN_LATENT_SEED`), so a model truncates the same way on
every load.
"""
from __future__ import annotations

import argparse
import re

import torch

from bridge.stylegan.ops import setup_filter
from bridge.stylegan.pickle_reader import NetworkLoadError
from bridge.stylegan.sg2 import fit_channel_layout

__all__ = ["is_rosinality", "convert_rosinality", "load_torch_file", "MEAN_LATENT_SAMPLES", "MEAN_LATENT_SEED"]

MEAN_LATENT_SAMPLES = 4096  # rosinality's generate.py default (--truncation_mean)
MEAN_LATENT_SEED = 0
_KEYS = {"G_ema": "g_ema", "g_ema": "g_ema", "G": "g", "g": "g"}
# The one global a rosinality checkpoint needs beyond tensors and containers.
SAFE_GLOBALS = [argparse.Namespace]


def load_torch_file(path: str):
    """``torch.load`` with weights_only (no code runs) plus argparse.Namespace; a zip file is memory-mapped
    so a 300 MB training checkpoint does not need its optimizer states in memory at once."""
    with open(path, "rb") as fh:
        zipped = fh.read(4) == b"PK\x03\x04"
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)


def _decoder(obj) -> dict | None:
    """pSp / encoder4editing checkpoints hold the generator as ``decoder.*`` inside ``state_dict``."""
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    if isinstance(state, dict) and "decoder.to_rgb1.conv.weight" in state:
        return {k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}
    return None


def is_rosinality(obj) -> bool:
    """A rosinality checkpoint dict (with g_ema), a bare rosinality generator state dict, or a pSp/e4e
    checkpoint whose decoder is one."""
    if _decoder(obj) is not None:
        return True
    if isinstance(obj, dict) and isinstance(obj.get("g_ema"), dict):
        obj = obj["g_ema"]
    return isinstance(obj, dict) and "to_rgb1.conv.weight" in obj and "input.input" in obj


def _state_for_key(obj: dict, key: str, source: str) -> dict:
    if "to_rgb1.conv.weight" in obj:  # bare generator state dict
        return obj
    decoder = _decoder(obj)
    if decoder is not None:
        return decoder
    name = _KEYS.get(key)
    state = obj.get(name) if name else None
    if not isinstance(state, dict):
        raise NetworkLoadError(f"{source}: no generator {key!r} in this rosinality checkpoint (use G_ema or G; "
                               f"holds {', '.join(sorted(map(str, obj)))})")
    return state


def _get(state: dict, name: str, source: str) -> torch.Tensor:
    value = state.get(name)
    if not isinstance(value, torch.Tensor):
        raise NetworkLoadError(f"{source}: rosinality checkpoint lacks tensor {name}")
    return value.detach().to(torch.float32)


def _count(state: dict, pattern: str) -> int:
    return len({m.group(1) for name in state if (m := re.fullmatch(pattern, name))})


def _layer(state: dict, theirs: str, ours: str, source: str) -> dict:
    weight = _get(state, f"{theirs}.conv.weight", source)
    if weight.ndim != 5 or weight.shape[0] != 1:
        raise NetworkLoadError(f"{source}: {theirs}.conv.weight has shape {tuple(weight.shape)}, "
                               "expected [1, out, in, k, k]")
    out = {f"{ours}.weight": weight[0],
           f"{ours}.affine.weight": _get(state, f"{theirs}.conv.modulation.weight", source),
           f"{ours}.affine.bias": _get(state, f"{theirs}.conv.modulation.bias", source)}
    if f"{theirs}.activate.bias" in state:  # a StyledConv
        out[f"{ours}.bias"] = _get(state, f"{theirs}.activate.bias", source)
        out[f"{ours}.noise_strength"] = _get(state, f"{theirs}.noise.weight", source).reshape(())
    else:  # a ToRGB
        out[f"{ours}.bias"] = _get(state, f"{theirs}.bias", source).reshape(-1)
    return out


def _filter(state: dict, name: str, source: str) -> torch.Tensor:
    """Their blur/upsample kernel carries the factor**2 gain; ours is normalised (the gain is applied by up)."""
    kernel = _get(state, name, source)
    if kernel.ndim != 2 or not torch.isfinite(kernel).all() or float(kernel.sum()) <= 0:
        raise NetworkLoadError(f"{source}: {name} is not a usable 2-D FIR kernel")
    return kernel / kernel.sum()


def convert_rosinality(obj: dict, key: str = "G_ema", source: str = "rosinality checkpoint") -> tuple[dict, dict]:
    """(config, state dict in our names) of a rosinality checkpoint (see the module docstring)."""
    state = _state_for_key(obj, key, source)
    n_mlp = _count(state, r"style\.(\d+)\.weight")
    n_rgb = _count(state, r"to_rgbs\.(\d+)\.conv\.weight")
    n_convs = _count(state, r"convs\.(\d+)\.conv\.weight")
    if n_mlp < 1 or n_convs != 2 * n_rgb:
        raise NetworkLoadError(f"{source}: inconsistent rosinality generator ({n_mlp} style layers, {n_convs} "
                               f"convs, {n_rgb} to_rgbs)")
    resolution = 2 ** (n_rgb + 2)
    const = _get(state, "input.input", source)
    style1 = _get(state, "style.1.weight", source)
    w_dim = int(style1.shape[1])
    channels = {4: int(const.shape[1])}
    channels.update({8 * 2 ** k: int(_get(state, f"convs.{2 * k}.activate.bias", source).shape[0])
                     for k in range(n_rgb)})
    layout = fit_channel_layout(channels)
    if layout is None:
        raise NetworkLoadError(f"{source}: channel widths {channels} (channel_multiplier) do not follow "
                               "min(channel_base / res, channel_max), which this generator needs")
    conv_kernel = "convs.0.conv.blur.kernel" if n_rgb else None
    f = _filter(state, conv_kernel, source) if conv_kernel else setup_filter([1, 3, 3, 1])
    args = obj.get("args") if isinstance(obj, dict) else None
    lr_mlp = float(getattr(args, "lr_mlp", 0.01) or 0.01)
    config = {
        "arch": "stylegan2", "z_dim": w_dim, "c_dim": 0, "w_dim": w_dim, "img_resolution": resolution,
        "img_channels": int(_get(state, "to_rgb1.conv.weight", source).shape[1]),
        "mapping_kwargs": {"num_layers": n_mlp, "lr_multiplier": lr_mlp, "w_avg_beta": 0.995},
        "synthesis_kwargs": {"channel_base": layout[0], "channel_max": layout[1], "architecture": "skip",
                             "conv_clamp": None, "num_fp16_res": 0,
                             "resample_filter": [round(float(v), 6) for v in f.sum(dim=1) / f.sum(dim=1).min()]},
    }
    ours: dict[str, torch.Tensor] = {"synthesis.b4.const": const[0], "synthesis.b4.resample_filter": f.clone()}
    ours.update(_layer(state, "conv1", "synthesis.b4.conv1", source))
    ours.update(_layer(state, "to_rgb1", "synthesis.b4.torgb", source))
    ours["synthesis.b4.conv1.noise_const"] = _get(state, "noises.noise_0", source)[0, 0]
    unused = setup_filter([1, 3, 3, 1])  # conv1's filter buffer: never used (no resampling), NVIDIA's default
    ours["synthesis.b4.conv1.resample_filter"] = unused.clone()
    for k in range(n_rgb):
        pre = f"synthesis.b{8 * 2 ** k}"
        ours.update(_layer(state, f"convs.{2 * k}", f"{pre}.conv0", source))
        ours.update(_layer(state, f"convs.{2 * k + 1}", f"{pre}.conv1", source))
        ours.update(_layer(state, f"to_rgbs.{k}", f"{pre}.torgb", source))
        ours[f"{pre}.conv0.noise_const"] = _get(state, f"noises.noise_{2 * k + 1}", source)[0, 0]
        ours[f"{pre}.conv1.noise_const"] = _get(state, f"noises.noise_{2 * k + 2}", source)[0, 0]
        ours[f"{pre}.conv0.resample_filter"] = _filter(state, f"convs.{2 * k}.conv.blur.kernel", source)
        ours[f"{pre}.conv1.resample_filter"] = unused.clone()
        ours[f"{pre}.resample_filter"] = _filter(state, f"to_rgbs.{k}.upsample.kernel", source)
    for i in range(n_mlp):
        ours[f"mapping.fc{i}.weight"] = _get(state, f"style.{i + 1}.weight", source)
        ours[f"mapping.fc{i}.bias"] = _get(state, f"style.{i + 1}.bias", source)
    latent_avg = obj.get("latent_avg") if isinstance(obj, dict) else None
    rows = latent_avg.detach().to(torch.float32).reshape(-1, w_dim) if (
        isinstance(latent_avg, torch.Tensor) and latent_avg.numel() % w_dim == 0 and latent_avg.numel()) else None
    if rows is not None and bool((rows == rows[0]).all()):  # pSp/e4e store it repeated per style slot
        ours["mapping.w_avg"] = rows[0].clone()
    else:
        ours["mapping.w_avg"] = mean_latent(config, ours)
    return config, ours


def mean_latent(config: dict, state: dict, samples: int = MEAN_LATENT_SAMPLES, seed: int = MEAN_LATENT_SEED
                ) -> torch.Tensor:
    """rosinality's ``mean_latent``: the average w of ``samples`` random z, here from a fixed seed."""
    from bridge.stylegan.mapping import MappingNetwork

    mapping_kwargs = config["mapping_kwargs"]
    mapping = MappingNetwork(z_dim=config["z_dim"], c_dim=0, w_dim=config["w_dim"], num_ws=1,
                             num_layers=mapping_kwargs["num_layers"], lr_multiplier=mapping_kwargs["lr_multiplier"])
    own = {name: state[f"mapping.{name}"] for name in mapping.state_dict() if name != "w_avg"}
    own["w_avg"] = torch.zeros(config["w_dim"])
    try:
        mapping.load_state_dict(own, strict=True)
    except RuntimeError as exc:
        raise NetworkLoadError(f"rosinality mapping network does not fit: {str(exc).splitlines()[0]}") from None
    z = torch.randn([samples, config["z_dim"]], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return mapping(z)[:, 0].mean(dim=0)
