"""The audio service: input -> features -> automatic gain -> ``audio.*`` signals, on its own thread.

    sound card / file ──BLOCK──► BlockFeatures ──► AutoGain ──► signal bus (audio.*)
                                      └── flux ──► OnlineBeat ──► bpm + beat phase (``--audio-tempo``)

Latency: one block (BLOCK / SR = 23.2 ms) from a sound to its features, plus the analysis time (BENCHMARKS.md).

The show never stops for sound. A missing device, an unreadable file or a device that vanishes mid-show is
logged as one line (again only when the reason changes), counted on the bus, and retried with the sources'
back-off (0.5 s doubling to 5 s). Meanwhile the signals hold their last value for HOLD_S and then ease to rest
(0) with a time constant of EASE_S, so routes driven by them glide back instead of freezing or jumping.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Callable

import numpy as np

from bridge.audio.beat import OnlineBeat
from bridge.audio.features import BLOCK, BLOCK_S, SR, BlockFeatures
from bridge.audio.gain import AutoGain
from bridge.audio.inputs import AudioInputError
from bridge.signals import SignalSpec
from bridge.sources.base import Backoff

log = logging.getLogger(__name__)
SOURCE = "audio"
HOLD_S = 0.5
EASE_S = 0.5
MIN_BPM_CHANGE = 0.2  # bpm: smaller changes of the estimate do not touch the engine's tempo
MIN_PHASE_ERROR = 0.04  # beats: the engine's beat phase is re-aligned when it is further off than this
# floors of the automatic gain (raw units of BlockFeatures): quieter than this is treated as silence
GAIN_FLOORS = {"rms": 0.003, "low": 0.003, "mid": 0.003, "high": 0.002, "flux": 0.2}

SIGNALS: tuple[SignalSpec, ...] = tuple(SignalSpec(name, low, high, unit, text, SOURCE) for name, low, high, unit, text in (
    ("audio.rms", 0.0, 1.0, "", "Level (RMS of the block) under automatic gain."),
    ("audio.low", 0.0, 1.0, "", "Energy below 250 Hz (kick, bass) under automatic gain."),
    ("audio.mid", 0.0, 1.0, "", "Energy 250 Hz - 4 kHz (voice, instruments) under automatic gain."),
    ("audio.high", 0.0, 1.0, "", "Energy above 4 kHz (hats, air) under automatic gain."),
    ("audio.flux", 0.0, 1.0, "", "Spectral flux (how much the spectrum just changed) under automatic gain."),
    ("audio.onset", 0.0, 1.0, "", "1 on each detected onset, decaying over audio.onset.decay_s."),
    ("audio.percussive", 0.0, 1.0, "", "Share of percussive (vs harmonic) energy in the block."),
    ("audio.beat", 0.0, 1.0, "", "1 on each tracked beat, decaying over audio.onset.decay_s (0 until locked)."),
    ("audio.beat_phase", 0.0, 1.0, "", "Position within the tracked beat (0 = on the beat)."),
    ("audio.bpm", 0.0, 300.0, "bpm", "Tempo estimate (0 until one is found)."),
))
GAINED = ("rms", "low", "mid", "high", "flux")


class AudioService:
    """Engine service (start/close/stats/describe) publishing ``audio.*`` on ``bus``.

    ``params`` is the engine's ParamStore (live audio.* rows, and ``bpm`` when ``tempo`` is given);
    ``tempo`` is the OSC layer's :class:`bridge.osc.tempo.Tempo` to drive (``--audio-tempo``), or None.
    """

    def __init__(self, bus, audio_input, params=None, tempo=None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bus = bus
        self.input = audio_input
        self.params = params
        self.tempo = tempo
        self.clock = clock
        self.features = BlockFeatures()
        self.beat = OnlineBeat(SR / BLOCK)
        self.gain = AutoGain(GAIN_FLOORS)
        self.values: dict[str, float] = {spec.name: 0.0 for spec in SIGNALS}
        self.status = "starting"
        self.last_error = ""
        self.blocks = 0
        self.onsets = 0
        self.errors = 0
        self.reconnects = 0
        self.ms = 0.0
        self.tempo_updates = 0
        self._open = False
        self._ever_open = False
        self._backoff = Backoff()
        self._last_block_at = 0.0
        self._last_publish = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._taps: list[Callable[[Any], None]] = []
        self.rate = SR

    def add_tap(self, fn: Callable[[Any], None]) -> None:
        """``fn(block)`` gets every mono block at ``rate`` on the audio thread (the recorder's sound track)."""
        self._taps.append(fn)

    # -- service interface --------------------------------------------------------------------------
    def start(self) -> None:
        self.bus.declare(*SIGNALS)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="audio", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        self._close_input()
        self.status = "closed"

    def stats(self) -> dict[str, Any]:
        return {"status": self.status, "blocks": self.blocks, "onsets": self.onsets, "reconnects": self.reconnects,
                "errors": self.errors, "ms_per_block": round(self.ms, 3), "bpm": round(self.beat.bpm, 2),
                "tempo_confidence": round(self.beat.confidence, 2), "last_error": self.last_error}

    def describe(self) -> str:
        drive = ", driving bpm and beat phase" if self.tempo is not None else ""
        return (f"audio: {self.input.describe()}, {SR} Hz, blocks of {BLOCK} "
                f"(latency {BLOCK_S * 1000:.1f} ms){drive}")

    # -- the loop -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._open and not self._try_open():
                self._ease()
                continue
            try:
                block = self.input.read(0.1)
            except Exception as exc:  # noqa: BLE001 - a vanished device: say so once, ease, retry
                self._lost(exc)
                continue
            if block is None:
                self._ease()
                continue
            try:
                self.process(block)
            except Exception as exc:  # noqa: BLE001 - one bad block costs that block, never the thread
                self.errors += 1
                if self.errors <= 3:
                    log.warning("audio: analysing a block failed: %s: %s", type(exc).__name__, exc)
                self.bus.report_error(SOURCE, exc)

    def _try_open(self) -> bool:
        if not self._backoff.wait(0.1):
            return False
        try:
            self.input.open()
        except Exception as exc:  # noqa: BLE001 - AudioInputError, or anything PortAudio raises
            self._failed(exc)
            return False
        self._open = True
        if self._ever_open:
            self.reconnects += 1
        self._ever_open = True
        self._backoff.succeeded()
        self._last_block_at = self.clock()
        self.status = "running"
        self.last_error = ""
        log.info("audio: %s", self.input.describe())
        return True

    def _failed(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, AudioInputError) else f"{type(exc).__name__}: {exc}"
        if message != self.last_error:
            log.warning("%s; the picture goes on, retrying every %.1f-%.0f s", message, Backoff.START_S,
                        Backoff.MAX_S)
            self.bus.report_error(SOURCE, exc)
        self.last_error = message
        self.status = f"retrying: {message}"
        self._backoff.failed()

    def _lost(self, exc: BaseException) -> None:
        self._close_input()
        self._failed(exc)

    def _close_input(self) -> None:
        if self._open:
            try:
                self.input.close()
            except Exception as exc:  # noqa: BLE001
                log.debug("audio: close failed: %s", exc)
        self._open = False

    # -- one block ----------------------------------------------------------------------------------
    def process(self, block) -> dict[str, float]:
        """Features of one block -> signals (and the engine's tempo when driven). Returns what was published."""
        t0 = time.perf_counter()
        now = self.clock()
        block = np.nan_to_num(np.asarray(block, np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
        snapshot = self.params.snapshot() if self.params is not None else {}
        self.features.threshold = float(snapshot.get("audio.onset.threshold", self.features.threshold))
        self.gain.frozen = bool(snapshot.get("audio.gain.freeze", False))
        self.gain.release_s = float(snapshot.get("audio.gain.release_s", self.gain.release_s))
        decay = math.exp(-BLOCK_S / max(float(snapshot.get("audio.onset.decay_s", 0.15)), 1e-3))
        for tap in list(self._taps):
            try:
                tap(block)
            except Exception as exc:  # noqa: BLE001 - a broken recording must not stop the analysis
                self._taps.remove(tap)
                log.warning("audio: recording tap failed, sound recording stopped: %s", exc)
                self.bus.report_error(SOURCE, exc)
        raw = self.features.step(block)
        out = self.gain.apply(raw, BLOCK_S)
        values = {f"audio.{name}": out[name] for name in GAINED}
        values["audio.percussive"] = raw["percussive"]
        values["audio.onset"] = 1.0 if raw["onset"] else self.values["audio.onset"] * decay
        self.onsets += int(raw["onset"])
        if self.beat.step(raw["flux"]):
            self._drive_tempo(now)
        values.update(self._beat_values(decay))
        self.values.update(values)
        self.bus.publish_many(values, source=SOURCE)
        self.blocks += 1
        self._last_block_at = self._last_publish = now
        ms = (time.perf_counter() - t0) * 1000.0
        self.ms = ms if self.blocks == 1 else self.ms * 0.95 + ms * 0.05
        return values

    def _beat_values(self, decay: float) -> dict[str, float]:
        if not self.beat.locked:
            return {"audio.beat": self.values["audio.beat"] * decay, "audio.beat_phase": 0.0,
                    "audio.bpm": self.beat.bpm}
        phase = self.beat.phase()
        wrapped = phase < self.values["audio.beat_phase"] - 0.5  # the phase went round: a beat
        pulse = 1.0 if wrapped else self.values["audio.beat"] * decay
        return {"audio.beat": pulse, "audio.beat_phase": phase, "audio.bpm": self.beat.bpm}

    def _drive_tempo(self, now: float) -> None:
        """``--audio-tempo``: the engine's bpm follows the estimate, its beat phase follows the audio's."""
        if self.tempo is None or self.params is None or not self.beat.locked:
            return
        if not self.tempo.claim(SOURCE, now):  # Link or MIDI clock drives the tempo (tempo.source)
            return
        try:
            if abs(float(self.params.get("bpm")) - self.beat.bpm) >= MIN_BPM_CHANGE:
                self.params.set("bpm", round(self.beat.bpm, 2), source=SOURCE)
            self.tempo.align(self.beat.phase(), now, tolerance=MIN_PHASE_ERROR)
            self.tempo_updates += 1
        except Exception as exc:  # noqa: BLE001 - the picture must not depend on the tempo link
            self.bus.report_error(SOURCE, exc)

    def _ease(self) -> None:
        """No sound: hold the values for HOLD_S, then glide them to 0 (published at most every block)."""
        now = self.clock()
        quiet = now - self._last_block_at
        if quiet < HOLD_S or now - self._last_publish < BLOCK_S or not any(self.values.values()):
            return
        factor = math.exp(-(now - max(self._last_publish, self._last_block_at + HOLD_S)) / EASE_S)
        eased = {name: (value * factor if abs(value * factor) > 1e-3 else 0.0) for name, value in self.values.items()}
        self.values.update(eased)
        self.bus.publish_many(eased, source=SOURCE)
        self._last_publish = now
