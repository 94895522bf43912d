"""Load and save generators: NVIDIA pickles (PyTorch and TensorFlow-era), rosinality checkpoints,
safetensors + JSON config, plain torch state dicts.

    load_network(path, key="G_ema", device="cpu", config=None) -> Generator
    save_network(generator, path)                             -> (weights path, config path)
    config_from_record(record)                                -> config dict (see generator.py)

The format of a file is decided by its first bytes, not its name, so a renamed file still loads through the
safe path that fits it: NVIDIA pickles (both eras) only ever go through :mod:`bridge.stylegan.pickle_reader`
(never ``pickle.load``), torch files through ``torch.load(weights_only=True)``. TensorFlow-era networks are
converted by :mod:`bridge.stylegan.tf_pickle`, rosinality checkpoints by :mod:`bridge.stylegan.rosinality`.
Every failure is a :class:`NetworkLoadError` (or its :class:`UnsafePickleError`) with a one-line reason.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bridge.stylegan.pickle_reader import (NetworkLoadError, NetworkRecord, TFNetworkRecord, UnsafePickleError,
                                          network_records, read_snapshot)

log = logging.getLogger(__name__)

__all__ = ["load_network", "save_network", "config_from_record", "build_generator", "load_state", "file_sha256",
           "sniff_format", "CONFIG_METADATA_KEY", "FORMAT_NAMES"]

CONFIG_METADATA_KEY = "vrbridge_config"  # safetensors metadata entry holding the config JSON

# NVIDIA's Generator(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs, [synthesis_kwargs]):
# positional order, for records whose arguments were passed positionally.
_GENERATOR_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs",
                   "synthesis_kwargs")
_DIMS = _GENERATOR_ARGS[:5]
_PICKLE_PROTOCOLS = (b"\x02", b"\x03", b"\x04", b"\x05")  # PROTO n: what NVIDIA pickles use
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"  # pickle of torch's legacy magic number


# ----------------------------------------------------------------------------------- config from record
def _jsonable(value: Any) -> Any:
    """Plain JSON types from pickled values (EasyDict, numpy scalars/arrays, tuples)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise NetworkLoadError(f"unsupported value of type {type(value).__name__} in the generator's init kwargs")


def detect_arch(record: NetworkRecord) -> str:
    """'stylegan3' when the synthesis network has a Fourier-feature ``input`` (SynthesisInput), 'stylegan2'
    when it is built of SynthesisBlocks; judged from the class tree, never from the stored source."""
    synthesis = record.modules.get("synthesis")
    if synthesis is None or "mapping" not in record.modules:
        raise NetworkLoadError(f"{record.class_name} has no mapping/synthesis networks: not a StyleGAN generator")
    classes = {child.class_name for child in synthesis.modules.values()}
    if synthesis.modules.get("input") is not None and synthesis.modules["input"].class_name == "SynthesisInput":
        return "stylegan3"
    if "SynthesisBlock" in classes:
        return "stylegan2"
    raise NetworkLoadError(f"unsupported synthesis network (submodules of classes {sorted(classes)}): "
                           "only StyleGAN2, 2-ADA and StyleGAN3 generators are supported")


def config_from_record(record: NetworkRecord) -> dict:
    """The generator config (arch, dims, mapping_kwargs, flat synthesis_kwargs) of a pickled Generator.

    Uses only the init arguments exactly as NVIDIA's code received them; arguments left at their default
    are absent and the Generator fills in the architecture's defaults. 2-ADA's nested ``synthesis_kwargs``
    is flattened into the stylegan3-repo layout.
    """
    if record.class_name != "Generator":
        raise NetworkLoadError(f"the network is a {record.class_name}, not a Generator")
    kwargs = dict(zip(_GENERATOR_ARGS, record.init_args))
    kwargs.update(record.init_kwargs)
    for name in _DIMS:  # missing from kwargs (odd pickles): the Generator stores them as attributes too
        if name not in kwargs and name in record.attrs:
            kwargs[name] = record.attrs[name]
    missing = [name for name in _DIMS if name not in kwargs]
    if missing:
        raise NetworkLoadError(f"the Generator's init arguments lack {', '.join(missing)}")
    synthesis_kwargs = _kwargs_dict(kwargs.pop("synthesis_kwargs", None), "synthesis_kwargs")  # 2-ADA layout
    mapping_kwargs = _kwargs_dict(kwargs.pop("mapping_kwargs", None), "mapping_kwargs")
    for name, value in kwargs.items():
        if name not in _DIMS:
            synthesis_kwargs.setdefault(name, value)  # stylegan3-repo layout: flat
    dims = {name: _jsonable(kwargs[name]) for name in _DIMS}
    bad = [f"{name}={value!r:.20}" for name, value in dims.items()
           if isinstance(value, bool) or not isinstance(value, int) or value < 0]
    if bad:
        raise NetworkLoadError(f"the Generator's init arguments are not non-negative ints: {', '.join(bad)}")
    return {
        "arch": detect_arch(record),
        **dims,
        "mapping_kwargs": _jsonable(mapping_kwargs),
        "synthesis_kwargs": _jsonable(synthesis_kwargs),
    }


def _kwargs_dict(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NetworkLoadError(f"the Generator's {what} is a {type(value).__name__}, expected a dict")
    return dict(value)


# ------------------------------------------------------------------------------------------- formats
def sniff_format(path: Path) -> str:
    """'pickle' (NVIDIA), 'torch' (torch.save zip or legacy), or 'safetensors', from the file's first bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise NetworkLoadError(f"{path}: cannot open ({exc.strerror or exc})") from None
    if not head:
        raise NetworkLoadError(f"{path}: empty file")
    if head.startswith(b"PK\x03\x04") or head.startswith(_TORCH_LEGACY_MAGIC):
        return "torch"
    # safetensors before pickle: its first byte is the header length's low byte, which is 0x80 (a pickle's
    # PROTO opcode) for 1 in 32 header sizes (headers are padded to 8 bytes). A pickle's first 8 bytes read
    # as a length are far larger than any file, so this test never takes a pickle for safetensors.
    if len(head) >= 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
        return "safetensors"
    if head[:1] == b"\x80" and head[1:2] in _PICKLE_PROTOCOLS:
        return "pickle"
    raise NetworkLoadError(f"{path}: unrecognised file format (expected an NVIDIA .pkl, a rosinality .pt, "
                           ".safetensors or a torch .pt/.pth state dict)")


def _read_json(path: Path) -> dict:
    try:
        with open(path) as fh:
            value = json.load(fh)
    except (OSError, ValueError) as exc:
        raise NetworkLoadError(f"{path}: unreadable config JSON ({exc})") from None
    if not isinstance(value, dict):
        raise NetworkLoadError(f"{path}: config JSON is not an object")
    return value


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _load_safetensors(path: Path) -> tuple[dict, dict | None]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers/data
        raise NetworkLoadError(f"{path}: unreadable safetensors file ({str(exc)[:160]})") from None
    config = None
    if CONFIG_METADATA_KEY in metadata:
        try:
            config = json.loads(metadata[CONFIG_METADATA_KEY])
        except ValueError:
            raise NetworkLoadError(f"{path}: the config in its metadata is not valid JSON") from None
    elif _sidecar(path).exists():
        config = _read_json(_sidecar(path))
    return tensors, config


def _only_tensors(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def _converted(convert, path: Path, *args) -> tuple[dict, dict]:
    """Run a foreign-format converter; a corrupt file's odd shapes or types become one NetworkLoadError."""
    try:
        return convert(*args)
    except NetworkLoadError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, RuntimeError) as exc:
        raise NetworkLoadError(f"{path}: malformed network in a {convert.__module__.rsplit('.', 1)[-1]} file "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
                               ) from None


def _load_torch(path: Path, key: str) -> tuple[dict, dict | None, str]:
    from bridge.stylegan.rosinality import convert_rosinality, is_rosinality, load_torch_file

    try:
        obj = load_torch_file(str(path))
    except Exception as exc:  # weights_only refuses code; corrupt archives raise assorted errors
        refused = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(exc))
        if refused:  # torch's message is many lines of advice; the global is what the user needs
            raise UnsafePickleError(f"{path}: refused global {refused.group(1)} (torch weights-only load; "
                                    "nothing was executed)") from None
        raise NetworkLoadError(f"{path}: not a loadable torch file ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
    if is_rosinality(obj):
        config, state = _converted(convert_rosinality, path, obj, key, str(path))
        return state, config, "rosinality"
    config = obj.get("config") if isinstance(obj, dict) and isinstance(obj.get("config"), dict) else None
    for candidate in (obj, obj.get(key) if isinstance(obj, dict) else None,
                      obj.get("state_dict") if isinstance(obj, dict) else None):
        if _only_tensors(candidate):
            prefix = f"{key}."
            if all(name.startswith(prefix) for name in candidate):
                candidate = {name[len(prefix):]: t for name, t in candidate.items()}
            if config is None and _sidecar(path).exists():
                config = _read_json(_sidecar(path))
            return dict(candidate), config, "torch"
    keys = sorted(map(str, obj))[:10] if isinstance(obj, dict) else type(obj).__name__
    raise NetworkLoadError(f"{path}: no state dict found (top-level: {keys})")


def _load_pickle(path: Path, key: str, progress: bool | None) -> tuple[dict, dict, str]:
    snapshot = read_snapshot(path, progress=progress)
    if any(isinstance(v, TFNetworkRecord) for v in snapshot.values()):
        from bridge.stylegan.tf_pickle import convert_tf_generator, tf_network_for_key

        config, state = _converted(convert_tf_generator, path, tf_network_for_key(snapshot, key, str(path)),
                                   str(path))
        return state, config, "tensorflow-pickle"
    record = snapshot.get(key)
    if not isinstance(record, NetworkRecord):
        available = ", ".join(sorted(network_records(snapshot))) or "none"
        raise NetworkLoadError(f"{path}: no network {key!r} in this snapshot (networks: {available}; "
                               f"keys: {', '.join(map(str, snapshot))})")
    return dict(record.state_dict()), config_from_record(record), "nvidia-pickle"


# What each loader path calls its format (Generator.source_format, `vrbridge inspect`).
FORMAT_NAMES = {
    "nvidia-pickle": "NVIDIA network pickle (PyTorch)",
    "tensorflow-pickle": "TensorFlow StyleGAN2 pickle, converted",
    "rosinality": "rosinality stylegan2-pytorch checkpoint, converted",
    "safetensors": "safetensors + JSON config",
    "torch": "torch state dict",
}


def _load(path: Path, key: str, progress: bool | None) -> tuple[dict, dict | None, str]:
    """(state dict, config or None, format name) from any supported file, chosen by its content."""
    fmt = sniff_format(path)
    if fmt == "pickle":
        return _load_pickle(path, key, progress)
    if fmt == "safetensors":
        return (*_load_safetensors(path), "safetensors")
    return _load_torch(path, key)


def load_state(path: "str | os.PathLike", key: str = "G_ema", progress: bool | None = None
               ) -> tuple[dict, dict | None]:
    """(state dict, config or None) from any supported file, without building a generator."""
    state, config, _ = _load(Path(path), key, progress)
    return state, config


# --------------------------------------------------------------------------------------------- build
def _mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], limit: int = 4) -> str:
    """'' when names and shapes agree; otherwise the first few missing / unexpected / mis-shaped tensors."""
    missing = [n for n in expected if n not in given]
    unexpected = [n for n in given if n not in expected]
    shaped = [f"{n} {tuple(given[n].shape)} != {tuple(t.shape)}" for n, t in expected.items()
              if n in given and tuple(given[n].shape) != tuple(t.shape)]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shaped)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{label}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts)


# Bounds far beyond any real StyleGAN, checked before building: a corrupt file must not make us allocate a
# 2**20-pixel network before the tensor-shape comparison can reject it.
_LIMITS = {"img_resolution": 16384, "img_channels": 64, "z_dim": 1 << 16, "w_dim": 1 << 16, "c_dim": 1 << 20}


def _check_plausible(config: dict, source: str) -> None:
    for name, limit in _LIMITS.items():
        value = config.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            raise NetworkLoadError(f"{source}: implausible {name} {value} (limit {limit}): corrupt file or config?")


def build_generator(config: dict, state_dict: dict, device: "str | torch.device" = "cpu",
                    source: str = "state dict"):
    """A Generator for ``config`` holding exactly ``state_dict`` (strict names and shapes), in eval mode."""
    from bridge.stylegan.generator import Generator

    if not isinstance(config, dict) or config.get("arch") not in ("stylegan2", "stylegan3"):
        raise NetworkLoadError(f"{source}: config must be a dict with arch 'stylegan2' or 'stylegan3'")
    _check_plausible(config, source)
    try:
        generator = Generator(config)
    except (TypeError, ValueError, KeyError, AssertionError) as exc:
        raise NetworkLoadError(f"{source}: config does not describe a valid generator ({exc})") from None
    expected = dict(generator.state_dict())
    problem = _mismatch(expected, state_dict)
    if problem:
        raise NetworkLoadError(f"{source}: weights do not match the config: {problem}")
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            log.warning("%s: tensor %s holds non-finite values", source, name)
    generator.load_state_dict(state_dict, strict=True)
    return generator.to(device).eval().requires_grad_(False)


def load_network(path: "str | os.PathLike", key: str = "G_ema", device: "str | torch.device" = "cpu",
                 config: dict | None = None, progress: bool | None = None):
    """Load a generator from an NVIDIA pickle (PyTorch or TensorFlow era), a rosinality checkpoint, a
    .safetensors (config in its metadata or a sidecar .json) or a torch .pt/.pth state dict (``config``
    required unless a sidecar .json exists). The format is decided by the content, never the name.

    ``key``: which network of a snapshot (``G_ema``, meaning TF's ``Gs`` / rosinality's ``g_ema``; ``G`` is
    the training copy). ``config`` overrides the
    stored or derived one. ``progress``: tqdm bar while reading a big pickle (None = automatic).
    """
    path = Path(path)
    state_dict, stored, fmt = _load(path, key, progress)
    config = config if config is not None else stored
    if config is None:
        raise NetworkLoadError(f"{path}: no generator config stored with these weights; pass config=... "
                               f"or put it in {_sidecar(path).name}")
    generator = build_generator(config, state_dict, device=device, source=str(path))
    generator.source_format = fmt  # which reader produced it (FORMAT_NAMES)
    log.debug("loaded %s (%s, %dpx, num_ws %d) from %s", key, generator.arch, generator.img_resolution,
              generator.num_ws, path)
    return generator


def save_network(generator, path: "str | os.PathLike") -> tuple[Path, Path]:
    """Write weights as safetensors (config JSON in its metadata) plus the config as a sidecar .json.

    Both are written to temporary files and renamed into place, so a crash never leaves half a model.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix == ".json":
        raise ValueError("save_network: give the .safetensors path; the .json sidecar is written beside it")
    config_json = json.dumps(generator.config, sort_keys=True)
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in generator.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = _sidecar(path)
    tmp_weights = _temp_beside(path)
    tmp_config = _temp_beside(sidecar)
    try:
        save_file(tensors, str(tmp_weights), metadata={CONFIG_METADATA_KEY: config_json, "format": "pt"})
        tmp_config.write_text(json.dumps(generator.config, indent=1, sort_keys=True) + "\n")
        os.replace(tmp_weights, path)
        os.replace(tmp_config, sidecar)
    finally:
        for tmp in (tmp_weights, tmp_config):
            tmp.unlink(missing_ok=True)
    return path, sidecar


def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def file_sha256(path: "str | os.PathLike", chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
