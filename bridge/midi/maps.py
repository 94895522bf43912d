"""MIDI maps: controller CCs, notes and pitch bend -> parameters, in the style of the OSC rig maps.

A MIDI map is a TOML file with the same ``[map]`` header and the same route keys as an OSC map
(``param``, ``in``, ``out``, ``curve``, ``curve_k``, ``invert``, ``deadband``, ``slew``, ``mode``,
``threshold``, ``value``, ``part``: see ``osc_maps/README.md``), where the OSC ``address`` is replaced by
what the controller sends::

    [[route]]
    cc = 1              # or: note = 36   or: pitchbend = true
    channel = 1         # 1-16; leave out to take any channel
    param = "psi"
    curve = "exp"
    cc14 = true         # 14-bit: CC 1 is the MSB, CC 33 the LSB (0..16383)
    relative = "twos"   # endless encoder: twos | offset | signed (two's complement, binary offset, sign bit)
    step = 0.01         # relative: fraction of the range per detent
    feedback = true     # send the value back (LED rings, motor faders) when midi_out is set (default)

``in`` defaults to what the message carries (CC and note velocity 0..127, 14-bit 0..16383, pitch bend
-8192..8191), ``out`` to the parameter's range. A note's press is velocity > 0 and its release a note-off
(or velocity 0), so ``mode = "toggle"`` flips a bool on each press.

The transfer function (curves, modes, glides) is the OSC maps' own :class:`bridge.osc.maps.Route`, so a
fader behaves the same whichever protocol it arrives by; this module only decodes MIDI and adds 14-bit,
relative encoders, learn and feedback.
"""
from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path
from typing import Any, Callable

from bridge.osc.maps import Locator, MapError, Route, route_from_table
from bridge.params import PARAMS_BY_NAME, ParamError, ParamStore

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

MIDI_KEYS = {"cc", "note", "pitchbend", "channel", "cc14", "relative", "step", "feedback"}
RELATIVE = ("twos", "offset", "signed")
IN_RANGE = {"cc": (0.0, 127.0), "cc14": (0.0, 16383.0), "note": (0.0, 127.0), "pitchbend": (-8192.0, 8191.0)}
NOTE_THRESHOLD = 0.5 / 127  # a note counts as pressed at any velocity
MAX_ROUTES = 4096


class MidiMapError(MapError):
    """A MIDI map that cannot be used: ``FILE:LINE: route[N].key: what is wrong``."""


@dataclasses.dataclass
class MidiRoute:
    """One controller element -> one parameter: the MIDI side of a :class:`Route`."""

    kind: str  # cc | note | pitchbend
    number: int  # CC or note number (0 for pitch bend)
    channel: int | None  # 0-15 (mido's numbering) or None = any
    route: Route
    cc14: bool = False
    relative: str = ""
    step: float = 0.01
    feedback: bool = True
    _msb: dict = dataclasses.field(default_factory=dict)
    _lsb: dict = dataclasses.field(default_factory=dict)

    @property
    def param(self):
        return self.route.param

    def matches(self, msg) -> bool:
        if self.channel is not None and getattr(msg, "channel", None) != self.channel:
            return False
        if self.kind == "cc":
            return msg.type == "control_change" and (
                msg.control == self.number or (self.cc14 and msg.control == self.number + 32))
        if self.kind == "note":
            return msg.type in ("note_on", "note_off") and msg.note == self.number
        return msg.type == "pitchwheel"

    def value(self, msg) -> float:
        """The message's value in input units (14-bit pairs combined; a note-off is velocity 0)."""
        if self.kind == "pitchbend":
            return float(msg.pitch)
        if self.kind == "note":
            return 0.0 if msg.type == "note_off" else float(msg.velocity)
        if not self.cc14:
            return float(msg.value)
        if msg.control == self.number:  # MSB: a new coarse position; the fine part starts over
            self._msb[msg.channel], self._lsb[msg.channel] = msg.value, 0
        else:
            self._lsb[msg.channel] = msg.value
        return float((self._msb.get(msg.channel, 0) << 7) | self._lsb.get(msg.channel, 0))

    def in_range(self) -> tuple[float, float]:
        return self.route.in_range or IN_RANGE["cc14" if self.cc14 else self.kind]

    def apply(self, store: ParamStore, msg, source: str) -> bool:
        """Apply one matching message; True when a glide started (the router then ticks)."""
        if self.relative:
            self._nudge(store, msg.value, source)
            return False
        return self.route.handle(store, (self.value(msg),), source)

    def _nudge(self, store: ParamStore, raw: int, source: str) -> None:
        """An endless encoder: move the parameter by detents x step of its range."""
        ticks = decode_relative(self.relative, raw)
        if ticks == 0:
            return
        param = self.param
        if param.kind == "bool":
            store.set(param.name, ticks > 0, source=source)
            return
        low, high = self.route.out_bounds()
        now = float(store.get(param.name))
        delta = ticks * self.step * (high - low)
        if param.kind == "int" and abs(delta) < 1:
            delta = math.copysign(1, delta)
        store.set(param.name, min(max(now + delta, min(low, high)), max(low, high)), source=source)

    # -- feedback ------------------------------------------------------------------------------------------
    def feedback_messages(self, value: Any) -> list:
        """MIDI messages that show ``value`` on the controller (LED ring, motor fader, pad light)."""
        import mido

        if not self.feedback or self.relative:
            return []
        x = self._input_for(value)
        channel = self.channel or 0
        if self.kind == "note":
            velocity = int(round(min(127.0, max(0.0, x))))
            return [mido.Message("note_on", channel=channel, note=self.number, velocity=velocity)]
        if self.kind == "pitchbend":
            return [mido.Message("pitchwheel", channel=channel, pitch=int(round(min(8191.0, max(-8192.0, x)))))]
        if self.cc14:
            v = int(round(min(16383.0, max(0.0, x))))
            return [mido.Message("control_change", channel=channel, control=self.number, value=v >> 7),
                    mido.Message("control_change", channel=channel, control=self.number + 32, value=v & 0x7F)]
        return [mido.Message("control_change", channel=channel, control=self.number,
                             value=int(round(min(127.0, max(0.0, x)))))]

    def _input_for(self, value: Any) -> float:
        """The inverse of the route's transfer function: a stored value -> what the controller would send."""
        low_in, high_in = self.in_range()
        route, kind = self.route, self.param.kind
        if kind == "bool" or route.mode != "value":
            on = bool(value) if kind == "bool" else False
            return high_in if on else low_in
        if kind == "enum":
            choices = self.param.choices
            u = (choices.index(value) + 0.5) / len(choices) if value in choices else 0.0
        else:
            number = float(value[0 if route.part == "start" else 1]) if kind == "int2" else float(value)
            low, high = route.out_bounds()
            u = 0.0 if high == low else min(1.0, max(0.0, (number - low) / (high - low)))
        t = unshape(route, u)
        if route.invert:
            t = 1.0 - t
        return low_in + t * (high_in - low_in)


def unshape(route: Route, u: float) -> float:
    """Inverse of :meth:`Route.shape` (exp and log are each other's inverse)."""
    if route.curve == "linear":
        return u
    k = route.curve_k
    if route.curve == "exp":
        return math.log1p(u * (math.exp(k) - 1.0)) / k
    return (math.exp(k * u) - 1.0) / (math.exp(k) - 1.0)


def decode_relative(style: str, raw: int) -> int:
    """Detents from one relative-encoder CC value, in the three encodings controllers use."""
    if style == "twos":  # 1..63 up, 127..65 down (64 = -64)
        return raw if raw < 64 else raw - 128
    if style == "offset":  # 65.. up, ..63 down, 64 = no move
        return raw - 64
    return -(raw & 0x3F) if raw & 0x40 else raw & 0x3F  # signed: bit 6 is the sign


@dataclasses.dataclass
class MidiMap:
    name: str
    path: Path | None
    routes: list[MidiRoute]
    entries: list[dict] = dataclasses.field(default_factory=list)  # as written in the file


def load_midi_map(path: str | Path) -> MidiMap:
    """Read and validate one MIDI map; raise :class:`MidiMapError` naming file, line and key."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MidiMapError(f"{path}: no such MIDI map file")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MidiMapError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"map", "route"}
    if unknown:
        raise MidiMapError(f"{path}:1: unknown table or key {sorted(unknown)[0]!r} (expected [map] and [[route]])")
    entries = data.get("route", [])
    if not isinstance(entries, list) or len(entries) > MAX_ROUTES:
        raise MidiMapError(f"{path}:1: [[route]] must be a list of at most {MAX_ROUTES} tables")
    name = str(data.get("map", {}).get("name", path.stem))
    where = Locator(path, text)
    routes = [midi_route(entry, i, name, where) for i, entry in enumerate(entries)]
    return MidiMap(name=name, path=path, routes=routes, entries=[dict(e) for e in entries])


def midi_route(entry: dict, index: int = 0, map_name: str = "", where: Locator | None = None) -> MidiRoute:
    """One ``[[route]]`` table -> a MidiRoute; the shared keys are checked by the OSC maps' own validator."""
    where = where or Locator(Path(f"<{map_name or 'midi'}>"), "")

    def fail(key: str | None, message: str) -> MidiMapError:
        label = f"route[{index}]" + (f".{key}" if key else "")
        return MidiMapError(f"{where.key('route', index, key)}: {label}: {message}")

    if not isinstance(entry, dict):
        raise fail(None, "must be a table")
    kinds = [k for k in ("cc", "note", "pitchbend") if k in entry]
    if len(kinds) != 1:
        raise fail(None, "needs exactly one of cc = N, note = N or pitchbend = true")
    kind = kinds[0]
    number = 0
    if kind != "pitchbend":
        number = entry[kind]
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 127:
            raise fail(kind, f"must be 0-127, got {number!r}")
    elif entry["pitchbend"] is not True:
        raise fail("pitchbend", "must be true")
    channel = entry.get("channel")
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int) or not 1 <= channel <= 16):
        raise fail("channel", f"must be 1-16, got {channel!r}")
    cc14 = entry.get("cc14", False)
    if not isinstance(cc14, bool) or (cc14 and (kind != "cc" or number > 31)):
        raise fail("cc14", "14-bit needs cc = 0..31 (its LSB is cc + 32)")
    relative = entry.get("relative", "")
    if relative and (relative not in RELATIVE or kind != "cc" or cc14):
        raise fail("relative", f"must be one of {', '.join(RELATIVE)}, on a 7-bit cc")
    step = entry.get("step", 0.01)
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step <= 1:
        raise fail("step", f"must be a number in (0, 1], got {step!r}")
    feedback = entry.get("feedback", True)
    if not isinstance(feedback, bool):
        raise fail("feedback", f"must be true or false, got {feedback!r}")
    shared = {k: v for k, v in entry.items() if k not in MIDI_KEYS}
    shared.setdefault("in", list(IN_RANGE["cc14" if cc14 else kind]))
    if kind == "note" and shared.get("mode") in ("toggle", "trigger"):
        shared.setdefault("threshold", NOTE_THRESHOLD)
    if "address" in shared:
        raise fail("address", "a MIDI route has cc, note or pitchbend instead of an OSC address")
    shared["address"] = f"/midi/{kind}/{number}"
    try:
        route = route_from_table(where, index, shared, map_name)
    except MidiMapError:
        raise
    except MapError as exc:
        raise MidiMapError(str(exc)) from None
    if relative and route.param.kind not in ("float", "int", "bool"):
        raise fail("relative", f"an encoder needs a number or bool parameter; {route.param.name} is {route.param.kind}")
    return MidiRoute(kind=kind, number=number, channel=None if channel is None else channel - 1, route=route,
                     cc14=cc14, relative=relative, step=float(step), feedback=feedback)


# ---------------------------------------------------------------------------------------------------------
# Running: dispatch, glides, learn, feedback
# ---------------------------------------------------------------------------------------------------------
class MidiRouter:
    """Dispatches MIDI messages (from rtmidi's thread) to the routes of the loaded maps.

    One lock serialises messages, glide ticks (on the OSC server's ticker thread) and learning, because the
    routes keep small state (14-bit halves, edges, glides).
    """

    def __init__(self, store: ParamStore, on_error: Callable[[str, str], None] | None = None,
                 learn_path: Path | None = None):
        self.store = store
        self.on_error = on_error or (lambda code, detail: None)
        self.maps: list[MidiMap] = []
        self.learn_path = Path(learn_path) if learn_path else None
        self.learned = MidiMap(name="learned", path=self.learn_path, routes=[])
        self.armed = ""
        self.counts = dict.fromkeys(("messages", "applied", "unmapped", "errors", "learned"), 0)
        self._lock = threading.RLock()
        self._gliding: set[int] = set()
        self._last_tick: float | None = None
        self._wake: Callable[[], None] = lambda: None
        self.listeners: list[Callable[[Any], None]] = []  # every message (signals, clock)
        store.add_listener(self._on_change)

    def install(self, midi_map: MidiMap) -> None:
        with self._lock:
            self.maps.append(midi_map)

    def load_learned(self) -> None:
        """Install the learn file's routes if it exists (a bad file is a start-up error like any map)."""
        if self.learn_path is not None and self.learn_path.is_file():
            self.learned = load_midi_map(self.learn_path)
        with self._lock:
            if self.learned not in self.maps:
                self.maps.append(self.learned)

    def attach_ticks(self, server) -> None:
        server.add_ticker(self.tick)
        self._wake = server.wake_tickers

    def routes(self) -> list[MidiRoute]:
        return [route for midi_map in self.maps for route in midi_map.routes]

    # -- messages --------------------------------------------------------------------------------------
    def dispatch(self, msg) -> int:
        """Apply one message to every route it matches (or learn from it); return how many applied."""
        self.counts["messages"] += 1
        for listener in list(self.listeners):
            try:
                listener(msg)
            except Exception as exc:  # noqa: BLE001 - a broken listener never stops control
                self._error("internal", f"MIDI listener: {exc}")
        if msg.type not in ("control_change", "note_on", "note_off", "pitchwheel"):
            return 0
        applied = 0
        with self._lock:
            if self.armed and msg.type != "note_off":
                self._learn(msg)
            for midi_map in self.maps:
                for route in midi_map.routes:
                    if not route.matches(msg):
                        continue
                    try:
                        if route.apply(self.store, msg, f"midi:{midi_map.name}"):
                            self._gliding.add(id(route.route))
                            self._wake()
                        applied += 1
                    except ParamError as exc:
                        self._error(exc.code, f"MIDI {msg_label(msg)} -> {route.param.name}: {exc}")
        self.counts["applied"] += applied
        if not applied:
            self.counts["unmapped"] += 1
        return applied

    def tick(self, now: float) -> bool:
        """Glides (``slew``), on the OSC server's ticker thread."""
        with self._lock:
            dt = 0.01 if self._last_tick is None else min(0.1, max(1e-4, now - self._last_tick))
            self._last_tick = now
            if not self._gliding:
                self._last_tick = None
                return False
            for midi_map in self.maps:
                for route in midi_map.routes:
                    key = id(route.route)
                    if key in self._gliding and not route.route.tick(self.store, dt, f"midi:{midi_map.name}"):
                        self._gliding.discard(key)
            return bool(self._gliding)

    def _error(self, code: str, detail: str) -> None:
        self.counts["errors"] += 1
        self.on_error(code, detail)

    # -- learn -----------------------------------------------------------------------------------------------
    def arm(self, name: str) -> None:
        """Arm learning for a parameter ("" cancels); the next CC, note or pitch bend is bound to it."""
        if name:
            param = PARAMS_BY_NAME.get(name)
            if param is None or not param.live or param.kind in ("str", "int2"):
                raise ParamError("midi.learn", f"{name!r} is not a live number, bool, choice or action parameter")
        self.armed = name

    def _learn(self, msg) -> None:
        entry: dict[str, Any] = {}
        if msg.type == "control_change":
            entry["cc"] = msg.control
        elif msg.type == "pitchwheel":
            entry["pitchbend"] = True
        else:
            entry["note"] = msg.note
        entry["channel"] = msg.channel + 1
        entry["param"] = self.armed
        param = PARAMS_BY_NAME[self.armed]
        if param.kind == "bool" and "note" in entry:
            entry["mode"] = "toggle"
        elif param.kind == "action":
            entry["mode"] = "trigger"
        route = midi_route(entry, len(self.learned.entries), "learned")
        same = [i for i, e in enumerate(self.learned.entries)
                if e.get("param") == entry["param"] or _same_control(e, entry)]
        for i in reversed(same):  # re-learning replaces: one control, one parameter
            del self.learned.entries[i]
            del self.learned.routes[i]
        self.learned.entries.append(entry)
        self.learned.routes.append(route)
        self.armed = ""
        self.counts["learned"] += 1
        self.save_learned()

    def save_learned(self) -> None:
        if self.learn_path is None:
            return
        try:
            self.learn_path.write_text(map_text(self.learned), encoding="utf-8")
        except OSError as exc:
            self._error("io", f"midi learn: cannot write {self.learn_path}: {exc}")

    def _on_change(self, name: str, value: Any, source: str) -> None:
        if name == "midi.learn":
            try:
                self.arm(value)
            except ParamError as exc:
                self._error(exc.code, str(exc))

    # -- feedback --------------------------------------------------------------------------------------------
    def feedback(self, name: str, value: Any) -> list:
        """Messages that show a changed parameter on the controller (every route bound to it)."""
        out = []
        for route in self.routes():
            if route.param.name == name:
                out.extend(route.feedback_messages(value))
        return out

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "maps": [m.name for m in self.maps], "routes": len(self.routes()),
                "armed": self.armed}


def _same_control(a: dict, b: dict) -> bool:
    keys = ("cc", "note", "pitchbend", "channel")
    return all(a.get(k) == b.get(k) for k in keys)


def msg_label(msg) -> str:
    if msg.type == "control_change":
        return f"ch{msg.channel + 1} cc{msg.control}"
    if msg.type in ("note_on", "note_off"):
        return f"ch{msg.channel + 1} note{msg.note}"
    return f"ch{getattr(msg, 'channel', 0) + 1} {msg.type}"


def map_text(midi_map: MidiMap) -> str:
    """A map as TOML (the learn file): a header and one [[route]] per entry, in order."""
    lines = ["# Written by vrbridge MIDI learn; edit freely (format: bridge/midi/maps.py).", "", "[map]",
             f'name = "{midi_map.name}"']
    for entry in midi_map.entries:
        lines += ["", "[[route]]"]
        for key, value in entry.items():
            lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
