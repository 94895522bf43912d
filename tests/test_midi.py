"""MIDI on real mido Message objects: maps (CC, 14-bit CC, relative encoders, notes, pitch bend; curves,
toggles, triggers), validation errors, learn (armed over real OSC, saved to the map file and read back),
feedback to the controller, MIDI clock -> bpm and beat phase, signals naming.

How deep this goes on a machine without a MIDI system (this CI: no ALSA sequencer, /dev/snd/seq missing):
everything from a mido Message inwards is real; the port layer is exercised as far as rtmidi gets (listing
fails, and that failure is checked to be one clear line from `vrbridge devices` and from `--midi-in`). Feedback
goes to a recording object standing in for the output port, because no port can be opened here. Where the
machine has a sequencer, the virtual-port test runs the whole path: a virtual port -> --midi-in -> parameter.
"""
from __future__ import annotations

import subprocess
import sys
import time

import mido
import pytest
from pythonosc.udp_client import SimpleUDPClient

from bridge.midi import MidiService, signal_of
from bridge.midi.clock import PPQN, MidiClock
from bridge.midi.maps import MidiMapError, MidiRouter, decode_relative, load_midi_map, midi_route
from bridge.midi.ports import MidiUnavailable, list_ports
from bridge.osc.tempo import Tempo
from bridge.params import ParamStore
from test_osc_support import MiniEngine, wait_until

CC = "control_change"


def router_with(tmp_path, text: str) -> tuple[ParamStore, MidiRouter]:
    path = tmp_path / "map.toml"
    path.write_text(text)
    store = ParamStore()
    router = MidiRouter(store)
    router.install(load_midi_map(path))
    return store, router


def test_cc_curves_channels_and_invert(tmp_path):
    store, router = router_with(tmp_path, """
[map]
name = "faders"
[[route]]
cc = 7
channel = 2
param = "psi"
[[route]]
cc = 8
param = "mix.amount"
curve = "exp"
invert = true
""")
    router.dispatch(mido.Message(CC, channel=1, control=7, value=127))  # channel 2 in the file = mido's 1
    assert store.get("psi") == pytest.approx(2.0)  # the table's range [-1, 2]
    router.dispatch(mido.Message(CC, channel=0, control=7, value=0))  # another channel: ignored
    assert store.get("psi") == pytest.approx(2.0) and router.counts["unmapped"] == 1
    router.dispatch(mido.Message(CC, channel=5, control=8, value=0))  # any channel; inverted: 0 -> top
    assert store.get("mix.amount") == pytest.approx(1.0)
    router.dispatch(mido.Message(CC, channel=5, control=8, value=64))
    t = 1 - 64 / 127
    assert store.get("mix.amount") == pytest.approx((2.718281828 ** (4 * t) - 1) / (2.718281828 ** 4 - 1), rel=1e-4)


def test_14_bit_cc_combines_msb_and_lsb(tmp_path):
    store, router = router_with(tmp_path, '[[route]]\ncc = 1\ncc14 = true\nparam = "mix.amount"\n')
    router.dispatch(mido.Message(CC, control=1, value=64))  # MSB
    assert store.get("mix.amount") == pytest.approx((64 << 7) / 16383)
    router.dispatch(mido.Message(CC, control=33, value=100))  # LSB: fine position
    assert store.get("mix.amount") == pytest.approx(((64 << 7) | 100) / 16383)
    router.dispatch(mido.Message(CC, control=1, value=127))
    router.dispatch(mido.Message(CC, control=33, value=127))
    assert store.get("mix.amount") == pytest.approx(1.0)


@pytest.mark.parametrize("style,up,down", [("twos", 1, 127), ("offset", 65, 63), ("signed", 1, 65)])
def test_relative_encoders(tmp_path, style, up, down):
    assert decode_relative(style, up) == 1 and decode_relative(style, down) == -1
    store, router = router_with(tmp_path, f'[[route]]\ncc = 20\nrelative = "{style}"\nstep = 0.1\nparam = "mix.amount"\n'
                                          f'[[route]]\ncc = 21\nrelative = "{style}"\nparam = "seed"\nout = [0, 100]\nin = [0, 127]\n')
    store.set("mix.amount", 0.5)
    router.dispatch(mido.Message(CC, control=20, value=up))
    assert store.get("mix.amount") == pytest.approx(0.6)
    for _ in range(3):
        router.dispatch(mido.Message(CC, control=20, value=down))
    assert store.get("mix.amount") == pytest.approx(0.3)
    for _ in range(20):  # stops at the end of the range
        router.dispatch(mido.Message(CC, control=20, value=up))
    assert store.get("mix.amount") == pytest.approx(1.0)
    router.dispatch(mido.Message(CC, control=21, value=up))  # an int moves at least one step
    assert store.get("seed") == 1


def test_notes_toggle_and_trigger_and_pitch_bend(tmp_path):
    store, router = router_with(tmp_path, """
[[route]]
note = 36
param = "freeze"
mode = "toggle"
[[route]]
note = 37
param = "tap"
mode = "trigger"
[[route]]
pitchbend = true
param = "hand.transform.rotate"
""")
    taps = []
    store.add_listener(lambda name, value, source: taps.append(source) if name == "tap" else None)
    router.dispatch(mido.Message("note_on", note=36, velocity=10))  # a soft press still counts
    router.dispatch(mido.Message("note_off", note=36))
    assert store.get("freeze") is True
    router.dispatch(mido.Message("note_on", note=36, velocity=100))
    router.dispatch(mido.Message("note_on", note=36, velocity=0))  # velocity 0 = release
    assert store.get("freeze") is False
    router.dispatch(mido.Message("note_on", note=37, velocity=90))
    router.dispatch(mido.Message("note_off", note=37))
    assert taps == ["midi:map"]
    router.dispatch(mido.Message("pitchwheel", pitch=8191))
    assert store.get("hand.transform.rotate") == pytest.approx(4.0)
    router.dispatch(mido.Message("pitchwheel", pitch=-8192))
    assert store.get("hand.transform.rotate") == pytest.approx(-4.0)


@pytest.mark.parametrize("text,where", [
    ('[[route]]\nparam = "psi"\n', "exactly one of cc"),
    ('[[route]]\ncc = 200\nparam = "psi"\n', "route[0].cc: must be 0-127"),
    ('[[route]]\ncc = 40\ncc14 = true\nparam = "psi"\n', "cc14"),
    ('[[route]]\ncc = 1\nchannel = 17\nparam = "psi"\n', "channel: must be 1-16"),
    ('[[route]]\ncc = 1\nparam = "network"\n', "not a live parameter"),
    ('\n\n[[route]]\ncc = 1\nparam = "psi"\ncurve = "wobbly"\n', ":6: route[0].curve"),
    ('[[route]]\nnote = 1\nrelative = "twos"\nparam = "psi"\n', "relative"),
])
def test_bad_maps_name_file_line_and_key(tmp_path, text, where):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(MidiMapError, match=None) as info:
        load_midi_map(path)
    assert where in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_learn_armed_over_osc_is_saved_and_read_back(tmp_path):
    from bridge.osc import attach

    engine = MiniEngine()
    bridge = attach(engine, {"osc_in": "127.0.0.1:0", "osc_out": [], "oscquery": "off",
                             "presets": str(tmp_path / "p.toml")})
    learn_file = tmp_path / "learned.toml"
    router = MidiRouter(engine.params, on_error=bridge.server.report_error, learn_path=learn_file)
    router.load_learned()
    engine.start()
    try:
        SimpleUDPClient("127.0.0.1", bridge.server.port).send_message("/vrb/midi/learn", "psi")
        assert wait_until(lambda: router.armed == "psi")
        router.dispatch(mido.Message(CC, channel=3, control=74, value=127))  # the knob the performer moved
        assert router.armed == "" and learn_file.is_file()
        router.dispatch(mido.Message(CC, channel=3, control=74, value=0))
        assert engine.params.get("psi") == pytest.approx(-1.0)  # bound at once
        SimpleUDPClient("127.0.0.1", bridge.server.port).send_message("/vrb/midi/learn", "network")
        assert wait_until(lambda: bridge.server.stats()["errors"] >= 1)  # not learnable: reported, not armed
        assert router.armed == ""
    finally:
        engine.close()
    engine.params.set("midi.learn", "freeze")  # a note learned onto a bool toggles
    router.dispatch(mido.Message("note_on", channel=0, note=40, velocity=99))
    reread = load_midi_map(learn_file)
    assert [(r.kind, r.number, r.channel, r.param.name, r.route.mode) for r in reread.routes] == [
        ("cc", 74, 3, "psi", "value"), ("note", 40, 0, "freeze", "toggle")]
    engine.params.set("midi.learn", "mix.amount")  # re-learning the same knob rebinds it
    router.dispatch(mido.Message(CC, channel=3, control=74, value=5))
    assert [r.param.name for r in load_midi_map(learn_file).routes] == ["freeze", "mix.amount"]


class RecordingPort:
    """Stands in for a MIDI output port (none can be opened on a machine without a MIDI system)."""

    def __init__(self):
        self.sent: list = []

    def send(self, message) -> None:
        self.sent.append(message)

    def close(self) -> None:
        pass


def test_feedback_goes_back_to_the_controller(tmp_path):
    store, router = router_with(tmp_path, """
[[route]]
cc = 7
param = "psi"
curve = "log"
[[route]]
cc = 2
cc14 = true
param = "mix.amount"
[[route]]
note = 36
param = "freeze"
mode = "toggle"
[[route]]
cc = 9
relative = "twos"
param = "seed"
out = [0, 10]
in = [0, 127]
""")
    port = RecordingPort()
    service = MidiService(router, output=port)
    service.start()
    store.set("psi", 2.0, source="osc")
    store.set("mix.amount", 0.5, source="panel")
    store.set("freeze", True, source="osc")
    store.set("seed", 3, source="osc")  # an endless encoder has no position to show
    sent = [(m.type, m.dict().get("control", m.dict().get("note")), m.dict().get("value", m.dict().get("velocity")))
            for m in port.sent]
    assert sent[0] == (CC, 7, 127)
    assert sent[1:3] == [(CC, 2, 8192 >> 7), (CC, 34, 8192 & 0x7F)]  # 0.5 of 16383 rounded, MSB then LSB
    assert sent[3] == ("note_on", 36, 127) and len(sent) == 4
    # a curve's feedback is its exact inverse: the value the controller sends back maps to the same psi
    store.set("psi", 0.3, source="osc")
    echo = port.sent[-1]
    router.dispatch(echo)  # as if the motor fader reported where it went
    assert store.get("psi") == pytest.approx(0.3, abs=0.05)
    before = len(port.sent)
    router.dispatch(mido.Message(CC, control=7, value=50))  # a change from the controller is not echoed
    assert len(port.sent) == before
    service.close()


def test_midi_clock_sets_bpm_and_the_beat(tmp_path):
    store = ParamStore()
    now = [100.0]
    tempo = Tempo(store, clock=lambda: now[0])
    clock = MidiClock(store, tempo, clock=lambda: now[0])
    clock.feed(mido.Message("start"))
    interval = 60.0 / 128.0 / PPQN
    for pulse in range(1, 4 * PPQN + 1):
        now[0] += interval
        clock.feed(mido.Message("clock"))
        if pulse % PPQN == 0:
            assert tempo.beats(now[0]) % 1.0 == pytest.approx(0.0, abs=1e-6) or \
                tempo.beats(now[0]) % 1.0 == pytest.approx(1.0, abs=1e-6)
    assert store.get("bpm") == pytest.approx(128.0, abs=0.01)
    assert round(tempo.beats(now[0])) == 4
    store.set("midi.clock", False)  # not following: the clock changes nothing
    for _ in range(2 * PPQN):
        now[0] += interval / 2
        clock.feed(mido.Message("clock"))
    assert store.get("bpm") == pytest.approx(128.0, abs=0.01)


def test_signal_names():
    assert signal_of(mido.Message(CC, channel=0, control=7, value=127)) == ("midi.cc.1.7", 1.0, 0.0)
    assert signal_of(mido.Message("note_off", channel=9, note=36)) == ("midi.note.10.36", 0.0, 0.0)
    assert signal_of(mido.Message("pitchwheel", channel=1, pitch=-8192))[0:2] == ("midi.pitchbend.2", -1.0)
    assert signal_of(mido.Message("clock")) is None


def test_route_entries_are_checked_without_a_file():
    route = midi_route({"cc": 3, "param": "psi", "out": [0.0, 1.0]}, 0, "x")
    assert route.route.in_range == (0.0, 127.0) and route.route.out_range == (0.0, 1.0)


def _midi_system() -> bool:
    try:
        list_ports()
    except MidiUnavailable:
        return False
    return True


def test_port_layer_says_why_in_one_line():
    """Here (no ALSA sequencer) listing fails: one line from `vrbridge devices` and from --midi-in."""
    result = subprocess.run([sys.executable, "-m", "bridge", "devices"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr + result.stdout
    midi = result.stdout.split("MIDI ports", 1)[1].strip().splitlines()
    assert len(midi) >= 2
    if not _midi_system():
        assert len(midi) == 2 and "MIDI:" in midi[1] and "ALSA" not in result.stderr
    from bridge.cli import UserError
    from bridge.midi import attach, preflight_problem

    problem = preflight_problem({"midi_in": ["surely-not-a-port-xyz"]})  # before the model loads
    assert problem.startswith("midi_in: ") and "\n" not in problem
    assert preflight_problem({}) == ""
    engine = MiniEngine()
    with pytest.raises(UserError) as info:
        attach(engine, {"midi_in": ["surely-not-a-port-xyz"]})
    assert "\n" not in str(info.value) and ("MIDI" in str(info.value) or "no MIDI port matches" in str(info.value))


@pytest.mark.skipif(not _midi_system(), reason="no MIDI system here (no ALSA sequencer): see the module docstring")
def test_virtual_port_end_to_end(tmp_path):
    from bridge.midi import attach

    path = tmp_path / "m.toml"
    path.write_text('[[route]]\ncc = 7\nparam = "psi"\n')
    with mido.open_output("vrb-test-controller", virtual=True) as controller:
        engine = MiniEngine()
        service = attach(engine, {"midi_in": ["vrb-test-controller"], "midi_maps": [str(path)]})
        engine.start()
        try:
            controller.send(mido.Message(CC, control=7, value=127))
            assert wait_until(lambda: engine.params.get("psi") == pytest.approx(2.0), 5.0)
        finally:
            service.close()


def test_midi_values_become_signals_a_route_can_read():
    from bridge.routes import parse_route
    from bridge.signals import SignalBus

    bus = SignalBus()
    router = MidiRouter(ParamStore())
    service = MidiService(router, signals=bus)
    service.declare_routed([{"from": "midi.cc.1.74", "to": "psi"}, {"from": "midi.cc.1.999", "to": "psi"}])
    assert bus.known("midi.cc.1.74") and not bus.known("midi.cc.1.999")
    route = parse_route({"from": "midi.cc.1.74", "to": "psi"}, {s.name: s for s in bus.specs()})
    router.dispatch(mido.Message(CC, channel=0, control=74, value=127))
    router.dispatch(mido.Message("pitchwheel", channel=2, pitch=-8192))
    assert bus.value("midi.cc.1.74") == 1.0 and bus.value("midi.pitchbend.3") == -1.0
    assert route.source == "midi.cc.1.74" and bus.spec("midi.pitchbend.3").low == -1.0


def test_feedback_skips_what_the_controller_already_shows(tmp_path):
    store, router = router_with(tmp_path, '[[route]]\ncc = 7\nparam = "mix.amount"\n')
    port = RecordingPort()
    service = MidiService(router, output=port)
    service.start()
    for i in range(100):  # an LFO's fine steps: many land on the same 7-bit value
        store.set("mix.amount", 0.5 + i * 0.00001, source="tempo")
    assert [m.value for m in port.sent] == [64]
    service.close()
