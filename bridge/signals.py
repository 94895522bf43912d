"""Signals: the named numbers every performer input produces (hand, body, face, audio, scene, tempo, OSC, MIDI).

    inputs (own threads / callbacks) ──publish──► SignalBus (latest value, time, source) ──► routes ──► params

A signal is one float with a documented span (``low``..``high``: 0..1, or -1..1 for signed ones, or a natural
unit such as degrees where that is what a rig expects), a unit and the source that makes it. Sources
:meth:`SignalBus.declare` their signals once and :meth:`SignalBus.publish` from any thread: the newest value
wins, publishing never blocks for longer than a dict write, and nothing else about a source is visible to the
rest of the engine. The render thread reads the bus once per frame when it evaluates the routes
(:mod:`bridge.routes`); telemetry sends every signal at ``/vrb/signal/<name with dots as slashes>``.

A source that fails calls :meth:`SignalBus.report_error`: the failure is counted (health shows it) and the
signals keep their last values, so a broken input never stops the picture.

Names are dotted and lower case (``hand.x``, ``audio.rms``). Incoming OSC addresses are signals too, named
``osc:<address>`` (``osc:/1/fader1``); they are declared when a route or a rig map names them.
"""
from __future__ import annotations

import collections
import dataclasses
import difflib
import importlib
import math
import re
import threading
import time
from typing import Iterable, Mapping

OSC_PREFIX = "osc:"
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
MAX_SIGNALS = 4096  # a bound on what sources (or OSC addresses named by routes) can declare
# Modules whose ``SIGNALS`` tuple lists the signals they can publish: the catalogue that routes in a show file
# are checked against before anything starts, and that ``vrbridge signals`` prints.
SIGNAL_MODULES: tuple[str, ...] = (
    "bridge.tracking.features",
    "bridge.tracking.body",
    "bridge.tracking.face",
    "bridge.osc.tempo",
    "bridge.scene.motion",
    "bridge.scene.depth",
    "bridge.audio.service",
    "bridge.classes",
    "bridge.levers",
)


class SignalError(ValueError):
    """A signal that cannot be declared or read (the message is one line naming it)."""


@dataclasses.dataclass(frozen=True)
class SignalSpec:
    """What a signal means: its span, unit and the source that publishes it."""

    name: str
    low: float = 0.0
    high: float = 1.0
    unit: str = ""
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if not (is_osc_signal(self.name) or _NAME.match(self.name)):
            raise SignalError(f"signal name {self.name!r} must be dotted lower case (e.g. hand.x) or osc:/address")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise SignalError(f"signal {self.name}: span [{self.low}, {self.high}] must be finite with low < high")

    @property
    def osc_address(self) -> str:
        return signal_address(self.name)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "osc_address": self.osc_address}


def signal_address(name: str) -> str:
    """Where telemetry sends a signal: ``/vrb/signal/hand/x``; ``osc:/1/fader1`` -> ``/vrb/signal/osc/1/fader1``."""
    if name.startswith(OSC_PREFIX):
        return "/vrb/signal/osc" + name[len(OSC_PREFIX):]
    return "/vrb/signal/" + name.replace(".", "/")


def is_osc_signal(name: str) -> bool:
    return name.startswith(OSC_PREFIX + "/") and len(name) <= 256 and " " not in name


def osc_signal_spec(name: str) -> SignalSpec:
    """Spec of an incoming-OSC signal: its span is whatever the rig sends (routes give ``input`` for it)."""
    return SignalSpec(name, 0.0, 1.0, "", f"the first argument of OSC messages to {name[len(OSC_PREFIX):]}", "osc")


def catalogue() -> dict[str, SignalSpec]:
    """Every signal the installed sources can publish (their modules' ``SIGNALS``), by name."""
    out: dict[str, SignalSpec] = {}
    for module_name in SIGNAL_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # an optional source whose dependency is not installed
            continue
        for spec in getattr(module, "SIGNALS", ()):
            out[spec.name] = spec
    return out


def closest(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest candidate, or an empty string."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean {match[0]}?)" if match else ""


class SignalBus:
    """Latest value, time and source of every declared signal. Thread-safe; publishing is a dict write."""

    def __init__(self, specs: Iterable[SignalSpec] = ()) -> None:
        self._lock = threading.Lock()
        self._specs: dict[str, SignalSpec] = {}
        self._values: dict[str, float] = {}
        self._times: dict[str, float] = {}
        self.errors: collections.Counter[str] = collections.Counter()
        self.last_error = ""
        self.rejected = 0  # publishes of undeclared names or non-finite values (a source bug; counted, ignored)
        self.version = 0  # bumps on every accepted publish: the render loop re-renders when it moves
        self.declare(*specs)

    # -- sources -------------------------------------------------------------------------------------
    def declare(self, *specs: SignalSpec) -> None:
        """Make signals known (idempotent; a second declaration of a name replaces its spec)."""
        with self._lock:
            for spec in specs:
                if spec.name not in self._specs and len(self._specs) >= MAX_SIGNALS:
                    raise SignalError(f"signal {spec.name}: more than {MAX_SIGNALS} signals declared")
                self._specs[spec.name] = spec

    def publish(self, name: str, value: float, t: float | None = None) -> bool:
        """Set one signal's newest value; False (and counted) for an undeclared name or a non-finite value."""
        return self.publish_many({name: value}, t) == 1

    def publish_many(self, values: Mapping[str, float], t: float | None = None, source: str = "") -> int:
        """Set several signals at once (one lock); returns how many were accepted."""
        now = time.monotonic() if t is None else t
        accepted = 0
        with self._lock:
            for name, value in values.items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = math.nan
                if name not in self._specs or not math.isfinite(number):
                    self.rejected += 1
                    continue
                self._values[name] = number
                self._times[name] = now
                accepted += 1
            if accepted:
                self.version += 1
        return accepted

    def report_error(self, source: str, exc: BaseException | str) -> None:
        """A source failed: count it (health), keep every signal's last value."""
        with self._lock:
            self.errors[source] += 1
            self.last_error = f"{source}: {exc if isinstance(exc, str) else f'{type(exc).__name__}: {exc}'}"[:300]

    # -- readers ---------------------------------------------------------------------------------------
    def spec(self, name: str) -> SignalSpec:
        with self._lock:
            spec = self._specs.get(name)
            known = list(self._specs) if spec is None else ()
        if spec is None:
            raise SignalError(f"unknown signal {name!r}{closest(name, known)}")
        return spec

    def specs(self) -> list[SignalSpec]:
        with self._lock:
            return list(self._specs.values())

    def known(self, name: str) -> bool:
        with self._lock:
            return name in self._specs

    def value(self, name: str, default: float | None = None) -> float | None:
        """The newest value (``default`` before the first publish)."""
        with self._lock:
            return self._values.get(name, default)

    def values(self) -> dict[str, float]:
        """Every published signal's newest value: one lock for the whole frame."""
        with self._lock:
            return dict(self._values)

    def age(self, name: str, now: float | None = None) -> float | None:
        """Seconds since the last publish of ``name`` (None before the first)."""
        with self._lock:
            t = self._times.get(name)
        return None if t is None else (time.monotonic() if now is None else now) - t

    def describe(self, name: str, now: float | None = None) -> dict:
        """Value, age and source of one signal (``/status.json``, the web panel)."""
        spec = self.spec(name)
        return {"value": self.value(name), "age_s": self.age(name, now), "source": spec.source,
                "low": spec.low, "high": spec.high, "unit": spec.unit}

    def stats(self) -> dict:
        with self._lock:
            return {"declared": len(self._specs), "published": len(self._values), "rejected": self.rejected,
                    "errors": dict(self.errors), "last_error": self.last_error}
