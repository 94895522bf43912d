"""Tempo arbitration: Link, MIDI clock and the audio beat tracker can all drive ``bpm`` and the beat phase;
exactly one does at a time (``tempo.source``; under ``auto`` Link with peers, then MIDI clock, then audio).

The audio is a real click track through the real audio service, MIDI clock is real ``mido`` messages, Link is
two real aalink peers on loopback; time is simulated where the test can (audio, MIDI) so the figures are exact.
"""
from __future__ import annotations

import time

import mido
import pytest

soundfile = pytest.importorskip("soundfile")

from bridge.audio.features import BLOCK_S  # noqa: E402
from bridge.audio.inputs import FileInput  # noqa: E402
from bridge.audio.service import SIGNALS, AudioService  # noqa: E402
from bridge.midi.clock import PPQN, MidiClock  # noqa: E402
from bridge.osc.tempo import CLAIM_HOLD_S, CLOCKS, MANUAL, Tempo  # noqa: E402
from bridge.params import PARAMS_BY_NAME, ParamError, ParamStore  # noqa: E402
from bridge.signals import SignalBus  # noqa: E402
from test_audio_analysis import FILE_RATE, click_track  # noqa: E402
from test_osc_support import wait_until  # noqa: E402

BAND_BPM = 128.0  # the click track (audio)
CLOCK_BPM = 100.0  # the drum machine (MIDI clock)


class Rig:
    """One engine's tempo with a band on the audio input and a drum machine on MIDI clock, in simulated time."""

    def __init__(self, tmp_path, seconds: float = 30.0) -> None:
        self.t = 1000.0
        self.store = ParamStore()
        self.tempo = Tempo(self.store, clock=lambda: self.t)
        path = tmp_path / "band.wav"
        soundfile.write(path, click_track(BAND_BPM, seconds, start=0.3), FILE_RATE)
        source = FileInput(str(path))
        source.open()
        self.blocks = iter(list(source.blocks()))
        bus = SignalBus()
        bus.declare(*SIGNALS)
        self.audio = AudioService(bus, source, self.store, self.tempo, clock=lambda: self.t)
        self.midi = MidiClock(self.store, self.tempo, clock=lambda: self.t)
        self._next_pulse = self.t

    def play(self, seconds: float, midi: bool) -> None:
        """Advance time block by block: the band always plays; the drum machine's pulses only when ``midi``."""
        end = self.t + seconds
        while self.t < end:
            self.t += BLOCK_S
            self.audio.process(next(self.blocks))
            while midi and self._next_pulse <= self.t:
                self.midi.feed(mido.Message("clock"), now=self._next_pulse)
                self._next_pulse += 60.0 / CLOCK_BPM / PPQN
            if not midi:
                self._next_pulse = self.t

    def phase_error_to_midi(self) -> float:
        """Beats between the engine's beat position and the last MIDI beat (every 24th pulse is on a beat)."""
        last_beat = self._next_pulse - (self.midi.pulses % PPQN + 1) * 60.0 / CLOCK_BPM / PPQN
        error = self.tempo.beats(last_beat) % 1.0
        return min(error, 1.0 - error)


def test_the_choices_are_the_clocks():
    assert PARAMS_BY_NAME["tempo.source"].choices == ("auto", *CLOCKS, MANUAL)
    with pytest.raises(ParamError):
        ParamStore().set("tempo.source", "ableton")


def test_auto_midi_clock_outranks_the_band_and_gives_the_tempo_back_when_it_stops(tmp_path):
    rig = Rig(tmp_path)
    rig.play(8.0, midi=False)  # the band alone: audio drives
    assert rig.tempo.owner() == "audio"
    assert abs(rig.store.get("bpm") - BAND_BPM) / BAND_BPM < 0.01, rig.store.get("bpm")
    assert rig.tempo.telemetry()["/vrb/tempo/source"] == "audio"

    rig.play(8.0, midi=True)  # the drum machine starts: MIDI clock takes over at once, the band is refused
    assert rig.tempo.owner() == "midi-clock"
    assert rig.store.get("bpm") == pytest.approx(CLOCK_BPM, abs=0.1)
    assert rig.tempo.refused["audio"] > 0
    assert rig.phase_error_to_midi() < 1e-6  # the beat sits on MIDI's beats, not pulled back to the band's
    assert rig.audio.beat.locked and abs(rig.audio.beat.bpm - BAND_BPM) / BAND_BPM < 0.01  # still measured

    rig.play(CLAIM_HOLD_S / 2, midi=False)  # a short gap (a cable wiggle) does not hand the tempo over
    assert rig.tempo.owner() == "midi-clock" and rig.store.get("bpm") == pytest.approx(CLOCK_BPM, abs=0.1)
    rig.play(CLAIM_HOLD_S + 1.0, midi=False)  # the drum machine is gone: the band drives again
    assert rig.tempo.owner() == "audio"
    assert abs(rig.store.get("bpm") - BAND_BPM) / BAND_BPM < 0.01, rig.store.get("bpm")


def test_a_named_source_wins_and_manual_lets_no_clock_drive(tmp_path):
    rig = Rig(tmp_path)
    rig.store.set("tempo.source", "audio", source="osc")
    rig.play(8.0, midi=True)  # the drum machine runs, but the show follows the band
    assert rig.tempo.owner() == "audio"
    assert abs(rig.store.get("bpm") - BAND_BPM) / BAND_BPM < 0.01, rig.store.get("bpm")
    assert rig.tempo.refused["midi-clock"] > 0 and rig.midi.bpm == pytest.approx(CLOCK_BPM, abs=0.01)

    rig.store.set("tempo.source", MANUAL, source="osc")
    rig.store.set("bpm", 90.0, source="osc")  # the operator's tempo
    before = rig.tempo.beats(rig.t)
    rig.play(6.0, midi=True)
    assert rig.tempo.owner() == MANUAL and rig.store.get("bpm") == 90.0
    assert rig.tempo.beats(rig.t) - before == pytest.approx(6.0 * 90.0 / 60.0, abs=0.1)  # no clock pulled it

    rig.store.set("tempo.source", "auto", source="osc")
    rig.play(1.0, midi=True)
    assert rig.tempo.owner() == "midi-clock" and rig.store.get("bpm") == pytest.approx(CLOCK_BPM, abs=0.1)


def test_link_with_peers_outranks_midi_clock_until_midi_clock_is_chosen():
    """Two real Link peers; the second engine also gets MIDI clock. Under auto the session drives it; with
    tempo.source = midi-clock the drum machine drives it and its tempo is proposed to the session (the booth
    follows)."""
    pytest.importorskip("aalink")
    from bridge.link import LinkService

    stores = [ParamStore({"bpm": 120.0}), ParamStore({"bpm": 120.0})]
    tempos = [Tempo(store) for store in stores]
    peers = [LinkService(store, tempo) for store, tempo in zip(stores, tempos)]
    midi = MidiClock(stores[1], tempos[1])
    for peer in peers:
        peer.start()

    def clock_beat() -> None:
        """One beat of 100 bpm MIDI clock, time-stamped up to now."""
        now = time.monotonic()
        for i in range(PPQN + 1):
            midi.feed(mido.Message("clock"), now=now - (PPQN - i) * 60.0 / CLOCK_BPM / PPQN)

    try:
        if not wait_until(lambda: all(p.peers >= 1 for p in peers), 8.0):
            pytest.skip("Link peers did not find each other: no multicast on this machine's interfaces")
        clock_beat()
        assert tempos[1].owner() == "link" and tempos[1].refused["midi-clock"] > 0
        assert stores[1].get("bpm") == pytest.approx(120.0, abs=0.01)

        stores[1].set("tempo.source", "midi-clock", source="osc")
        clock_beat()
        assert stores[1].get("bpm") == pytest.approx(CLOCK_BPM, abs=0.1)
        assert wait_until(lambda: abs(stores[0].get("bpm") - stores[1].get("bpm")) < 0.01, 5.0), \
            (stores[0].get("bpm"), stores[1].get("bpm"))  # proposed to the session, taken by the other peer
        time.sleep(0.3)  # Link polls on: it must not pull the tempo or phase back while MIDI clock drives
        assert stores[1].get("bpm") == pytest.approx(CLOCK_BPM, abs=0.1)
    finally:
        for peer in peers:
            peer.close()
