"""Presets (cues): save the live look by name, recall it with an optional crossfade, list, delete.

Stored as a small TOML file beside the show file, one table per preset, keyed by parameter name::

    [presets."intro"]
    psi = 0.5
    "mix.coarse" = [0, 4]
    noise_mode = "const"

What a preset holds: every live parameter except actions and the ``presets``/``telemetry`` groups (a cue
should not change how telemetry is sent or how long the next fade takes).

Crossfade (``preset.fade`` seconds, or ``recall(name, fade_s)``): float parameters glide linearly from
their current value; every other kind (ints, bools, enums, pairs, strings) switches once, at the END of
the fade, so a cue "lands" all at once. A parameter changed by anything else during the fade (a fader, a
map, the LFO) drops out of the fade: the performer's hand wins. A new recall replaces a running fade.

Bad input changes nothing: a recall of an unknown name, or of a preset whose values no longer validate,
is refused as a whole and reported (``unknown`` / the value's error code).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from bridge.params import PARAMS, PARAMS_BY_NAME, Param, ParamError, ParamStore, UnknownParam, WrongType

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

log = logging.getLogger(__name__)

SOURCE = "preset"
EXCLUDED_GROUPS = ("presets", "telemetry")
MAX_NAME = 64
ErrorSink = Callable[[str, str], None]


def preset_params() -> list[Param]:
    return [p for p in PARAMS if p.live and p.kind != "action" and p.group not in EXCLUDED_GROUPS]


def default_presets_path(settings_presets: str, show_file: str | None) -> Path:
    """``presets`` setting, else ``SHOW.presets.toml`` beside the show file, else ./vrbridge-presets.toml."""
    if settings_presets:
        return Path(settings_presets).expanduser()
    if show_file:
        show = Path(show_file)
        return show.with_name(show.stem + ".presets.toml")
    return Path("vrbridge-presets.toml")


class PresetBank:
    """The presets file and the running crossfade. Driven by the ``preset.*`` actions or called directly."""

    def __init__(self, store: ParamStore, path: Path, on_error: ErrorSink | None = None,
                 on_names: Callable[[list[str]], None] | None = None):
        self.store = store
        self.path = Path(path)
        self.on_error = on_error or (lambda code, detail: log.warning("preset %s: %s", code, detail))
        self.on_names = on_names or (lambda names: None)
        self.presets: dict[str, dict[str, Any]] = self._read()
        self.current = ""
        self._lock = threading.Lock()
        self._fade: dict[str, tuple[float, float]] = {}  # float name -> (start value, target value)
        self._cuts: dict[str, Any] = {}  # discrete values applied at the end
        self._fade_start = 0.0
        self._fade_s = 0.0
        self._wake: Callable[[], None] = lambda: None
        store.add_listener(self._on_change)

    # -- API -----------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self.presets)

    def save(self, name: str) -> dict[str, Any]:
        name = _check_name(name)
        snapshot = self.store.snapshot()
        values = {p.name: snapshot[p.name] for p in preset_params()}
        self.presets[name] = values
        self._write()
        self.current = name
        return values

    def delete(self, name: str) -> None:
        name = _check_name(name)
        if name not in self.presets:
            raise UnknownParam("preset.delete", f"no preset named {name!r} (have: {', '.join(self.names()) or 'none'})")
        del self.presets[name]
        self._write()

    def recall(self, name: str, fade_s: float | None = None) -> None:
        """Start (or cut to) a preset. Raises ParamError and changes nothing if it cannot be applied."""
        name = _check_name(name)
        if name not in self.presets:
            raise UnknownParam("preset.recall", f"no preset named {name!r} (have: {', '.join(self.names()) or 'none'})")
        targets = self._validated(name)
        fade_s = float(self.store.get("preset.fade") if fade_s is None else fade_s)
        now_values = self.store.snapshot()
        with self._lock:
            self._fade = {n: (float(now_values[n]), v) for n, v in targets.items()
                          if PARAMS_BY_NAME[n].kind == "float" and fade_s > 0}
            self._cuts = {n: v for n, v in targets.items() if n not in self._fade}
            self._fade_start, self._fade_s = time.monotonic(), fade_s
        self.current = name
        if fade_s <= 0:
            self.tick(time.monotonic())
        else:
            self._wake()

    def progress(self) -> float:
        """0..1 through the running fade; 1.0 when none runs."""
        with self._lock:
            if not (self._fade or self._cuts) or self._fade_s <= 0:
                return 1.0
            return min(1.0, (time.monotonic() - self._fade_start) / self._fade_s)

    def tick(self, now: float) -> bool:
        """Advance the fade; return whether it is still running (a server ticker)."""
        with self._lock:
            if not (self._fade or self._cuts):
                return False
            t = 1.0 if self._fade_s <= 0 else min(1.0, (now - self._fade_start) / self._fade_s)
            steps = [(n, a + (b - a) * t) for n, (a, b) in self._fade.items()]
            done = t >= 1.0
            if done:
                steps += list(self._cuts.items())
                self._fade, self._cuts = {}, {}
        for name, value in steps:
            self.store.set(name, value, source=SOURCE)
        return not done

    def attach_ticks(self, server) -> None:
        server.add_ticker(self.tick)
        self._wake = server.wake_tickers

    def telemetry(self) -> dict[str, Any]:
        return {"/vrb/preset/count": len(self.presets), "/vrb/preset/current": self.current,
                "/vrb/preset/progress": self.progress()}

    # -- driven by the preset.* actions (runs on whichever thread set the action) --------------------
    def _on_change(self, name: str, value: Any, source: str) -> None:
        if source != SOURCE and name in self._fade:
            with self._lock:
                self._fade.pop(name, None)  # a hand on the fader wins over the running fade
        try:
            if name == "preset.save":
                self.save(value)
            elif name == "preset.recall":
                self.recall(value)
            elif name == "preset.delete":
                self.delete(value)
            elif name == "preset.list":
                self.on_names(self.names())
        except ParamError as exc:
            self.on_error(exc.code, str(exc))
        except OSError as exc:
            self.on_error("io", f"{name}: cannot write {self.path}: {exc}")

    # -- file ----------------------------------------------------------------------------------------
    def _validated(self, name: str) -> dict[str, Any]:
        out = {}
        allowed = {p.name for p in preset_params()}
        for key, raw in self.presets[name].items():
            param = PARAMS_BY_NAME.get(key)
            if param is None or key not in allowed:
                log.warning("preset %r: ignoring %r (not a preset parameter in this version)", name, key)
                continue
            try:
                out[key] = param.coerce(list(raw) if isinstance(raw, (list, tuple)) else raw)
            except ParamError as exc:
                raise type(exc)(f"preset {name!r}: {key}", exc.detail) from None
        return out

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        from bridge.cli import UserError

        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UserError(f"presets file {self.path}: {exc}") from None
        presets = data.get("presets", {})
        if not isinstance(presets, dict) or not all(isinstance(v, dict) for v in presets.values()):
            raise UserError(f"presets file {self.path}: expected [presets.NAME] tables")
        return {str(k): dict(v) for k, v in presets.items()}

    def _write(self) -> None:
        lines = ["# vrbridge presets: written by the engine (preset.save); safe to edit by hand.",
                 "# Values are checked against the parameter table when recalled.", ""]
        for name in self.names():
            lines.append(f"[presets.{_toml_key(name)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in self.presets[name].items()]
            lines.append("")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("\n".join(lines), encoding="utf-8")
        os.replace(tmp, self.path)  # a crash mid-write never leaves half a file


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise WrongType("preset", f"needs a preset name (a non-empty string), got {name!r}")
    name = name.strip()
    if len(name) > MAX_NAME or not name.isprintable():
        raise WrongType("preset", f"name must be printable and at most {MAX_NAME} characters")
    return name


def _toml_key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)  # a TOML basic string is JSON-compatible for these


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot store {value!r} in a preset")
