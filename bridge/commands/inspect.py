"""``vrbridge inspect MODEL``: what a network file holds, read safely (nothing in it is executed).

Prints the architecture, resolution, z/w/c dims, num_ws and which style layers are coarse / middle / fine,
the parameter count and the file's sha256. A malicious, truncated or non-network file is one line on stderr
and exit code 2.
"""
from __future__ import annotations

import json
from pathlib import Path

HELP = "show a StyleGAN model's architecture, resolution, dims, style layers, size and hash (read safely)"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="NVIDIA .pkl (PyTorch or TensorFlow), rosinality .pt, .safetensors (+ .json), "
                        "a .pt/.pth state dict with --config, or a model-library name (vrbridge models)")
    parser.add_argument("--key", default="G_ema", help="network inside a snapshot pickle (default G_ema)")
    parser.add_argument("--config", default="", help="generator config JSON file, for a plain state dict")
    parser.add_argument("--json", action="store_true", help="print the facts as one JSON object")


def read_config_arg(path: str) -> dict | None:
    """The --config file shared by inspect and render (None when not given)."""
    from bridge.cli import UserError

    if not path:
        return None
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read config {path}: {exc}") from None
    if not isinstance(value, dict):
        raise UserError(f"config {path} is not a JSON object")
    return value


def load_for_cli(args):
    """Load ``args.model`` or raise UserError with the loader's one-line reason."""
    from bridge.cli import UserError
    from bridge.stylegan.loader import load_network
    from bridge.stylegan.pickle_reader import NetworkLoadError

    from bridge.stylegan.library import LibraryError, resolve_network

    try:
        args.model = resolve_network(args.model)  # a library name -> its cached file (never downloads here)
    except LibraryError as exc:
        raise UserError(str(exc)) from None
    if not Path(args.model).is_file():
        raise UserError(f"no such model file: {args.model}")
    try:
        return load_network(args.model, key=args.key, config=read_config_arg(args.config),
                            device=getattr(args, "device", "cpu"))
    except NetworkLoadError as exc:
        raise UserError(str(exc)) from None


def architecture_label(config: dict) -> str:
    if config["arch"] == "stylegan3":
        return "StyleGAN3-R" if config.get("synthesis_kwargs", {}).get("use_radial_filters") else "StyleGAN3-T"
    return "StyleGAN2"


def describe(generator, path: str, key: str) -> dict:
    """The facts ``inspect`` prints, as a JSON-able dict."""
    from bridge.stylegan import default_layer_groups
    from bridge.stylegan.loader import file_sha256, sniff_format

    groups = default_layer_groups(generator)
    return {
        "file": str(path),
        "format": getattr(generator, "source_format", None) or sniff_format(Path(path)),
        "network": key,
        "architecture": architecture_label(generator.config),
        "arch": generator.arch,
        "img_resolution": generator.img_resolution,
        "img_channels": generator.img_channels,
        "z_dim": generator.z_dim,
        "w_dim": generator.w_dim,
        "c_dim": generator.c_dim,
        "conditional": generator.c_dim > 0,
        "num_ws": generator.num_ws,
        "style_layers": {name: list(range(*span)) for name, span in groups.items()},
        "parameters": sum(p.numel() for p in generator.parameters()),
        "buffers": sum(b.numel() for b in generator.buffers()),
        "sha256": file_sha256(path),
        "config": generator.config,
    }




def _network_note(facts: dict) -> str:
    """Which network of a multi-network file was read (TF's Gs and rosinality's g_ema are our G_ema)."""
    key = facts["network"]
    if facts["format"] == "nvidia-pickle":
        return f" (network {key})"
    if facts["format"] == "tensorflow-pickle":
        return f" (network {'Gs' if key in ('G_ema', 'Gs') else key})"
    if facts["format"] == "rosinality":
        return f" ({'g_ema' if key in ('G_ema', 'g_ema') else 'g'})"
    return ""


def _span(layers: list[int]) -> str:
    return f"{layers[0]}-{layers[-1]}" if layers else "none"


def format_text(facts: dict) -> str:
    from bridge.stylegan.loader import FORMAT_NAMES

    layers = facts["style_layers"]
    cond = f"yes ({facts['c_dim']} classes)" if facts["conditional"] else "no"
    rows = [
        ("file", facts["file"]),
        ("format", FORMAT_NAMES.get(facts["format"], facts["format"])
         + _network_note(facts)),
        ("architecture", f"{facts['architecture']} ({facts['arch']})"),
        ("resolution", f"{facts['img_resolution']}x{facts['img_resolution']}, {facts['img_channels']} channels"),
        ("z_dim / w_dim", f"{facts['z_dim']} / {facts['w_dim']}"),
        ("conditional", cond),
        ("num_ws", str(facts["num_ws"])),
        ("style layers", ", ".join(f"{name} {_span(ids)}" for name, ids in layers.items())),
        ("parameters", f"{facts['parameters']:,} (+ {facts['buffers']:,} buffer values)"),
        ("sha256", facts["sha256"]),
    ]
    return "\n".join(f"{name + ':':<15}{value}" for name, value in rows)


def main(args) -> int:
    generator = load_for_cli(args)
    facts = describe(generator, args.model, args.key)
    print(json.dumps(facts, indent=1) if args.json else format_text(facts))
    return 0
