"""``vrbridge osc-send [HOST:]PORT ADDRESS ARGS...``: send one OSC message (rig debugging).

Arguments are typed by inference (``3`` int, ``0.5`` float, ``T``/``F`` bool, ``N`` nil, anything else a
string) or explicitly with a tag prefix: ``i:3 f:0.5 d:0.5 h:3 s:x`` (``s:3`` sends the string "3").
"""
from __future__ import annotations

import socket

from bridge.cli import UserError

HELP = "send one OSC message: vrbridge osc-send [HOST:]PORT ADDRESS [ARGS...] (i:3 f:0.5 s:x T F N)"

_EXPLICIT = {"i": int, "h": int, "f": float, "d": float, "s": str}
_BARE = {"T": ("T", True), "F": ("F", False), "N": ("N", None), "I": ("I", None)}


def add_arguments(parser) -> None:
    parser.add_argument("target", help="[HOST:]PORT to send to (host defaults to 127.0.0.1)")
    parser.add_argument("address", help="OSC address, e.g. /vrb/psi")
    parser.add_argument("args", nargs="*", help="arguments: 3, 0.5, text, T, F, N, or explicit i:3 f:0.5 s:3")
    parser.add_argument("--at", type=float, default=None, metavar="SECONDS",
                        help="wrap in a bundle timetagged this many seconds from now (negative = late)")


def parse_arg(text: str) -> tuple[str, object]:
    """One command-line word -> (type tag, value)."""
    if text in _BARE:
        return _BARE[text]
    tag, sep, rest = text.partition(":")
    if sep and tag in _EXPLICIT:
        try:
            return tag, _EXPLICIT[tag](rest)
        except ValueError:
            raise UserError(f"{text!r}: {rest!r} is not a valid {tag} value") from None
    for tag, kind in (("i", int), ("f", float)):
        try:
            value = kind(text)
        except ValueError:
            continue
        if tag == "i" and not -2**31 <= value < 2**31:
            return "h", value
        return tag, value
    return "s", text


def main(args) -> int:
    from bridge.osc import codec
    from bridge.osc.net import parse_endpoint, resolve

    host, port = parse_endpoint(args.target, "target")
    if not args.address.startswith("/"):
        raise UserError(f"address {args.address!r} must start with '/'")
    typed = [parse_arg(a) for a in args.args]
    data = codec.encode_message(args.address, [v for _, v in typed], "".join(t for t, _ in typed))
    if args.at is not None:
        data = codec.encode_bundle([data], codec.timetag_in(args.at))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, (resolve(host, "target"), port))
    shown = " ".join(t if t in "TFNI" else f"{t}:{v}" for t, v in typed)
    print(f"sent {args.address} ,{''.join(t for t, _ in typed)} {shown} -> {host}:{port} ({len(data)} bytes)")
    return 0
