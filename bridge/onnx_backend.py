"""ONNX export of a generator, and the ONNX Runtime stand-in the engine runs with ``--backend onnxruntime``.

``export_onnx(generator, DIR)`` writes two graphs (names are the contract other tools rely on):

    DIR/mapping.onnx    inputs  z [N, z_dim] float32, c [N, c_dim] float32 (conditional models only),
                                truncation_psi [] float32 (toward the model's average w, every style slot)
                        output  ws [N, num_ws, w_dim] float32
    DIR/synthesis.onnx  inputs  ws [N, num_ws, w_dim] float32, and the live-lever tensors as OPTIONAL inputs
                                whose defaults are the model's values: const [C, 4, 4] (StyleGAN2's learned
                                constant) or transform [3, 3] (StyleGAN3's inverse input transform)
                        output  img [N, C, H, W] float32, nominal range [-1, 1]

N is free. Const noise is baked in (noise_mode "const"). The generator's config is stored in each graph's
metadata (key ``vrbridge.config``), so the graphs alone are enough to run a show.

Why our StyleGAN3 exports where NVIDIA's cannot: it is plain PyTorch ops (no custom CUDA kernels); the grouped
per-sample convolution becomes a shared one with the per-sample scales on the activations while exporting.

``OrtGenerator`` looks like a Generator to the engine (mapping, mapping.truncate, synthesis, the tensors the
hand levers edit under NVIDIA's names), so levers that edit ``synthesis.b4.const`` or
``synthesis.input.transform`` keep working: they are fed to the graph each frame. What does not work on this
backend is listed in ``UNSUPPORTED_LEVERS`` and refused with one line.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bridge.stylegan.export_graph import SynthesisGraph, lever_input

log = logging.getLogger(__name__)

MAPPING_FILE = "mapping.onnx"
SYNTHESIS_FILE = "synthesis.onnx"
CONFIG_KEY = "vrbridge.config"
# ONNX Runtime execution providers, fastest first: the first one this onnxruntime build offers is used.
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider",
                  "CoreMLExecutionProvider", "CPUExecutionProvider")
# Live levers this backend cannot honour (the graph bakes them in): row -> the only value it runs with.
UNSUPPORTED_LEVERS = {"noise_mode": "const", "network_b": ""}
OPSET = 18


class OnnxUnavailable(RuntimeError):
    """onnx / onnxruntime / onnxscript is not installed, or a graph cannot be used (one-line message)."""


# ------------------------------------------------------------------------------------------------- export

class _MappingGraph(nn.Module):
    """z, psi -> ws, truncated toward w_avg in every slot (the engine truncates per slot itself)."""

    def __init__(self, mapping):
        super().__init__()
        self.mapping = mapping

    def forward(self, z, truncation_psi):
        return self._truncated(self.mapping(z, None, truncation_psi=1.0), truncation_psi)

    def _truncated(self, ws, psi):
        if self.mapping.w_avg is None:  # nothing to truncate toward: psi is accepted and has no effect
            return ws + psi * 0
        return self.mapping.w_avg.lerp(ws, psi)


class _ConditionalMappingGraph(_MappingGraph):
    """z, c, psi -> ws for a conditional model."""

    def forward(self, z, c, truncation_psi):
        return self._truncated(self.mapping(z, c, truncation_psi=1.0), truncation_psi)


def export_onnx(generator, out_dir: str | Path, progress=print) -> dict[str, Path]:
    """Write DIR/mapping.onnx and DIR/synthesis.onnx (see the module docstring); returns their paths.

    Runs on the CPU in float32 on the plain path; the generator is left as it was.
    """
    onnx, _ = _require_onnx()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    was_fast = bool(getattr(generator, "fast", False))
    generator = generator.cpu().float().eval()
    if hasattr(generator, "set_fast"):
        generator.set_fast(False)
    config = json.dumps(generator.config)
    dim = torch.export.Dim("N", min=1, max=1024)
    z = torch.zeros(2, generator.z_dim)
    psi = torch.tensor(0.7)
    try:
        with torch.no_grad():
            progress(f"exporting {out / MAPPING_FILE} ...")
            if generator.c_dim:
                graph, args = _ConditionalMappingGraph(generator.mapping), (z, torch.zeros(2, generator.c_dim), psi)
                names, shapes = ["z", "c", "truncation_psi"], ({0: dim}, {0: dim}, None)
            else:
                graph, args, names, shapes = _MappingGraph(generator.mapping), (z, psi), ["z", "truncation_psi"], \
                    ({0: dim}, None)
            _export(graph, args, names, ["ws"], shapes, out / MAPPING_FILE)
            progress(f"exporting {out / SYNTHESIS_FILE} ...")
            ws = generator.mapping(z, torch.zeros(2, generator.c_dim) if generator.c_dim else None)
            name, value = lever_input(generator)
            _export(SynthesisGraph(generator.synthesis, generator.arch), (ws, value.clone()), ["ws", name],
                    ["img"], ({0: dim}, None), out / SYNTHESIS_FILE)
    finally:
        if hasattr(generator, "set_fast"):
            generator.set_fast(was_fast)
    _finish(out / MAPPING_FILE, config, {})
    _finish(out / SYNTHESIS_FILE, config, {name: value.numpy().astype(np.float32)})
    for path in (out / MAPPING_FILE, out / SYNTHESIS_FILE):
        onnx.checker.check_model(str(path), full_check=True)
    return {"mapping": out / MAPPING_FILE, "synthesis": out / SYNTHESIS_FILE}


def _export(module, args, input_names, output_names, dynamic_shapes, path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=True, input_names=input_names, output_names=output_names,
                          dynamic_shapes=dynamic_shapes, opset_version=OPSET, external_data=False, verbose=False)


def _finish(path: Path, config: str, defaults: dict[str, np.ndarray]) -> None:
    """Store the config as metadata and give optional inputs their defaults.

    ONNX makes a graph input optional when an initializer of the same name exists: its value is the default.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inputs = {i.name for i in model.graph.input}
    for name, value in defaults.items():
        if name not in inputs:
            raise OnnxUnavailable(f"{path.name}: the exporter dropped input {name!r}")
        model.graph.initializer.append(numpy_helper.from_array(value, name=name))
    del model.metadata_props[:]
    model.metadata_props.add(key=CONFIG_KEY, value=config)
    onnx.save(model, str(path))


def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise OnnxUnavailable(f"ONNX support needs the optional packages: pip install "
                              f"'visual-reactive-bridge[onnx]' ({exc.name} is missing)") from None
    return onnx, onnxruntime


# ------------------------------------------------------------------------------------------------ runtime

def choose_providers(available: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The execution providers to ask for, best first, among those this onnxruntime build has."""
    if available is None:
        _, ort = _require_onnx()
        available = ort.get_available_providers()
    chosen = [p for p in PROVIDER_ORDER if p in available]
    return chosen or list(available)


class _OrtMapping(nn.Module):
    """``mapping(z, c, truncation_psi)`` and ``mapping.truncate(ws, psi, cutoff)`` on an ONNX Runtime session;
    ``w_avg`` is a buffer, as in the torch mapping network."""

    def __init__(self, session, c_dim: int):
        super().__init__()
        self.session = session
        self.c_dim = c_dim
        self.z_dim = z_dim = int(session.get_inputs()[0].shape[1])
        self.num_ws, self.w_dim = (int(d) for d in session.get_outputs()[0].shape[1:])
        # psi 0 gives the average w whatever z is; a zero z would hit 0/0 in ONNX Runtime's fused RMS norm
        feeds = {"z": np.ones([1, z_dim], np.float32), "truncation_psi": np.array(0.0, np.float32)}
        if c_dim:
            feeds["c"] = np.zeros([1, c_dim], np.float32)
        self.register_buffer("w_avg", torch.from_numpy(session.run(["ws"], feeds)[0][0, 0].copy()))  # psi 0

    def forward(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None):
        feeds = {"z": _np(z), "truncation_psi": np.array(1.0, np.float32)}
        if self.c_dim:
            feeds["c"] = _np(c) if c is not None else np.zeros([feeds["z"].shape[0], self.c_dim], np.float32)
        ws = torch.from_numpy(self.session.run(["ws"], feeds)[0])
        return self.truncate(ws, truncation_psi, truncation_cutoff)

    def truncate(self, ws, psi: float = 1.0, cutoff: int | None = None):
        if psi == 1:
            return ws
        ws = ws.clone()
        ws[:, :cutoff] = self.w_avg.to(ws.dtype).lerp(ws[:, :cutoff], psi)
        return ws


class _OrtSynthesis(nn.Module):
    """``synthesis(ws)`` on a session; holds the lever tensor under NVIDIA's name so levers can edit it."""

    def __init__(self, session, arch: str, lever: np.ndarray):
        super().__init__()
        self.session = session
        self.arch = arch
        holder = nn.Module()
        holder.register_buffer("const" if arch == "stylegan2" else "transform", torch.from_numpy(lever.copy()))
        if arch == "stylegan2":
            self.b4 = holder
            self.lever_name = "const"
        else:
            self.input = holder
            self.lever_name = "transform"
        self._warned: set[str] = set()

    def lever(self) -> torch.Tensor:
        return getattr(self.b4 if self.arch == "stylegan2" else self.input, self.lever_name)

    def forward(self, ws, noise_mode: str = "const", **ignored):
        if noise_mode != UNSUPPORTED_LEVERS["noise_mode"] and "noise_mode" not in self._warned:
            self._warned.add("noise_mode")
            log.warning(refusal("noise_mode", noise_mode))
        feeds = {"ws": _np(ws), self.lever_name: _np(self.lever())}
        return torch.from_numpy(self.session.run(["img"], feeds)[0])


class OrtGenerator(nn.Module):
    """The exported graphs behind the Generator interface the engine uses (see the module docstring)."""

    def __init__(self, directory: str | Path, providers: list[str] | None = None):
        super().__init__()
        onnx, ort = _require_onnx()
        directory = Path(directory)
        paths = [directory / MAPPING_FILE, directory / SYNTHESIS_FILE]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise OnnxUnavailable(f"{directory}: no {', '.join(missing)} here (write them with "
                                  f"`vrbridge export MODEL --onnx {directory}`)")
        meta = {p.key: p.value for p in onnx.load(str(paths[1]), load_external_data=False).metadata_props}
        if CONFIG_KEY not in meta:
            raise OnnxUnavailable(f"{paths[1]}: not written by vrbridge export (no {CONFIG_KEY} metadata)")
        self.config = json.loads(meta[CONFIG_KEY])
        self.providers = providers or choose_providers()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sessions = [ort.InferenceSession(str(p), options, providers=self.providers) for p in paths]
        self.arch = self.config["arch"]
        for key in ("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels"):
            setattr(self, key, int(self.config[key]))
        self.mapping = _OrtMapping(sessions[0], self.c_dim)
        lever = next(i for i in onnx.load(str(paths[1])).graph.initializer
                     if i.name in ("const", "transform"))
        from onnx import numpy_helper

        self.synthesis = _OrtSynthesis(sessions[1], self.arch, numpy_helper.to_array(lever))
        self.num_ws = int(sessions[1].get_inputs()[0].shape[1])
        self.active_provider = sessions[1].get_providers()[0]

    def forward(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "const"):
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff), noise_mode=noise_mode)

    def describe(self) -> str:
        return f"onnxruntime ({self.active_provider})"


def refusal(row: str, value: Any) -> str:
    """The one line a lever this backend cannot honour gets."""
    return (f"{row}={value!r} is not available with --backend onnxruntime (the exported graph runs "
            f"{row}={UNSUPPORTED_LEVERS[row]!r}); use --backend torch for it")


def _np(t) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return np.ascontiguousarray(t, dtype=np.float32)
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


__all__ = ["export_onnx", "OrtGenerator", "choose_providers", "OnnxUnavailable", "PROVIDER_ORDER",
           "UNSUPPORTED_LEVERS", "refusal", "lever_input"]
