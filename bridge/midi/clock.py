"""MIDI clock in: 24 pulses per quarter note drive ``bpm`` and the beat phase of :class:`bridge.osc.tempo.Tempo`.

The tempo is measured over the last beat of pulses (24 intervals), so one late pulse moves it little; it is
written to ``bpm`` (source ``midi-clock``) only when it moved by more than ``min_change``, so a steady clock
does not flood the store. Every 24th pulse is a beat: the beat phase is pulled onto it. ``start`` makes the
next pulse a downbeat; a song position pointer (in sixteenths) sets where in the bar it is. It drives the
tempo only while :meth:`bridge.osc.tempo.Tempo.claim` grants it (``tempo.source``: Link first under auto).
"""
from __future__ import annotations

import collections
import time
from typing import Callable

from bridge.params import PARAMS_BY_NAME, ParamStore

PPQN = 24
SOURCE = "midi-clock"


class MidiClock:
    def __init__(self, store: ParamStore, tempo, clock: Callable[[], float] = time.monotonic,
                 min_change: float = 0.1):
        self.store = store
        self.tempo = tempo
        self.clock = clock
        self.min_change = min_change
        self.pulses = 0  # since start (or since the first pulse)
        self.bpm: float | None = None
        self.running = False
        self._times: collections.deque[float] = collections.deque(maxlen=PPQN + 1)

    def feed(self, msg, now: float | None = None) -> None:
        """One MIDI message (others than clock/start/stop/continue/songpos are ignored)."""
        if not self.store.get("midi.clock"):
            return
        now = self.clock() if now is None else now
        kind = msg.type
        if kind == "start":
            self.pulses, self.running = 0, True
            self._times.clear()
            if self.tempo.claim(SOURCE, now):
                self.tempo.resync(now)
        elif kind == "continue":
            self.running = True
        elif kind == "stop":
            self.running = False
        elif kind == "songpos":
            self.pulses = msg.pos * (PPQN // 4)  # a MIDI beat (sixteenth) is 6 pulses
        elif kind == "clock":
            self._pulse(now)

    def _pulse(self, now: float) -> None:
        self._times.append(now)
        self.pulses += 1
        if len(self._times) == self._times.maxlen:
            span = self._times[-1] - self._times[0]
            if span > 0:
                param = PARAMS_BY_NAME["bpm"]
                beats = (len(self._times) - 1) / PPQN
                self.bpm = min(param.max, max(param.min, 60.0 * beats / span))
        if not self.tempo.claim(SOURCE, now):  # another clock drives the tempo: measure, do not write
            return
        if self.bpm is not None and abs(self.bpm - float(self.store.get("bpm"))) > self.min_change:
            self.store.set("bpm", round(self.bpm, 2), source=SOURCE)
        if self.pulses % PPQN == 0:
            self.tempo.align(0.0, now)
