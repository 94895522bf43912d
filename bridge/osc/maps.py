"""Rig maps: declarative translation from another program's OSC addresses to our parameters.

A map is a TOML file (``osc_maps/*.toml``; the format is documented in ``osc_maps/README.md``)::

    [map]
    name = "TouchOSC"

    [[route]]
    address = "/1/fader1"     # the rig's address (OSC pattern syntax allowed)
    param = "psi"             # a live row of bridge/params.py
    in = [0.0, 1.0]           # what the rig sends ...
    out = [0.0, 1.5]          # ... becomes this (default: the parameter's own range)
    curve = "exp"             # linear | smooth | ease_in | ease_out | inverse | exp | log (bridge/curves.py)
    slew = 0.2                # seconds (time constant) to glide to a new value; floats only

Every key is checked when the map is loaded; an error names the file, the line and the key, because a
typo found during the show is a typo found too late. Routes are installed as server handlers, so they run
on the OSC thread and bad values are counted and answered like any other bad input.
"""
from __future__ import annotations

import dataclasses
import math
import re
import sys
from pathlib import Path
from typing import Any, Callable

from bridge.curves import CURVE_NAMES, apply_curve, unit
from bridge.osc.patterns import BadPattern, compile_pattern
from bridge.osc.server import WrongArity
from bridge.params import PARAMS_BY_NAME, Param, ParamStore, WrongType

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]



def _shipped_dir() -> Path:
    """Where the shipped maps are: ``osc_maps/`` beside the package in a checkout (editable install), or
    ``<prefix>/share/visual-reactive-bridge/osc_maps`` where a wheel put them (pyproject's data-files)."""
    checkout = Path(__file__).resolve().parents[2] / "osc_maps"
    installed = Path(sys.prefix) / "share" / "visual-reactive-bridge" / "osc_maps"
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


SHIPPED_DIR = _shipped_dir()
MODES = ("value", "toggle", "trigger")
ROUTE_KEYS = {"address", "param", "in", "out", "curve", "curve_k", "invert", "deadband", "slew", "mode",
              "threshold", "value", "arg", "part", "description"}
MAP_KEYS = {"name", "description", "rig", "port", "notes"}
SLEW_DONE = 1e-4  # fraction of the output span at which a glide counts as arrived


class MapError(ValueError):
    """A map file that cannot be used; the message is ``FILE:LINE: route[N].key: what is wrong``."""


@dataclasses.dataclass
class Route:
    """One rig address -> one parameter, with its transfer function and its small state (edges, glide)."""

    address: str
    param: Param
    in_range: tuple[float, float] | None = None
    out_range: tuple[float, float] | None = None
    curve: str = "linear"
    curve_k: float = 4.0
    invert: bool = False
    deadband: float = 0.0
    slew: float = 0.0
    mode: str = "value"
    threshold: float = 0.5
    value: Any = None
    arg: int = 0
    part: str = ""
    map_name: str = ""
    # state (server thread only)
    last_t: float | None = None
    pressed: bool = False
    glide_target: float | None = None
    glide_value: float | None = None
    glide_stored: Any = None  # what the glide last stored, to notice another writer

    # -- the transfer function ---------------------------------------------------------------------------
    def normalise(self, x: float) -> float:
        """Input value -> 0..1 (clamped), inverted if asked."""
        low, high = self.in_range if self.in_range else (0.0, 1.0)
        return unit(x, low, high, self.invert)

    def shape(self, t: float) -> float:
        """The curve (:mod:`bridge.curves`, shared with the signal routes)."""
        return apply_curve(self.curve, t, self.curve_k)

    def output(self, t: float) -> Any:
        """0..1 -> the parameter's value (number, bool, enum choice)."""
        u = self.shape(t)
        kind = self.param.kind
        if kind == "bool":
            return u >= self.threshold
        if kind == "enum":
            choices = self.param.choices
            return choices[min(len(choices) - 1, int(u * len(choices)))]
        low, high = self.out_bounds()
        y = low + u * (high - low)
        return round(y) if kind in ("int", "int2") else y

    def out_bounds(self) -> tuple[float, float]:
        return self.out_range if self.out_range else (self.param.min, self.param.max)

    # -- one incoming message ----------------------------------------------------------------------------
    def handle(self, store: ParamStore, args: tuple, source: str) -> bool:
        """Apply one message; return True when a glide was started (the router then ticks)."""
        if self.mode == "trigger" and not args:  # an event with no value (e.g. a cue-fire message)
            self._fire(store, source)
            return False
        x = self._number(args)
        if self.mode != "value":
            self._edge(store, self.normalise(x) >= self.threshold, source)
            return False
        if self.in_range is None:  # pass-through: the rig already sends our units
            self._set(store, x, source)
            return False
        t = self.normalise(x)
        if self.last_t is not None and abs(t - self.last_t) < self.deadband and t not in (0.0, 1.0):
            return False  # jitter inside the deadband: ignore
        self.last_t = t
        y = self.output(t)
        if self.slew > 0 and self.param.kind == "float":
            if self.glide_target is None:  # a new glide starts from wherever the parameter is now
                self.glide_value = self.glide_stored = float(store.get(self.param.name))
            self.glide_target = y
            return True
        self._set(store, y, source)
        return False

    def tick(self, store: ParamStore, dt: float, source: str) -> bool:
        """Move a glide one step (first-order lag, time constant ``slew``); return whether still moving."""
        if self.glide_target is None or self.glide_value is None:
            return False
        if store.get(self.param.name) != self.glide_stored:  # someone else moved it: their hand wins
            self.glide_target = None
            return False
        alpha = 1.0 - math.exp(-dt / self.slew)
        self.glide_value += (self.glide_target - self.glide_value) * alpha
        low, high = self.out_bounds()
        arrived = abs(self.glide_target - self.glide_value) <= SLEW_DONE * (abs(high - low) or 1.0)
        if arrived:
            self.glide_value = self.glide_target
        self.glide_stored = store.set(self.param.name, self.glide_value, source=source)
        if arrived:
            self.glide_target = None
        return not arrived

    def _number(self, args: tuple) -> float:
        if len(args) <= self.arg:
            raise WrongArity(self.address, f"map {self.map_name!r} reads argument {self.arg}, got {len(args)}")
        x = args[self.arg]
        if isinstance(x, bool):
            return float(x)
        if isinstance(x, (int, float)) and math.isfinite(x):
            return float(x)
        raise WrongType(self.address, f"map {self.map_name!r} needs a number here, got {x!r}")

    def _edge(self, store: ParamStore, pressed: bool, source: str) -> None:
        """Toggles and triggers act on a press (rising through the threshold), never on the release."""
        rising = pressed and not self.pressed
        self.pressed = pressed
        if rising:
            self._fire(store, source)

    def _fire(self, store: ParamStore, source: str) -> None:
        if self.mode == "toggle":
            store.set(self.param.name, not store.get(self.param.name), source=source)
        elif self.param.kind == "action":
            store.set(self.param.name, "" if self.value is None else self.value, source=source)
        else:
            store.set(self.param.name, self.value, source=source)

    def _set(self, store: ParamStore, value: Any, source: str) -> None:
        if self.param.kind == "int2":
            start, end = store.get(self.param.name)
            value = (int(value), end) if self.part == "start" else (start, int(value))
        store.set(self.param.name, value, source=source)


@dataclasses.dataclass
class RigMap:
    name: str
    path: Path
    routes: list[Route]
    description: str = ""


# ---------------------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------------------
def resolve_map_path(spec: str) -> Path:
    """A shipped map's name (``touchosc``) or a path to a .toml file."""
    path = Path(spec).expanduser()
    if path.suffix != ".toml" and not path.exists():
        path = SHIPPED_DIR / f"{spec}.toml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in SHIPPED_DIR.glob("*.toml")))
        raise MapError(f"{spec}: no such map file (shipped maps: {shipped})")
    return path


def load_map(spec: str | Path) -> RigMap:
    """Read and validate one map; raise :class:`MapError` naming file, line and key."""
    path = resolve_map_path(str(spec))
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MapError(f"{path}: not valid TOML: {exc}") from None
    where = Locator(path, text)
    unknown = set(data) - {"map", "route"}
    if unknown:
        key = sorted(unknown)[0]
        raise MapError(f"{where.top(key)}: unknown table or key {key!r} (expected [map] and [[route]])")
    header = data.get("map", {})
    for key in set(header) - MAP_KEYS:
        raise MapError(f"{where.key('map', None, key)}: map.{key}: unknown key (known: {', '.join(sorted(MAP_KEYS))})")
    name = str(header.get("name", path.stem))
    routes_data = data.get("route", [])
    if not isinstance(routes_data, list) or not routes_data:
        raise MapError(f"{path}:1: a map needs at least one [[route]]")
    routes = [route_from_table(where, i, entry, name) for i, entry in enumerate(routes_data)]
    return RigMap(name=name, path=path, routes=routes, description=str(header.get("description", "")))


class Locator:
    """Line numbers for keys: tomllib gives none, so find ``[[route]]`` number N and the key inside it."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines = text.splitlines()

    def top(self, key: str) -> str:
        return f"{self.path}:{self._find(0, len(self.lines), key) or 1}"

    def key(self, table: str, index: int | None, key: str | None) -> str:
        start, end = self._table_span(table, index)
        line = self._find(start, end, key) if key else None
        return f"{self.path}:{line or start or 1}"

    def _table_span(self, table: str, index: int | None) -> tuple[int, int]:
        header = re.compile(rf"^\s*\[\[\s*{table}\s*\]\]" if index is not None else rf"^\s*\[\s*{table}\s*\]")
        seen = -1
        start = 0
        for number, line in enumerate(self.lines, 1):
            if header.match(line):
                seen += 1
                if index is None or seen == index:
                    start = number
                    break
        if not start:
            return 0, 0
        for number in range(start + 1, len(self.lines) + 1):
            if re.match(r"^\s*\[", self.lines[number - 1]):
                return start, number - 1
        return start, len(self.lines)

    def _find(self, start: int, end: int, key: str) -> int | None:
        pattern = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*=""")
        for number in range(max(start, 1), end + 1):
            if pattern.match(self.lines[number - 1]):
                return number
        return None


def route_from_table(where: Locator, index: int, entry: dict, map_name: str) -> Route:
    """One ``[[route]]`` table -> a checked Route (the MIDI maps reuse it with an address of their own)."""

    def fail(key: str | None, message: str) -> MapError:
        label = f"route[{index}]" + (f".{key}" if key else "")
        return MapError(f"{where.key('route', index, key)}: {label}: {message}")

    for key in entry:
        if key not in ROUTE_KEYS:
            raise fail(key, f"unknown key (known: {', '.join(sorted(ROUTE_KEYS))})")
    for key in ("address", "param"):
        if key not in entry:
            raise fail(None, f"missing {key!r}")
    address = entry["address"]
    if not isinstance(address, str) or not address.startswith("/"):
        raise fail("address", f"must be an OSC address starting with '/', got {address!r}")
    try:
        compile_pattern(address)
    except BadPattern as exc:
        raise fail("address", str(exc)) from None
    param = PARAMS_BY_NAME.get(entry["param"]) if isinstance(entry["param"], str) else None
    if param is None or not param.live:
        raise fail("param", f"{entry['param']!r} is not a live parameter (see `vrbridge params`)")
    route = Route(address=address, param=param, map_name=map_name)
    route.mode = _choice(entry, "mode", MODES, "value", fail)
    route.curve = _choice(entry, "curve", CURVE_NAMES, "linear", fail)
    route.curve_k = _number(entry, "curve_k", 4.0, fail, low=0.01, high=50.0)
    route.invert = _bool(entry, "invert", False, fail)
    route.deadband = _number(entry, "deadband", 0.0, fail, low=0.0, high=0.5)
    route.slew = _number(entry, "slew", 0.0, fail, low=0.0, high=60.0)
    route.threshold = _number(entry, "threshold", 0.5, fail, low=0.0, high=1.0)
    route.arg = int(_number(entry, "arg", 0, fail, low=0, high=255, integer=True))
    route.in_range = _pair(entry, "in", fail)
    route.out_range = _pair(entry, "out", fail)
    _check_kind(route, entry, fail)
    return route


def _check_kind(route: Route, entry: dict, fail: Callable[[str | None, str], MapError]) -> None:
    """What each mode needs from its parameter, checked now rather than on stage."""
    param, kind = route.param, route.param.kind
    if route.mode == "toggle" and kind != "bool":
        raise fail("mode", f"toggle needs a bool parameter; {param.name} is {kind}")
    if route.mode == "trigger":
        if kind != "action" and "value" not in entry:
            raise fail("value", f"a trigger on {kind} parameter {param.name} needs the value to set")
        if "value" in entry:
            try:
                route.value = param.coerce(entry["value"])
            except ValueError as exc:
                raise fail("value", str(exc)) from None
        return
    if route.mode == "value":
        if kind in ("action", "str"):
            raise fail("mode", f"{param.name} is {kind}: use mode = \"trigger\" with a value")
        if kind == "int2":
            route.part = entry.get("part", "")
            if route.part not in ("start", "end"):
                raise fail("part", f"{param.name} is a [start, end) pair: part must be \"start\" or \"end\"")
        if route.out_range is None and kind in ("float", "int", "int2") and (param.min is None or param.max is None):
            raise fail("out", f"{param.name} has no fixed range: give out = [low, high]")
        if route.out_range is not None and route.in_range is None:
            raise fail("in", "out is given, so in = [low, high] is needed too")
    if route.slew and kind != "float":
        raise fail("slew", f"glides only apply to float parameters; {param.name} is {kind}")
    if "part" in entry and kind != "int2":
        raise fail("part", f"only for [start, end) pair parameters; {param.name} is {kind}")


def _choice(entry, key, choices, default, fail):
    value = entry.get(key, default)
    if value not in choices:
        raise fail(key, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _number(entry, key, default, fail, low, high, integer=False):
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise fail(key, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not low <= value <= high:
        raise fail(key, f"{value} is outside [{low}, {high}]")
    return float(value)


def _bool(entry, key, default, fail):
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise fail(key, f"must be true or false, got {value!r}")
    return value


def _pair(entry, key, fail):
    if key not in entry:
        return None
    value = entry[key]
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise fail(key, f"must be two numbers [low, high], got {value!r}")
    low, high = float(value[0]), float(value[1])
    if low == high:
        raise fail(key, f"low and high are both {low}")
    return (low, high)


# ---------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------
class MapRouter:
    """Installs the routes of loaded maps on a server and moves their glides from the server's ticks."""

    def __init__(self, store: ParamStore):
        self.store = store
        self.maps: list[RigMap] = []
        self._gliding: set[int] = set()
        self._last_tick: float | None = None
        self._wake: Callable[[], None] = lambda: None

    def install(self, rig_map: RigMap, server) -> None:
        self.maps.append(rig_map)
        for route in rig_map.routes:
            server.add_handler(route.address, self._handler(route))
        server.add_ticker(self.tick)
        self._wake = server.wake_tickers

    def _handler(self, route: Route):
        source = f"map:{route.map_name}"

        def handle(address: str, args: tuple, sender) -> None:
            if route.handle(self.store, args, source):
                self._gliding.add(id(route))
                self._wake()

        handle.__name__ = f"map_{route.map_name}_{route.param.name}"
        return handle

    def tick(self, now: float) -> bool:
        dt = 0.01 if self._last_tick is None else min(0.1, max(1e-4, now - self._last_tick))
        self._last_tick = now
        if not self._gliding:
            self._last_tick = None
            return False
        for rig_map in self.maps:
            for route in rig_map.routes:
                if id(route) in self._gliding and not route.tick(self.store, dt, f"map:{route.map_name}"):
                    self._gliding.discard(id(route))
        return bool(self._gliding)

    def stats(self) -> dict[str, Any]:
        return {"maps": [m.name for m in self.maps], "routes": sum(len(m.routes) for m in self.maps),
                "gliding": len(self._gliding)}
