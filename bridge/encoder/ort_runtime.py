"""The encoder backbone's forward in ONNX Runtime on the CPU: same input, same taps, a fraction of the time.

Why: the depthwise networks (EfficientNet-B0, MobileNetV3) are dozens of small layers, and at batch 1 on a
CPU eager torch spends most of each frame around the arithmetic, not in it. ONNX Runtime runs the same graph
with fused, pre-packed NHWC kernels: measured on the 2-core project machine, the demo encoder's whole encode
(EfficientNet-B0 to stage6 at 128x96) took 9.4 ms with it against 20.8 ms in torch, 2 threads, side by side
(2.2-2.6x for the three cases of ``vrbridge bench encoder``; BENCHMARKS.md, issue 16). Its pool does not
spin, so it also degrades gently when other programs take the cores, where torch's OpenMP threads wait for
each other (on a loaded machine: 47 against 204 ms).

How: the frozen backbone (BatchNorm already folded) is exported once with torch's TorchScript-based ONNX
exporter (seconds, no onnxscript needed) into the cache folder, keyed by a hash of its weights, taps and
input size, and checked against torch on a probe frame before it is used; any failure (no onnxruntime, an
export or a mismatch) keeps torch, with one line saying why. Only the backbone moves: the encoder's
preprocessing, reduction, standardisation and smoothing stay in torch, so the latents are the same numbers.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from bridge.encoder.backbone import Backbone

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnxruntime")
# Backbones "auto" runs in ONNX Runtime on the CPU: the ones measured faster there (VGG16's big 3x3 convs are
# oneDNN's home ground, and its fc taps would put 0.5 GB into the cache; DINOv2's attention is not measured).
AUTO_BACKBONES = ("efficientnet_b0", "mobilenet_v3_large")
MATCH_TOLERANCE = 1e-4  # max |ort - torch| on the probe, relative to the largest activation


class OrtUnavailable(RuntimeError):
    """ONNX Runtime cannot run this backbone here (the message says why; the encoder keeps torch)."""


class _TapOutputs(torch.nn.Module):
    """The backbone with its dict of taps as a tuple, in a fixed order (ONNX graphs have ordered outputs)."""

    def __init__(self, backbone: Backbone, names: tuple[str, ...]):
        super().__init__()
        self.backbone = backbone
        self.names = names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.backbone(x)
        return tuple(out[name] for name in self.names)


class OrtBackboneRunner:
    """Call it like the backbone: ``runner(x)`` -> {tap: tensor}, from an ONNX Runtime session on the CPU."""

    def __init__(self, path: Path, names: tuple[str, ...], threads: int):
        self.path = path
        self.names = names
        self.threads = 0
        self._session = None
        self.set_threads(threads)

    def set_threads(self, threads: int) -> None:
        """ONNX Runtime's own pool: as many threads as torch may use here (the engine halves both when encode
        and synthesis overlap on the CPU). No spinning after a run: on a small CPU the synthesis that follows
        needs those cores."""
        threads = max(1, int(threads))
        if threads == self.threads:
            return
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.threads = threads

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        image = x.detach().to("cpu", torch.float32).contiguous().numpy()
        outputs = self._session.run(None, {"image": image})
        return {name: torch.from_numpy(out) for name, out in zip(self.names, outputs)}


def choose_runner(backbone: Backbone, size: tuple[int, int], device: torch.device, runtime: str = "auto"):
    """What runs the backbone's forward: the backbone itself (torch) or an :class:`OrtBackboneRunner`.

    Returns (runner, description for the start-up line). ``runtime`` "onnxruntime" insists (an
    :class:`OrtUnavailable` when it cannot); "auto" uses ONNX Runtime for AUTO_BACKBONES on the CPU when it is
    installed and the export checks out, else torch, saying why in one line.
    """
    if runtime not in RUNTIMES:
        raise OrtUnavailable(f"encoder runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return backbone, "torch"
    if device.type != "cpu":
        if runtime == "onnxruntime":
            raise OrtUnavailable(f"encoder runtime onnxruntime runs on the CPU only (device is {device})")
        return backbone, "torch"
    if runtime == "auto" and backbone.name not in AUTO_BACKBONES:
        return backbone, "torch"
    try:
        runner = _ort_runner(backbone, size)
    except OrtUnavailable as exc:
        if runtime == "onnxruntime":
            raise
        log.info("encoder: %s; running the backbone in torch", exc)
        return backbone, f"torch ({exc})"
    return runner, f"onnxruntime CPU, {runner.threads} threads"


def _ort_runner(backbone: Backbone, size: tuple[int, int]) -> OrtBackboneRunner:
    try:
        import onnxruntime
    except ImportError:
        raise OrtUnavailable("onnxruntime is not installed (pip install onnxruntime: a faster CPU encoder)") from None
    del onnxruntime  # only whether it is there: the runner imports it where it builds the session
    probe = torch.randn(1, 3, size[1], size[0], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = backbone(probe.contiguous(memory_format=torch.channels_last))
    names = tuple(reference)
    path = _cache_path(backbone, names, probe.shape)
    for _ in range(2):  # a cached file that does not load or does not match is exported again, once
        if not path.is_file():
            _export(backbone, names, probe, path)
        try:
            runner = OrtBackboneRunner(path, names, torch.get_num_threads())
            _check_match(reference, runner(probe))
            return runner
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, it goes
            path.unlink(missing_ok=True)
            problem = exc if isinstance(exc, OrtUnavailable) else OrtUnavailable(
                f"ONNX Runtime could not run the exported backbone ({type(exc).__name__}: {exc})")
    raise problem


def _cache_path(backbone: Backbone, names: tuple[str, ...], shape: torch.Size) -> Path:
    """Where the backbone's ONNX file lives in the cache, named by what the graph depends on: weights, taps,
    input size and torch's exporter."""
    from bridge.startup import cache_dir, cache_key

    try:
        folder = cache_dir() / "encoders"
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError) as exc:  # read-only home, a file in the way, no home at all
        raise OrtUnavailable(f"no cache folder for the exported backbone ({exc})") from None
    return folder / f"{backbone.name}-{cache_key(backbone, f'{names}|{tuple(shape)}|{torch.__version__}')}.onnx"


def _export(backbone: Backbone, names: tuple[str, ...], probe: torch.Tensor, path: Path) -> None:
    """Export the backbone to ``path``, written under a temporary name and then renamed, so a crash mid-export
    never leaves a half file under the real name."""
    partial = path.with_name(f"{path.stem}.{os.getpid()}.part")  # two starts at once each write their own
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes are not for the user
            torch.onnx.export(_TapOutputs(backbone, names).eval(), (probe,), str(partial), dynamo=False,
                              input_names=["image"], output_names=list(names), opset_version=17)
        partial.replace(path)
    except Exception as exc:  # noqa: BLE001 - any exporter failure means: stay on torch
        partial.unlink(missing_ok=True)
        raise OrtUnavailable(f"the backbone did not export to ONNX ({type(exc).__name__}: {exc})") from None


def _check_match(reference: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> None:
    for name, ref in reference.items():
        out = got[name]
        scale = max(1.0, float(ref.abs().max()))
        error = float((out - ref).abs().max()) if out.shape == ref.shape else float("inf")
        if not np.isfinite(error) or error > MATCH_TOLERANCE * scale:
            raise OrtUnavailable(f"ONNX Runtime's {name} differs from torch's (max error {error:.3g})")
