"""The web servers (preview and OSCQuery, both on bridge.web.server) under hostile load on loopback: a storm
of 1,000 slowloris sockets costs no threads, normal clients are still answered in time (median under 1 s on a loaded machine), frames keep flowing
at the render rate, idle sockets are closed, and a full server refuses at once instead of queueing."""
from __future__ import annotations

import json
import socket
import statistics
import threading
import time
import urllib.request

import numpy as np
import pytest

from bridge.frames import RenderedFrame
from bridge.osc.oscquery import OscQueryServer
from bridge.params import ParamStore
from bridge.sinks import make_sink
from bridge.web.server import WebServer
from conftest import wait_for

STORM = 1000
RENDER_HZ = 30.0


def _frame(i: int) -> RenderedFrame:
    rgb = np.full((96, 128, 3), i % 256, np.uint8)
    now = time.monotonic()
    return RenderedFrame(rgb=rgb, index=i, source_index=i, t_capture=now, t_rendered=now, input_rgb=rgb)


def _slowloris(port: int, count: int) -> list[socket.socket]:
    """``count`` sockets that start a request and never finish its headers."""
    socks = []
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        except OSError:  # refused or reset by the server: that is allowed
            continue
        socks.append(sock)
    return socks


def _gets(url: str, count: int = 5, timeout: float = 10.0) -> tuple[list[float], bytes]:
    """Seconds each of ``count`` normal GETs took, and the last body."""
    times = []
    for _ in range(count):
        t0 = time.monotonic()
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
        times.append(round(time.monotonic() - t0, 3))
    return times, body


class _Render:
    """A stand-in render loop publishing at RENDER_HZ: counts what it achieved."""

    def __init__(self, sink):
        self.sink = sink
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.sink.publish(_frame(self.frames))
            self.frames += 1
            next_t += 1.0 / RENDER_HZ
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)


def test_preview_survives_a_slowloris_storm():
    sink = make_sink("preview:127.0.0.1:0", status=lambda: {"fps": 1.0})
    sink.start()
    viewer = None
    try:
        with _Render(sink) as render:
            wait_for(lambda: render.frames > 3)
            viewer = urllib.request.urlopen(sink.url + "stream.mjpg", timeout=5)  # a real watcher, reading
            threads_before = threading.active_count()
            t0, frames0 = time.monotonic(), render.frames
            storm = _slowloris(sink.port, STORM)
            times, body = _gets(sink.url + "status.json")
            assert json.loads(body)["fps"] == 1.0
            assert statistics.median(times) < 1.0 and max(times) < 5.0, f"normal GETs took {times} s under the storm"
            assert viewer.read(1000).startswith(b"--vrbframe")  # the stream still flows
            time.sleep(1.0)
            rate = (render.frames - frames0) / (time.monotonic() - t0)
            stats = sink.stats()["http"]
            threads = threading.active_count()
            for sock in storm:
                sock.close()
    finally:
        if viewer is not None:
            viewer.close()
        sink.close()
    assert threads - threads_before <= 2, f"{threads - threads_before} threads more under the storm"
    assert stats["connections"] <= stats["max_connections"]
    assert stats["evicted"] + stats["refused"] >= STORM - stats["max_connections"]
    assert rate >= 0.8 * RENDER_HZ, f"render loop at {rate:.1f} fps under the storm"


def test_oscquery_survives_a_slowloris_storm():
    store = ParamStore()
    server = OscQueryServer(store, "127.0.0.1", 0)
    server.start()
    try:
        threads_before = threading.active_count()
        storm = _slowloris(server.port, STORM)
        store.set("psi", 1.5)
        times, body = _gets(f"http://127.0.0.1:{server.port}/vrb/psi?VALUE")
        assert json.loads(body) == {"VALUE": [1.5]}
        assert statistics.median(times) < 1.0 and max(times) < 5.0, f"normal GETs took {times} s under the storm"
        assert threading.active_count() - threads_before <= 2
        for sock in storm:
            sock.close()
    finally:
        server.close()


def test_idle_and_half_sent_requests_are_closed():
    server = WebServer("t", "127.0.0.1", 0, idle_timeout=0.5)
    server.start()
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        t0 = time.monotonic()
        assert sock.recv(100) == b""  # the server hangs up ...
        assert time.monotonic() - t0 < 3.0  # ... soon after the idle timeout
        assert wait_for(lambda: server.stats()["timeouts"] >= 1)
        sock.close()
    finally:
        server.close()


def test_a_full_server_refuses_at_once():
    from aiohttp import web

    server = WebServer("t", "127.0.0.1", 0, max_connections=3, idle_timeout=30)

    async def hold(request):
        response = web.StreamResponse()
        await response.prepare(request)
        while not server.stopping:
            await server.write(response, b"x")
            await __import__("asyncio").sleep(0.05)
        return response

    server.app.router.add_get("/hold", hold)
    server.start()
    busy = []
    try:
        for _ in range(3):  # every slot busy with a real, live request
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(12).startswith(b"HTTP/1.1 200")
            busy.append(sock)
        t0 = time.monotonic()
        extra = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        answer = extra.recv(100)
        assert answer.startswith(b"HTTP/1.1 503") and time.monotonic() - t0 < 1.0
        assert server.stats()["refused"] == 1 and server.stats()["evicted"] == 0
        extra.close()
    finally:
        for sock in busy:
            sock.close()
        server.close()


def test_busy_port_is_an_error_at_build_time():
    server = WebServer("t", "127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            WebServer("t2", "127.0.0.1", server.port)
    finally:
        server.close()


def test_a_burst_of_connects_is_accepted_at_once():
    """The listen backlog: in a burst of 300 connects, none waits for a SYN retry (1 s). With the old backlog of 5,
    41 of 300 did; a loaded machine may stall one or two here for other reasons, so a handful is allowed."""
    server = WebServer("t", "127.0.0.1", 0)
    server.start()
    socks, waited = [], []
    try:
        for _ in range(300):
            t0 = time.monotonic()
            socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            waited.append(time.monotonic() - t0)
        slow = [round(t, 2) for t in waited if t >= 0.9]
        assert len(slow) <= 3, f"{len(slow)} connects waited about a SYN retry: {slow}"
    finally:
        for sock in socks:
            sock.close()
        server.close()
