"""The web control panel driven in a real headless Chromium (selenium + chromedriver) against the real engine
(embedded demo network, pattern source): a slider move reaches the engine (seen in its OSC telemetry), an OSC
change moves the slider, a preset button recalls, and in LAN mode control without the token is refused.
The panel's own validation is also checked over a plain WebSocket client."""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from pythonosc.udp_client import SimpleUDPClient

from bridge.params import PARAMS
from conftest import require_tool
from test_osc_support import Collector, wait_until

pytestmark = pytest.mark.slow


SIZES = {"phone": (390, 844), "desktop": (1280, 900)}


def _browser(tmp_path, width=420, height=900):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = require_tool("chromium")
    options.page_load_strategy = "eager"  # the MJPEG previews never finish "loading"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(require_tool("chromedriver")))


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    import torch

    from bridge.startup import build_engine

    torch.set_num_threads(1)
    collector = Collector()
    engine = build_engine({"osc_in": "127.0.0.1:0", "oscquery": "off", "preview": "127.0.0.1:0",
                           "osc_out": [collector.endpoint],
                           "presets": str(tmp_path_factory.mktemp("panel") / "presets.toml")})
    engine.start()
    yield engine, collector
    engine.stop()
    collector.close()


@pytest.fixture(scope="module")
def browser(running, tmp_path_factory):
    driver = _browser(tmp_path_factory.mktemp("chrome"))
    engine, _ = running
    driver.get(engine.control_panel.preview.url + "control")
    wait_until(lambda: driver.execute_script("return document.body.dataset.ready") == "1", 20)
    yield driver
    driver.quit()


def _open(driver, url: str) -> None:
    driver.get(url)
    assert wait_until(lambda: driver.execute_script("return document.body.dataset.ready") == "1", 20)


def _click(driver, element) -> None:
    """Scroll the element to the middle of the screen (clear of the sticky header), then click it."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _slider_value(driver, name: str) -> float:
    return float(driver.execute_script(f"return document.querySelector('[data-param=\"{name}\"]').value"))


def test_every_live_parameter_has_a_control(running, browser):
    names = set(browser.execute_script(
        "return [...document.querySelectorAll('[data-param]')].map(e => e.dataset.param)"))
    wanted = {p.name for p in PARAMS if p.live and p.name not in ("preset.recall", "preset.delete", "preset.list", "route.list", "route.remove")}
    assert wanted <= names, wanted - names
    assert browser.execute_script("return document.querySelector('[data-param=psi]').type") == "range"
    assert browser.execute_script("return document.querySelector('[data-param=noise_mode]').tagName") == "SELECT"
    assert browser.execute_script("return document.querySelector('[data-param=seed]').type") == "number"


def test_moving_the_psi_slider_changes_the_engine(running, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    engine, collector = running
    slider = browser.find_element("css selector", '[data-param="psi"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", slider)
    width = slider.size["width"]
    ActionChains(browser).move_to_element_with_offset(slider, int(width * 0.4) - 2, 0).click().perform()
    target = _slider_value(browser, "psi")  # where the click put the thumb: about 0.9 of [-1, 2] on the right
    assert target > 1.0
    assert wait_until(lambda: engine.params.get("psi") == pytest.approx(target), 5.0)
    collector.wait_for("/vrb/psi", timeout=60, where=lambda a: a[0] == pytest.approx(target, abs=1e-4))


def test_an_osc_change_moves_the_slider(running, browser):
    engine, _ = running
    SimpleUDPClient("127.0.0.1", engine.osc_server.port).send_message("/vrb/psi", -0.5)
    assert wait_until(lambda: _slider_value(browser, "psi") == pytest.approx(-0.5), 5.0)
    SimpleUDPClient("127.0.0.1", engine.osc_server.port).send_message("/vrb/freeze", True)
    assert wait_until(lambda: browser.execute_script(
        "return document.getElementById('freeze').getAttribute('aria-pressed')") == "true", 5.0)
    engine.params.set("freeze", False)


def test_a_preset_button_recalls(running, browser):
    engine, _ = running
    engine.params.set("psi", 1.5)
    engine.osc.presets.save("wide")
    engine.params.set("psi", 0.1)
    _open(browser, engine.control_panel.preview.url + "control")  # the preset list comes with the page's hello
    _click(browser, browser.find_element("css selector", '[data-preset="wide"]'))
    assert wait_until(lambda: engine.params.get("psi") == pytest.approx(1.5), 5.0)
    assert wait_until(lambda: _slider_value(browser, "psi") == pytest.approx(1.5), 5.0)


def test_the_big_buttons_and_the_save_button(running, browser):
    engine, _ = running
    browser.find_element("id", "blackout").click()
    assert wait_until(lambda: engine.params.get("blackout") is True, 5.0)
    browser.find_element("id", "blackout").click()
    assert wait_until(lambda: engine.params.get("blackout") is False, 5.0)
    browser.find_element("id", "preset-name").send_keys("from-panel")
    _click(browser, browser.find_element("id", "preset-save"))
    assert wait_until(lambda: "from-panel" in engine.osc.presets.names(), 5.0)
    assert wait_until(lambda: browser.execute_script(
        "return !!document.querySelector('[data-preset=\"from-panel\"]')"), 5.0)


def _ws_exchange(url: str, messages: list, headers=None) -> list[dict]:
    import aiohttp

    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, headers=headers or {}) as ws:
                hello = json.loads((await ws.receive(timeout=5)).data)
                replies = [hello]
                for message in messages:
                    await ws.send_str(message if isinstance(message, str) else json.dumps(message))
                    while True:
                        reply = json.loads((await ws.receive(timeout=5)).data)
                        if reply["type"] in ("ack", "error"):
                            replies.append(reply)
                            break
                return replies

    return asyncio.run(main())


def _ws_flood(url: str, count: int) -> None:
    import aiohttp

    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as ws:
                message = json.dumps({"op": "set", "name": "mix.amount", "value": 0.5})
                for _ in range(count):
                    await ws.send_str(message)
                await asyncio.sleep(0.5)

    asyncio.run(main())


def test_panel_input_is_validated_like_osc(running):
    engine, collector = running
    panel = engine.control_panel
    assert 'href="/control"' in urllib.request.urlopen(panel.preview.url, timeout=5).read().decode()  # linked
    url = panel.preview.url.replace("http", "ws") + "control/ws"
    before = dict(panel.counts)
    seed = engine.params.get("seed")
    replies = _ws_exchange(url, [{"op": "set", "name": "psi", "value": 9.0, "id": 1},
                                 {"op": "set", "name": "seed", "value": -5, "id": 2},
                                 {"op": "set", "name": "nope", "value": 1, "id": 3},
                                 "garbage{", {"op": "set", "name": "network", "value": "x.pkl", "id": 4}])
    hello, clamped, rejected, unknown, garbage, startup = replies
    assert hello["type"] == "hello" and hello["values"]["seed"] == seed
    assert clamped["type"] == "ack" and clamped["value"] == 2.0 and "clamped" in clamped["note"]
    assert rejected["type"] == "error" and "seed" in rejected["error"] and engine.params.get("seed") == seed
    assert unknown["type"] == "error" and garbage["type"] == "error" and startup["type"] == "error"
    assert panel.counts["clamped"] - before["clamped"] == 1
    assert panel.counts["rejected"] - before["rejected"] == 3 and panel.counts["garbage"] - before["garbage"] == 1
    collector.wait_for("/vrb/error", timeout=5, where=lambda a: a[0] == "range" and "control panel" in a[1])
    flood_before = panel.counts["busy"]
    _ws_flood(url, 2000)  # a runaway client: most of it dropped unread, the engine still takes a normal set
    assert panel.counts["busy"] - flood_before > 500
    replies = _ws_exchange(url, [{"op": "set", "name": "psi", "value": 0.4, "id": 9}])
    assert replies[1]["type"] == "ack" and engine.params.get("psi") == pytest.approx(0.4)
    with pytest.raises(Exception):  # a page of another site may not open the control socket
        _ws_exchange(url, [], headers={"Origin": "http://evil.example"})


def test_lan_mode_refuses_control_without_the_token(browser):
    from bridge.params import ParamStore
    from bridge.sinks import make_sink
    from bridge.web.control import ControlPanel

    class Engine:  # the panel needs only params (and optionally osc/osc_server) from an engine
        params = ParamStore()
        osc = osc_server = None

    preview = make_sink("preview:0.0.0.0:0", token="sesame")
    panel = ControlPanel(Engine, preview)
    preview.start()
    panel.start()
    base = f"http://127.0.0.1:{preview.port}"
    driver = browser
    try:
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(base + "/control", timeout=5)
        assert denied.value.code == 403
        with pytest.raises(Exception):
            _ws_exchange(base.replace("http", "ws") + "/control/ws", [])
        driver.get(base + "/control")  # no token: the browser is refused too
        assert "needs the control token" in driver.page_source
        driver.get(base + "/control?token=sesame")
        assert wait_until(lambda: driver.execute_script("return document.body.dataset.ready") == "1", 20)
        driver.find_element("id", "freeze").click()
        assert wait_until(lambda: Engine.params.get("freeze") is True, 5.0)
        assert preview.denied >= 3
    finally:
        panel.close()
        preview.close()


def test_signals_show_as_meters_and_routes_are_editable(running, browser):
    engine, _ = running
    _open(browser, engine.control_panel.preview.url + "control")
    assert wait_until(lambda: browser.execute_script(
        "return document.querySelectorAll('[data-signal]').length") >= 1, 10.0)
    meters = set(browser.execute_script("return [...document.querySelectorAll('[data-signal]')].map(e => e.dataset.signal)"))
    assert {spec.name for spec in engine.signals.specs()} <= meters
    base = engine.params.get("mix.amount")
    box = browser.find_element("id", "route-text")
    browser.execute_script("arguments[0].closest('details').open = true; arguments[0].scrollIntoView({block: 'center'})", box)
    box.send_keys("beat.phase mix.amount range=0.2,0.8")
    _click(browser, browser.find_element("id", "route-add"))
    assert wait_until(lambda: any(r.id == "beat.phase->mix.amount" for r in engine.routes.routes()), 5.0)
    assert wait_until(lambda: browser.execute_script(
        "return !!document.querySelector('[data-route=\"beat.phase->mix.amount\"]')"), 5.0)
    live = "return document.querySelector('[data-param=\"mix.amount\"]').dataset.live"
    # the route's output shows (from the first frame rendered with it)
    assert wait_until(lambda: 0.2 <= float(browser.execute_script(live) or -1) <= 0.8, 20.0)
    first = float(browser.execute_script(live))
    assert engine.params.get("mix.amount") == base  # the store keeps the base value
    assert wait_until(lambda: float(browser.execute_script(live)) != first, 10.0)  # and it moves with the beat
    box.clear()
    box.send_keys("no.such.signal psi")  # refused with its reason on the page, nothing added
    _click(browser, browser.find_element("id", "route-add"))
    assert wait_until(lambda: "no.such.signal" in browser.find_element("id", "state").text, 5.0)
    _click(browser, browser.find_element("css selector", '[data-route="beat.phase->mix.amount"] button'))
    assert wait_until(lambda: not any(r.id == "beat.phase->mix.amount" for r in engine.routes.routes()), 5.0)


def screenshots(driver, url: str, out_dir) -> dict[str, object]:
    """The panel at phone and desktop sizes as PNGs in ``out_dir``; returns {size name: path}."""
    from pathlib import Path

    shots = {}
    for name, (width, height) in SIZES.items():
        driver.set_window_rect(width=width, height=height)
        _open(driver, url)
        wait_until(lambda: driver.execute_script(  # the previews show a frame
            "return document.getElementById('out').naturalWidth > 0 && document.getElementById('in').naturalWidth > 0"), 10)
        path = Path(out_dir) / f"control_panel_{name}.png"
        driver.save_screenshot(str(path))
        shots[name] = path
    return shots


def test_phone_and_desktop_layouts(running, browser, tmp_path):
    """One-handed on a phone: nothing wider than the screen, big buttons within thumb reach, real pictures."""
    import cv2

    engine, _ = running
    url = engine.control_panel.preview.url + "control"
    shots = screenshots(browser, url, tmp_path)
    browser.set_window_rect(width=SIZES["phone"][0], height=SIZES["phone"][1])
    _open(browser, url)
    inner = browser.execute_script("return window.innerWidth")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= inner
    for button in ("freeze", "blackout", "tap"):
        rect = browser.execute_script(f"return document.getElementById('{button}').getBoundingClientRect().toJSON()")
        assert rect["height"] >= 44 and rect["width"] >= 90 and rect["top"] < 200, (button, rect)  # thumb-sized, on top
    for name, path in shots.items():
        img = cv2.imread(str(path))
        assert img is not None and img.shape[1] >= SIZES[name][0] * 0.9
        assert img.std() > 10  # not a blank page


def test_midi_learn_is_armed_from_the_panel(running, browser):
    engine, _ = running
    _open(browser, engine.control_panel.preview.url + "control")
    armed = []
    listener = lambda name, value, source: armed.append((value, source)) if name == "midi.learn" else None  # noqa: E731
    engine.params.add_listener(listener)
    try:
        _click(browser, browser.find_element("id", "learn"))
        _click(browser, browser.find_element("css selector", 'label[for="p-psi"]'))
        assert wait_until(lambda: ("psi", "panel") in armed, 5.0)
    finally:
        engine.params.remove_listener(listener)


if __name__ == "__main__":  # python tests/test_control_panel.py --screenshots docs/   (the images in docs/)
    import sys
    import tempfile
    from pathlib import Path

    from bridge.startup import build_engine

    out = Path(sys.argv[sys.argv.index("--screenshots") + 1])
    engine = build_engine({"osc_in": "127.0.0.1:0", "oscquery": "off", "preview": "127.0.0.1:0", "osc_out": [],
                           "presets": str(Path(tempfile.mkdtemp()) / "p.toml")})
    engine.start()
    for preset, psi in (("warm", 0.5), ("wide", 1.2), ("calm", 0.2)):
        engine.params.set("psi", psi)
        engine.osc.presets.save(preset)
    wait_until(lambda: engine.frames_rendered > 2, 60)
    driver = _browser(Path(tempfile.mkdtemp()))
    try:
        print(screenshots(driver, engine.control_panel.preview.url + "control", out))
    finally:
        driver.quit()
        engine.stop()
