"""``vrbridge directions MODEL --method pca|sefa --count K --out FILE.npy``: latent directions of a model.

Writes a float32 array (K, w_dim), one unit-length direction per row, ordered by explained variance (PCA) or
eigenvalue (SeFa), and prints the ratios. Such a file is what the ``directions`` setting accepts (and PCA
results also land in the shared cache, so a show started on the same model later finds them).
"""
from __future__ import annotations

HELP = "compute latent directions (GANSpace PCA or SeFa) of a model and write them as a .npy"


def add_arguments(parser) -> None:
    from bridge.directions.source import DEFAULT_SAMPLES

    parser.add_argument("model", help="NVIDIA .pkl, .safetensors (+ .json), or .pt/.pth with --config")
    parser.add_argument("--method", choices=["pca", "sefa"], default="pca", help="GANSpace PCA (default) or SeFa")
    parser.add_argument("--count", type=int, default=16, help="how many directions to write (default 16)")
    parser.add_argument("--out", required=True, help="output .npy file")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                        help=f"PCA: number of sampled z (default {DEFAULT_SAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="PCA: seed of the sampled z (default 0)")
    parser.add_argument("--cache", default="", help="PCA cache folder (default ~/.cache/vrbridge/directions)")
    parser.add_argument("--key", default="G_ema", help="network inside a snapshot pickle (default G_ema)")
    parser.add_argument("--config", default="", help="generator config JSON file, for a plain state dict")


def main(args) -> int:
    import time
    from pathlib import Path

    import numpy as np

    from bridge.cli import UserError
    from bridge.commands.inspect import load_for_cli
    from bridge.directions import DirectionsError, sefa_directions
    from bridge.directions.compute import explained_summary
    from bridge.directions.source import cached_pca

    if args.samples < 2:
        raise UserError(f"--samples must be at least 2, got {args.samples}")
    generator = load_for_cli(args)
    if not 1 <= args.count <= generator.w_dim:
        raise UserError(f"--count {args.count} is out of range 1..{generator.w_dim} (this model's w_dim)")
    start = time.perf_counter()
    try:
        if args.method == "sefa":
            directions, cached = sefa_directions(generator), False
        else:
            directions, cached = cached_pca(generator, samples=args.samples, seed=args.seed, folder=args.cache)
    except DirectionsError as exc:
        raise UserError(str(exc)) from None
    elapsed = time.perf_counter() - start
    directions = directions.head(args.count)
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, directions.vectors.astype(np.float32))
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    how = "from the cache" if cached else f"in {elapsed:.2f} s"
    what = f"PCA of {args.samples} w" if args.method == "pca" else "SeFa"
    print(f"{out}: {directions.count} x {directions.w_dim} float32 ({what}, {how})")
    label = "explained-variance ratios" if args.method == "pca" else "eigenvalue ratios"
    print(f"{label}: {explained_summary(directions)}")
    return 0
