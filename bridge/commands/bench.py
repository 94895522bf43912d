"""``vrbridge bench SUITE``: run one benchmark suite and print its figures as a Markdown table (and JSON)."""
from __future__ import annotations

import importlib
import json

from bridge.bench import SUITES

HELP = "run a benchmark suite (see the list below) and print its figures"


def add_arguments(parser) -> None:
    parser.add_argument("suite", choices=sorted(SUITES), help="which benchmark")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes (a smoke run)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--json", dest="json_path", default="", help="also write the results as JSON here")
    parser.add_argument("--dry-run", action="store_true", help="list what the suite would run (gpu suite)")
    parser.add_argument("--steps", default="", help="gpu suite: only these steps, comma-separated (default all)")


def main(args) -> int:
    module = importlib.import_module(SUITES[args.suite])
    result = module.run(args)
    _print_table(result.get("rows", []))
    for name, rows in result.get("tables", {}).items():  # a suite's further tables, each under its name
        print(f"\n{name}:")
        _print_table(rows)
    for line in result.get("notes", []):
        print(line)
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump(result, fh, indent=1, default=str)
    return 0


def _print_table(rows: list[dict]) -> None:
    if rows:
        cols = list(rows[0])
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for row in rows:
            print("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |")
