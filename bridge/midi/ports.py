"""MIDI ports through mido's rtmidi backend: list them, open one by (part of) its name, say clearly why not.

This is the one place that touches the MIDI system. On a machine without a MIDI subsystem (Linux without the
ALSA sequencer ``/dev/snd/seq``, e.g. a container or CI) rtmidi cannot even list ports: that becomes one
line (:class:`MidiUnavailable`), and ALSA's own complaint on stderr is silenced.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable


class MidiUnavailable(RuntimeError):
    """MIDI cannot be used here, or the named port does not exist; the message is one line for the user."""


@contextlib.contextmanager
def _quiet_stderr():
    """ALSA prints straight to fd 2 when the sequencer is missing; our one line says it better."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _mido():
    try:
        import mido
    except ImportError:
        raise MidiUnavailable("MIDI needs mido and python-rtmidi (pip install mido python-rtmidi)") from None
    return mido


def _why_not(exc: BaseException) -> str:
    if sys.platform.startswith("linux") and not os.path.exists("/dev/snd/seq"):
        return "no ALSA sequencer on this machine (/dev/snd/seq is missing: load snd-seq, or run outside a container)"
    return f"the MIDI system refused: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"


def list_ports() -> tuple[list[str], list[str]]:
    """(input names, output names); raises MidiUnavailable with the reason when MIDI cannot be used."""
    mido = _mido()
    try:
        with _quiet_stderr():
            return list(mido.get_input_names()), list(mido.get_output_names())
    except Exception as exc:  # noqa: BLE001 - rtmidi raises SystemError/RuntimeError per platform
        raise MidiUnavailable(f"MIDI: {_why_not(exc)}") from None


def pick(wanted: str, names: list[str], what: str) -> str:
    """The port called ``wanted``, or the only one containing it (case-insensitive)."""
    if wanted in names:
        return wanted
    hits = [n for n in names if wanted.lower() in n.lower()]
    if len(hits) == 1:
        return hits[0]
    have = ", ".join(repr(n) for n in names) or "none"
    if not hits:
        raise MidiUnavailable(f"{what}: no MIDI port matches {wanted!r} (ports: {have}; see `vrbridge devices`)")
    raise MidiUnavailable(f"{what}: {wanted!r} matches several MIDI ports ({', '.join(map(repr, hits))}): be more specific")


def open_input(wanted: str, callback: Callable) -> object:
    """Open an input port; ``callback(message)`` runs on rtmidi's thread for every message."""
    mido = _mido()
    inputs, _ = list_ports()
    name = pick(wanted, inputs, "midi_in")
    try:
        with _quiet_stderr():
            return mido.open_input(name, callback=callback)
    except Exception as exc:  # noqa: BLE001
        raise MidiUnavailable(f"midi_in: cannot open {name!r}: {_why_not(exc)}") from None


def open_output(wanted: str) -> object:
    mido = _mido()
    _, outputs = list_ports()
    name = pick(wanted, outputs, "midi_out")
    try:
        with _quiet_stderr():
            return mido.open_output(name)
    except Exception as exc:  # noqa: BLE001
        raise MidiUnavailable(f"midi_out: cannot open {name!r}: {_why_not(exc)}") from None
