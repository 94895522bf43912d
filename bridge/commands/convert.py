"""``vrbridge convert IN OUT.safetensors``: any model we can read, written in the safe format.

IN may be an NVIDIA pickle (PyTorch or TensorFlow era), a rosinality checkpoint, a safetensors file or a
torch state dict (with --config); it is read as data, never run. OUT gets the weights plus the generator
config in its metadata (and a sidecar .json), written atomically; it then loads without any pickle. The
converted network is checked by rendering one latent from both and comparing.
"""
from __future__ import annotations

from pathlib import Path

HELP = "convert a StyleGAN model (NVIDIA/TF pickle, rosinality .pt, ...) to .safetensors + JSON config"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="input model file (any format vrbridge inspect reads) or a library name")
    parser.add_argument("out", help="output .safetensors path (a .json config is written beside it)")
    parser.add_argument("--key", default="G_ema", help="network inside a snapshot (default G_ema = TF's Gs)")
    parser.add_argument("--config", default="", help="generator config JSON file, for a plain state dict")


def main(args) -> int:
    import torch

    from bridge.cli import UserError
    from bridge.commands.inspect import load_for_cli
    from bridge.stylegan.loader import FORMAT_NAMES, load_network, save_network

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise UserError(f"output must be a .safetensors file, got {out.name}")
    if Path(args.model).exists() and out.exists() and out.resolve() == Path(args.model).resolve():
        raise UserError("output would overwrite the input")
    generator = load_for_cli(args)
    try:
        weights, sidecar = save_network(generator, out)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    again = load_network(weights)
    z = torch.randn([1, generator.z_dim], generator=torch.Generator().manual_seed(0))
    c = torch.zeros([1, generator.c_dim]) if generator.c_dim else None
    with torch.no_grad():
        same = torch.equal(generator(z, c), again(z, c))
    if not same:
        raise UserError(f"{weights}: the written model renders differently from the input (please report)")
    fmt = FORMAT_NAMES.get(getattr(generator, "source_format", ""), "model")
    print(f"{args.model} ({fmt}, {generator.img_resolution}px, num_ws {generator.num_ws}) -> {weights} "
          f"+ {sidecar.name}")
    return 0
