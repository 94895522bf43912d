"""``vrbridge params``: the parameter table, for tools (``--json``) and docs (``--markdown``)."""
from __future__ import annotations

import json

from bridge.commands import add_format_options

from bridge.params import PARAMS

HELP = "print the parameter table (names, OSC addresses, types, ranges, defaults) as JSON or Markdown"


def add_arguments(parser) -> None:
    add_format_options(parser, "JSON list (default)")


def main(args) -> int:
    if args.format == "markdown":
        print(markdown())
    else:
        print(json.dumps([p.to_dict() for p in PARAMS], indent=1))
    return 0


def markdown() -> str:
    from bridge.config import allowed, flag_of

    lines = ["| name | OSC address / flag | type | default | allowed | live | description |",
             "|---|---|---|---|---|---|---|"]
    for p in PARAMS:
        where = f"`{p.osc_address}`" if p.live else f"`{flag_of(p)}`"
        default = list(p.default) if isinstance(p.default, tuple) else p.default
        cells = [f"`{p.name}`", where, p.kind, f"`{json.dumps(default)}`", allowed(p), "yes" if p.live else "start-up",
                 p.description.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
