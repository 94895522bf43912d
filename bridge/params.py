"""The one table of every parameter the engine exposes, and the store that holds their live values.

Everything that names, validates, documents or transmits a parameter reads this table: OSC addresses and
OSCQuery (``bridge.osc``), the osc_maps validator, the show file and CLI (``bridge.config``), the
TouchDesigner component, ``vrbridge params --json|--markdown`` and telemetry echo. Add a parameter here and
all of them pick it up; never keep a second list elsewhere.

Conventions
-----------
* ``name`` is dotted (``mix.coarse``); the OSC address is ``/vrb/`` + name with dots as slashes.
* ``kind`` is one of ``float``, ``int``, ``bool``, ``enum``, ``str``, ``int2`` (an [start, end) pair, two
  ints on the wire), ``list`` (of strings; start-up settings only) and ``action`` (a trigger with an
  optional string argument: it has no stored value).
* ``live=False`` marks a start-up setting (show file / CLI only): it is validated here but not settable
  over OSC while running.
* ``out_of_range`` says what a value outside [min, max] does: ``clamp`` (set the nearest bound and report
  it) or ``reject`` (change nothing and report it).
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

OSC_ROOT = "/vrb"

KINDS = ("float", "int", "bool", "enum", "str", "int2", "list", "action")


class ParamError(ValueError):
    """A value that cannot be applied. ``code`` is a short stable word for counters and OSC error replies."""

    code = "invalid"

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.detail = message


class UnknownParam(ParamError):
    code = "unknown"


class WrongType(ParamError):
    code = "type"


class OutOfRange(ParamError):
    code = "range"


class NotLive(ParamError):
    code = "not_live"


@dataclasses.dataclass(frozen=True)
class Param:
    """One controllable parameter: everything any interface needs to know about it."""

    name: str
    kind: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    out_of_range: str = "clamp"
    smoothing_s: float = 0.0
    group: str = "engine"
    live: bool = True
    telemetry: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"param {self.name}: unknown kind {self.kind!r}")
        if self.kind == "enum" and self.default not in self.choices:
            raise ValueError(f"param {self.name}: default {self.default!r} not in {self.choices}")
        if self.out_of_range not in ("clamp", "reject"):
            raise ValueError(f"param {self.name}: out_of_range must be clamp or reject")

    @property
    def osc_address(self) -> str:
        return OSC_ROOT + "/" + self.name.replace(".", "/")

    @property
    def osc_typetags(self) -> str:
        """OSC type tag string of the value (OSCQuery TYPE); actions take an optional string."""
        return {"float": "f", "int": "i", "bool": "T", "enum": "s", "str": "s", "int2": "ii", "list": "s", "action": "s"}[
            self.kind
        ]

    def coerce(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type and range, or raise a specific ParamError.

        Coercion is only done where it is unambiguous: an int for a float, 0/1 or 0.0/1.0 for a bool,
        an integral float for an int, the name of a choice for an enum (case-insensitive).
        """
        kind = self.kind
        if kind == "float":
            return self._ranged(_as_float(self.name, value))
        if kind == "int":
            return int(self._ranged(_as_int(self.name, value)))
        if kind == "bool":
            return _as_bool(self.name, value)
        if kind == "enum":
            text = _as_str(self.name, value)
            for choice in self.choices:
                if choice.lower() == text.lower():
                    return choice
            raise OutOfRange(self.name, f"{text!r} is not one of {', '.join(self.choices)}")
        if kind in ("str", "action"):
            return "" if value is None and kind == "action" else _as_str(self.name, value)
        if kind == "list":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise WrongType(self.name, f"expects a list of strings, got {value!r}")
            return tuple(_as_str(self.name, item) for item in items)
        if kind == "int2":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise WrongType(self.name, f"expects two ints [start, end), got {value!r}")
            start, end = (int(self._ranged(_as_int(self.name, v))) for v in value)
            return (start, end)
        raise AssertionError(kind)

    def _ranged(self, number: float) -> float:
        low = -math.inf if self.min is None else self.min
        high = math.inf if self.max is None else self.max
        if low <= number <= high:
            return number
        if self.out_of_range == "reject":
            raise OutOfRange(self.name, f"{number} is outside [{self.min}, {self.max}]")
        return min(max(number, low), high)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able description (``vrbridge params --json``, the TouchDesigner component, docs)."""
        out = dataclasses.asdict(self)
        out["choices"] = list(self.choices)
        out["osc_address"] = self.osc_address
        out["osc_typetags"] = self.osc_typetags
        if isinstance(self.default, tuple):  # int2 and list defaults
            out["default"] = list(self.default)
        return out


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        if not math.isfinite(float(value)):
            raise WrongType(name, f"{value!r} is not a finite number")
        return float(value)
    raise WrongType(name, f"expects a number, got {type(value).__name__} {value!r}")


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise WrongType(name, f"expects an integer, got {type(value).__name__} {value!r}")


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "on", "off"):
        return value.lower() in ("true", "on")
    raise WrongType(name, f"expects a bool (T/F, 0/1, true/false, on/off), got {value!r}")


def _as_str(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise WrongType(name, f"expects a string, got {type(value).__name__} {value!r}")


# --------------------------------------------------------------------------------------------------
# The table. Sections are grouped by the stage that reads them; keep each section's rows together.
# --------------------------------------------------------------------------------------------------
_P = Param

PARAMS: tuple[Param, ...] = (
    # ---- synthesis (the paper's Test 1) -----------------------------------------------------------
    _P("psi", "float", 0.7, "Truncation psi: 0 pulls every image to the average, 1 is untruncated, >1 exaggerates.",
       min=-1.0, max=2.0, smoothing_s=0.05, group="synthesis"),
    _P("trunc_cutoff", "int", 0, "Truncate only the first N style layers (0 = every layer).",
       min=0, max=64, group="synthesis"),
    _P("seed", "int", 0, "Seed of the static latent the camera latent is style-mixed with.",
       min=0, max=2**31 - 1, out_of_range="reject", group="synthesis"),
    _P("mix.coarse", "int2", (-1, -1),
       "Style layers [start, end) driven by the coarse camera latent; -1 -1 = default split, 0 0 = off (seed).",
       min=-1, max=64, out_of_range="reject", group="synthesis"),
    _P("mix.middle", "int2", (-1, -1),
       "Style layers [start, end) driven by the middle camera latent; -1 -1 = default split, 0 0 = off.",
       min=-1, max=64, out_of_range="reject", group="synthesis"),
    _P("mix.fine", "int2", (-1, -1),
       "Style layers [start, end) driven by the fine camera latent; -1 -1 = default split, 0 0 = off.",
       min=-1, max=64, out_of_range="reject", group="synthesis"),
    _P("mix.amount", "float", 1.0, "Blend of camera w over the static w inside the mixed layers (0 = seed only).",
       min=0.0, max=1.0, smoothing_s=0.05, group="synthesis"),
    _P("noise_mode", "enum", "const", "Per-pixel noise: const (stable), random (shimmer) or none.",
       choices=("const", "random", "none"), group="synthesis"),
    _P("freeze", "bool", False, "Hold the last rendered frame (sinks keep publishing it).", group="output"),
    _P("blackout", "bool", False, "Publish black frames (the output stays alive).", group="output"),
    # ---- encoder (camera -> fake latents) ---------------------------------------------------------
    _P("encoder.layout", "enum", "whole",
       "How frame regions drive layer groups: whole frame, or the paper's top/bottom-left/bottom-right split.",
       choices=("whole", "paper", "columns", "rows"), group="encoder"),
    _P("encoder.smoothing", "float", 0.0, "EMA smoothing of z against camera noise (0 = none, 0.99 = very slow).",
       min=0.0, max=0.999, group="encoder"),
    _P("encoder.standardize", "enum", "running",
       "Standardise z to N(0, I): none, per vector, or with running statistics (a static scene sits at the centre).",
       choices=("none", "vector", "running"), group="encoder"),
    _P("encoder.gain", "float", 1.0, "Multiply the fake latent z (after standardisation).",
       min=0.0, max=4.0, smoothing_s=0.05, group="encoder"),
    _P("encoder.mirror", "bool", False, "Mirror the frame left-right before encoding (selfie cameras).",
       group="encoder"),
    _P("latent.hold", "bool", False, "Stop following the camera: keep the current latents.", group="encoder"),
    # ---- hands / manipulations (issue 6 adds its rows here) ---------------------------------------
    # ---- OSC / telemetry / presets (issue 5 adds its rows here) -----------------------------------
    _P("telemetry.rate_hz", "float", 0.0, "Telemetry bundles per second (0 = one per rendered frame).",
       min=0.0, max=240.0, group="telemetry"),
    _P("telemetry.z_dims", "int", 8, "How many leading dimensions of each z are sent in telemetry.",
       min=0, max=64, group="telemetry"),
    # ---- start-up settings (show file / CLI; validated here, not live) ----------------------------
    # CLI flag = "--" + name with "_" as "-"; show-file key = name. Rows for later stages go here too.
    _P("network", "str", "", "Network pickle (.pkl) or safetensors file; empty = the embedded demo network.",
       group="startup", live=False, telemetry=False),
    _P("source", "str", "pattern", "Frame source: pattern | camera:N | video:PATH | images:DIR (and rig inputs).",
       group="startup", live=False, telemetry=False),
    _P("device", "enum", "auto", "Torch device for encoder and generator.",
       choices=("auto", "cpu", "cuda", "mps"), group="startup", live=False, telemetry=False),
    _P("resolution", "str", "", "Output size WxH the sinks get (e.g. 1920x1080); empty = the network's own.",
       group="startup", live=False, telemetry=False),
    _P("fit", "enum", "letterbox", "How the square image fills a non-square output: letterbox, crop or stretch.",
       choices=("letterbox", "crop", "stretch"), group="output"),
    _P("preview", "str", "127.0.0.1:7780", "Preview web server HOST:PORT (MJPEG, /snapshot.jpg); 'off' disables.",
       group="startup", live=False, telemetry=False),
    _P("record", "str", "", "Record the output to this .mp4 file (empty = off).",
       group="startup", live=False, telemetry=False),
    _P("png_dir", "str", "", "Write every output frame as a PNG into this folder (empty = off).",
       group="startup", live=False, telemetry=False),
    _P("sink", "list", (), "Extra sinks, each kind:NAME (spout:NAME, syphon:NAME, ndi:NAME).",
       group="startup", live=False, telemetry=False),
    _P("osc_in", "str", "127.0.0.1:7700", "Listen for OSC control on HOST:PORT ('off' disables).",
       group="startup", live=False, telemetry=False),
    _P("osc_out", "list", ("127.0.0.1:7701",), "Send telemetry to these HOST:PORT targets.",
       group="startup", live=False, telemetry=False),
    _P("osc_allow", "list", (), "Sender IPs allowed when osc_in listens beyond localhost (required then).",
       group="startup", live=False, telemetry=False),
)
PARAMS_BY_NAME: Mapping[str, Param] = MappingProxyType({p.name: p for p in PARAMS})
PARAMS_BY_ADDRESS: Mapping[str, Param] = MappingProxyType({p.osc_address: p for p in PARAMS})
assert len(PARAMS_BY_NAME) == len(PARAMS), "duplicate parameter name"


def get_param(name: str) -> Param:
    try:
        return PARAMS_BY_NAME[name]
    except KeyError:
        raise UnknownParam(name, "no such parameter") from None


def live_params() -> Iterable[Param]:
    return (p for p in PARAMS if p.live)


# --------------------------------------------------------------------------------------------------
# Live values
# --------------------------------------------------------------------------------------------------
Listener = Callable[[str, Any, str], None]


class ParamStore:
    """Thread-safe live values of every parameter.

    Writers (OSC, maps, presets, the web panel) call :meth:`set`; the render loop takes one
    :meth:`snapshot` per frame so a frame never mixes two control states. Listeners hear every change
    (OSCQuery LISTEN, telemetry echo); a listener that raises never breaks a set.
    """

    def __init__(self, overrides: Mapping[str, Any] | None = None):
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {p.name: p.default for p in PARAMS if p.kind != "action"}
        self._listeners: list[Listener] = []
        self.version = 0
        self.last_change = time.monotonic()
        for name, value in (overrides or {}).items():
            self.set(name, value, source="config", allow_startup=True)

    def set(self, name: str, value: Any, source: str = "api", allow_startup: bool = False) -> Any:
        """Validate and apply one value; return what was stored. Raises ParamError and changes nothing."""
        param = get_param(name)
        if not param.live and not allow_startup:
            raise NotLive(name, "is a start-up setting (show file / command line), not a live parameter")
        value = param.coerce(value)
        if param.kind == "action":
            self._notify(name, value, source)
            return value
        with self._lock:
            self._values[name] = value
            self.version += 1
            self.last_change = time.monotonic()
        self._notify(name, value, source)
        return value

    def get(self, name: str) -> Any:
        get_param(name)
        with self._lock:
            return self._values[name]

    def snapshot(self) -> Mapping[str, Any]:
        """An immutable copy of every value: what one rendered frame uses."""
        with self._lock:
            return MappingProxyType(dict(self._values))

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, name: str, value: Any, source: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(name, value, source)
            except Exception:  # a broken listener must never break control input
                pass
