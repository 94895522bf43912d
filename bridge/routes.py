"""Routes: declarative connections from a signal (:mod:`bridge.signals`) to a live parameter of the table.

A route takes the newest value of one signal, maps its ``input`` span (default: the signal's documented
span) onto 0..1, optionally inverts it, ignores changes inside the ``deadband``, bends it with a ``curve``
(:mod:`bridge.curves`), scales it onto the output ``range`` (default: the parameter's own range), optionally
multiplies it by another parameter's value (``scale``), and glides toward it with ``smooth`` seconds of
one-pole smoothing. A route whose signal has not been published yet contributes nothing.

Several routes to one parameter combine with the parameter's own (stored) value as the base, in a fixed
order whatever order they were declared in:

    value = base
    value = out            for each ``replace`` route (the last one declared wins)
    value = value + out    for each ``add`` route
    value = value * out    for each ``multiply`` route

and the result is clamped to the parameter's range (ints rounded, bools on above 0.5). Routes never write the
parameter store: the render thread evaluates them once per frame into that frame's snapshot (so the stored
value, what OSC, presets and the panel set, stays the base and comes back when a route is removed). Routes
read signals and write parameters, and parameters are not signals, so routes cannot form a cycle; the one
loop a rig could build, an ``osc:`` signal on the engine's own ``/vrb/`` addresses, is refused.

Written in a show file as ``[[route]]`` tables, over OSC as ``/vrb/route/add "FROM TO key=value ..."`` (or a
JSON object), and listed by ``vrbridge routes``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import threading
from typing import Any, Iterable, Mapping

from bridge.curves import CURVE_NAMES, DEFAULT_K, Ramp, apply_curve, unit
from bridge.params import OSC_ROOT, PARAMS_BY_NAME, Param
from bridge.signals import OSC_PREFIX, SignalSpec, catalogue, closest, is_osc_signal, osc_signal_spec
from bridge.text import brief

COMBINES = ("replace", "add", "multiply")
TARGET_KINDS = ("float", "int", "bool")
KEYS = ("id", "from", "to", "range", "input", "curve", "curve_k", "invert", "deadband", "smooth", "combine",
        "scale", "when", "fade", "enabled")
MAX_ROUTES = 512
MAX_SMOOTH_S = 60.0


class RouteError(ValueError):
    """A route that cannot be used; the message is one line naming the key and what is allowed."""


def route_targets() -> list[Param]:
    """Parameters a route may drive: every live number or switch of the table."""
    return [p for p in PARAMS_BY_NAME.values() if p.live and p.kind in TARGET_KINDS]


@dataclasses.dataclass
class Route:
    """One signal -> one parameter. Build with :func:`parse_route`; the fields are already validated."""

    id: str
    source: str  # signal name ("from")
    target: str  # parameter name ("to")
    out_range: tuple[float, float]
    in_range: tuple[float, float]
    curve: str = "linear"  # a curve name, or "@param" naming an enum parameter that holds one
    curve_k: float = DEFAULT_K
    invert: bool = False
    deadband: float = 0.0
    smooth: float = 0.0
    combine: str = "replace"
    scale: str = ""  # a parameter whose value multiplies the output
    when: str = ""  # a bool parameter: the route acts only while it is on
    fade: float | str = 0.0  # seconds (or "@param" holding them) the route takes to fade in/out as ``when`` flips
    enabled: bool = True
    # state (render thread only)
    _last_t: float | None = dataclasses.field(default=None, repr=False, compare=False)
    _state: float | None = dataclasses.field(default=None, repr=False, compare=False)
    _state_t: float = dataclasses.field(default=0.0, repr=False, compare=False)
    gliding: bool = dataclasses.field(default=False, repr=False, compare=False)  # smoothing not yet arrived
    _gate: Ramp | None = dataclasses.field(default=None, repr=False, compare=False)

    # -- the transfer function ---------------------------------------------------------------------------
    def output(self, x: float, snapshot: Mapping[str, Any], now: float) -> float:
        """The route's contribution for signal value ``x`` (before combining)."""
        low, high = self.in_range
        curve = snapshot[self.curve[1:]] if self.curve[0] == "@" else self.curve
        if curve == "linear" and self.in_range == self.out_range and not (self.invert or self.deadband):
            y = low if x < low else high if x > high else x  # a pass-through route hands the signal on exactly
        else:
            t = unit(x, low, high, self.invert)
            if self.deadband:
                if self._last_t is not None and abs(t - self._last_t) < self.deadband and t not in (0.0, 1.0):
                    t = self._last_t  # jitter inside the deadband: hold
                self._last_t = t
            out_low, out_high = self.out_range
            y = out_low + (out_high - out_low) * (t if curve == "linear" else apply_curve(curve, t, self.curve_k))
        if self.scale:
            y = y * float(snapshot[self.scale])
        if self.smooth > 0.0:
            y = self._glide(y, now)
        return y

    def gate(self, snapshot: Mapping[str, Any], now: float) -> float:
        """How much of the route acts: 1 while ``when`` is on (or unset), 0 while off, easing over ``fade``."""
        if not self.when:
            return 1.0
        on = 1.0 if snapshot[self.when] else 0.0
        if self._gate is None:  # start settled: a route that starts on acts fully from its first frame
            self._gate = Ramp()
            self._gate.level = on
        fade = float(snapshot[self.fade[1:]]) if isinstance(self.fade, str) else self.fade
        return self._gate.update(on, now, fade)

    @property
    def fading(self) -> bool:
        return self._gate is not None and 0.0 < self._gate.level < 1.0

    def _glide(self, y: float, now: float) -> float:
        if self._state is None:
            self._state, self._state_t = y, now
            return y
        dt = max(0.0, now - self._state_t)
        self._state_t = now
        self._state += (y - self._state) * (1.0 - math.exp(-dt / self.smooth))
        self.gliding = abs(y - self._state) > 1e-6 * max(1.0, abs(y))
        return self._state

    def to_dict(self) -> dict[str, Any]:
        """The route as a show-file ``[[route]]`` table (every key, so a listing is unambiguous)."""
        return {"id": self.id, "from": self.source, "to": self.target, "range": list(self.out_range),
                "input": list(self.in_range), "curve": self.curve, "curve_k": self.curve_k, "invert": self.invert,
                "deadband": self.deadband, "smooth": self.smooth, "combine": self.combine, "scale": self.scale,
                "when": self.when, "fade": self.fade, "enabled": self.enabled}

    def describe(self) -> str:
        """One line: ``id: from -> to [range] curve combine``."""
        extra = "".join(f" {k}={v}" for k, v in (("scale", self.scale), ("when", self.when)) if v)
        return (f"{self.id}: {self.source} -> {self.target} input {list(self.in_range)} range {list(self.out_range)} "
                f"{self.curve}{' inverted' if self.invert else ''} {self.combine}"
                f"{f' smooth {self.smooth}s' if self.smooth else ''}{extra}{'' if self.enabled else ' (disabled)'}")


# ------------------------------------------------------------------------------------------------
# Parsing and validation: one line per problem, naming the key and the closest valid name
# ------------------------------------------------------------------------------------------------
def parse_route(entry: Mapping[str, Any], signals: Mapping[str, SignalSpec] | None = None,
                where: str = "route") -> Route:
    """A validated :class:`Route` from a show-file table / JSON object; raises RouteError (one line)."""
    if not isinstance(entry, Mapping):
        raise RouteError(f"{where}: a route is a table with from and to, got {brief(entry)}")
    for key in entry:
        if key not in KEYS:
            raise RouteError(f"{where}.{key}: unknown key{closest(str(key), KEYS)} (known: {', '.join(KEYS)})")
    known = catalogue() if signals is None else signals
    source = _signal_name(entry, known, where)
    spec = known.get(source) or osc_signal_spec(source)
    param = _target(entry.get("to"), where)
    in_range = _span(entry, "input", (spec.low, spec.high), where, allow_equal=False)
    default_out = (float(param.min if param.min is not None else 0.0), float(param.max if param.max is not None else 1.0))
    if param.kind == "bool":
        default_out = (0.0, 1.0)
    route = Route(id=_text(entry, "id", f"{source}->{param.name}", where), source=source, target=param.name,
                  out_range=_span(entry, "range", default_out, where, allow_equal=True), in_range=in_range)
    route.curve = _curve(entry.get("curve", "linear"), where)
    route.curve_k = _number(entry, "curve_k", DEFAULT_K, where, 0.01, 50.0)
    route.invert = _flag(entry, "invert", False, where)
    route.deadband = _number(entry, "deadband", 0.0, where, 0.0, 0.5)
    route.smooth = _number(entry, "smooth", 0.0, where, 0.0, MAX_SMOOTH_S)
    route.combine = _choice(entry, "combine", COMBINES, where)
    route.scale = _param_ref(entry, "scale", ("float", "int"), where)
    route.when = _param_ref(entry, "when", ("bool",), where)
    route.fade = _fade(entry, where)
    route.enabled = _flag(entry, "enabled", True, where)
    return route


def parse_text(text: str, signals: Mapping[str, SignalSpec] | None = None) -> Route:
    """A route from one OSC string: a JSON object, or ``FROM TO key=value ...`` (lists as ``0.2,1.2``)."""
    if not isinstance(text, str) or not text.strip():
        raise RouteError("route: expected 'FROM TO [key=value ...]' or a JSON object")
    if len(text) > 2000:
        raise RouteError(f"route: {len(text)} characters is too long (at most 2000)")
    text = text.strip()
    if text.startswith("{"):
        try:
            entry = json.loads(text)
        except ValueError as exc:
            raise RouteError(f"route: not valid JSON: {exc}") from None
        return parse_route(entry, signals)
    words = text.split()
    if len(words) < 2 or "=" in words[0] or "=" in words[1]:
        raise RouteError(f"route: expected 'FROM TO [key=value ...]', got {brief(text)}")
    entry: dict[str, Any] = {"from": words[0], "to": words[1]}
    for word in words[2:]:
        key, sep, value = word.partition("=")
        if not sep:
            raise RouteError(f"route: {brief(word)} is not key=value")
        entry[key] = _word_value(value)
    return parse_route(entry, signals)


def _word_value(value: str) -> Any:
    if "," in value:
        return [_word_value(v) for v in value.split(",")]
    if value.lower() in ("true", "false", "on", "off"):
        return value.lower() in ("true", "on")
    try:
        return float(value)
    except ValueError:
        return value


def _signal_name(entry: Mapping[str, Any], known: Mapping[str, SignalSpec], where: str) -> str:
    name = entry.get("from")
    if not isinstance(name, str) or not name:
        raise RouteError(f"{where}.from: missing the signal name (e.g. hand.x, or osc:/1/fader1)")
    if name.startswith(OSC_PREFIX):
        if not is_osc_signal(name):
            raise RouteError(f"{where}.from: {brief(name)} is not osc:/address")
        address = name[len(OSC_PREFIX):]
        if address == OSC_ROOT or address.startswith(OSC_ROOT + "/"):
            raise RouteError(f"{where}.from: {address} is the engine's own address: a route from it would "
                             f"loop a parameter into itself (route the rig's address instead)")
        return name
    if name not in known:
        raise RouteError(f"{where}.from: unknown signal {brief(name)}{closest(name, known)} "
                         f"(see `vrbridge signals`)")
    return name


def _target(name: Any, where: str) -> Param:
    if not isinstance(name, str) or not name:
        raise RouteError(f"{where}.to: missing the parameter name (e.g. psi)")
    param = PARAMS_BY_NAME.get(name)
    if param is None:
        raise RouteError(f"{where}.to: unknown parameter {brief(name)}"
                         f"{closest(name, [p.name for p in route_targets()])}")
    if not param.live or param.kind not in TARGET_KINDS:
        raise RouteError(f"{where}.to: {name} is a {'start-up ' if not param.live else ''}{param.kind} parameter; "
                         f"routes drive live float, int and bool parameters")
    return param


def _span(entry, key, default, where, allow_equal: bool) -> tuple[float, float]:
    value = entry.get(key)
    if value is None:
        return (float(default[0]), float(default[1]))
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise RouteError(f"{where}.{key}: expected [low, high], got {brief(value)}")
    low, high = float(value[0]), float(value[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        raise RouteError(f"{where}.{key}: {brief(value)} must be finite numbers")
    if low == high and not allow_equal:
        raise RouteError(f"{where}.{key}: low and high are both {low}; the span must not be empty")
    return (low, high)


def _curve(value: Any, where: str) -> str:
    if isinstance(value, str) and value.startswith("@"):
        param = PARAMS_BY_NAME.get(value[1:])
        if param is None or param.kind != "enum" or not set(param.choices) <= set(CURVE_NAMES):
            raise RouteError(f"{where}.curve: {brief(value)} must name an enum parameter of curve names")
        return value
    if value not in CURVE_NAMES:
        raise RouteError(f"{where}.curve: {brief(value)} is not one of {', '.join(CURVE_NAMES)}")
    return value


def _number(entry, key, default, where, low, high) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise RouteError(f"{where}.{key}: expected a number, got {brief(value)}")
    if not low <= value <= high:
        raise RouteError(f"{where}.{key}: {value} is outside [{low}, {high}]")
    return float(value)


def _flag(entry, key, default, where) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise RouteError(f"{where}.{key}: expected true or false, got {brief(value)}")
    return value


def _choice(entry, key, choices, where) -> str:
    value = entry.get(key, choices[0])
    if value not in choices:
        raise RouteError(f"{where}.{key}: {brief(value)} is not one of {', '.join(choices)}")
    return value


def _text(entry, key, default, where) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or not value.strip() or len(value) > 128 or not value.isprintable():
        raise RouteError(f"{where}.{key}: expected a printable name of at most 128 characters, got {brief(value)}")
    return value.strip()


def _fade(entry, where) -> float | str:
    value = entry.get("fade", 0.0)
    if isinstance(value, str) and value.startswith("@"):
        return "@" + _param_ref({"fade": value[1:]}, "fade", ("float",), where)
    return _number(entry, "fade", 0.0, where, 0.0, MAX_SMOOTH_S)


def _param_ref(entry, key, kinds, where) -> str:
    value = entry.get(key, "")
    if value == "":
        return ""
    param = PARAMS_BY_NAME.get(value) if isinstance(value, str) else None
    if param is None or param.kind not in kinds:
        names = [p.name for p in PARAMS_BY_NAME.values() if p.kind in kinds]
        raise RouteError(f"{where}.{key}: {brief(value)} is not a {'/'.join(kinds)} parameter"
                         f"{closest(str(value), names) if isinstance(value, str) else ''}")
    return value


# ------------------------------------------------------------------------------------------------
# The live table of routes
# ------------------------------------------------------------------------------------------------
class RouteTable:
    """Every active route. Edited from any thread (OSC, the panel, presets); evaluated on the render thread.

    Edits replace an immutable, pre-ordered plan (copy on write), so the render thread never takes a lock
    for more than reading one reference and never sees half an edit.
    """

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self._plan: tuple[tuple[str, Param, tuple[Route, ...]], ...] = ()
        self.version = 0
        self.errors = 0
        self.last_error = ""
        self._source_listeners: list = []
        for route in routes:
            self.add(route)

    # -- editing -----------------------------------------------------------------------------------------
    def add(self, route: Route) -> Route | None:
        """Add a route, or replace the one with the same id; returns the replaced route (or None)."""
        with self._lock:
            if route.id not in self._routes and len(self._routes) >= MAX_ROUTES:
                raise RouteError(f"route {route.id}: at most {MAX_ROUTES} routes")
            old = self._routes.get(route.id)
            self._routes[route.id] = route
            self._replan()
        self._announce([route])
        return old

    def add_source_listener(self, fn) -> None:
        """``fn(signal_name)`` for the signal of every route, now and whenever one is added (the OSC side
        starts publishing an ``osc:`` address when a route names it)."""
        self._source_listeners.append(fn)
        for name in sorted(self.sources()):
            fn(name)

    def _announce(self, routes: Iterable[Route]) -> None:
        for route in routes:
            for fn in list(self._source_listeners):
                fn(route.source)

    def remove(self, route_id: str) -> Route:
        with self._lock:
            if route_id not in self._routes:
                raise RouteError(f"route {brief(route_id)}: no such route{closest(route_id, self._routes)} "
                                 f"(have: {', '.join(self._routes) or 'none'})"[:300])
            route = self._routes.pop(route_id)
            self._replan()
            return route

    def clear(self) -> None:
        with self._lock:
            self._routes.clear()
            self._replan()

    def replace_all(self, routes: Iterable[Route]) -> None:
        """Swap in a whole set (a preset recall): all or nothing."""
        new = {r.id: r for r in routes}
        if len(new) > MAX_ROUTES:
            raise RouteError(f"at most {MAX_ROUTES} routes")
        with self._lock:
            self._routes = new
            self._replan()
        self._announce(new.values())

    def routes(self) -> list[Route]:
        with self._lock:
            return list(self._routes.values())

    def sources(self) -> set[str]:
        with self._lock:
            return {r.source for r in self._routes.values()}

    def _replan(self) -> None:
        by_target: dict[str, list[Route]] = {}
        for route in self._routes.values():
            by_target.setdefault(route.target, []).append(route)
        order = {c: i for i, c in enumerate(COMBINES)}
        self._plan = tuple((target, PARAMS_BY_NAME[target], tuple(sorted(rs, key=lambda r: order[r.combine])))
                           for target, rs in by_target.items())
        self.version += 1

    # -- the render thread ---------------------------------------------------------------------------------
    def evaluate(self, snapshot: dict[str, Any], signals: Mapping[str, float], now: float) -> dict[str, Any]:
        """Write every routed parameter's value for this frame into ``snapshot`` (and return it).

        ``signals`` is one frame's read of the bus (:meth:`SignalBus.values`). A route that fails (e.g. a
        ``scale`` parameter holding something odd) is counted and skipped: the frame still renders.
        """
        for target, param, routes in self._plan:
            value = base = snapshot[target]
            touched = False
            for route in routes:
                x = signals.get(route.source)
                if x is None or not route.enabled:
                    continue
                try:
                    gate = route.gate(snapshot, now) if route.when else 1.0
                    if gate <= 0.0:
                        continue
                    out = route.output(x, snapshot, now)
                except (ArithmeticError, KeyError, TypeError, ValueError) as exc:
                    self._fail(route, exc)
                    continue
                value = _combine(route.combine, value, out, gate)
                touched = True
            if touched:
                snapshot[target] = _fit(param, value, base)
        return snapshot

    @property
    def settling(self) -> bool:
        """True while a smoothed route still glides or a gated one fades: the render loop keeps rendering."""
        return any(r.gliding or r.fading for _, _, routes in self._plan for r in routes)

    def _fail(self, route: Route, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"route {route.id}: {type(exc).__name__}: {exc}"[:300]

    def stats(self) -> dict[str, Any]:
        return {"routes": len(self._routes), "errors": self.errors, "last_error": self.last_error}


def _combine(combine: str, value: float, out: float, gate: float) -> float:
    """One route's contribution; a route faded to ``gate`` < 1 gives that fraction of its effect."""
    if combine == "replace":
        return out if gate >= 1.0 else value + (out - value) * gate
    if combine == "add":
        return value + (out if gate >= 1.0 else out * gate)
    return value * (out if gate >= 1.0 else 1.0 + (out - 1.0) * gate)


def _fit(param: Param, value: Any, base: Any) -> Any:
    """A combined route value clamped to the parameter's range and type (non-finite keeps the base)."""
    value = float(value)
    if not math.isfinite(value):
        return base
    if param.kind == "bool":
        return value > 0.5
    low = -math.inf if param.min is None else param.min
    high = math.inf if param.max is None else param.max
    value = min(max(value, low), high)
    return int(round(value)) if param.kind == "int" else value


class RouteEditor:
    """The ``route.*`` actions of the table (OSC ``/vrb/route/...``, the web panel) applied to a RouteTable.

    Listens on the parameter store like the preset bank: a bad route is reported through ``on_error`` (one
    line, code ``route``) and changes nothing. ``on_source`` hears every signal a new route reads, so the OSC
    side can start publishing an ``osc:`` address when a route names it.
    """

    ACTIONS = ("route.add", "route.remove", "route.clear", "route.list")

    def __init__(self, store, table: RouteTable, signals, on_error=None, on_list=None) -> None:
        self.table = table
        self.signals = signals
        self.on_error = on_error or (lambda code, detail: None)
        self.on_list = on_list or (lambda lines: None)
        store.add_listener(self._on_change)

    def add(self, text: str) -> Route:
        """Parse one route (text or JSON) against every signal known now, and add it."""
        known = {spec.name: spec for spec in self.signals.specs()}
        route = parse_text(text, {**catalogue(), **known})
        self.table.add(route)
        return route

    def lines(self) -> list[str]:
        return [route.describe() for route in self.table.routes()]

    def _on_change(self, name: str, value: Any, source: str) -> None:
        if name not in self.ACTIONS:
            return
        try:
            if name == "route.add":
                self.add(value)
            elif name == "route.remove":
                self.table.remove(str(value).strip())
            elif name == "route.clear":
                self.table.clear()
            else:
                self.on_list(self.lines())
        except RouteError as exc:
            self.on_error("route", str(exc))
