"""``vrbridge routes``: the routes a show file would run (the default routes of its inputs, then its own)."""
from __future__ import annotations

import json

HELP = "list the routes (signal -> parameter) a show file would run, default routes included"


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="SHOW.toml", help="show file whose [[route]] tables and inputs to list")
    parser.add_argument("--hands", choices=("off", "mediapipe", "osc"), help="as vrbridge run --hands")
    parser.add_argument("--json", action="store_true", help="JSON list of route tables")


def main(args) -> int:
    from bridge.config import load_show_file
    from bridge.routes import RouteTable, parse_route
    from bridge.tracking import default_routes, hand_mode

    settings = load_show_file(args.config) if args.config else {}
    if args.hands:
        settings["hands"] = args.hands
    table = RouteTable()
    if hand_mode(settings) != "off" and settings.get("default_routes", True):
        for entry in default_routes():
            table.add(parse_route(entry))
    for index, entry in enumerate(settings.get("route") or ()):
        table.add(parse_route(entry, where=f"route[{index}]"))
    routes = table.routes()
    if args.json:
        print(json.dumps([r.to_dict() for r in routes], indent=1))
    elif not routes:
        print("no routes (hands off and no [[route]] tables); add some with [[route]] or /vrb/route/add")
    else:
        print("\n".join(r.describe() for r in routes))
    return 0
