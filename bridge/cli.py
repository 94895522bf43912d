"""The ``vrbridge`` command: one sub-command per module in ``bridge.commands``.

Each command module has ``HELP`` (one line), ``add_arguments(parser)`` and ``main(args) -> int``.
Command modules import heavy packages (torch, cv2, mediapipe) inside ``main`` so ``vrbridge --help``
stays instant. A :class:`UserError` anywhere ends the program with its one-line message and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from bridge import __version__
from bridge.text import clip_line

# sub-command -> module; the order is the order of ``vrbridge --help``.
COMMANDS: dict[str, str] = {
    "run": "bridge.commands.run",
    "inspect": "bridge.commands.inspect",
    "render": "bridge.commands.render",
    "convert": "bridge.commands.convert",
    "export": "bridge.commands.export",
    "models": "bridge.commands.models",
    "directions": "bridge.commands.directions",
    "params": "bridge.commands.params",
    "signals": "bridge.commands.signals",
    "routes": "bridge.commands.routes",
    "bench": "bridge.commands.bench",
    "osc-monitor": "bridge.commands.osc_monitor",
    "osc-send": "bridge.commands.osc_send",
    "devices": "bridge.commands.devices",
}


class UserError(Exception):
    """A mistake the user can fix (bad flag, bad config value, unreadable file): printed as one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vrbridge", description="Steer a StyleGAN generator with a camera and hands; publish to the VJ rig.")
    parser.add_argument("--version", action="version", version=f"vrbridge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # command not written yet
                continue
            raise
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP,
                             epilog=getattr(module, "EPILOG", None),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(_main=module.main, _parser=cmd)
    return parser


def unknown_argument_hint(extras: list[str]) -> str:
    """The error for arguments no command takes: a live parameter's name given as a flag (``--psi 7``)
    is answered with the ``--set`` that does it."""
    from bridge.params import PARAMS

    by_flag = {"--" + p.name.replace(".", "-").replace("_", "-"): p for p in PARAMS if p.live}
    by_flag.update({"--" + p.name: p for p in PARAMS if p.live})
    for i, word in enumerate(extras):
        flag, eq, inline = word.partition("=")
        param = by_flag.get(flag)
        if param is not None:
            value = inline if eq else (extras[i + 1] if i + 1 < len(extras) and not extras[i + 1].startswith("--")
                                       else "VALUE")
            return (f"{flag} is a live parameter, not a start-up flag: give it with --set {param.name}={value} "
                    "(every parameter: vrbridge params)")
    return f"unrecognized arguments: {' '.join(extras)}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        (getattr(args, "_parser", None) or parser).error(unknown_argument_hint(extras))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except UserError as exc:
        print(f"vrbridge {args.command}: error: {clip_line(' '.join(str(exc).split()))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `vrbridge inspect x.pkl | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
