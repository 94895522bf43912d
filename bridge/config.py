"""Show file (TOML) + command-line flags -> one validated settings dict, all derived from bridge/params.py.

* Every table row is a show-file key; dotted names are TOML tables (``[mix] coarse = [0, 4]`` is
  ``mix.coarse``), start-up rows are top-level keys (``network = "ffhq.pkl"``, ``osc_out = ["..."]``).
* Every start-up row (``live=False``) is also a flag: ``--`` + name with ``_`` as ``-`` (``--osc-out``,
  repeatable for lists; ``--record-input/--no-record-input`` for bools). Any row can be given at start with
  ``--set NAME=VALUE`` (``--set psi=0.5 --set mix.coarse=0,4``).
* Flags override the show file, which overrides the table defaults.
* A bad value is one line naming the key, the value and what is allowed; nothing starts.

Rows added to the table by anyone show up here by themselves: there is no list of keys in this file.

Example show file (``vrbridge run --config show.toml``; ``vrbridge params --markdown`` lists every key)::

    network = "models/ffhq-256.pkl"
    source = "camera:0"
    resolution = "1920x1080"
    fit = "crop"
    sink = ["ndi:vrbridge"]
    osc_out = ["127.0.0.1:7701"]
    psi = 0.6
    seed = 42
    [mix]
    coarse = [0, 4]     # style layers [start, end) the camera drives; [-1, -1] = default, [0, 0] = off
    amount = 0.8
    [encoder]
    layout = "paper"

    [[route]]           # signals drive live parameters (bridge/routes.py; `vrbridge signals` lists them)
    from = "hand.x"
    to = "psi"
    range = [0.3, 1.2]
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from bridge.cli import UserError
from bridge.params import DEFAULTS, PARAMS, PARAMS_BY_NAME, Param, ParamError
from bridge.text import brief, clip_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEST_PREFIX = "setting__"
ROUTES_KEY = "route"  # the show file's [[route]] tables: a list of route tables in the settings, not a row
TRUE_WORDS = ("true", "on", "yes", "1")
FALSE_WORDS = ("false", "off", "no", "0")


class ConfigError(UserError):
    """A show-file or flag value that cannot be used (one line: key, value, what is allowed)."""


# ------------------------------------------------------------------------------------------------
# Describing what is allowed (also used by ``vrbridge params``)
# ------------------------------------------------------------------------------------------------
def allowed(param: Param) -> str:
    """What values ``param`` takes, in words: 'a number in [-1, 2]', 'one of auto, cpu, cuda, mps', ..."""
    span = ""
    if param.min is not None or param.max is not None:
        span = f" in [{_num(param.min)}, {_num(param.max)}]"
    return {
        "float": f"a number{span}",
        "int": f"an integer{span}",
        "bool": "true or false",
        "enum": "one of " + ", ".join(param.choices),
        "str": "a string",
        "int2": f"two integers [start, end){span}",
        "list": "a list of strings",
        "action": "a trigger (optional string)",
    }[param.kind] + (f" ({param.unit})" if param.unit else "")


def _num(value: float | None) -> str:
    if value is None:
        return "any"
    return str(int(value)) if float(value).is_integer() else str(value)


def flag_of(param: Param) -> str:
    return "--" + param.name.replace("_", "-").replace(".", "-")


# ------------------------------------------------------------------------------------------------
# Validation of one value (shared by the file and the flags)
# ------------------------------------------------------------------------------------------------
def _check_size(value: str) -> None:
    from bridge.imageops import parse_size

    parse_size(value)


def _check_preview(value: str) -> None:
    if value.strip().lower() == "off":
        return
    from bridge.sinks.preview import parse_address

    try:
        parse_address(value)
    except Exception as exc:  # SinkUnavailable carries the rule
        raise ValueError(str(exc).split(": ", 1)[-1]) from None


def _check_source(value: str) -> None:
    from bridge.sources import SOURCE_KINDS

    kind = value.partition(":")[0]
    if kind not in SOURCE_KINDS:
        raise ValueError(f"unknown source kind {brief(kind)}: use pattern, camera:N, video:PATH, images:DIR "
                         f"(or {', '.join(k for k in SOURCE_KINDS if k not in ('pattern', 'camera', 'video', 'images'))})")


# Extra checks of start-up values whose format the table's type cannot express (name -> raises ValueError).
FORMAT_CHECKS = {"resolution": _check_size, "source_size": _check_size, "preview": _check_preview,
                 "source": _check_source}


def validate(name: str, value: Any, where: str) -> Any:
    """``value`` coerced for row ``name``, strictly in range; ConfigError naming ``where`` otherwise."""
    param = PARAMS_BY_NAME.get(name)
    if param is None:
        close = difflib.get_close_matches(name, list(PARAMS_BY_NAME), n=3) if len(name) < 100 else []
        hint = f"; did you mean {', '.join(close)}?" if close else "; see: vrbridge params"
        raise ConfigError(f"{where}: unknown setting {brief(name)}{hint}")
    try:
        coerced = param.coerce(value)
        _strict_range(param, value)
        if name in FORMAT_CHECKS and coerced:
            FORMAT_CHECKS[name](coerced)
    except (ParamError, ValueError) as exc:
        detail = exc.detail if isinstance(exc, ParamError) else str(exc)
        raise ConfigError(f"{where} = {_show(value)}: {detail} (allowed: {allowed(param)})") from None
    return coerced


def _strict_range(param: Param, value: Any) -> None:
    """At start-up an out-of-range number is a mistake to report, not something to clamp silently."""
    if param.kind not in ("float", "int", "int2"):
        return
    numbers = value if isinstance(value, (list, tuple)) else [value]
    for number in numbers:
        if (param.min is not None and number < param.min) or (param.max is not None and number > param.max):
            raise ValueError(f"{number} is outside [{_num(param.min)}, {_num(param.max)}]")


def _show(value: Any) -> str:
    return brief(list(value)) if isinstance(value, tuple) else brief(value)


# ------------------------------------------------------------------------------------------------
# The show file
# ------------------------------------------------------------------------------------------------
def companion_path(setting: str, show_file: str | None, kind: str) -> Path:
    """A file the engine writes for a show (presets, learned MIDI): the ``setting`` if given, else
    ``SHOW.<kind>.toml`` beside the show file, else ``./vrbridge-<kind>.toml``."""
    if setting:
        return Path(setting).expanduser()
    if show_file:
        show = Path(show_file)
        return show.with_name(f"{show.stem}.{kind}.toml")
    return Path(f"vrbridge-{kind}.toml")


MAX_TOML_BYTES = 1 << 20  # a show file, map or presets file is a few KB; 1 MiB leaves room for any rig


def read_toml(path: str | os.PathLike, what: str) -> tuple[str, dict[str, Any]]:
    """(text, data) of a TOML file the user wrote; any problem is one :class:`ConfigError` line.

    Bounded before parsing: at most :data:`MAX_TOML_BYTES`, UTF-8 text (as TOML requires), and nesting that
    the parser can take (Python's TOML parser recurses per ``[`` and would raise RecursionError).
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_TOML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what}: no such file {brief(str(path))}") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > MAX_TOML_BYTES:
        raise ConfigError(f"{what} {path}: larger than {MAX_TOML_BYTES >> 20} MiB; this is not a show file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{what} {path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
                          f"save it as UTF-8") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path}: not valid TOML: {clip_line(str(exc), 200)}") from None
    except RecursionError:
        raise ConfigError(f"{what} {path}: values nested too deeply") from None


def load_show_file(path: str) -> dict[str, Any]:
    """Read a TOML show file into {row name: validated value}."""
    if not os.path.exists(path):
        raise ConfigError(f"--config: no such show file {brief(path)}")
    _, data = read_toml(path, "--config")
    label = os.path.basename(path)
    routes = _routes(data.pop(ROUTES_KEY, []), label)
    try:
        settings = {name: validate(name, value, f"{label}: {clip_line(name, 80)}")
                    for name, value in _flatten(data, "", label)}
    except RecursionError:
        raise ConfigError(f"--config {path}: values nested too deeply") from None
    if routes:
        settings[ROUTES_KEY] = routes
    return settings


def _routes(tables: Any, label: str) -> list[dict[str, Any]]:
    """The show file's ``[[route]]`` tables, each checked now (one line naming the route and key)."""
    from bridge.routes import RouteError, parse_route

    if not isinstance(tables, list):
        raise ConfigError(f"{label}: route must be written as [[route]] tables")
    for index, table in enumerate(tables):
        try:
            parse_route(table, where=f"route[{index}]")
        except (RouteError, RecursionError) as exc:
            raise ConfigError(f"{label}: {exc if isinstance(exc, RouteError) else f'route[{index}] nested too deeply'}") from None
    return [dict(table) for table in tables]


def _flatten(table: Mapping[str, Any], prefix: str, label: str) -> Iterable[tuple[str, Any]]:
    for key, value in table.items():
        name = prefix + key
        if isinstance(value, dict):
            if name in PARAMS_BY_NAME:
                raise ConfigError(f"{label}: {name} is a table but must be {allowed(PARAMS_BY_NAME[name])}")
            yield from _flatten(value, name + ".", label)
        else:
            yield name, value


# ------------------------------------------------------------------------------------------------
# Flags
# ------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, one flag per start-up row, and ``--set NAME=VALUE`` for any row."""
    parser.add_argument("--config", metavar="SHOW.toml", help="show file (TOML) with any of the settings below")
    group = parser.add_argument_group("start-up settings (also show-file keys)")
    for param in PARAMS:
        if param.live or param.kind == "action":
            continue
        _add_flag(group, param)
    parser.add_argument("--set", dest="set_values", action="append", default=[], metavar="NAME=VALUE",
                        help="set any parameter at start, e.g. --set psi=0.5 --set mix.coarse=0,4 (repeatable)")


def _add_flag(group, param: Param) -> None:
    help_text = f"{param.description} [{allowed(param)}; default {_show(param.default)}]".replace("%", "%%")
    dest = DEST_PREFIX + param.name
    flag = flag_of(param)
    if param.kind == "bool":
        group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif param.kind == "list":
        group.add_argument(flag, dest=dest, action="append", default=None, metavar="VALUE",
                           help=help_text + " (repeatable)")
    else:
        metavar = {"float": "X", "int": "N", "int2": "START,END", "enum": "{" + ",".join(param.choices) + "}"}
        group.add_argument(flag, dest=dest, default=None, metavar=metavar.get(param.kind, "TEXT"), help=help_text)


def parse_text(param: Param, text: str) -> Any:
    """A command-line string -> the row's Python type (coerce then checks the value itself)."""
    text = text.strip()
    kind = param.kind
    try:
        if kind == "float":
            return float(text)
        if kind == "int":
            return int(text)
        if kind == "int2":
            parts = text.strip("[]()").replace(",", " ").split()
            return [int(p) for p in parts]
    except ValueError:
        return text  # coerce names the type it wanted
    if kind == "bool":
        low = text.lower()
        return True if low in TRUE_WORDS else False if low in FALSE_WORDS else text
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def values_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """{row name: validated value} for every flag and --set that was given."""
    out: dict[str, Any] = {}
    for param in PARAMS:
        raw = getattr(args, DEST_PREFIX + param.name, None)
        if raw is None:
            continue
        value = raw if isinstance(raw, (bool, list)) else parse_text(param, raw)
        out[param.name] = validate(param.name, value, flag_of(param) + "")
    for item in getattr(args, "set_values", []) or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep:
            raise ConfigError(f"--set {brief(item)}: expected NAME=VALUE, e.g. --set psi=0.5")
        param = PARAMS_BY_NAME.get(name)
        value = parse_text(param, text) if param is not None else text
        out[name] = validate(name, value, f"--set {name}")
    return out


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults <- show file <- flags: the complete settings for ``build_engine``."""
    settings = dict(DEFAULTS)
    if getattr(args, "config", None):
        settings.update(load_show_file(args.config))
        settings["show_file"] = args.config  # not a parameter: presets are stored beside the show file
    settings.update(values_from_args(args))
    return settings
