"""End to end with the real engine (embedded demo network, built-in pattern source): two independent clients
(python-osc and liblo's oscsend) steer it, its telemetry arrives at a python-osc server, OSCQuery shows the
live values, and bad input never stops the frames."""
from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from pythonosc.udp_client import SimpleUDPClient

from conftest import free_port, require_tool
from test_osc_support import Collector, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    import torch

    from bridge.startup import build_engine

    torch.set_num_threads(1)
    collector = Collector()
    dump_port = free_port()
    dump = subprocess.Popen([require_tool("oscdump"), "-L", str(dump_port)], stdout=subprocess.PIPE, text=True)
    engine = build_engine({"osc_in": "127.0.0.1:0", "oscquery": "127.0.0.1:0", "preview": "off",
                           "osc_out": [collector.endpoint, f"127.0.0.1:{dump_port}"],  # two telemetry targets
                           "osc_maps": ["touchosc"], "presets": str(tmp_path_factory.mktemp("e2e") / "presets.toml")})
    engine.start()
    yield engine, collector, dump
    engine.stop()
    collector.close()
    dump.terminate()
    dump.wait(5)


def test_python_osc_and_oscsend_steer_the_running_engine(running):
    engine, collector, _ = running
    server = engine.osc_server
    SimpleUDPClient("127.0.0.1", server.port).send_message("/vrb/psi", 0.33)
    SimpleUDPClient("127.0.0.1", server.port).send_message("/1/fader2", 0.5)  # TouchOSC map -> mix.amount
    oscsend = require_tool("oscsend")
    subprocess.run([oscsend, "127.0.0.1", str(server.port), "/vrb/seed", "i", "77"], check=True, timeout=10)
    assert wait_until(lambda: engine.params.get("seed") == 77, 5.0)
    assert engine.params.get("psi") == pytest.approx(0.33) and engine.params.get("mix.amount") == pytest.approx(0.5)
    # the telemetry of a frame rendered after the change echoes it
    collector.wait_for("/vrb/seed", timeout=60, where=lambda a: a[0] == 77)
    frames = [a[0] for a in collector.values("/vrb/frame")]
    assert frames and frames == sorted(frames)
    collector.wait_for("/vrb/z/coarse/mean", timeout=30)
    collector.wait_for("/vrb/heartbeat", timeout=5)


def test_oscdump_reads_the_engines_telemetry(running):
    engine, _, dump = running
    wanted = {"/vrb/frame i ", "/vrb/fps f ", "/vrb/seed i 77", "/vrb/heartbeat i "}
    for _ in range(50_000):  # oscdump -L: one line per message, flushed; the heartbeat never lets this stall
        line = dump.stdout.readline()
        wanted = {w for w in wanted if w not in line}
        if not wanted:
            break
    assert not wanted, f"oscdump never showed {wanted}"


def test_bad_input_is_answered_and_frames_keep_coming(running):
    engine, collector, _ = running
    server = engine.osc_server
    client = SimpleUDPClient("127.0.0.1", server.port)
    client.send_message("/vrb/seed", -1)
    client._sock.sendto(b"\x00garbage", ("127.0.0.1", server.port))
    collector.wait_for("/vrb/error", timeout=5, where=lambda a: a[0] == "range")
    collector.wait_for("/vrb/error", timeout=5, where=lambda a: a[0] == "malformed")
    rendered = engine.frames_rendered
    assert wait_until(lambda: engine.frames_rendered > rendered, 60.0)
    assert engine.params.get("seed") == 77


def test_oscquery_shows_the_engines_values(running):
    engine, _, _ = running
    port = engine.osc.oscquery.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/vrb/seed?VALUE", timeout=5) as response:
        assert json.loads(response.read()) == {"VALUE": [engine.params.get("seed")]}
