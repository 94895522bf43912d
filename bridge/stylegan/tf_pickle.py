"""TensorFlow-era StyleGAN2 pickles (NVIDIA's stylegan2 and stylegan2-ada TF releases and their forks) as
our StyleGAN2 generator, without TensorFlow and without running anything the file holds.

The file is a pickled tuple ``(G, D, Gs)`` of ``dnnlib.tflib.network.Network`` objects; the allow-list
reader (:mod:`bridge.stylegan.pickle_reader`) turns each into a :class:`TFNetworkRecord` (static kwargs,
components, variables as numpy arrays) and never runs ``build_module_src``. ``Gs`` (the moving average) is
the network to use, as ``G_ema`` is in the PyTorch format.

Layout facts (the variable names and conventions NVIDIA's own ``legacy.py`` converter reads):

    mapping/Dense{i}/weight [in, out]        -> mapping.fc{i}.weight (transposed)
    mapping/LabelEmbed/weight, bias          -> mapping.embed.* (2-ADA TF conditional models)
    dlatent_avg                              -> mapping.w_avg
    synthesis/4x4/Const/const [1, C, 4, 4]   -> synthesis.b4.const
    synthesis/{r}x{r}/{Conv|Conv0_up|Conv1}/ -> conv1 (4x4) / conv0 / conv1:
        weight [k, k, in, out]               -> [out, in, k, k]; Conv0_up is also flipped in space (TF runs the
                                                up-sampling conv as a transposed conv of the flipped kernel)
        mod_weight [w_dim, in], mod_bias     -> affine.weight (transposed), affine.bias = mod_bias + 1
        noise_strength, bias                 -> as they are
    synthesis/noise{i} [1, 1, r, r]          -> noise_const of layer i (4x4 conv is 0; block r: 2log2(r)-5, -4)
    synthesis/{r}x{r}/ToRGB/*                -> torgb.* (same rules; 1x1 kernel)
    synthesis/{r}x{r}/Skip/weight            -> skip.weight (resnet; flipped and transposed like Conv0_up)

Static kwargs: fmap_base is half our channel_base; resample_kernel becomes the filters; the rest map by name
(``_MAPPED``). Kwargs that cannot change the forward pass (training, run-time defaults, implementation
choices) are accepted (``_HARMLESS``); anything else is refused with one line naming it, because guessing
would render a different image. Channel widths are read from the weights' shapes (so fmap_min/fmap_decay
work when they give widths our rule can express).
"""
from __future__ import annotations

import logging
import re

import numpy as np
import torch

from bridge.stylegan.ops import setup_filter
from bridge.stylegan.pickle_reader import NetworkLoadError, TFNetworkRecord
from bridge.stylegan.sg2 import fit_channel_layout

log = logging.getLogger(__name__)

__all__ = ["convert_tf_generator", "tf_network_for_key", "HARMLESS_KWARGS", "MAPPED_KWARGS"]

# Accepted and ignored: they set training behaviour, run-time defaults we take from the caller instead
# (truncation), numeric precision or the implementation of the same maths.
HARMLESS_KWARGS = frozenset({
    "truncation_psi", "truncation_cutoff", "truncation_psi_val", "truncation_cutoff_val", "dlatent_avg_beta",
    "w_avg_beta", "style_mixing_prob", "structure", "conditioning", "fused_modconv", "dtype", "impl",
    "num_fp16_res", "is_training", "is_validation", "is_template_graph", "randomize_noise", "return_dlatents",
    "components", "mapping_dtype", "synthesis_dtype", "dlatent_broadcast", "force_clean_graph",
})
# Read into the config (or checked against the weights' shapes).
MAPPED_KWARGS = frozenset({
    "latent_size", "label_size", "dlatent_size", "resolution", "num_channels", "mapping_layers",  # checked
    "mapping_fmaps", "label_fmaps", "mapping_lrmul", "mapping_nonlinearity", "fmap_base", "fmap_max",
    "fmap_min", "fmap_decay", "architecture", "resample_kernel", "use_noise", "nonlinearity", "conv_clamp",
    "normalize_latents", "mapping_func", "synthesis_func",
})
_ARCHITECTURES = ("orig", "skip", "resnet")
_ACTIVATIONS = ("linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish")
_KEYS = {"G_ema": "Gs", "Gs": "Gs", "G": "G"}


def tf_network_for_key(snapshot: dict, key: str, source: str) -> TFNetworkRecord:
    """The TF network a caller's key names: ``G_ema`` (our default) and ``Gs`` mean Gs, ``G`` the training copy."""
    name = _KEYS.get(key)
    record = snapshot.get(name) if name else None
    if not isinstance(record, TFNetworkRecord):
        raise NetworkLoadError(f"{source}: no generator {key!r} in this TensorFlow pickle (use G_ema/Gs or G; "
                               f"holds {', '.join(snapshot)})")
    if "variables" not in vars(record):  # created without its state (no BUILD): nothing to convert
        raise NetworkLoadError(f"{source}: the TensorFlow network {name} has no state (corrupt pickle?)")
    return record


def _check_kwargs(kwargs: dict, source: str) -> None:
    unknown = sorted(set(kwargs) - HARMLESS_KWARGS - MAPPED_KWARGS)
    if unknown:
        raise NetworkLoadError(f"{source}: unsupported TensorFlow kwarg {unknown[0]}={kwargs[unknown[0]]!r:.40} "
                               "(unknown to this loader: it may change the network, so it is refused)")
    refusals = [
        ("normalize_latents", lambda v: v in (True, 1, None), "only normalised latents are supported"),
        ("mapping_func", lambda v: v in (None, "G_mapping"), "only the StyleGAN2 mapping network is supported"),
        ("synthesis_func", lambda v: v in (None, "G_synthesis_stylegan2", "G_synthesis"),
         "only the StyleGAN2 synthesis network is supported (not configs A-D)"),
        ("architecture", lambda v: v in (None,) + _ARCHITECTURES, f"expected one of {_ARCHITECTURES}"),
        ("nonlinearity", lambda v: v in (None,) + _ACTIVATIONS, "unknown activation"),
        ("mapping_nonlinearity", lambda v: v in (None,) + _ACTIVATIONS, "unknown activation"),
    ]
    for name, ok, why in refusals:
        if name in kwargs and not ok(kwargs[name]):
            raise NetworkLoadError(f"{source}: unsupported TensorFlow kwarg {name}={kwargs[name]!r:.40} ({why})")


def _arr(params: dict, name: str, source: str) -> np.ndarray:
    try:
        return params[name]
    except KeyError:
        raise NetworkLoadError(f"{source}: TensorFlow pickle lacks variable {name}") from None


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float32, order="C"))  # copies; keeps 0-d arrays 0-d


def _conv_weight(array: np.ndarray, flip: bool) -> torch.Tensor:
    """TF [k, k, in, out] -> ours [out, in, k, k]; flipped in space for the up-sampling conv and skip."""
    if flip:
        array = array[::-1, ::-1]
    return _tensor(array.transpose(3, 2, 0, 1))


def _layer(params: dict, tf: str, ours: str, noise: str | None, flip: bool, source: str) -> dict:
    """One modulated layer (Conv, Conv0_up, Conv1 or ToRGB) in our names."""
    out = {
        f"{ours}.weight": _conv_weight(_arr(params, f"{tf}/weight", source), flip),
        f"{ours}.bias": _tensor(_arr(params, f"{tf}/bias", source)),
        f"{ours}.affine.weight": _tensor(_arr(params, f"{tf}/mod_weight", source).T),
        f"{ours}.affine.bias": _tensor(_arr(params, f"{tf}/mod_bias", source) + 1),
    }
    if noise is not None and f"{tf}/noise_strength" in params:
        out[f"{ours}.noise_strength"] = _tensor(_arr(params, f"{tf}/noise_strength", source).reshape(()))
        out[f"{ours}.noise_const"] = _tensor(_arr(params, f"synthesis/{noise}", source)[0, 0])
    return out


def _resolutions(params: dict, source: str) -> list[int]:
    res = sorted({int(m.group(1)) for name in params
                  if (m := re.fullmatch(r"synthesis/(\d+)x\1/.*", name))})
    if not res or res[0] != 4 or "synthesis/4x4/Const/const" not in params:
        raise NetworkLoadError(f"{source}: not a StyleGAN2 generator (no synthesis/4x4/Const/const)")
    if "synthesis/4x4/Conv/mod_weight" not in params:
        raise NetworkLoadError(f"{source}: not a StyleGAN2 generator (no modulated convolutions: a StyleGAN "
                               "v1 or progressive config A-D network, which is not supported)")
    if res != [2 ** i for i in range(2, 2 + len(res))]:
        raise NetworkLoadError(f"{source}: synthesis resolutions {res} are not 4, 8, 16, ...")
    return res


def _rename_lod_torgb(params: dict, resolution: int) -> bool:
    """Some TF graphs name their RGB layers ToRGB_lod{n}; give them the {r}x{r}/ToRGB names. True if any."""
    found = False
    for name in list(params):
        m = re.fullmatch(r"synthesis/ToRGB_lod(\d+)/(.*)", name)
        if m:
            r = resolution // 2 ** int(m.group(1))
            params[f"synthesis/{r}x{r}/ToRGB/{m.group(2)}"] = params.pop(name)
            found = True
    return found


def convert_tf_generator(net: TFNetworkRecord, source: str = "TensorFlow pickle") -> tuple[dict, dict]:
    """(config, state dict in our names) of a TF StyleGAN2 generator record. One-line NetworkLoadError when
    the network is not one we can reproduce exactly."""
    if net.version < 4:
        raise NetworkLoadError(f"{source}: TensorFlow network version {net.version} is too old (StyleGAN v1 "
                               "pickles are not supported; StyleGAN2 writes version 4 or 5)")
    kwargs = net.static_kwargs
    _check_kwargs(kwargs, source)
    params = net.all_variables()
    if any(name.startswith("mapping/LabelConcat/") for name in params):
        raise NetworkLoadError(f"{source}: conditional StyleGAN2 (TF) with LabelConcat labels is not supported "
                               "(2-ADA's LabelEmbed is)")
    res_list = _resolutions(params, source)
    resolution = res_list[-1]
    if kwargs.get("resolution") not in (None, resolution):
        raise NetworkLoadError(f"{source}: kwarg resolution={kwargs['resolution']} but the synthesis network "
                               f"stops at {resolution}")
    orig = _rename_lod_torgb(params, resolution)
    architecture = "orig" if orig else kwargs.get("architecture") or "skip"
    if architecture == "skip" and any(f"synthesis/{r}x{r}/ToRGB/weight" not in params for r in res_list):
        raise NetworkLoadError(f"{source}: architecture 'skip' but some resolutions have no ToRGB layer")

    channels = {r: int(_arr(params, f"synthesis/{r}x{r}/{'Conv' if r == 4 else 'Conv1'}/bias", source).shape[0])
                for r in res_list}
    layout = fit_channel_layout(channels)
    if layout is None:
        bad = {k: kwargs[k] for k in ("fmap_base", "fmap_max", "fmap_min", "fmap_decay") if k in kwargs}
        raise NetworkLoadError(f"{source}: channel widths {channels} (kwargs {bad}) do not follow "
                               "min(channel_base / res, channel_max), which this generator needs")
    const = _arr(params, "synthesis/4x4/Const/const", source)
    rgb = _arr(params, f"synthesis/{resolution}x{resolution}/ToRGB/weight", source)
    mapping_layers = len({n for n in params if re.fullmatch(r"mapping/Dense\d+/weight", n)})
    if kwargs.get("mapping_layers") not in (None, mapping_layers):
        raise NetworkLoadError(f"{source}: kwarg mapping_layers={kwargs['mapping_layers']} but the mapping "
                               f"network has {mapping_layers} Dense layers")
    dense0 = _arr(params, "mapping/Dense0/weight", source)
    last = _arr(params, f"mapping/Dense{mapping_layers - 1}/weight", source)
    label = params.get("mapping/LabelEmbed/weight")
    c_dim = int(label.shape[0]) if label is not None else 0
    embed = int(label.shape[1]) if label is not None else 0
    w_dim = int(last.shape[1])
    z_dim = int(dense0.shape[0]) - embed
    mapping_kwargs = {
        "num_layers": mapping_layers,
        "lr_multiplier": float(kwargs.get("mapping_lrmul", 0.01)),
        "activation": kwargs.get("mapping_nonlinearity") or "lrelu",
        "w_avg_beta": 0.995,  # training only; not None, so the average w (dlatent_avg) is kept
    }
    if mapping_layers > 1:
        mapping_kwargs["layer_features"] = int(dense0.shape[1])
    if c_dim:
        mapping_kwargs["embed_features"] = embed
    resample_kernel = kwargs.get("resample_kernel") or [1, 3, 3, 1]
    synthesis_kwargs = {
        "channel_base": layout[0], "channel_max": layout[1], "architecture": architecture,
        "resample_filter": [float(v) for v in np.asarray(resample_kernel).ravel()],
        "use_noise": "synthesis/4x4/Conv/noise_strength" in params,  # from the variables, not a kwarg
        "activation": kwargs.get("nonlinearity") or "lrelu",
        "conv_clamp": kwargs.get("conv_clamp"), "num_fp16_res": int(kwargs.get("num_fp16_res") or 0),
    }
    if np.asarray(resample_kernel).ndim != 1:
        raise NetworkLoadError(f"{source}: unsupported TensorFlow kwarg resample_kernel={resample_kernel!r:.40} "
                               "(only 1-D kernels)")
    config = {"arch": "stylegan2", "z_dim": z_dim, "c_dim": c_dim, "w_dim": w_dim, "img_resolution": resolution,
              "img_channels": int(rgb.shape[3]), "mapping_kwargs": mapping_kwargs,
              "synthesis_kwargs": synthesis_kwargs}
    for name, value in (("latent_size", z_dim), ("label_size", c_dim), ("dlatent_size", w_dim),
                        ("num_channels", config["img_channels"])):
        if kwargs.get(name) not in (None, value):
            raise NetworkLoadError(f"{source}: kwarg {name}={kwargs[name]} disagrees with the weights ({value})")
    if const.shape[1:] != (channels[4], 4, 4):
        raise NetworkLoadError(f"{source}: 4x4 const has shape {const.shape}")
    state = _state_dict(params, res_list, config, source)
    return config, state


def _state_dict(params: dict, res_list: list[int], config: dict, source: str) -> dict:
    """Every tensor of our generator for ``config``, from the TF variables (filters rebuilt from the kernel)."""
    syn = config["synthesis_kwargs"]
    use_noise = syn["use_noise"]
    f = setup_filter(syn["resample_filter"])
    unused = setup_filter([1, 3, 3, 1])  # conv1's filter buffer: never used (no resampling), NVIDIA's default
    state: dict[str, torch.Tensor] = {}
    for r in res_list:
        log2 = int(np.log2(r))
        pre, tf = f"synthesis.b{r}", f"synthesis/{r}x{r}"
        state[f"{pre}.resample_filter"] = f.clone()
        if r == 4:
            state[f"{pre}.const"] = _tensor(_arr(params, f"{tf}/Const/const", source)[0])
            state.update(_layer(params, f"{tf}/Conv", f"{pre}.conv1", "noise0" if use_noise else None, False, source))
        else:
            state.update(_layer(params, f"{tf}/Conv0_up", f"{pre}.conv0",
                                f"noise{2 * log2 - 5}" if use_noise else None, True, source))
            state.update(_layer(params, f"{tf}/Conv1", f"{pre}.conv1",
                                f"noise{2 * log2 - 4}" if use_noise else None, False, source))
            state[f"{pre}.conv0.resample_filter"] = f.clone()
            if syn["architecture"] == "resnet":
                state[f"{pre}.skip.weight"] = _conv_weight(_arr(params, f"{tf}/Skip/weight", source), True)
                state[f"{pre}.skip.resample_filter"] = f.clone()
        state[f"{pre}.conv1.resample_filter"] = unused.clone()
        if f"{tf}/ToRGB/weight" in params and (syn["architecture"] == "skip" or r == res_list[-1]):
            state.update(_layer(params, f"{tf}/ToRGB", f"{pre}.torgb", None, False, source))
    for i in range(config["mapping_kwargs"]["num_layers"]):
        state[f"mapping.fc{i}.weight"] = _tensor(_arr(params, f"mapping/Dense{i}/weight", source).T)
        state[f"mapping.fc{i}.bias"] = _tensor(_arr(params, f"mapping/Dense{i}/bias", source))
    if config["c_dim"]:
        state["mapping.embed.weight"] = _tensor(_arr(params, "mapping/LabelEmbed/weight", source).T)
        state["mapping.embed.bias"] = _tensor(_arr(params, "mapping/LabelEmbed/bias", source))
    state["mapping.w_avg"] = _tensor(_arr(params, "dlatent_avg", source))
    return state
