"""One module per ``vrbridge`` sub-command (``HELP``, ``add_arguments(parser)``, ``main(args)``); see bridge/cli.py."""


def add_format_options(parser, json_help: str = "JSON list") -> None:
    """``--json`` / ``--markdown`` (into ``args.format``), for the commands that print one of the tables."""
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_const", dest="format", const="json", help=json_help)
    fmt.add_argument("--markdown", action="store_const", dest="format", const="markdown", help="a Markdown table")
