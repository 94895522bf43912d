"""``vrbridge osc-monitor PORT``: print every OSC message and bundle that arrives, decoded.

Garbage is printed as such (with what is wrong) and the monitor keeps listening: it is the tool for
finding out what a rig really sends.
"""
from __future__ import annotations

import socket
import sys
import time

HELP = "print decoded OSC arriving on [HOST:]PORT (messages, bundles, and what is wrong with garbage)"


def add_arguments(parser) -> None:
    parser.add_argument("port", help="[HOST:]PORT to listen on (host defaults to 127.0.0.1)")
    parser.add_argument("--count", type=int, default=0, help="exit after this many datagrams (0 = run until Ctrl-C)")
    parser.add_argument("--timeout", type=float, default=0.0, help="exit after this many seconds (0 = never)")


def describe(packet, indent: str = "") -> list[str]:
    """Printable lines for a decoded packet."""
    from bridge.osc import codec

    if isinstance(packet, codec.Message):
        args = " ".join(_show(a) for a in packet.args)
        return [f"{indent}{packet.address} ,{packet.typetags}{' ' + args if args else ''}"]
    tag = "immediately" if packet.timetag == codec.IMMEDIATE else \
        f"at {codec.timetag_to_unix(packet.timetag) - time.time():+.3f} s"
    lines = [f"{indent}#bundle {tag} ({len(packet.elements)} elements)"]
    for element in packet.elements:
        lines += describe(element, indent + "  ")
    return lines


def _show(value) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (bytes, bytearray)):
        return f"<blob {len(value)} bytes>"
    return str(value)


def main(args) -> int:
    from bridge.cli import UserError
    from bridge.osc import codec
    from bridge.osc.net import parse_endpoint, resolve

    host, port = parse_endpoint(args.port, "port")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((resolve(host, "port"), port))
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    print(f"listening on udp://{host}:{sock.getsockname()[1]}", flush=True)
    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    seen = 0
    with sock:
        while not args.count or seen < args.count:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
            try:
                data, sender = sock.recvfrom(65536)
            except socket.timeout:
                break
            seen += 1
            try:
                lines = describe(codec.decode(data))
            except codec.Malformed as exc:
                lines = [f"malformed ({len(data)} bytes): {exc.detail}"]
            for line in lines:
                print(f"{sender[0]}:{sender[1]} {line}" if line is lines[0] else f"{' ' * len(sender[0])}  {line}")
            sys.stdout.flush()
    return 0
