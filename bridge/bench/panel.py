"""``vrbridge bench panel``: the web control panel against the live engine (embedded demo network).

Figures:
* round trip, browser: a real headless Chromium moves the psi slider (an ``input`` event on the range
  control, as a finger drag makes) and the time until the engine's ParamStore has applied the value
  (wall clock on both sides; p50 / p95 over the samples), and until the page got the server's ack;
* round trip, plain WebSocket client: ``set`` -> ack, without a browser (the server's own share);
* engine fps with no panel, then with the panel open in two Chromium clients (each also playing the two MJPEG previews, as a phone would; the browsers run on
  the same machine, so on a small one their own rendering shows in this row), each over the same window;
* a slowloris storm (1,000 sockets) against the preview: a normal GET's time, threads added, engine fps.

Needs chromium + chromedriver + selenium for the browser rows (else they are skipped with a note).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import tempfile
import threading
import time

from bridge.bench import start_demo_engine


def run(args) -> dict:
    samples = 20 if args.quick else 100
    window = 5.0 if args.quick else 15.0
    engine, _ = start_demo_engine(args.device, preview="127.0.0.1:0", frames=3)
    rows, notes = [], []
    try:
        panel = engine.control_panel
        url = panel.preview.url + "control"
        rows.append(_fps_row(engine, window, "engine fps, no panel open"))
        rows.extend(_storm_rows(engine, window))
        rows.append(_ws_round_trip(panel.preview.url.replace("http", "ws") + "control/ws", engine, samples))
        browsers = _browsers(2)
        if not browsers:
            notes.append("browser rows skipped: chromium, chromedriver or selenium not found")
        else:
            try:
                for driver in browsers:
                    driver.get(url)
                    _wait(lambda d=driver: d.execute_script("return document.body.dataset.ready") == "1", 30)
                rows.extend(_browser_round_trip(browsers[0], engine, samples))
                rows.append(_fps_row(engine, window, "engine fps, panel open on 2 Chromium clients"))
            finally:
                for driver in browsers:
                    driver.quit()
        notes.append(f"cpu threads: torch {engine._cpu_threads}; machine cores: {os.cpu_count()}")
    finally:
        engine.stop()
    return {"suite": "panel", "rows": rows, "notes": notes}


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _fps_row(engine, window: float, label: str) -> dict:
    time.sleep(1.0)  # settle after the previous step
    start_frames, start = engine.frames_rendered, time.monotonic()
    time.sleep(window)
    fps = (engine.frames_rendered - start_frames) / (time.monotonic() - start)
    return {"measure": label, "value": f"{fps:.2f} fps", "samples": f"{window:g} s"}


def _storm_rows(engine, window: float, count: int = 1000) -> list[dict]:
    """1,000 slowloris sockets on the preview server: a normal GET's time, threads added, engine fps."""
    import urllib.request

    port = engine.control_panel.preview.port
    threads_before = threading.active_count()
    socks = []
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(sock)
        except OSError:
            pass
    try:
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=10) as response:
                response.read()
            times.append((time.perf_counter() - t0) * 1000)
        threads = threading.active_count() - threads_before
        fps = _fps_row(engine, window, f"engine fps, {count} slowloris sockets on the preview")
        http = engine.control_panel.preview.web.stats()
    finally:
        for sock in socks:
            sock.close()
    return [{"measure": f"GET /status.json under {count} slowloris sockets", "value": _percentiles(times),
             "samples": len(times)},
            {"measure": "threads added by the storm", "value": str(threads),
             "samples": f"evicted {http['evicted']}, refused {http['refused']}, cap {http['max_connections']}"},
            fps]


def _percentiles(values_ms: list[float]) -> str:
    values_ms = sorted(values_ms)
    p95 = values_ms[min(len(values_ms) - 1, int(round(0.95 * (len(values_ms) - 1))))]
    return f"p50 {statistics.median(values_ms):.1f} ms, p95 {p95:.1f} ms"


def _applied_times(engine):
    """A ParamStore listener recording when each psi value was applied (wall clock)."""
    applied: dict[float, float] = {}

    def listener(name, value, source):
        if name == "psi" and source == "panel":
            applied[round(float(value), 4)] = time.time()

    engine.params.add_listener(listener)
    return applied, listener


def _ws_round_trip(url: str, engine, samples: int) -> dict:
    import aiohttp

    async def main():
        times = []
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as ws:
                await ws.receive(timeout=10)  # hello
                for i in range(samples):
                    value = round(-0.9 + 2.8 * ((i * 37) % 100) / 100, 3)
                    t0 = time.perf_counter()
                    await ws.send_str(json.dumps({"op": "set", "name": "psi", "value": value, "id": i}))
                    while True:
                        reply = json.loads((await ws.receive(timeout=10)).data)
                        if reply.get("type") == "ack" and reply.get("id") == i:
                            break
                    times.append((time.perf_counter() - t0) * 1000)
                    await asyncio.sleep(0.02)
        return times

    times = asyncio.run(main())
    return {"measure": "WebSocket set -> ack (no browser)", "value": _percentiles(times), "samples": len(times)}


def _browser_round_trip(driver, engine, samples: int) -> list[dict]:
    applied, listener = _applied_times(engine)
    to_store, to_ack = [], []
    move = """
const el = document.querySelector('[data-param="psi"]');
const t0 = Date.now();
el.value = arguments[0]; el.dispatchEvent(new Event('input', {bubbles: true}));
return t0;
"""
    try:
        for i in range(samples):
            value = round(-0.9 + 2.8 * ((i * 37) % 100) / 100, 2)
            t0_ms = driver.execute_script(move, value)
            if not _wait(lambda v=round(value, 4): v in applied, 5):
                continue
            to_store.append(applied[round(value, 4)] * 1000 - t0_ms)
            if _wait(lambda v=value: (driver.execute_script("return window.vrbLastAck") or {}).get("value") == v, 5):
                to_ack.append(driver.execute_script("return window.vrbLastAck.t") - t0_ms)
            time.sleep(0.05)
    finally:
        engine.params.remove_listener(listener)
    rows = [{"measure": "Chromium slider input -> engine applied", "value": _percentiles(to_store),
             "samples": len(to_store)}]
    if to_ack:
        rows.append({"measure": "Chromium slider input -> page got the ack", "value": _percentiles(to_ack),
                     "samples": len(to_ack)})
    return rows


def _browsers(count: int) -> list:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return []
    if not chromium or not driver_path:
        return []
    drivers = []
    for i in range(count):
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        options.page_load_strategy = "eager"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     f"--user-data-dir={tempfile.mkdtemp(prefix=f'vrb-bench-chrome{i}-')}", "--window-size=420,900"):
            options.add_argument(flag)
        drivers.append(webdriver.Chrome(options=options, service=Service(driver_path)))
    return drivers
