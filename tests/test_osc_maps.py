"""Rig maps: every shipped map loaded and driven over loopback with its rig's real addresses and value
ranges; the transfer functions (curves, invert, deadband, slew, toggles, triggers); load-time validation
errors that name the file, the line and the key."""
from __future__ import annotations

import math
import textwrap
import time

import pytest
from pythonosc.udp_client import SimpleUDPClient

from bridge.cli import UserError
from bridge.osc import attach
from bridge.osc.maps import SHIPPED_DIR, MapError, Route, load_map
from bridge.params import get_param
from test_osc_support import MiniEngine, wait_until

SHIPPED = sorted(p.stem for p in SHIPPED_DIR.glob("*.toml"))


def test_the_four_rigs_are_shipped():
    assert {"touchdesigner", "resolume", "grandma3", "eos", "touchosc"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_map_loads(name):
    rig_map = load_map(name)
    assert rig_map.routes and rig_map.name == name
    assert all(route.param.live for route in rig_map.routes)


@pytest.fixture
def run_map(tmp_path):
    made = []

    def start(name: str):
        engine = MiniEngine()
        bridge = attach(engine, {"osc_in": "127.0.0.1:0", "osc_out": [], "oscquery": "off", "osc_maps": [name],
                                 "presets": str(tmp_path / "presets.toml")})
        engine.start()
        made.append(engine)
        client = SimpleUDPClient("127.0.0.1", bridge.server.port)

        def send(address, value, settle=True):
            before = bridge.server.counts["datagrams"]
            client.send_message(address, value)
            if settle:
                assert wait_until(lambda: bridge.server.counts["datagrams"] > before), bridge.server.stats()
                time.sleep(0.01)

        return engine.params, send, bridge

    yield start
    for engine in made:
        engine.close()


def test_touchosc_layout(run_map):
    store, send, bridge = run_map("touchosc")
    send("/1/fader1", 0.5)
    assert wait_until(lambda: store.get("psi") == pytest.approx(0.75, abs=1e-3), 2.0)  # slew 0.05 s
    send("/1/fader2", 0.25)
    assert store.get("mix.amount") == pytest.approx(0.25)
    send("/1/fader3", 1.0)
    assert store.get("hand.const.amount") == pytest.approx(1.0)
    send("/1/toggle1", 1.0)
    assert store.get("freeze") is True
    send("/1/toggle1", 0.0)
    assert store.get("freeze") is False
    send("/3/xy", [0.2, 0.8])
    assert store.get("psi") == pytest.approx(0.3) and store.get("mix.amount") == pytest.approx(0.8)
    send("/2/push5", 1.0)  # save preset "1"
    send("/2/push5", 0.0)
    send("/1/fader2", 0.0)
    send("/2/push1", 1.0)  # recall it
    assert store.get("mix.amount") == pytest.approx(0.8)
    assert bridge.presets.names() == ["1"] and bridge.server.counts["errors"] == 0


def test_resolume_composition(run_map):
    store, send, bridge = run_map("resolume")
    send("/composition/dashboard/link1", 1.0)
    assert store.get("psi") == pytest.approx(1.5)
    send("/composition/dashboard/link3", 0.5)
    assert store.get("hand.const.amount") == pytest.approx((math.exp(2) - 1) / (math.exp(4) - 1))
    send("/composition/tempocontroller/tempo", 0.2083333)  # Resolume's normalised 120 BPM
    assert store.get("bpm") == pytest.approx(120.0, abs=0.01)
    send("/composition/tempocontroller/tempo", 0.9)  # 452 BPM in Resolume: beyond our range, held at the top
    assert store.get("bpm") == pytest.approx(300.0)
    send("/composition/layers/1/bypassed", 1)
    assert store.get("freeze") is True
    send("/composition/columns/2/connect", 1)  # no preset "2" yet: refused, counted, nothing changes
    assert bridge.server.errors["unknown"] == 1


def test_grandma3_executors(run_map):
    store, send, bridge = run_map("grandma3")
    send("/gma3/Page1/Fader201", 50)  # the desk's int 0..100
    assert not store.get("psi") == pytest.approx(0.75)  # gliding (slew 0.1 s), not there yet
    assert wait_until(lambda: store.get("psi") == pytest.approx(0.75, abs=2e-3), 3.0)
    send("/gma3/Page1/Fader202", 100.0)
    assert wait_until(lambda: store.get("mix.amount") == pytest.approx(1.0, abs=2e-3), 3.0)
    send("/gma3/Page1/Key201", 1)  # press: toggles freeze on
    send("/gma3/Page1/Key201", 0)  # release: nothing
    assert store.get("freeze") is True
    send("/gma3/Page1/Key201", 1)
    assert store.get("freeze") is False
    for _ in range(3):
        send("/gma3/Page1/Key207", 1)
        send("/gma3/Page1/Key207", 0)
    assert bridge.server.counts["errors"] == 0


def test_eos_show_control_events(run_map):
    store, send, bridge = run_map("eos")
    send("/vrb/psi", 0.4)
    send("/vrb/preset/save", "3")
    send("/vrb/psi", 1.4)
    send("/eos/out/event/cue/1/3/fire", [])  # Eos cue events carry no arguments
    assert store.get("psi") == pytest.approx(0.4)
    send("/eos/out/event/sub/1", 1)  # bump on
    assert store.get("freeze") is True
    send("/eos/out/event/sub/1", 0)  # bump off
    assert store.get("freeze") is False
    send("/eos/out/event/cue/2/3/fire", [])  # another cue list: not mapped, not ours
    assert bridge.server.errors["unknown"] == 1 and bridge.server.counts["errors"] == 1


def test_touchdesigner_channels(run_map):
    store, send, _ = run_map("touchdesigner")
    send("/psi", 0.3)
    send("/seed", 1234.0)  # CHOP channels are floats
    send("/freeze", 1.0)
    send("/bpm", 128.0)
    assert store.get("psi") == pytest.approx(0.3) and store.get("seed") == 1234
    assert store.get("freeze") is True and store.get("bpm") == pytest.approx(128.0)


def test_bad_values_from_a_rig_are_counted(run_map):
    store, send, bridge = run_map("touchosc")
    send("/1/fader1", "loud")
    send("/3/xy", [0.5])  # the y route reads argument 1
    assert bridge.server.errors["type"] == 1 and bridge.server.errors["arity"] == 1
    assert store.get("mix.amount") == get_param("mix.amount").default


def _route(**kw) -> Route:
    return Route(address="/x", param=get_param(kw.pop("param", "psi")), **kw)


def test_curves_are_inverse_and_monotonic():
    exp, log = _route(curve="exp"), _route(curve="log")
    for t in (0.0, 0.1, 0.5, 0.9, 1.0):
        assert log.shape(exp.shape(t)) == pytest.approx(t)
    assert exp.shape(0.5) < 0.5 < log.shape(0.5)
    assert _route(in_range=(0.0, 100.0), invert=True).normalise(25) == pytest.approx(0.75)
    assert _route(in_range=(0.0, 1.0)).normalise(7.0) == 1.0  # clamped to the input range


def test_deadband_ignores_jitter(run_map, tmp_path):
    path = tmp_path / "jitter.toml"
    path.write_text('[[route]]\naddress = "/f"\nparam = "mix.amount"\nin = [0.0, 1.0]\ndeadband = 0.05\n')
    store, send, _ = run_map(str(path))
    send("/f", 0.5)
    send("/f", 0.52)  # inside the deadband
    assert store.get("mix.amount") == pytest.approx(0.5)
    send("/f", 0.6)
    assert store.get("mix.amount") == pytest.approx(0.6)
    send("/f", 1.0)
    assert store.get("mix.amount") == pytest.approx(1.0)


def test_events_without_arguments_fire_triggers_and_maps_combine(run_map, tmp_path):
    path = tmp_path / "desk.toml"
    path.write_text('[[route]]\naddress = "/eos/out/event/cue/1/*/fire"\nparam = "preset.recall"\n'
                    'mode = "trigger"\nvalue = "1"\n')
    store, send, bridge = run_map(f"{path},touchosc")  # a comma list, as `--osc-maps a,b` gives it
    assert [m.name for m in bridge.router.maps] == ["desk", "touchosc"]
    send("/1/fader2", 0.3)
    send("/2/push5", 1.0)  # save preset "1" from TouchOSC
    send("/1/fader2", 0.9)
    send("/eos/out/event/cue/1/7/fire", [])  # the desk fires a cue: an event with no value
    assert store.get("mix.amount") == pytest.approx(0.3)
    send("/1/fader2", 0.9)
    send("/eos/out/event/cue/1/8/fire", [])  # every event fires again (no release needed)
    assert store.get("mix.amount") == pytest.approx(0.3)


def _write(tmp_path, body: str):
    path = tmp_path / "rig.toml"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


@pytest.mark.parametrize("body, line, key, message", [
    ('''
     [map]
     name = "x"

     [[route]]
     address = "/a"
     param = "psi"

     [[route]]
     address = "/b"
     param = "psi"
     curve = "wobbly"
     ''', 11, "route[1].curve", "not one of linear, smooth, ease_in, ease_out, inverse, exp, log"),
    ('''
     [[route]]
     address = "/a"
     param = "psy"
     ''', 3, "route[0].param", "not a live parameter"),
    ('''
     [[route]]
     address = "/a"
     param = "psi"
     mode = "toggle"
     ''', 4, "route[0].mode", "toggle needs a bool"),
    ('''
     [[route]]
     address = "/a"
     param = "psi"
     in = [1.0]
     ''', 4, "route[0].in", "two numbers"),
    ('''
     [[route]]
     address = "/a"
     param = "network"
     ''', 3, "route[0].param", "not a live parameter"),
    ('''
     [[route]]
     address = "/a"
     param = "freeze"
     colour = "red"
     ''', 4, "route[0].colour", "unknown key"),
    ('''
     [[route]]
     address = "a"
     param = "psi"
     ''', 2, "route[0].address", "starting with '/'"),
    ('''
     [[route]]
     address = "/a"
     param = "seed"
     slew = 0.5
     ''', 4, "route[0].slew", "only apply to float"),
    ('''
     [[route]]
     address = "/a"
     param = "mix.coarse"
     in = [0, 1]
     ''', 1, "route[0].part", "part must be"),
    ('''
     [[route]]
     address = "/a"
     param = "preset.recall"
     ''', 1, "route[0].mode", 'use mode = "trigger"'),
])
def test_validation_names_file_line_and_key(tmp_path, body, line, key, message):
    path = _write(tmp_path, body)
    with pytest.raises(MapError) as err:
        load_map(str(path))
    text = str(err.value)
    assert text.startswith(f"{path}:{line}: {key}:"), text
    assert message in text


def test_toml_syntax_errors_and_missing_maps(tmp_path):
    path = _write(tmp_path, '[[route]]\naddress = "/a\n')
    with pytest.raises(MapError, match=r"not valid TOML: .*line 2"):
        load_map(str(path))
    with pytest.raises(MapError, match="shipped maps: .*touchosc"):
        load_map("no-such-rig")


def test_a_bad_map_stops_start_up_with_one_line(tmp_path):
    path = _write(tmp_path, '[[route]]\naddress = "/a"\nparam = "psy"\n')
    with pytest.raises(UserError, match=r"osc_maps: .*rig.toml:3: route\[0\].param"):
        attach(MiniEngine(), {"osc_in": "127.0.0.1:0", "osc_out": [], "oscquery": "off", "osc_maps": [str(path)],
                              "presets": str(tmp_path / "p.toml")})
