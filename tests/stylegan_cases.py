"""Shared runner for the StyleGAN reference cases in tests/data/stylegan (see the README there).

Every StyleGAN test (IO, SG2, SG3) runs a case the same way, so the recipe lives here once:

    for case in load_cases():
        G = load_network(case_path(case, case["pickle"]), key=case["network_key"])
        result = run_case(G, case)
        assert_case_ok(result, case)

``run_case`` applies the case's overrides to the generator, runs mapping (+ style mix) and synthesis, and
restores the overridden tensors afterwards, so one loaded generator can serve several cases.

The second half writes NVIDIA-format pickles from NetworkRecords (``dumps_snapshot``), so tests can build
layout variants (2-ADA kwargs, augment_pipe, conditional models, nested payloads) without NVIDIA's code.
"""
from __future__ import annotations

import contextlib
import json
import math
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).parent / "data" / "stylegan"
MANIFEST = ROOT / "manifest.json"


def load_manifest(root: Path = ROOT) -> dict:
    with open(Path(root) / "manifest.json") as fh:
        return json.load(fh)


def load_cases(root: Path = ROOT) -> list[dict]:
    """The manifest's cases, each with ``_root`` (the folder its relative paths start from)."""
    cases = load_manifest(root)["cases"]
    for case in cases:
        case["_root"] = str(root)
    return cases


def case_ids(cases: list[dict]) -> list[str]:
    """Readable pytest ids."""
    return [case["name"] for case in cases]


def case_path(case: dict, relative: str) -> Path:
    return Path(case.get("_root", ROOT)) / relative


def _npy(case: dict, relative: str) -> np.ndarray:
    return np.load(case_path(case, relative))


def _named_tensors(generator: torch.nn.Module) -> dict[str, torch.Tensor]:
    tensors = dict(generator.named_parameters())
    tensors.update(dict(generator.named_buffers()))
    return tensors


def apply_overrides(generator: torch.nn.Module, case: dict) -> dict[str, torch.Tensor]:
    """Apply ``case["overrides"]`` in order (op "set" or "add"); returns the original values to restore."""
    tensors = _named_tensors(generator)
    saved: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for ov in case.get("overrides") or []:
            target = tensors[ov["target"]]  # KeyError names a tensor the generator lacks
            saved.setdefault(ov["target"], target.detach().clone())
            value = torch.from_numpy(_npy(case, ov["npy"])).to(device=target.device, dtype=target.dtype)
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"override {ov['target']}: shape {tuple(value.shape)} != {tuple(target.shape)}")
            if ov["op"] == "set":
                target.copy_(value)
            elif ov["op"] == "add":
                target.add_(value)
                if ov.get("result_npy"):  # the fixture records the expected result of the addition
                    expected = torch.from_numpy(_npy(case, ov["result_npy"]))
                    if not torch.equal(target.detach().cpu(), expected.to(target.dtype)):
                        raise AssertionError(f"override {ov['target']}: add gave a tensor != result_npy")
            else:
                raise ValueError(f"unknown override op {ov['op']!r}")
    return saved


def restore(generator: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    tensors = _named_tensors(generator)
    with torch.no_grad():
        for name, value in saved.items():
            tensors[name].copy_(value)


def psnr(img: np.ndarray, ref: np.ndarray) -> float:
    """10*log10(4 / MSE) over the whole array (peak-to-peak 2), as the fixture README defines it."""
    mse = float(np.mean((img.astype(np.float64) - ref.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(4.0 / mse)


def _mapping(generator, z: np.ndarray, case: dict) -> torch.Tensor:
    device = next(iter(generator.parameters())).device
    z_t = torch.from_numpy(z).to(device)  # float64 as stored: the mapping network casts to float32
    c = torch.zeros([z.shape[0], case.get("c_dim", 0)], dtype=torch.float32, device=device)
    return generator.mapping(z_t, c, truncation_psi=case["truncation_psi"],
                             truncation_cutoff=case["truncation_cutoff"])


def run_case(generator: torch.nn.Module, case: dict) -> dict:
    """Run one case on ``generator`` (its overrides applied, then undone).

    Returns w, img (numpy float32), w_ref, img_ref, w_err (max abs), psnr (dB), finite (bool), and
    shapes_ok (w and img shapes equal the expected ones).
    """
    saved = apply_overrides(generator, case)
    try:
        with torch.no_grad():
            ws = _mapping(generator, _npy(case, case["z"]["npy"]), case)
            mix = case.get("style_mix")
            if mix:
                ws2 = _mapping(generator, _npy(case, mix["z2"]["npy"]), case)
                ws = ws.clone()
                ws[:, mix["split"]:] = ws2[:, mix["split"]:]
            img = generator.synthesis(ws, noise_mode=case["noise_mode"])
    finally:
        restore(generator, saved)
    w = ws.detach().float().cpu().numpy()
    img = img.detach().float().cpu().numpy()
    w_ref = _npy(case, case["outputs"]["w"])
    img_ref = _npy(case, case["outputs"]["img"])
    shapes_ok = (list(w.shape) == case["expected_w_shape"] and list(img.shape) == case["expected_img_shape"])
    return {
        "w": w, "img": img, "w_ref": w_ref, "img_ref": img_ref,
        "w_err": float(np.max(np.abs(w - w_ref))) if w.shape == w_ref.shape else math.inf,
        "psnr": psnr(img, img_ref) if img.shape == img_ref.shape else -math.inf,
        "finite": bool(np.isfinite(w).all() and np.isfinite(img).all()),
        "shapes_ok": shapes_ok,
    }



def run_case_fast(generator: torch.nn.Module, case: dict) -> dict:
    """:func:`run_case` through the generator's fast path (switched back off afterwards, also on failure)."""
    generator.set_fast(True)
    try:
        return run_case(generator, case)
    finally:
        generator.set_fast(False)

def tolerances(root: Path = ROOT) -> dict:
    return load_manifest(root)["tolerances"]


def assert_case_ok(result: dict, case: dict) -> None:
    """The fixture README's pass rule, with a message that says by how much a case missed."""
    tol = tolerances(Path(case.get("_root", ROOT)))
    name = case["name"]
    assert result["shapes_ok"], (f"{name}: shapes w {result['w'].shape} img {result['img'].shape}, expected "
                                 f"{case['expected_w_shape']} {case['expected_img_shape']}")
    assert result["finite"], f"{name}: non-finite values in w or img"
    assert result["w_err"] <= tol["w_max_abs"], f"{name}: w max abs err {result['w_err']:.3g} > {tol['w_max_abs']}"
    assert result["psnr"] >= tol["img_psnr_min_db"], (
        f"{name}: image PSNR {result['psnr']:.2f} dB < {tol['img_psnr_min_db']} dB")


# ------------------------------------------------------------------ writing NVIDIA-format pickles (tests)
# Tests need variants of real snapshots (2-ADA layout, an augment_pipe, nested payloads, conditional
# models). They are written here from NetworkRecords with the same globals NVIDIA's code emits:
# torch_utils.persistence._reconstruct_persistent_obj(meta) per network, dnnlib.util.EasyDict for kwargs,
# torch's own tensor/parameter/storage reducers and numpy's. The two NVIDIA modules are stood in by
# stub modules that exist in sys.modules only while pickling: nothing NVIDIA wrote is involved.


def _stub_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__["__stub__"] = True
    return module


def _reconstruct_persistent_obj(meta):  # pragma: no cover - only its name is pickled
    raise RuntimeError("stub: tests never unpickle with this")


class EasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict`` while :func:`nvidia_globals` is active."""


@contextlib.contextmanager
def nvidia_globals():
    """Make ``torch_utils.persistence`` and ``dnnlib.util`` importable stubs while pickling."""
    persistence, util = _stub_module("torch_utils.persistence"), _stub_module("dnnlib.util")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util.EasyDict = EasyDict
    saved = (_reconstruct_persistent_obj.__module__, EasyDict.__module__, EasyDict.__qualname__)
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    names = {"torch_utils": _stub_module("torch_utils"), "torch_utils.persistence": persistence,
             "dnnlib": _stub_module("dnnlib"), "dnnlib.util": util}
    clash = [n for n in names if n in sys.modules and not getattr(sys.modules[n], "__stub__", False)]
    if clash:
        raise RuntimeError(f"real modules {clash} are imported; refusing to shadow them")
    sys.modules.update(names)
    try:
        yield
    finally:
        for n in names:
            sys.modules.pop(n, None)
        _reconstruct_persistent_obj.__module__, EasyDict.__module__, EasyDict.__qualname__ = saved


class Persistent:
    """Pickles as ``_reconstruct_persistent_obj(meta)``, the way NVIDIA's persistence module does."""

    def __init__(self, meta: dict):
        self.meta = meta

    def __reduce__(self):
        return _reconstruct_persistent_obj, (self.meta,)


def _easy(value):
    if isinstance(value, dict):
        return EasyDict({k: _easy(v) for k, v in value.items()})
    return value


def persistent_from_record(record, module_src: str = "", extra_state: dict | None = None) -> Persistent:
    """A picklable NVIDIA persistent object carrying ``record``'s class, kwargs, attributes and tensors."""
    from collections import OrderedDict

    state = {
        "training": False,
        "_parameters": {k: torch.nn.Parameter(v.detach().clone(), requires_grad=False)
                        for k, v in record.params.items()},
        "_buffers": {k: v.detach().clone() for k, v in record.buffers.items()},
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": OrderedDict(),
        "_forward_hooks": OrderedDict(),
        "_modules": {k: persistent_from_record(v, module_src) for k, v in record.modules.items()},
        **record.attrs,
        "_init_args": tuple(record.init_args),
        "_init_kwargs": _easy(dict(record.init_kwargs)),
        **(extra_state or {}),
    }
    return Persistent({"type": "class", "version": 6, "module_src": module_src,
                       "class_name": record.class_name, "state": state})


def dumps_snapshot(entries: dict, protocol: int = 4) -> bytes:
    """Pickle a snapshot dict; NetworkRecord values become NVIDIA persistent objects."""
    from bridge.stylegan.pickle_reader import NetworkRecord

    obj = {k: persistent_from_record(v) if isinstance(v, NetworkRecord) else v for k, v in entries.items()}
    with nvidia_globals():
        return pickle.dumps(obj, protocol=protocol)


def record_from_module(module: torch.nn.Module, class_name: str, init_kwargs: dict | None = None,
                       child_class_names=None):
    """A NetworkRecord mirroring a torch module tree (``child_class_names(path, module) -> name``)."""
    from bridge.stylegan.pickle_reader import NetworkRecord

    def build(mod, path, name):
        children = {k: build(m, f"{path}.{k}" if path else k,
                             child_class_names(f"{path}.{k}" if path else k, m) if child_class_names
                             else type(m).__name__)
                    for k, m in mod.named_children()}
        return NetworkRecord(
            class_name=name, init_args=(), init_kwargs=dict(init_kwargs or {}) if not path else {}, attrs={},
            params={k: p.detach() for k, p in mod.named_parameters(recurse=False)},
            buffers={k: b.detach() for k, b in mod.named_buffers(recurse=False) if b is not None},
            modules=children, non_persistent=set())

    return build(module, "", class_name)


def rewrite_strings(data: bytes, mapping: dict[str, str]) -> bytes:
    """Re-emit a pickle with some unicode string constants replaced (e.g. global module names).

    FRAME opcodes are dropped (frames are optional and their lengths would no longer fit); every other
    opcode is copied byte for byte, so the result differs only in the replaced strings.
    """
    import pickletools
    import struct

    ops = list(pickletools.genops(data))
    out = bytearray()
    for i, (op, arg, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(data)
        if op.name == "FRAME":
            continue
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8") and arg in mapping:
            raw = mapping[arg].encode("utf-8")
            out += b"\x8c" + bytes([len(raw)]) + raw if len(raw) < 256 else b"X" + struct.pack("<I", len(raw)) + raw
            continue
        out += data[pos:end]
    return bytes(out)
