"""OSCQuery over real HTTP: the tree generated from the parameter table, checked against the shapes of the
Vidvox proposal (FULL_PATH, CONTENTS, TYPE, RANGE, VALUE, ACCESS, DESCRIPTION, HOST_INFO, ?ATTRIBUTE), and
its WebSocket LISTEN driven by a real aiohttp client with real OSC coming in over UDP."""
from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request

import pytest
from pythonosc.udp_client import SimpleUDPClient

from bridge.osc import attach
from bridge.params import PARAMS
from test_osc_support import MiniEngine, wait_until


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    engine = MiniEngine()
    bridge = attach(engine, {"osc_in": "127.0.0.1:0", "osc_out": [], "oscquery": "127.0.0.1:0",
                             "presets": str(tmp_path_factory.mktemp("q") / "p.toml")})
    engine.start()
    yield engine, bridge, f"http://127.0.0.1:{bridge.oscquery.port}"
    engine.close()


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
            return response.status, (json.loads(body) if body else None), response.headers.get("Content-Type")
    except urllib.error.HTTPError as err:
        return err.code, None, None


def _walk(node):
    yield node
    for child in node.get("CONTENTS", {}).values():
        yield from _walk(child)


def test_the_whole_tree_describes_every_live_parameter(live):
    engine, _, base = live
    status, tree, content_type = _get(base + "/")
    assert status == 200 and content_type == "application/json"
    assert tree["FULL_PATH"] == "/" and "vrb" in tree["CONTENTS"]
    nodes = {node["FULL_PATH"]: node for node in _walk(tree)}
    for node in nodes.values():
        assert isinstance(node.get("DESCRIPTION", ""), str)
        for name, child in node.get("CONTENTS", {}).items():
            assert child["FULL_PATH"] == node["FULL_PATH"].rstrip("/") + "/" + name  # paths nest
        if "TYPE" in node:
            assert node["ACCESS"] in (1, 2, 3)
            if "VALUE" in node:
                assert isinstance(node["VALUE"], list) and len(node["VALUE"]) == len(node["TYPE"])
            if "RANGE" in node:
                assert isinstance(node["RANGE"], list) and len(node["RANGE"]) == len(node["TYPE"])
                for entry in node["RANGE"]:
                    assert set(entry) <= {"MIN", "MAX", "VALS"} and entry
    live_params = [p for p in PARAMS if p.live]
    for param in live_params:
        node = nodes[param.osc_address]
        assert node["TYPE"] == param.osc_typetags and node["DESCRIPTION"] == param.description
        assert node["ACCESS"] == (2 if param.kind == "action" else 3)
    # start-up settings are not OSC methods (their path may still be a container of live rows, e.g. /vrb/audio)
    assert not any("TYPE" in nodes.get(p.osc_address, {}) for p in PARAMS if not p.live)


def test_node_shapes_match_the_proposal(live):
    _, _, base = live
    psi = _get(base + "/vrb/psi")[1]
    assert psi["TYPE"] == "f" and psi["RANGE"] == [{"MIN": -1.0, "MAX": 2.0}] and psi["CLIPMODE"] == ["both"]
    coarse = _get(base + "/vrb/mix/coarse")[1]
    assert coarse["TYPE"] == "ii" and coarse["VALUE"] == [-1, -1] and coarse["RANGE"] == [{"MIN": -1, "MAX": 64}] * 2
    assert coarse["CLIPMODE"] == ["none", "none"]  # out-of-range pairs are rejected, not clipped
    noise = _get(base + "/vrb/noise_mode")[1]
    assert noise["RANGE"] == [{"VALS": ["const", "random", "none"]}] and noise["VALUE"] == ["const"]
    freeze = _get(base + "/vrb/freeze")[1]
    assert freeze["TYPE"] == "T" and freeze["VALUE"] == [False]
    recall = _get(base + "/vrb/preset/recall")[1]
    assert recall["ACCESS"] == 2 and "VALUE" not in recall
    assert _get(base + "/vrb/bpm")[1]["UNIT"] == ["bpm"]


def test_values_are_live_and_single_attributes_answer(live):
    engine, bridge, base = live
    SimpleUDPClient("127.0.0.1", bridge.server.port).send_message("/vrb/psi", 1.25)
    assert wait_until(lambda: engine.params.get("psi") == pytest.approx(1.25))
    status, body, _ = _get(base + "/vrb/psi?VALUE")
    assert status == 200 and body == {"VALUE": [1.25]}
    assert _get(base + "/vrb/psi?TYPE")[1] == {"TYPE": "f"}


def test_host_info_and_errors(live):
    _, bridge, base = live
    status, info, _ = _get(base + "/?HOST_INFO")
    assert status == 200 and info["OSC_PORT"] == bridge.server.port and info["OSC_IP"] == "127.0.0.1"
    assert info["OSC_TRANSPORT"] == "UDP" and info["EXTENSIONS"]["VALUE"] is True
    assert info["EXTENSIONS"]["LISTEN"] is True  # WebSocket streaming on the same port
    assert _get(base + "/vrb/nope")[0] == 404
    assert _get(base + "/vrb/psi?COLOUR")[0] == 400
    assert _get(base + "/vrb?VALUE")[0] == 204  # a container has no value
    assert _get(base + "/vrb/psi?VALUE")[0] == 200  # and the server is still fine


def _listen_for(base: str, script, timeout: float = 10.0):
    """Run ``script(ws)`` against a LISTEN WebSocket of the server at ``base``."""
    import aiohttp

    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(base.replace("http", "ws") + "/") as ws:
                return await asyncio.wait_for(script(ws), timeout)

    return asyncio.run(main())


def _next_osc(ws):
    from bridge.osc.codec import decode

    async def receive():
        message = await ws.receive()
        assert message.type.name == "BINARY", message
        packet = decode(message.data)
        return packet.address, tuple(packet.args)

    return receive()


def test_listen_pushes_changes_from_osc_as_osc_packets(live):
    engine, bridge, base = live
    osc = SimpleUDPClient("127.0.0.1", bridge.server.port)

    async def script(ws):
        await ws.send_str(json.dumps({"COMMAND": "LISTEN", "DATA": "/vrb/psi"}))
        await ws.send_str(json.dumps({"COMMAND": "LISTEN", "DATA": "/vrb/freeze"}))
        await ws.send_str("not json")  # counted, ignored
        await ws.send_str(json.dumps({"COMMAND": "LISTEN", "DATA": "/vrb/nope"}))
        await asyncio.sleep(0.2)  # the commands are read before the changes arrive
        osc.send_message("/vrb/psi", 0.25)
        first = await _next_osc(ws)
        osc.send_message("/vrb/freeze", True)
        second = await _next_osc(ws)
        engine.params.set("freeze", False)
        third = await _next_osc(ws)
        await ws.send_str(json.dumps({"COMMAND": "IGNORE", "DATA": "/vrb/psi"}))
        await asyncio.sleep(0.2)
        osc.send_message("/vrb/psi", 0.5)
        engine.params.set("freeze", True)
        fourth = await _next_osc(ws)  # psi is ignored now: the next packet is freeze
        engine.params.set("freeze", False)
        return first, second, third, fourth

    bad_before = bridge.oscquery.bad_commands
    first, second, third, fourth = _listen_for(base, script)
    assert first[0] == "/vrb/psi" and first[1][0] == pytest.approx(0.25)
    assert second == ("/vrb/freeze", (True,)) and third == ("/vrb/freeze", (False,))
    assert fourth == ("/vrb/freeze", (True,))
    assert bridge.oscquery.bad_commands - bad_before == 2


def test_early_disconnects_are_counted_not_traced(live, caplog):
    _, bridge, base = live
    port = bridge.oscquery.port
    before = bridge.oscquery.web.stats()
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST before the answer is read
    assert _get(base + "/vrb/psi?TYPE")[1] == {"TYPE": "f"}  # still serving
    assert "Traceback" not in caplog.text
    after = bridge.oscquery.web.stats()
    assert after["requests"] > before["requests"]
