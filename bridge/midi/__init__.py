"""MIDI control: controllers in (maps, learn, clock), feedback out, and every value as a signal.

``attach(engine, settings)`` is the engine builder's hook (after the OSC bridge, whose tempo and error
reporting it uses). Nothing is opened unless ``midi_in``/``midi_out``/``midi_maps`` are set; a port that
cannot be opened is a one-line start-up error. Modules: ports (the MIDI system), maps (decoding, routes,
learn, feedback), clock (MIDI clock -> bpm and beat phase).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)
SIGNAL_SOURCE = "midi"
SIGNAL_NAME = re.compile(r"^midi\.(cc|note)\.([1-9]|1[0-6])\.(\d|[1-9]\d|1[01]\d|12[0-7])$|^midi\.pitchbend\.([1-9]|1[0-6])$")


class MidiService:
    """Open ports, the router, the clock and feedback, as one engine service."""

    kind = "midi"

    def __init__(self, router, inputs=(), output=None, clock=None, signals=None):
        self.router = router
        self.inputs = list(inputs)  # open mido input ports (their callbacks feed dispatch)
        self.output = output
        self.clock = clock
        self.signals = signals
        self.feedback_sent = 0
        self.feedback_errors = 0
        self._declared: set[str] = set()
        self._last_sent: dict[tuple, list] = {}
        if clock is not None:
            router.listeners.append(clock.feed)
        if signals is not None:
            router.listeners.append(self.publish_signal)

    def on_message(self, msg) -> None:
        """rtmidi's callback: never raises (a broken message is counted by the router)."""
        try:
            self.router.dispatch(msg)
        except Exception as exc:  # noqa: BLE001 - the show goes on
            self.router._error("internal", f"MIDI {msg!r}: {exc}")

    def start(self) -> None:
        self.router.store.add_listener(self._feedback)

    def close(self) -> None:
        self.router.store.remove_listener(self._feedback)
        for port in self.inputs + ([self.output] if self.output is not None else []):
            try:
                port.close()
            except Exception:  # noqa: BLE001 - closing must finish
                pass

    def _feedback(self, name: str, value: Any, source: str) -> None:
        """Show a changed parameter on the controller (not the change it just sent: no echo)."""
        if self.output is None or source.startswith("midi:"):
            return
        for message in self.router.feedback(name, value):
            key = (message.type, getattr(message, "channel", 0), getattr(message, "control", getattr(message, "note", -1)))
            if self._last_sent.get(key) == message.bytes():
                continue  # the controller already shows this (an LFO at 100 Hz moves a 7-bit CC far less often)
            try:
                self.output.send(message)
                self._last_sent[key] = message.bytes()
                self.feedback_sent += 1
            except Exception:  # noqa: BLE001 - a controller unplugged mid-show
                self.feedback_errors += 1

    def publish_signal(self, msg) -> None:
        """Every CC, note and pitch bend as a 0..1 (pitch bend -1..1) signal on the engine's bus."""
        named = signal_of(msg)
        if named is None:
            return
        name, value, low = named
        self.declare(name, low)
        self.signals.publish(name, value)

    def declare(self, name: str, low: float = 0.0) -> None:
        """Declare one MIDI signal (on first sight, or up front when a show-file route reads it)."""
        if name not in self._declared:
            from bridge.signals import SignalSpec

            self.signals.declare(SignalSpec(name=name, low=low, high=1.0, unit="",
                                            description=f"MIDI {name[5:]}", source=SIGNAL_SOURCE))
            self._declared.add(name)

    def declare_routed(self, route_tables) -> None:
        """Routes in the show file may read MIDI signals before any message arrived: declare those."""
        for table in route_tables:
            name = table.get("from") if isinstance(table, dict) else None
            if isinstance(name, str) and SIGNAL_NAME.match(name):
                self.declare(name, -1.0 if name.startswith("midi.pitchbend.") else 0.0)

    def stats(self) -> dict[str, Any]:
        return {**self.router.stats(), "inputs": len(self.inputs), "feedback_sent": self.feedback_sent,
                "feedback_errors": self.feedback_errors, "clock_bpm": getattr(self.clock, "bpm", None)}

    def describe(self) -> str:
        return f"midi: {len(self.inputs)} input(s), {len(self.router.routes())} routes" + (
            ", feedback out" if self.output is not None else "")


def signal_of(msg) -> tuple[str, float, float] | None:
    """(signal name, value, low end) of a channel message: midi.cc.<ch>.<n>, midi.note.<ch>.<n>,
    midi.pitchbend.<ch> (channels 1-16)."""
    if msg.type == "control_change":
        return f"midi.cc.{msg.channel + 1}.{msg.control}", msg.value / 127.0, 0.0
    if msg.type in ("note_on", "note_off"):
        velocity = 0 if msg.type == "note_off" else msg.velocity
        return f"midi.note.{msg.channel + 1}.{msg.note}", velocity / 127.0, 0.0
    if msg.type == "pitchwheel":
        return f"midi.pitchbend.{msg.channel + 1}", max(-1.0, msg.pitch / 8191.0), -1.0
    return None


def learn_path(setting: str, show_file: str | None) -> Path:
    """``midi_learn_file``, else ``SHOW.midi.toml`` beside the show file, else ./vrbridge-midi.toml."""
    from bridge.config import companion_path

    return companion_path(setting, show_file, "midi")


def preflight_problem(settings: Mapping[str, Any]) -> str:
    """One line saying why the MIDI settings cannot work ("" when they can), without opening anything."""
    from bridge.midi.maps import MidiMapError, load_midi_map
    from bridge.midi.ports import MidiUnavailable, list_ports, pick
    from bridge.osc import _as_list

    inputs, maps = _as_list(settings.get("midi_in")), _as_list(settings.get("midi_maps"))
    output = str(settings.get("midi_out") or "").strip()
    try:
        for spec in maps:
            load_midi_map(spec)
        if inputs or output:
            names_in, names_out = list_ports()
            for name in inputs:
                pick(name, names_in, "midi_in")
            if output:
                pick(output, names_out, "midi_out")
    except MidiMapError as exc:
        return f"midi_maps: {exc}"
    except MidiUnavailable as exc:
        return f"{'midi_in' if inputs else 'midi_out'}: {exc}" if str(exc).startswith("MIDI:") else str(exc)
    return ""


def attach(engine, settings: Mapping[str, Any]) -> MidiService | None:
    from bridge.cli import UserError
    from bridge.midi.clock import MidiClock
    from bridge.midi.maps import MidiMapError, MidiRouter, load_midi_map
    from bridge.midi.ports import MidiUnavailable, open_input, open_output
    from bridge.osc import SHOW_FILE_KEY, _as_list

    inputs, maps = _as_list(settings.get("midi_in")), _as_list(settings.get("midi_maps"))
    output_name = str(settings.get("midi_out") or "").strip()
    if not (inputs or maps or output_name):
        return None
    server = getattr(engine, "osc_server", None)
    router = MidiRouter(engine.params, on_error=server.report_error if server is not None else None,
                        learn_path=learn_path(str(settings.get("midi_learn_file") or ""),
                                              settings.get(SHOW_FILE_KEY)))
    try:
        for spec in maps:
            router.install(load_midi_map(spec))
        router.load_learned()
    except MidiMapError as exc:
        raise UserError(f"midi_maps: {exc}") from None
    if server is not None:
        router.attach_ticks(server)
    tempo = getattr(getattr(engine, "osc", None), "tempo", None)
    service = MidiService(router, clock=MidiClock(engine.params, tempo) if tempo is not None else None,
                          signals=getattr(engine, "signals", None))
    if service.signals is not None:
        service.declare_routed(settings.get("route") or ())
    try:
        service.inputs = [open_input(name, service.on_message) for name in inputs]
        service.output = open_output(output_name) if output_name else None
    except MidiUnavailable as exc:
        service.close()
        raise UserError(str(exc)) from None
    engine.add_service(service)
    return service
