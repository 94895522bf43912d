"""Write one of our StyleGAN2 generators in the TensorFlow-era pickle layout or as a rosinality checkpoint.

Users never need this (they convert *to* safetensors); it exists so the test fixtures and the load
benchmark (``vrbridge bench formats``) can produce files in both foreign formats from seeded weights, with
the published layouts spelled out once, as the exact inverse of :mod:`bridge.stylegan.tf_pickle` and
:mod:`bridge.stylegan.rosinality`. Tests check the files it writes against independent re-implementations
of each format's forward pass, so a mistake here cannot hide behind the matching reader.

TensorFlow pickles are written with the same globals NVIDIA's TF code emits (``dnnlib.tflib.network
.Network`` objects built by NEWOBJ + BUILD, numpy arrays under their numpy-1 names), without importing
TensorFlow or dnnlib: a small pure-Python pickler writes those names directly.
"""
from __future__ import annotations

import argparse
import copyreg
import io
import pickle
from pathlib import Path

import numpy as np
import torch

__all__ = ["tf_variables", "write_tf_pickle", "rosinality_state", "write_rosinality"]


# ------------------------------------------------------------------------------------------ TensorFlow
def _np(t: torch.Tensor) -> np.ndarray:
    return np.array(t.detach().cpu().to(torch.float32).numpy(), order="C")  # keeps 0-d arrays 0-d


def _tf_conv(w: torch.Tensor, flip: bool) -> np.ndarray:
    """Ours [out, in, k, k] -> TF [k, k, in, out] (flipped in space for Conv0_up and Skip)."""
    array = _np(w).transpose(2, 3, 1, 0)
    return np.ascontiguousarray(array[::-1, ::-1] if flip else array)


def _tf_layer(sd: dict, ours: str, tf: str, flip: bool, out: dict) -> None:
    out[f"{tf}/weight"] = _tf_conv(sd[f"{ours}.weight"], flip)
    out[f"{tf}/mod_weight"] = np.ascontiguousarray(_np(sd[f"{ours}.affine.weight"]).T)
    out[f"{tf}/mod_bias"] = _np(sd[f"{ours}.affine.bias"]) - 1
    out[f"{tf}/bias"] = _np(sd[f"{ours}.bias"])
    if f"{ours}.noise_strength" in sd:
        out[f"{tf}/noise_strength"] = np.float32(_np(sd[f"{ours}.noise_strength"]))  # a numpy scalar, as TF's


def tf_variables(generator) -> tuple[dict, dict, dict, dict]:
    """(static_kwargs, G_main variables, mapping variables, synthesis variables) of a StyleGAN2 generator."""
    cfg = generator.config
    syn_cfg, map_cfg = cfg.get("synthesis_kwargs", {}), cfg.get("mapping_kwargs", {})
    architecture = syn_cfg.get("architecture", "skip")
    sd = generator.state_dict()
    synthesis: dict[str, np.ndarray] = {}
    res_list = generator.synthesis.block_resolutions
    for r in res_list:
        pre, tf = f"synthesis.b{r}", f"{r}x{r}"
        if r == 4:
            synthesis["4x4/Const/const"] = _np(sd[f"{pre}.const"])[None]
            _tf_layer(sd, f"{pre}.conv1", "4x4/Conv", False, synthesis)
        else:
            _tf_layer(sd, f"{pre}.conv0", f"{tf}/Conv0_up", True, synthesis)
            _tf_layer(sd, f"{pre}.conv1", f"{tf}/Conv1", False, synthesis)
            if architecture == "resnet":
                synthesis[f"{tf}/Skip/weight"] = _tf_conv(sd[f"{pre}.skip.weight"], True)
        if f"{pre}.torgb.weight" in sd:
            _tf_layer(sd, f"{pre}.torgb", f"{tf}/ToRGB", False, synthesis)
    noise_layers = ["synthesis.b4.conv1"] + [f"synthesis.b{r}.conv{i}" for r in res_list[1:] for i in (0, 1)]
    for i, name in enumerate(noise_layers):
        if f"{name}.noise_const" in sd:
            synthesis[f"noise{i}"] = _np(sd[f"{name}.noise_const"])[None, None]
    synthesis["lod"] = np.array(0, dtype=np.float32)
    mapping = {}
    for i in range(generator.mapping.num_layers):
        mapping[f"Dense{i}/weight"] = np.ascontiguousarray(_np(sd[f"mapping.fc{i}.weight"]).T)
        mapping[f"Dense{i}/bias"] = _np(sd[f"mapping.fc{i}.bias"])
    if generator.c_dim:
        mapping["LabelEmbed/weight"] = np.ascontiguousarray(_np(sd["mapping.embed.weight"]).T)
        mapping["LabelEmbed/bias"] = _np(sd["mapping.embed.bias"])
    top = {"lod": np.array(0, dtype=np.float32), "dlatent_avg": _np(sd["mapping.w_avg"])}
    kwargs = {"num_channels": cfg["img_channels"], "resolution": cfg["img_resolution"], "label_size": cfg["c_dim"],
              "mapping_layers": generator.mapping.num_layers,
              "fmap_base": syn_cfg.get("channel_base", 32768) // 2, "fmap_max": syn_cfg.get("channel_max", 512),
              "architecture": architecture}
    if "resample_filter" in syn_cfg:
        kwargs["resample_kernel"] = list(syn_cfg["resample_filter"])
    if map_cfg.get("lr_multiplier", 0.01) != 0.01:
        kwargs["mapping_lrmul"] = map_cfg["lr_multiplier"]
    if not syn_cfg.get("use_noise", True):
        kwargs["use_noise"] = False
    if syn_cfg.get("conv_clamp") is not None:
        kwargs["conv_clamp"] = syn_cfg["conv_clamp"]
    return kwargs, top, mapping, synthesis


class _TFNetwork:
    """Pickles as ``dnnlib.tflib.network.Network``: NEWOBJ, then BUILD with the state dict."""

    def __init__(self, state: dict):
        self.state = state

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (_TFNetwork,), self.state


class _TFPickler(pickle._Pickler):  # the pure-Python pickler: its save_global can be overridden
    """Writes our stand-in as ``dnnlib.tflib.network.Network`` and numpy's functions under their numpy-1
    module names (``numpy.core.multiarray``), as pickles written by TensorFlow-era code name them."""

    def save_global(self, obj, name=None):
        if obj is _TFNetwork:
            module, name = "dnnlib.tflib.network", "Network"
        else:
            module = getattr(obj, "__module__", "")
            name = name or obj.__qualname__
            if not module.startswith("numpy._core"):
                return super().save_global(obj, name)
            module = module.replace("numpy._core", "numpy.core")
        if self.proto >= 4:
            self.save(module)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)


def _tf_net(name: str, func: str, kwargs: dict, variables: dict, components: dict, src: str,
            version: int) -> _TFNetwork:
    state = {"version": version, "name": name, "static_kwargs": dict(kwargs), "components": dict(components),
             "build_module_src": src, "build_func_name": func, "variables": list(variables.items())}
    if version >= 5:  # the 2-ADA TF release also records its inputs and outputs
        state.update(input_shapes=[], output_shapes=[], input_names=[], output_names=[])
    return _TFNetwork(state)


def write_tf_pickle(path: "str | Path", gs, g=None, static_kwargs: dict | None = None,
                    build_module_src: str = "", protocol: int = 3, version: int = 4,
                    extra_variables: dict | None = None) -> Path:
    """Write ``(G, D, Gs)`` in the TF layout. ``g`` (training copy) defaults to ``gs``; D holds two small
    variables (we never read it). ``static_kwargs`` are merged over the derived ones (fork kwargs);
    ``extra_variables`` ({"mapping/NAME": array, "synthesis/NAME": array}) adds variables a fork might have.
    ``build_module_src`` is stored as the source TF's loader would run; our reader never does."""
    def network(gen, name):
        kwargs, top, mapping, synthesis = tf_variables(gen)
        kwargs.update(static_kwargs or {})
        for full, value in (extra_variables or {}).items():
            component, _, var = full.partition("/")
            {"mapping": mapping, "synthesis": synthesis}[component][var] = np.asarray(value, np.float32)
        comps = {"synthesis": _tf_net("G_synthesis", "training.networks_stylegan2.G_synthesis_stylegan2", {},
                                      synthesis, {}, build_module_src, version),
                 "mapping": _tf_net("G_mapping", "training.networks_stylegan2.G_mapping", {}, mapping, {},
                                    build_module_src, version)}
        return _tf_net(name, "training.networks_stylegan2.G_main", kwargs, top, comps, build_module_src, version)

    rng = np.random.RandomState(0)
    d = _tf_net("D", "training.networks_stylegan2.D_stylegan2", {"resolution": gs.img_resolution},
                {"Output/weight": rng.randn(4, 1).astype(np.float32),
                 "Output/bias": np.zeros(1, np.float32)}, {}, build_module_src, version)
    buf = io.BytesIO()
    _TFPickler(buf, protocol=protocol).dump((network(g if g is not None else gs, "G"), d, network(gs, "Gs")))
    path = Path(path)
    path.write_bytes(buf.getvalue())
    return path


# ------------------------------------------------------------------------------------------ rosinality
def _make_kernel(f: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """rosinality's blur / upsample kernel buffer: the normalised 2-D filter times factor**2."""
    return (f / f.sum() * factor ** 2).clone()


def _ros_layer(sd: dict, ours: str, theirs: str, out: dict) -> None:
    out[f"{theirs}.conv.weight"] = sd[f"{ours}.weight"][None].clone()
    out[f"{theirs}.conv.modulation.weight"] = sd[f"{ours}.affine.weight"].clone()
    out[f"{theirs}.conv.modulation.bias"] = sd[f"{ours}.affine.bias"].clone()
    if f"{ours}.noise_strength" in sd:
        out[f"{theirs}.noise.weight"] = sd[f"{ours}.noise_strength"].reshape(1).clone()
        out[f"{theirs}.activate.bias"] = sd[f"{ours}.bias"].clone()
    else:
        out[f"{theirs}.bias"] = sd[f"{ours}.bias"].reshape(1, -1, 1, 1).clone()


def rosinality_state(generator) -> dict:
    """rosinality's g_ema state dict for a skip-architecture, unconditional StyleGAN2 generator."""
    sd = {k: v.detach().cpu().to(torch.float32) for k, v in generator.state_dict().items()}
    res_list = generator.synthesis.block_resolutions
    out: dict[str, torch.Tensor] = {}
    for i in range(generator.mapping.num_layers):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"].clone()
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"].clone()
    out["input.input"] = sd["synthesis.b4.const"][None].clone()
    _ros_layer(sd, "synthesis.b4.conv1", "conv1", out)
    _ros_layer(sd, "synthesis.b4.torgb", "to_rgb1", out)
    for k, r in enumerate(res_list[1:]):
        pre = f"synthesis.b{r}"
        _ros_layer(sd, f"{pre}.conv0", f"convs.{2 * k}", out)
        out[f"convs.{2 * k}.conv.blur.kernel"] = _make_kernel(sd[f"{pre}.conv0.resample_filter"])
        _ros_layer(sd, f"{pre}.conv1", f"convs.{2 * k + 1}", out)
        _ros_layer(sd, f"{pre}.torgb", f"to_rgbs.{k}", out)
        out[f"to_rgbs.{k}.upsample.kernel"] = _make_kernel(sd[f"{pre}.resample_filter"])
    layers = ["synthesis.b4.conv1"] + [f"synthesis.b{r}.conv{i}" for r in res_list[1:] for i in (0, 1)]
    for i, name in enumerate(layers):
        out[f"noises.noise_{i}"] = sd[f"{name}.noise_const"][None, None].clone()
    return out


def write_rosinality(path: "str | Path", g_ema, g=None, layout: str = "train", zipped: bool = True) -> Path:
    """Write a rosinality checkpoint. layout "train": {g, d, g_ema, g_optim, d_optim, args, ada_aug_p} as
    train.py saves it (args an argparse.Namespace); "convert": {g_ema, latent_avg} as convert_weight.py
    saves it; "bare": the g_ema state dict alone."""
    state = rosinality_state(g_ema)
    if layout == "train":
        size = g_ema.img_resolution
        args = argparse.Namespace(size=size, channel_multiplier=2, n_sample=64, r1=10.0, path_regularize=2.0,
                                  mixing=0.9, ckpt=None, lr=0.002, augment=False, iter=800000, batch=16)
        obj = {"g": rosinality_state(g if g is not None else g_ema), "d": {"convs.0.0.weight": torch.zeros(1)},
               "g_ema": state, "g_optim": {"state": {}, "param_groups": []},
               "d_optim": {"state": {}, "param_groups": []}, "args": args, "ada_aug_p": 0.0}
    elif layout == "convert":
        obj = {"g_ema": state, "latent_avg": g_ema.mapping.w_avg.detach().cpu().clone()}
    elif layout == "bare":
        obj = state
    else:
        raise ValueError(f"layout must be train, convert or bare, got {layout!r}")
    path = Path(path)
    torch.save(obj, path, _use_new_zipfile_serialization=zipped)
    return path
