"""Tempo: a beat clock from ``bpm`` (set, or tapped on ``/vrb/tap``) and a beat-synced LFO.

The beat position is ``beats(now) = anchor_beats + (now - anchor_time) * bpm / 60``. Changing bpm re-anchors
at the current position so the phase never jumps; ``beat.resync`` makes "now" a downbeat; a tap both sets
bpm (mean interval of the last taps) and puts the beat on the tap.

The LFO drives one live number parameter (``lfo.target``) between ``lfo.low`` and ``lfo.high`` with a period
of ``lfo.beats`` beats. It runs as a server ticker (100 Hz) while a target is set. The parameter table refuses
a target that is not a live number parameter, so it is never stored; a target the LFO cannot drive (a value
its range rejects) stops the LFO, reported once, until the target changes.
Telemetry (every frame): /vrb/beat/phase f (0..1 within the beat), /vrb/beat/count i, /vrb/lfo/value f (0..1),
/vrb/tempo/source s (which clock drives the tempo now).

Arbitration: three external clocks can drive bpm and the beat phase (Ableton Link, MIDI clock, the audio's beat
tracker with ``--audio-tempo``). Each asks :meth:`Tempo.claim` before it writes, so exactly one drives at a
time: the one ``tempo.source`` names, or with ``auto`` the first of :data:`CLOCKS` heard within
:data:`CLAIM_HOLD_S` (Link only while the session has peers, MIDI clock while pulses arrive, audio while its
beat is locked). A clock that stops gives the tempo back after CLAIM_HOLD_S without a jump (bpm stays, the
phase runs on). OSC, tap and the panel always set ``bpm``; while a clock drives, its next estimate wins.

Signals (:data:`SIGNALS`, published on the render thread by :class:`TempoSignals`): ``beat.phase``,
``beat.bar_phase`` and ``lfo`` (the wave of ``lfo.shape`` over ``lfo.beats``, whether or not ``lfo.target``
is set), so any parameter can follow the beat through a route.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

from bridge.params import PARAMS_BY_NAME, ParamError, ParamStore
from bridge.signals import SignalSpec

SOURCE = "tempo"
CLOCKS = ("link", "midi-clock", "audio")  # external tempo drivers, first wins under tempo.source = auto
MANUAL = "manual"  # no clock drives: bpm only from OSC, tap and the panel
CLAIM_HOLD_S = 2.0  # a clock silent this long gives the tempo back (MIDI clock pulses every ~20 ms)
TAP_RESET_S = 2.0  # a gap longer than this starts a new tap sequence
TAP_WINDOW = 8  # taps averaged
SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("beat.phase", 0.0, 1.0, "", "position within the beat: 0 on the beat .. 1 just before the next", "tempo"),
    SignalSpec("beat.bar_phase", 0.0, 1.0, "", "position within a bar of 4 beats", "tempo"),
    SignalSpec("lfo", 0.0, 1.0, "", "the beat-synced LFO wave (lfo.shape over lfo.beats beats)", "tempo"),
)


def wave(shape: str, phase: float) -> float:
    """0..1 output of one LFO shape at ``phase`` in [0, 1)."""
    if shape == "sine":
        return 0.5 - 0.5 * math.cos(2.0 * math.pi * phase)  # starts at the bottom on the downbeat
    if shape == "triangle":
        return 1.0 - abs(2.0 * phase - 1.0)
    if shape == "saw":
        return phase
    return 1.0 if phase < 0.5 else 0.0  # square


class Tempo:
    def __init__(self, store: ParamStore, on_error: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.clock = clock
        self.on_error = on_error or (lambda code, detail: None)
        self._lock = threading.Lock()
        self._anchor_time = clock()
        self._anchor_beats = 0.0
        self._bpm = float(store.get("bpm"))
        self._taps: list[float] = []
        self._bad_target = ""
        self.lfo_value = 0.0
        self._wake: Callable[[], None] = lambda: None
        self._heard: dict[str, float] = {}  # clock -> last time it claimed the tempo
        self.refused: dict[str, int] = {name: 0 for name in CLOCKS}  # claims turned down, per clock
        store.add_listener(self._on_change)

    # -- who drives it --------------------------------------------------------------------------------
    def claim(self, clock_name: str, now: float | None = None) -> bool:
        """An external clock (one of :data:`CLOCKS`) asks to set bpm or the beat phase now.

        Being heard is what makes a clock the owner under ``auto``, so every clock calls this each time it
        would drive, and drives only on True. The one decision of who drives lives here."""
        now = self.clock() if now is None else now
        with self._lock:
            self._heard[clock_name] = now
        if self.owner(now) == clock_name:
            return True
        self.refused[clock_name] = self.refused.get(clock_name, 0) + 1
        return False

    def owner(self, now: float | None = None) -> str:
        """The clock that drives the tempo now, or :data:`MANUAL` when none does."""
        mode = self.store.get("tempo.source")
        if mode != "auto":
            return mode
        now = self.clock() if now is None else now
        with self._lock:
            heard = dict(self._heard)
        for name in CLOCKS:
            if name in heard and now - heard[name] <= CLAIM_HOLD_S:
                return name
        return MANUAL

    # -- the clock ------------------------------------------------------------------------------------
    def beats(self, now: float | None = None) -> float:
        now = self.clock() if now is None else now
        with self._lock:
            return self._anchor_beats + (now - self._anchor_time) * self._bpm / 60.0

    def _reanchor(self, now: float, beats: float, bpm: float) -> None:
        with self._lock:
            self._anchor_time, self._anchor_beats, self._bpm = now, beats, bpm

    def tap(self, now: float | None = None) -> float | None:
        """Register one tap; return the new bpm once two or more taps are close enough together."""
        now = self.clock() if now is None else now
        if self._taps and now - self._taps[-1] > TAP_RESET_S:
            self._taps = []
        self._taps = (self._taps + [now])[-TAP_WINDOW:]
        if len(self._taps) < 2:
            return None
        interval = (self._taps[-1] - self._taps[0]) / (len(self._taps) - 1)
        param = PARAMS_BY_NAME["bpm"]
        bpm = min(param.max, max(param.min, 60.0 / interval))
        self.store.set("bpm", bpm, source=SOURCE)  # re-anchors through _on_change ...
        self._reanchor(now, float(round(self.beats(now))), bpm)  # ... then the tap lands on a beat
        return bpm

    def resync(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        self._reanchor(now, 0.0, self._bpm)

    def align(self, phase: float, now: float | None = None, tolerance: float = 0.0) -> bool:
        """Move the beat position so its fraction is ``phase`` (0..1) now, by the shorter way round, keeping
        bpm; nothing happens when it is already within ``tolerance`` beats. Returns whether it moved.
        An external beat tracker (audio) uses this to lock the LFO and the beat phase to the music."""
        now = self.clock() if now is None else now
        beats = self.beats(now)
        error = (phase - beats) % 1.0
        error = error - 1.0 if error > 0.5 else error
        if abs(error) <= tolerance:
            return False
        self._reanchor(now, beats + error, self._bpm)
        return True

    # -- the LFO --------------------------------------------------------------------------------------
    def tick(self, now: float) -> bool:
        """Set the LFO target for ``now``; return whether the LFO is running (a server ticker)."""
        target = self.store.get("lfo.target")
        if not target or target == self._bad_target:
            return False
        period = float(self.store.get("lfo.beats"))
        self.lfo_value = wave(self.store.get("lfo.shape"), (self.beats(now) / period) % 1.0)
        low, high = float(self.store.get("lfo.low")), float(self.store.get("lfo.high"))
        try:
            self.store.set(target, low + (high - low) * self.lfo_value, source=SOURCE)
        except ParamError as exc:  # e.g. a reject-range target pushed outside its range
            self._bad_target = target
            self.on_error(exc.code, f"LFO stopped: {exc}")
            return False
        return True

    def attach_ticks(self, server) -> None:
        server.add_ticker(self.tick)
        self._wake = server.wake_tickers

    def telemetry(self) -> dict[str, Any]:
        beats = self.beats()
        return {"/vrb/beat/phase": beats % 1.0, "/vrb/beat/count": int(math.floor(beats)),
                "/vrb/lfo/value": float(self.lfo_value), "/vrb/tempo/source": self.owner()}

    def _on_change(self, name: str, value: Any, source: str) -> None:
        now = self.clock()
        if name == "bpm":
            self._reanchor(now, self.beats(now), float(value))
        elif name == "tap":
            self.tap(now)
        elif name == "beat.resync":
            self.resync(now)
        elif name == "lfo.target":
            self._bad_target = ""
            self._wake()


class TempoSignals:
    """The beat clock and the LFO wave as signals, published on the render thread each frame.

    They change with time alone, so :attr:`animated` names them: the engine keeps rendering while a route
    reads one of them.
    """

    animated = tuple(spec.name for spec in SIGNALS)

    def __init__(self, tempo: Tempo, bus) -> None:
        self.tempo = tempo
        self.bus = bus
        bus.declare(*SIGNALS)

    def update(self, keypoints, params, now: float) -> None:
        beats = self.tempo.beats(now)
        period = float(params.get("lfo.beats", 4.0))
        self.bus.publish_many({"beat.phase": beats % 1.0, "beat.bar_phase": (beats / 4.0) % 1.0,
                               "lfo": wave(params.get("lfo.shape", "sine"), (beats / period) % 1.0)},
                              t=now, source="tempo")

