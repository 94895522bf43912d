"""Routes end to end: a show file routes hand.x -> psi, a video of a real hand photo moving left to right drives the
running engine through MediaPipe, and psi in the telemetry (a python-osc server) follows the hand; the route is
removed, re-added (liblo's oscsend) and combined live over OSC; a rig map and an osc: signal still drive
parameters; a bad route is answered on /vrb/error and changes nothing."""
from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import cv2
import numpy as np
import pytest
from pythonosc.udp_client import SimpleUDPClient

from bridge.config import load_show_file
from bridge.startup import build_engine

from conftest import IMAGES, STYLEGAN_FIXTURES, free_port, require_tool, wait_for
from test_osc_support import Collector

pytestmark = pytest.mark.slow

LOW, HIGH = 0.3, 1.2  # the show file's psi range


def hand_clip(path, frames_moving: int = 36, frames_held: int = 12) -> None:
    """The open-hand photo slid across a plain 640x480 canvas from left to right, then held at the right."""
    hand = cv2.imread(str(IMAGES / "Histogram_Comparison_Source_0.jpg"))
    background = tuple(int(v) for v in np.median(np.concatenate([hand[0], hand[-1]]), axis=0))
    size = 200
    patch = cv2.resize(hand, (size, size), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (640, 480))
    xs = list(np.linspace(110, 530, frames_moving).astype(int)) + [530] * frames_held
    for cx in xs:
        canvas = np.empty((480, 640, 3), np.uint8)
        canvas[:] = background
        canvas[140:140 + size, cx - size // 2:cx - size // 2 + size] = patch
        writer.write(canvas)
    writer.release()


def frames_of(collector: Collector) -> list[dict]:
    """Telemetry grouped per rendered frame: {address: first argument} between consecutive /vrb/frame messages."""
    with collector._lock:
        messages = list(collector.messages)
    frames, current = [], None
    for address, args in messages:
        if address == "/vrb/frame":
            current = {}
            frames.append(current)
        if current is not None and args:
            current[address] = args[0]
    return frames


def wait_frames(collector, predicate, timeout=60.0, start=0) -> list[dict]:
    """Frames (after index ``start``) once one matches ``predicate``; fails with the last frames seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames = frames_of(collector)[start:]
        if any(predicate(f) for f in frames):
            return frames
        time.sleep(0.1)
    tail = [{k: v for k, v in f.items() if k in ("/vrb/psi", "/vrb/signal/hand/x")} for f in frames_of(collector)[-5:]]
    pytest.fail(f"no matching telemetry frame within {timeout} s; last: {tail}")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("routes")
    clip = tmp / "hand_left_to_right.mp4"
    hand_clip(clip)
    show = tmp / "show.toml"
    show.write_text(f'''network = "{STYLEGAN_FIXTURES / 'sg2_tiny.pkl'}"
source = "video:{clip}"
hands = "mediapipe"
demo_encoder = true
preview = "off"
oscquery = "127.0.0.1:0"
osc_maps = ["touchosc"]
psi = 0.7
[hand]
ease_s = 0.0

[[route]]
from = "hand.x"
to = "psi"
range = [{LOW}, {HIGH}]
''')
    collector = Collector()
    settings = load_show_file(str(show))
    settings.update({"osc_in": f"127.0.0.1:{free_port()}", "osc_out": [collector.endpoint],
                     "presets": str(tmp / "presets.toml")})
    engine = build_engine(settings)
    engine.start()
    yield engine, collector
    engine.stop()
    collector.close()


def hand_and_psi(frames) -> list[tuple[float, float]]:
    return [(f["/vrb/signal/hand/x"], f["/vrb/psi"]) for f in frames if "/vrb/signal/hand/x" in f and "/vrb/psi" in f]


def one_pass(seen) -> list[float] | None:
    """psi over the first left-to-right pass of the hand (from x < 0.45 to x > 0.7), or None before one is seen."""
    start = next((i for i, (x, _) in enumerate(seen) if x < 0.45), None)
    end = next((i for i, (x, _) in enumerate(seen) if start is not None and i > start and x > 0.7), None)
    return None if end is None else [p for _, p in seen[start:end + 1]]


def test_psi_follows_the_hand_left_to_right(running):
    engine, collector = running
    assert [r.id for r in engine.routes.routes()][-1] == "hand.x->psi"
    deadline = time.monotonic() + 120
    while one_pass(hand_and_psi(frames_of(collector))) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    seen = hand_and_psi(frames_of(collector))
    psis = one_pass(seen)
    assert psis is not None, f"the hand never crossed the frame in telemetry: {seen[:40]}"
    for x, psi in seen:  # every frame: the route's exact mapping, inside its range
        assert LOW - 1e-6 <= psi <= HIGH + 1e-6
        assert psi == pytest.approx(LOW + (HIGH - LOW) * min(1.0, max(0.0, x)), abs=2e-5)
    # the pass from left to right: psi rises with the hand (the One-Euro filter keeps it near monotonic)
    assert psis[-1] - psis[0] > 0.2 and np.all(np.diff(psis) > -0.02), psis


def test_remove_readd_and_combine_routes_live_over_osc(running):
    engine, collector = running
    port = engine.osc_server.port
    client = SimpleUDPClient("127.0.0.1", port)
    client.send_message("/vrb/route/remove", "hand.x->psi")
    n = len(frames_of(collector))
    frames = wait_frames(collector, lambda f: "/vrb/signal/hand/x" in f and f.get("/vrb/psi") == pytest.approx(0.7),
                         start=n)
    assert engine.params.get("psi") == pytest.approx(0.7)  # the stored value was never touched: it is the base
    # re-added with liblo's oscsend, and a second route adds the hand's height on top
    oscsend = require_tool("oscsend")
    subprocess.run([oscsend, "127.0.0.1", str(port), "/vrb/route/add", "s", f"hand.x psi range={LOW},{HIGH}"],
                   check=True, timeout=10)
    client.send_message("/vrb/route/add", "hand.y psi combine=add range=0,0.1 id=lift")
    n = len(frames_of(collector))

    def combined(f):
        if "/vrb/signal/hand/x" not in f or "/vrb/signal/hand/y" not in f:
            return False
        x, y = min(1.0, max(0.0, f["/vrb/signal/hand/x"])), min(1.0, max(0.0, f["/vrb/signal/hand/y"]))
        return f["/vrb/psi"] == pytest.approx(LOW + (HIGH - LOW) * x + 0.1 * y, abs=3e-5) and y > 0.1

    wait_frames(collector, combined, start=n)
    assert {r.id for r in engine.routes.routes()} >= {"hand.x->psi", "lift"}


def test_rig_map_and_osc_signal_routes_drive_parameters(running):
    engine, collector = running
    client = SimpleUDPClient("127.0.0.1", engine.osc_server.port)
    client.send_message("/1/fader2", 0.25)  # the TouchOSC rig map sets mix.amount's stored value, as before
    client.send_message("/vrb/route/add", "osc:/rig/knob trunc_cutoff range=0,8")
    time.sleep(0.3)
    client.send_message("/rig/knob", 0.5)
    n = len(frames_of(collector))
    wait_frames(collector, lambda f: f.get("/vrb/trunc_cutoff") == 4 and f.get("/vrb/mix/amount") == pytest.approx(0.25)
                and f.get("/vrb/signal/osc/rig/knob") == pytest.approx(0.5), start=n)
    assert engine.params.get("mix.amount") == pytest.approx(0.25) and engine.params.get("trunc_cutoff") == 0
    # the rig map's own addresses are signals too
    wait_frames(collector, lambda f: f.get("/vrb/signal/osc/1/fader2") == pytest.approx(0.25), start=n)


def test_oscquery_lists_the_routes_and_the_signals(running):
    engine, _ = running
    port = engine.osc.oscquery.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/vrb/routes", timeout=10) as response:
        routes = json.loads(response.read())["CONTENTS"]
    assert routes["hand.x-_psi"]["VALUE"][0].startswith("hand.x->psi: hand.x -> psi")
    assert routes["hand.const"]["ACCESS"] == 1  # read-only: routes are changed with /vrb/route/add
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/vrb/signal/hand/x", timeout=10) as response:
        node = json.loads(response.read())
    assert node["RANGE"] == [{"MIN": 0.0, "MAX": 1.0}] and 0.0 <= node["VALUE"][0] <= 1.0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/vrb/route/add", timeout=10) as response:
        assert json.loads(response.read())["ACCESS"] == 2  # the route actions are write-only methods


def test_a_bad_route_is_answered_and_changes_nothing(running):
    engine, collector = running
    before = [r.to_dict() for r in engine.routes.routes()]
    SimpleUDPClient("127.0.0.1", engine.osc_server.port).send_message("/vrb/route/add", "hand.xx psy range=nan,1")
    found = collector.wait_for("/vrb/error", timeout=10, where=lambda a: a[0] == "route")
    assert "unknown signal 'hand.xx'" in found[1] and "did you mean hand.x" in found[1]
    assert [r.to_dict() for r in engine.routes.routes()] == before
    assert engine.osc_server.errors["route"] >= 1
    n = engine.frames_published
    assert wait_for(lambda: engine.frames_published > n, timeout=30)  # the show went on
