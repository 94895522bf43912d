"""The control server on real loopback sockets: every class of bad input, bundles with timetags, patterns,
handlers for other stages, the allow-list, and liblo's oscsend as a second, independent client."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest
from pythonosc.udp_client import SimpleUDPClient

from bridge.cli import UserError
from bridge.osc import attach, codec
from bridge.osc.server import OscServer
from bridge.params import MAX_LIVE_TEXT, ParamError, ParamStore, get_param
from conftest import require_tool
from test_osc_support import Collector, MiniEngine, send_raw, wait_until


@pytest.fixture
def rig(tmp_path):
    """A MiniEngine with the OSC bridge attached (ephemeral ports), telemetry into a Collector."""
    collector = Collector()
    engine = MiniEngine()
    bridge = attach(engine, {"osc_in": "127.0.0.1:0", "osc_out": [collector.endpoint], "oscquery": "off",
                             "presets": str(tmp_path / "presets.toml")})
    engine.start()
    client = SimpleUDPClient("127.0.0.1", bridge.server.port)
    yield engine, bridge.server, client, collector
    engine.close()
    collector.close()


def _settle(server, datagrams: int, timeout: float = 3.0) -> None:
    assert wait_until(lambda: server.counts["datagrams"] >= datagrams, timeout), server.stats()
    time.sleep(0.02)


def test_good_messages_apply_with_unambiguous_coercion(rig):
    engine, server, client, _ = rig
    store = engine.params
    client.send_message("/vrb/psi", 0.25)
    client.send_message("/vrb/seed", 42.0)  # an integral float is an int
    client.send_message("/vrb/freeze", True)
    client.send_message("/vrb/blackout", 1)  # 0/1 is a bool
    client.send_message("/vrb/mix/coarse", [0, 4])
    client.send_message("/vrb/noise_mode", "RANDOM")
    _settle(server, 6)
    assert store.get("psi") == pytest.approx(0.25)
    assert store.get("seed") == 42 and store.get("freeze") is True and store.get("blackout") is True
    assert store.get("mix.coarse") == (0, 4) and store.get("noise_mode") == "random"
    assert server.counts["applied"] == 6 and server.counts["errors"] == 0


@pytest.mark.parametrize("address, args, code", [
    ("/vrb/nope", [1.0], "unknown"),
    ("/psi", [1.0], "unknown"),
    ("/vrb/seed", ["seven"], "type"),
    ("/vrb/seed", [7.5], "type"),
    ("/vrb/freeze", [2], "type"),
    ("/vrb/psi", [float("nan")], "type"),
    ("/vrb/psi", [], "arity"),
    ("/vrb/psi", [0.1, 0.2], "arity"),
    ("/vrb/mix/coarse", [3], "arity"),
    ("/vrb/seed", [-5], "range"),
    ("/vrb/mix/coarse", [0, 99], "range"),
    ("/vrb/noise_mode", ["loud"], "range"),
    ("/vrb/network", ["x.pkl"], "not_live"),
    ("/vrb/mix/[cf", [0, 1], "pattern"),
    ("/vrb/zz*", [1], "unknown"),
    ("/vrb/mix/amount", [False], "type"),  # a bool is not a number (F is not 0.0)
    ("/vrb/seed", [True], "type"),
    ("/vrb/lfo/target", ["noise_mode"], "range"),  # not a live number: refused, not stored
    ("/vrb/lfo/target", ["p" * 8000], "range"),  # live text is bounded (telemetry echoes it)
])
def test_every_bad_message_is_answered_and_changes_nothing(rig, address, args, code):
    engine, server, client, collector = rig
    before = dict(engine.params.snapshot())
    client.send_message(address, args)
    _settle(server, 1)
    assert server.errors[code] == 1, server.stats()
    assert server.counts["errors"] == 1 and server.counts["applied"] == 0
    assert dict(engine.params.snapshot()) == before
    reply = collector.wait_for("/vrb/error", where=lambda a: a[0] == code)
    assert isinstance(reply[1], str) and reply[1]


def test_counters_reach_telemetry(rig):
    engine, server, client, collector = rig
    client.send_message("/vrb/nope", 1)
    client.send_message("/vrb/psi", "x")
    _settle(server, 2)
    collector.wait_for("/vrb/osc/errors/unknown", timeout=2.5, where=lambda a: a[0] == 1)
    collector.wait_for("/vrb/osc/errors/type", timeout=2.5, where=lambda a: a[0] == 1)
    collector.wait_for("/vrb/osc/errors/total", timeout=2.5, where=lambda a: a[0] == 2)
    collector.wait_for("/vrb/osc/datagrams", timeout=2.5, where=lambda a: a[0] == 2)


def test_malformed_and_oversize_packets(rig):
    engine, server, client, collector = rig
    send_raw(b"garbage!", server.port)
    send_raw(b"/vrb/psi\x00\x00\x00\x00,f\x00\x00", server.port)  # float missing
    send_raw(codec.encode_message("/vrb/psi", (0.5,)) + b"\x00" * server.max_packet, server.port)
    _settle(server, 3)
    assert server.errors["malformed"] == 2 and server.errors["oversize"] == 1
    collector.wait_for("/vrb/error", where=lambda a: a[0] == "oversize")
    client.send_message("/vrb/psi", 0.5)  # and it still answers
    assert wait_until(lambda: engine.params.get("psi") == pytest.approx(0.5))


def test_out_of_range_clamps_and_says_so(rig):
    engine, server, client, collector = rig
    client.send_message("/vrb/psi", 9.0)
    _settle(server, 1)
    assert engine.params.get("psi") == get_param("psi").max
    assert server.counts["clamped"] == 1 and server.counts["errors"] == 0
    collector.wait_for("/vrb/error", where=lambda a: a[0] == "clamped" and "/vrb/psi" in a[1])


def test_patterns_select_several_and_fail_as_a_whole(rig):
    engine, server, client, _ = rig
    client.send_message("/vrb/mix/{coarse,fine}", [0, 2])
    _settle(server, 1)
    assert engine.params.get("mix.coarse") == (0, 2) and engine.params.get("mix.fine") == (0, 2)
    assert engine.params.get("mix.middle") == (-1, -1)
    client.send_message("/vrb/mix/*", [0, 3])  # matches the int2 pairs and mix.amount (a float): arity error
    _settle(server, 2)
    assert server.errors["arity"] == 1
    assert engine.params.get("mix.coarse") == (0, 2)  # nothing applied


def test_actions_take_a_string_or_a_button_press(rig, tmp_path):
    engine, server, client, _ = rig
    client.send_message("/vrb/psi", 0.3)
    client.send_message("/vrb/preset/save", "look")
    client.send_message("/vrb/tap", 1.0)
    client.send_message("/vrb/tap", 0.0)  # a button release does nothing
    _settle(server, 4)
    assert "look" in (tmp_path / "presets.toml").read_text()
    assert server.counts["errors"] == 0


def test_bundles_run_now_later_or_late(rig):
    engine, server, client, _ = rig
    now_msgs = [codec.encode_message("/vrb/seed", (11,)), codec.encode_message("/vrb/freeze", (True,), "T")]
    send_raw(codec.encode_bundle(now_msgs), server.port)
    send_raw(codec.encode_bundle([codec.encode_message("/vrb/trunc_cutoff", (3,))], codec.timetag_in(-5)), server.port)
    sent = time.monotonic()
    send_raw(codec.encode_bundle([codec.encode_message("/vrb/psi", (1.25,))], codec.timetag_in(0.4)), server.port)
    _settle(server, 3)
    assert engine.params.get("seed") == 11 and engine.params.get("freeze") is True
    assert engine.params.get("trunc_cutoff") == 3 and server.counts["late"] == 1
    assert engine.params.get("psi") == pytest.approx(0.7)  # not yet
    assert wait_until(lambda: engine.params.get("psi") == pytest.approx(1.25), 3.0)
    assert time.monotonic() - sent >= 0.35  # applied at the tag's time, not on arrival
    assert server.counts["scheduled"] == 1 and server.stats()["pending"] == 0


def test_far_future_bundles_are_refused(rig):
    engine, server, _, _ = rig
    far = codec.encode_bundle([codec.encode_message("/vrb/seed", (5,))], codec.timetag_in(3600))
    send_raw(far, server.port)
    _settle(server, 1)
    assert server.errors["timetag"] == 1 and engine.params.get("seed") == 0


def test_handlers_get_non_parameter_addresses_and_cannot_kill_the_server(rig):
    engine, server, client, _ = rig
    seen = []
    server.add_handler("/vrb/in/h[12]/*/x", lambda address, args, sender: seen.append((address, args, sender[0])))
    server.add_handler("/h1:*", lambda address, args, sender: seen.append((address, args, sender[0])))
    server.add_handler("/boom", lambda *a: 1 / 0)

    def refuse(address, args, sender):
        raise ParamError("hand", "bad keypoint")

    server.add_handler("/refuse", refuse)
    client.send_message("/vrb/in/h1/wrist/x", 0.5)
    client.send_message("/h1:wrist:x", 0.25)  # TouchDesigner channel-name style
    client.send_message("/vrb/in/h3/wrist/x", 0.5)  # no handler, no parameter
    client.send_message("/boom", 1)
    client.send_message("/refuse", 1)
    client.send_message("/vrb/psi", 0.1)
    _settle(server, 6)
    assert seen == [("/vrb/in/h1/wrist/x", (0.5,), "127.0.0.1"), ("/h1:wrist:x", (0.25,), "127.0.0.1")]
    assert server.errors["unknown"] == 1  # /vrb/in/h3/...: neither a handler nor a parameter
    assert server.errors["handler"] == 1  # the ZeroDivisionError
    assert server.errors["invalid"] == 1  # the handler's own ParamError, with its code
    assert engine.params.get("psi") == pytest.approx(0.1)
    assert engine.osc_server is server


def test_allow_list_drops_a_second_loopback_sender():
    store = ParamStore()
    server = OscServer(store, "127.0.0.1", 0, allow=["127.0.0.1"])
    server.start()
    try:
        send_raw(codec.encode_message("/vrb/seed", (9,)), server.port, source="127.0.0.2")
        send_raw(codec.encode_message("/vrb/psi", (0.5,)), server.port, source="127.0.0.1")
        _settle(server, 2)
        assert server.errors["denied"] == 1 and store.get("seed") == 0
        assert store.get("psi") == pytest.approx(0.5)
    finally:
        server.close()


def test_listening_beyond_localhost_needs_an_allow_list():
    with pytest.raises(UserError, match="osc_allow"):
        OscServer(ParamStore(), "0.0.0.0", 7700)
    OscServer(ParamStore(), "0.0.0.0", 7700, allow=["192.168.1.0/24"])  # explicit: accepted (not started)
    with pytest.raises(UserError, match="not an IP address"):
        OscServer(ParamStore(), "0.0.0.0", 7700, allow=["stage-left"])


def test_a_taken_port_is_one_clear_line():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        server = OscServer(ParamStore(), "127.0.0.1", taken.getsockname()[1])
        with pytest.raises(UserError, match="cannot listen"):
            server.start()


def test_liblo_oscsend_drives_the_server(rig):
    oscsend = require_tool("oscsend")
    engine, server, _, _ = rig
    port = str(server.port)
    subprocess.run([oscsend, "localhost", port, "/vrb/psi", "f", "0.75"], check=True, timeout=10)
    subprocess.run([oscsend, f"osc.udp://127.0.0.1:{port}", "/vrb/mix/fine", "ii", "2", "6"], check=True, timeout=10)
    subprocess.run([oscsend, "127.0.0.1", port, "/vrb/freeze", "T"], check=True, timeout=10)
    subprocess.run([oscsend, "127.0.0.1", port, "/vrb/noise_mode", "s", "none"], check=True, timeout=10)
    subprocess.run([oscsend, "127.0.0.1", port, "/vrb/seed", "s", "x"], check=True, timeout=10)
    _settle(server, 5)
    assert engine.params.get("psi") == pytest.approx(0.75) and engine.params.get("mix.fine") == (2, 6)
    assert engine.params.get("freeze") is True and engine.params.get("noise_mode") == "none"
    assert server.errors["type"] == 1


def test_osc_in_off_still_runs_fades_without_a_socket(tmp_path):
    engine = MiniEngine()
    bridge = attach(engine, {"osc_in": "off", "osc_out": [], "oscquery": "off", "presets": str(tmp_path / "p.toml")})
    engine.start()
    try:
        assert bridge.server.describe() == "osc-in off" and bridge.server._sock is None
        bridge.presets.save("low")
        engine.params.set("mix.amount", 0.0)
        bridge.presets.recall("low", fade_s=0.2)  # mix.amount 0.0 -> 1.0 (the default saved)
        assert wait_until(lambda: engine.params.get("mix.amount") == pytest.approx(1.0), 2.0)
    finally:
        engine.close()


@pytest.mark.parametrize("typetag, value, address", [
    ("t", 12345, "/vrb/seed"),  # a timetag is not an int
    ("t", 1, "/vrb/psi"),
    ("c", "r", "/vrb/noise_mode"),  # a char is not a string
    ("c", "p", "/vrb/lfo/target"),
])
def test_osc_timetag_and_char_arguments_are_not_numbers_or_text(rig, typetag, value, address):
    engine, server, _, collector = rig
    before = dict(engine.params.snapshot())
    send_raw(codec.encode_message(address, (value,), typetag), server.port)
    _settle(server, 1)
    assert server.errors["type"] == 1 and server.counts["applied"] == 0, server.stats()
    assert dict(engine.params.snapshot()) == before
    collector.wait_for("/vrb/error", where=lambda a: a[0] == "type" and ("timetag" in a[1] or "char" in a[1]))


def test_every_telemetry_datagram_stays_under_the_cap(rig):
    """Longest live text, a long preset list and error details: nothing sent is over 1472 bytes."""
    engine, server, client, _ = rig
    sizes = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(0.5)
        telemetry = next(s for s in engine.services if getattr(s, "kind", "") == "osc-out")
        telemetry.targets.append(sink.getsockname())
        client.send_message("/vrb/encoder/grid", ["x" * MAX_LIVE_TEXT])
        client.send_message("/vrb/lfo/target", ["y" * 8000])
        telemetry.send_list("/vrb/preset/names", [f"{i:03d}" + "n" * 60 for i in range(100)])
        names = []
        try:
            while True:
                data = sink.recv(65536)
                sizes.append(len(data))
                packet = codec.decode(data)
                if isinstance(packet, codec.Message) and packet.address == "/vrb/preset/names":
                    names += packet.args
        except socket.timeout:
            pass
    assert sizes and max(sizes) <= codec.SAFE_DATAGRAM, max(sizes)
    assert [n[:3] for n in names] == [f"{i:03d}" for i in range(100)]  # split, in order, none lost
    assert telemetry.counts["oversize"] == 0


def test_empty_allow_list_means_this_computer_and_any_loopback_address(tmp_path):
    """Decided: with no allow-list the server is on loopback, so 127.0.0.2 is this computer too; a list
    naming 127.0.0.1 refuses the other loopback addresses."""
    for allow, expect_applied in (((), True), (("127.0.0.1",), False)):
        store = ParamStore()
        server = OscServer(store, "127.0.0.1", 0, allow=allow)
        server.start()
        try:
            send_raw(codec.encode_message("/vrb/psi", (0.5,)), server.port, source="127.0.0.2")
            _settle(server, 1)
            assert (store.get("psi") == pytest.approx(0.5)) is expect_applied
            assert server.errors["denied"] == (0 if expect_applied else 1)
        finally:
            server.close()


def test_telemetry_socket_binds_only_where_its_targets_are():
    from bridge.osc.telemetry import Telemetry

    telemetry = Telemetry(ParamStore(), [("127.0.0.1", 9)])
    try:
        assert telemetry._sock.getsockname()[0] == "127.0.0.1"
    finally:
        telemetry.close()


def test_oscquery_beyond_localhost_warns(caplog, tmp_path):
    engine = MiniEngine()
    with caplog.at_level("WARNING"):
        attach(engine, {"osc_in": "127.0.0.1:0", "osc_out": ["off"], "oscquery": "0.0.0.0:0",
                        "presets": str(tmp_path / "p.toml")})
    engine.close()
    assert any("oscquery listens on 0.0.0.0" in r.getMessage() and "--oscquery 127.0.0.1" in r.getMessage()
               for r in caplog.records)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_RXQ_OVFL is Linux's")
def test_kernel_drops_in_a_burst_are_counted():
    """A burst larger than a (deliberately small) receive buffer while the server is busy: the kernel drops
    some, and every datagram is accounted for, received or counted as a kernel drop."""
    store = ParamStore()
    server = OscServer(store, "127.0.0.1", 0, rcvbuf=4096)
    busy = threading.Event()
    server.add_handler("/test/busy", lambda *_: (busy.set(), time.sleep(0.5)))
    server.start()
    try:
        assert server.kernel_drops == 0 and server.stats()["rcvbuf"] < 64 << 10
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            target = ("127.0.0.1", server.port)
            sock.sendto(codec.encode_message("/test/busy"), target)
            assert busy.wait(2.0)
            burst = 2000
            for _ in range(burst):
                sock.sendto(codec.encode_message("/vrb/seed", (1,)), target)
            time.sleep(0.6)  # the handler returns; the queue drains
            sock.sendto(codec.encode_message("/vrb/psi", (0.5,)), target)  # carries the final drop count
            assert wait_until(lambda: store.get("psi") == pytest.approx(0.5), 5.0)
        received = server.counts["datagrams"]
        assert server.kernel_drops > 0, server.stats()
        assert received + server.kernel_drops == burst + 2, server.stats()
        assert server.stats()["kernel_drops"] == server.kernel_drops
    finally:
        server.close()


def test_recent_incoming_messages_are_in_the_servers_health(rig):
    """The engine holds the control port, so `oscdump 7700` cannot watch it: the server keeps its own list."""
    engine, server, client, _ = rig
    client.send_message("/vrb/psi", 0.25)
    client.send_message("/vrb/seed", "seven")
    send_raw(b"garbage!", server.port)
    _settle(server, 3)
    recent = server.stats()["recent"]
    assert len(recent) == 3
    assert recent[0].endswith("127.0.0.1 /vrb/psi 0.25 -> ok")
    assert recent[1].endswith("/vrb/seed 'seven' -> type") and recent[2].endswith("(not OSC) -> malformed")
    for i in range(40):
        client.send_message("/vrb/psi", i / 100)
    _settle(server, 43)
    assert len(server.stats()["recent"]) == 20  # bounded
