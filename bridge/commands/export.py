"""``vrbridge export MODEL --onnx DIR``: the generator as two ONNX graphs (DIR/mapping.onnx, DIR/synthesis.onnx).

MODEL is any model file ``vrbridge inspect`` reads, or ``demo`` for the embedded demo network. The graphs'
inputs and outputs are described in :mod:`bridge.onnx_backend`; they are checked with ONNX's checker and
against the torch generator on one latent before the command reports success. Run them in the engine with
``vrbridge run --network DIR --backend onnxruntime``.
"""
from __future__ import annotations

from pathlib import Path

HELP = "export a StyleGAN model to ONNX (mapping.onnx + synthesis.onnx) for ONNX Runtime"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="model file (any format vrbridge inspect reads), or 'demo'")
    parser.add_argument("--onnx", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument("--key", default="G_ema", help="network inside a snapshot (default G_ema)")
    parser.add_argument("--config", default="", help="generator config JSON file, for a plain state dict")


def load_model(args):
    """The generator ``args.model`` names (``demo``: the embedded demo network)."""
    if args.model == "demo":
        from bridge.demo import DEMO_SEED
        from bridge.stylegan import Generator, demo_config

        return Generator.from_config(demo_config(), seed=DEMO_SEED)
    from bridge.commands.inspect import load_for_cli

    return load_for_cli(args)


def main(args) -> int:
    import numpy as np
    import torch

    from bridge.cli import UserError
    from bridge.onnx_backend import OnnxUnavailable, OrtGenerator, export_onnx

    generator = load_model(args)
    out = Path(args.onnx)
    if out.exists() and not out.is_dir():
        raise UserError(f"--onnx {out}: exists and is not a folder")
    try:
        paths = export_onnx(generator, out)
        runtime = OrtGenerator(out, providers=["CPUExecutionProvider"])
    except (OnnxUnavailable, OSError) as exc:
        raise UserError(str(exc)) from None
    z = torch.from_numpy(np.random.RandomState(0).randn(1, generator.z_dim).astype(np.float32))
    c = torch.zeros([1, generator.c_dim]) if generator.c_dim else None
    with torch.no_grad():
        ref = generator(z, c, truncation_psi=0.7)
        got = runtime(z, c, truncation_psi=0.7)
    err = float((got - ref).abs().max())
    span = float(ref.max() - ref.min()) or 1.0
    if not np.isfinite(err) or err > 1e-2 * span:
        raise UserError(f"{out}: the exported graphs render differently from the model (max error {err:.3g})")
    print(f"{args.model} ({generator.arch}, {generator.img_resolution}px, num_ws {generator.num_ws}) -> "
          f"{paths['mapping']} + {paths['synthesis'].name} (max error vs torch {err:.2g})")
    return 0
