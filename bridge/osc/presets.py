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

Saving never blocks control: save/delete change the bank in memory and wake the writer thread, which
rewrites the file with the newest bank (a burst of saves becomes one or two writes). The bank is bounded
(:data:`MAX_PRESETS` presets, a file of at most ``MAX_TOML_BYTES``): a save beyond that is refused with a
``range`` error that says so. ``close()`` (a service) writes whatever is still pending.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from bridge.params import (PARAMS, PARAMS_BY_NAME, OutOfRange, Param, ParamError, ParamStore, UnknownParam,
                           WrongType)

log = logging.getLogger(__name__)

SOURCE = "preset"
ROUTES_KEY = "routes"  # a preset's routes: inline tables with the show file's [[route]] keys (not a parameter)
EXCLUDED_GROUPS = ("presets", "telemetry")
MAX_NAME = 64
MAX_PRESETS = 256  # a show's cues; each is ~3 KB of TOML, so the file stays well under MAX_TOML_BYTES
ErrorSink = Callable[[str, str], None]


def preset_params() -> list[Param]:
    return [p for p in PARAMS if p.live and p.kind != "action" and p.group not in EXCLUDED_GROUPS]


def default_presets_path(settings_presets: str, show_file: str | None) -> Path:
    """``presets`` setting, else ``SHOW.presets.toml`` beside the show file, else ./vrbridge-presets.toml."""
    from bridge.config import companion_path

    return companion_path(settings_presets, show_file, "presets")


class PresetBank:
    """The presets file and the running crossfade. Driven by the ``preset.*`` actions or called directly.

    A service (``start``/``close``/``stats``): its thread writes the file off the control path."""

    kind = "presets"

    def __init__(self, store: ParamStore, path: Path, on_error: ErrorSink | None = None,
                 on_names: Callable[[list[str]], None] | None = None):
        self.store = store
        self.path = Path(path)
        self.on_error = on_error or (lambda code, detail: log.warning("preset %s: %s", code, detail))
        self.on_names = on_names or (lambda names: None)
        self.presets: dict[str, dict[str, Any]] = self._read()
        self._blocks = {name: _toml_block(name, values) for name, values in self.presets.items()}
        self.current = ""
        self._file = threading.Condition()  # guards _blocks and the two versions below
        self._version = 0  # changes made to the bank
        self._written = 0  # the version the file holds
        self._stop = False
        self._writer: threading.Thread | None = None
        self.writes = 0
        self._lock = threading.Lock()
        self._fade: dict[str, tuple[float, float]] = {}  # float name -> (start value, target value)
        self._cuts: dict[str, Any] = {}  # discrete values applied at the end
        self._fade_start = 0.0
        self._fade_s = 0.0
        self._wake: Callable[[], None] = lambda: None
        self.routes = None  # the engine's RouteTable: presets then save and recall the routes too
        self._route_cut: list | None = None  # routes a running recall switches to at its end
        store.add_listener(self._on_change)

    # -- API -----------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self.presets)

    def save(self, name: str) -> dict[str, Any]:
        """Store the live look as ``name`` now; the file follows on the writer thread."""
        name = _check_name(name)
        if name not in self.presets and len(self.presets) >= MAX_PRESETS:
            raise OutOfRange("preset.save", f"the bank is full ({MAX_PRESETS} presets): delete some first "
                                            "(/vrb/preset/delete NAME) or overwrite an existing name")
        snapshot = self.store.snapshot()
        values: dict[str, Any] = {p.name: snapshot[p.name] for p in preset_params()}
        if self.routes is not None:  # each route as an inline table with the show file's [[route]] keys
            values[ROUTES_KEY] = [r.to_dict() for r in self.routes.routes()]
        block = _toml_block(name, values)
        from bridge.config import MAX_TOML_BYTES

        if self._file_size() - len(self._blocks.get(name, "")) + len(block) > MAX_TOML_BYTES:
            raise OutOfRange("preset.save", f"the presets file would exceed {MAX_TOML_BYTES >> 20} MiB: "
                                            "delete some presets first")
        self.presets[name] = values
        self._changed(name, block)
        self.current = name
        return values

    def delete(self, name: str) -> None:
        name = _check_name(name)
        if name not in self.presets:
            raise UnknownParam("preset.delete", f"no preset named {name!r} (have: {_names_brief(self.names())})")
        del self.presets[name]
        self._changed(name, None)

    def recall(self, name: str, fade_s: float | None = None) -> None:
        """Start (or cut to) a preset. Raises ParamError and changes nothing if it cannot be applied."""
        name = _check_name(name)
        if name not in self.presets:
            raise UnknownParam("preset.recall", f"no preset named {name!r} (have: {_names_brief(self.names())})")
        targets = self._validated(name)
        routes = self._validated_routes(name)
        fade_s = float(self.store.get("preset.fade") if fade_s is None else fade_s)
        now_values = self.store.snapshot()
        with self._lock:
            self._fade = {n: (float(now_values[n]), v) for n, v in targets.items()
                          if PARAMS_BY_NAME[n].kind == "float" and fade_s > 0}
            self._cuts = {n: v for n, v in targets.items() if n not in self._fade}
            self._route_cut = routes
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
            routes = None
            if done:
                steps += list(self._cuts.items())
                self._fade, self._cuts = {}, {}
                routes, self._route_cut = self._route_cut, None
        for name, value in steps:
            self.store.set(name, value, source=SOURCE)
        if routes is not None and self.routes is not None:
            self.routes.replace_all(routes)
        return not done

    def attach_ticks(self, server) -> None:
        server.add_ticker(self.tick)
        self._wake = server.wake_tickers

    # -- service: the writer thread --------------------------------------------------------------------
    def start(self) -> None:
        self._writer = threading.Thread(target=self._write_loop, name="presets-writer", daemon=True)
        self._writer.start()

    def close(self) -> None:
        with self._file:
            self._stop = True
            self._file.notify_all()
        if self._writer is not None:
            self._writer.join(5.0)
            self._writer = None
        self._write_pending()  # never started, or changed after the thread's last write

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the file holds every change made so far (tests, shutdown); whether it does."""
        if self._writer is None:
            self._write_pending()
        with self._file:
            return self._file.wait_for(lambda: self._written == self._version, timeout)

    def stats(self) -> dict[str, Any]:
        return {"count": len(self.presets), "writes": self.writes, "pending": self._version != self._written,
                "path": str(self.path)}

    def describe(self) -> str:
        return f"presets {self.path}"

    def _changed(self, name: str, block: str | None) -> None:
        with self._file:
            if block is None:
                self._blocks.pop(name, None)
            else:
                self._blocks[name] = block
            self._version += 1
            self._file.notify_all()

    def _write_loop(self) -> None:
        while True:
            with self._file:
                self._file.wait_for(lambda: self._stop or self._written != self._version)
                if self._stop:
                    return
            self._write_pending()

    def _write_pending(self) -> None:
        """Write the newest bank if the file is behind it (whatever number of changes that covers)."""
        with self._file:
            if self._written == self._version:
                return
            version = self._version
            text = "\n".join([_HEADER, *(self._blocks[n] for n in sorted(self._blocks))])
        try:
            self._write(text)
            self.writes += 1
        except OSError as exc:
            self.on_error("io", f"cannot write {self.path}: {exc}")
        with self._file:
            self._written = max(self._written, version)  # a failed write is reported, not retried forever
            self._file.notify_all()

    def _file_size(self) -> int:
        return len(_HEADER) + sum(len(b) + 1 for b in self._blocks.values())

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

    # -- file ----------------------------------------------------------------------------------------
    def _validated_routes(self, name: str) -> list | None:
        """The preset's routes, every one checked before anything changes (None: it has none, or no table)."""
        lines = self.presets[name].get(ROUTES_KEY)
        if lines is None or self.routes is None:
            return None
        from bridge.routes import RouteError, parse_route

        if not isinstance(lines, list):
            raise WrongType(f"preset {name!r}: {ROUTES_KEY}", "expects a list of route tables")
        try:
            return [parse_route(entry, where=f"routes[{i}]") for i, entry in enumerate(lines)]
        except RouteError as exc:
            raise WrongType(f"preset {name!r}: {ROUTES_KEY}", str(exc)) from None

    def _validated(self, name: str) -> dict[str, Any]:
        out = {}
        allowed = {p.name for p in preset_params()}
        for key, raw in self.presets[name].items():
            if key == ROUTES_KEY:
                continue
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
        from bridge.config import read_toml

        _, data = read_toml(self.path, "presets file")
        presets = data.get("presets", {})
        if not isinstance(presets, dict) or not all(isinstance(v, dict) for v in presets.values()):
            raise UserError(f"presets file {self.path}: expected [presets.NAME] tables")
        return {str(k): dict(v) for k, v in presets.items()}

    def _write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)  # a crash mid-write never leaves half a file


_HEADER = ("# vrbridge presets: written by the engine (preset.save); safe to edit by hand.\n"
           "# Values are checked against the parameter table when recalled.\n")


def _toml_block(name: str, values: dict[str, Any]) -> str:
    lines = [f"[presets.{_toml_key(name)}]", *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items())]
    return "\n".join(lines) + "\n"


def _names_brief(names: list[str], limit: int = 10) -> str:
    """The first few names of a possibly long list, for an error line."""
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


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
    if isinstance(value, dict):  # an inline table (a route)
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot store {value!r} in a preset")
