"""``vrbridge render MODEL --seeds 0-7 --psi 0.7 --out DIR``: one PNG per seed, the quickest model check.

Latents follow NVIDIA's gen_images.py exactly (z = np.random.RandomState(seed).randn(1, z_dim), image =
clamp(img * 127.5 + 128) as uint8, file seedNNNN.png), so a model renders here as it does there.
"""
from __future__ import annotations

import re
from pathlib import Path

HELP = "render one PNG per seed from a StyleGAN model (seeds like 0-7 or 0-3,7)"

MAX_SEEDS = 10_000  # a typo like 0-1000000 should not silently fill a disk


def add_arguments(parser) -> None:
    parser.add_argument("model", help="NVIDIA .pkl, .safetensors (+ .json), or .pt/.pth with --config")
    parser.add_argument("--seeds", default="0-7", help="seeds: ranges and lists, e.g. 0-7 or 0-3,7 (default 0-7)")
    parser.add_argument("--psi", type=float, default=1.0, help="truncation psi, -1..2 as for `run` (default 1)")
    parser.add_argument("--cutoff", type=int, default=None, help="truncation cutoff (style layers; default all)")
    parser.add_argument("--noise-mode", default="const", choices=["const", "random", "none"])
    parser.add_argument("--class", dest="class_idx", type=int, default=None, help="class label (conditional)")
    parser.add_argument("--out", required=True, help="output directory (created)")
    parser.add_argument("--key", default="G_ema", help="network inside a snapshot pickle (default G_ema)")
    parser.add_argument("--config", default="", help="generator config JSON file, for a plain state dict")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")


_PART = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]; ValueError naming the bad part. Seeds must fit RandomState (< 2**32)."""
    seeds: list[int] = []
    for part in text.split(","):
        m = _PART.match(part)
        if not m:
            raise ValueError(f"bad seed {part.strip()!r} in {text!r} (use e.g. 0-7 or 0-3,7)")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"seed range {part.strip()!r} runs backwards")
        if hi >= 2**32:
            raise ValueError(f"seed {hi} is too large (seeds must be below 2**32)")
        if len(seeds) + hi - lo + 1 > MAX_SEEDS:
            raise ValueError(f"more than {MAX_SEEDS} seeds requested")
        seeds.extend(range(lo, hi + 1))
    return seeds


def to_uint8(img):
    """(1, C, H, W) float in [-1, 1] -> (H, W, C) uint8, as gen_images.py converts."""
    import torch

    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].cpu().numpy()


def _class_vector(generator, class_idx):
    import torch

    from bridge.cli import UserError

    if generator.c_dim == 0:
        if class_idx is not None:
            print("warning: --class is ignored for an unconditional model")
        return None
    if class_idx is None:
        raise UserError(f"this model is conditional ({generator.c_dim} classes): give --class 0..{generator.c_dim - 1}")
    if not 0 <= class_idx < generator.c_dim:
        raise UserError(f"--class {class_idx} is out of range 0..{generator.c_dim - 1}")
    c = torch.zeros([1, generator.c_dim])
    c[0, class_idx] = 1
    return c


def _save_png(array, path: Path) -> None:
    from PIL import Image

    channels = array.shape[2]
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        array, mode = array[:, :, :3], "RGB"  # e.g. 2- or 5-channel models: show the first three
    Image.fromarray(array[:, :, 0] if mode == "L" else array, mode).save(path)


def main(args) -> int:
    import numpy as np
    import torch

    from bridge.cli import UserError
    from bridge.commands.inspect import load_for_cli
    from bridge.latents import seed_z

    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    from bridge.config import validate

    validate("psi", args.psi, "--psi")  # the table's rule, as `vrbridge run --set psi=...` applies it
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda requested but no CUDA device is available")
    generator = load_for_cli(args)
    if generator.img_channels == 2 or generator.img_channels > 4:
        print(f"note: {generator.img_channels}-channel model: writing its first three channels as RGB")
    c = _class_vector(generator, args.class_idx)
    c = c.to(args.device) if c is not None else None
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    for seed in seeds:
        z = seed_z(seed, generator.z_dim, args.device)
        with torch.no_grad():
            img = generator(z, c, truncation_psi=args.psi, truncation_cutoff=args.cutoff, noise_mode=args.noise_mode)
        path = out / f"seed{seed:04d}.png"
        _save_png(to_uint8(img), path)
        print(f"{path}")
    return 0
