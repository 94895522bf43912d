"""``vrbridge signals``: every signal an input can publish (the names routes read), with span, unit and source."""
from __future__ import annotations

import json

from bridge.commands import add_format_options
from bridge.signals import catalogue

HELP = "list the signals inputs publish (hand.*, beat.*, ...), the names [[route]] tables read from"


def add_arguments(parser) -> None:
    add_format_options(parser, "JSON list")


def main(args) -> int:
    specs = sorted(catalogue().values(), key=lambda s: s.name)
    if args.format == "json":
        print(json.dumps([s.to_dict() for s in specs], indent=1))
        return 0
    if args.format == "markdown":
        print("| signal | span | unit | source | telemetry address | meaning |\n|---|---|---|---|---|---|")
        for s in specs:
            print(f"| `{s.name}` | {s.low:g} .. {s.high:g} | {s.unit} | {s.source} | `{s.osc_address}` | {s.description} |")
        return 0
    width = max(len(s.name) for s in specs)
    for s in specs:
        span = f"{s.low:g}..{s.high:g}{(' ' + s.unit) if s.unit else ''}"
        print(f"{s.name:<{width}}  {span:<18} {s.source:<7} {s.description}")
    print("\nIncoming OSC addresses are signals too: osc:/address (e.g. from = \"osc:/1/fader1\").")
    return 0
