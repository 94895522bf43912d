"""The preview web server on loopback: stills, the MJPEG stream (also in a real headless Chromium), the page,
status, and that a stalled client never holds back newer frames."""
from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from bridge.frames import RenderedFrame
from bridge.sinks import SinkUnavailable, make_sink
from conftest import free_port, require_tool

RED = (230, 20, 20)


def frame(i: int, size=(200, 120), colour=None) -> RenderedFrame:
    width, height = size
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:] = colour if colour is not None else ((i * 37) % 256, 80, 160)
    now = time.monotonic()
    return RenderedFrame(rgb=rgb, index=i, source_index=i, t_capture=now, t_rendered=now,
                         input_rgb=np.full((48, 64, 3), 200, np.uint8))


@pytest.fixture
def preview():
    port = free_port(kind=socket.SOCK_STREAM)
    sink = make_sink(f"preview:127.0.0.1:{port}", status=lambda: {"fps": 12.5, "frames": 3},
                     demo_notice="untrained demo network")
    sink.start()
    yield sink
    sink.close()


def get(sink, path: str, timeout: float = 5.0):
    return urllib.request.urlopen(sink.url.rstrip("/") + path, timeout=timeout)


def decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]


def publish_until_sent(sink, fr):
    sent = sink.sent
    sink.publish(fr)
    deadline = time.monotonic() + 5
    while sink.sent == sent and time.monotonic() < deadline:
        time.sleep(0.01)


def test_stills_status_and_page(preview):
    with pytest.raises(urllib.error.HTTPError) as info:
        get(preview, "/snapshot.jpg")
    assert info.value.code == 503
    publish_until_sent(preview, frame(1, colour=RED))
    with get(preview, "/snapshot.jpg") as resp:
        assert resp.headers["Content-Type"] == "image/jpeg"
        img = decode(resp.read())
    assert img.shape == (120, 200, 3)
    assert np.abs(img.astype(int) - RED).mean() < 8
    with get(preview, "/input.jpg") as resp:
        assert decode(resp.read()).shape == (48, 64, 3)
    with get(preview, "/status.json") as resp:
        status = json.load(resp)
    assert status["fps"] == 12.5 and status["notice"] == "untrained demo network"
    with get(preview, "/") as resp:
        page = resp.read().decode()
    assert "untrained demo network" in page and 'src="/stream.mjpg"' in page and 'src="/input.mjpg"' in page
    with pytest.raises(urllib.error.HTTPError) as info:
        get(preview, "/nope")
    assert info.value.code == 404


def read_part(stream) -> bytes:
    """One part of a multipart MJPEG stream: boundary line, headers, body."""
    line = stream.readline()
    while line.strip() == b"":
        line = stream.readline()
    assert line.strip() == b"--vrbframe", line
    headers = {}
    while True:
        line = stream.readline().strip()
        if not line:
            break
        key, _, value = line.decode().partition(":")
        headers[key.lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    return stream.read(int(headers["content-length"]))


def test_mjpeg_stream_delivers_new_frames(preview):
    publish_until_sent(preview, frame(0, colour=(0, 0, 255)))
    with get(preview, "/stream.mjpg") as stream:
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=vrbframe")
        first = decode(read_part(stream))
        assert first[..., 2].mean() > 200  # blue
        publish_until_sent(preview, frame(1, colour=RED))
        second = decode(read_part(stream))
        assert np.abs(second.astype(int) - RED).mean() < 8
    assert preview.stats()["clients"] in (0, 1)  # the handler notices the hang-up on its next write


def test_stalled_client_never_holds_back_frames(preview):
    publish_until_sent(preview, frame(0))
    stalled = socket.create_connection(("127.0.0.1", preview.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read a byte
    try:
        for i in range(1, 200):
            preview.publish(frame(i, size=(400, 300)))
            time.sleep(0.002)
        publish_until_sent(preview, frame(200, size=(400, 300), colour=RED))
        with get(preview, "/snapshot.jpg") as resp:
            latest = decode(resp.read())
        assert np.abs(latest.astype(int) - RED).mean() < 8  # the newest frame, not a queue behind the stalled one
        assert preview.stats()["dropped"] + preview.stats()["sent"] >= 200
    finally:
        stalled.close()


def test_busy_port_is_a_clear_error(preview):
    with pytest.raises(SinkUnavailable, match=f"cannot listen on 127.0.0.1:{preview.port}.*--preview off"):
        make_sink(f"preview:127.0.0.1:{preview.port}")
    with pytest.raises(SinkUnavailable, match="HOST:PORT"):
        make_sink("preview:localhost:http")


def _headless_chromium(chromium: str, tmp_path, *extra: str) -> list[str]:
    """A headless chromium command line with its own profile and no background traffic, plus ``extra``."""
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", *extra]


def test_stream_in_headless_chromium(preview, tmp_path):
    chromium = require_tool("chromium")
    stop = threading.Event()

    def feed():
        i = 0
        while not stop.is_set():
            preview.publish(frame(i, size=(320, 180), colour=RED))
            i += 1
            time.sleep(0.05)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    flags = _headless_chromium(chromium, tmp_path, "--window-size=1000,700")
    try:
        dom = subprocess.run(flags + ["--dump-dom", preview.url], capture_output=True, text=True, timeout=60)
        shot = tmp_path / "shot.png"
        subprocess.run(flags + [f"--screenshot={shot}", preview.url], capture_output=True, timeout=60)
    finally:
        stop.set()
        feeder.join(1)
    assert 'id="output"' in dom.stdout
    assert 'data-size="320x180"' in dom.stdout, dom.stdout[-2000:]  # the <img> has the stream's size
    assert 'data-size="64x48"' in dom.stdout  # the input stream beside it
    assert "untrained demo network" in dom.stdout
    img = cv2.imread(str(shot))
    assert img is not None
    red = (img[..., 2] > 180) & (img[..., 1] < 60) & (img[..., 0] < 60)
    assert red.sum() >= 0.8 * 320 * 180 * 0.5, red.sum()  # the streamed picture is on screen (allow scaling)


def test_captions_follow_the_engines_sizes_not_the_first_picture(tmp_path):
    """An MJPEG <img> fires 'load' once: a caption taken from it stays at the first slide's size. The page
    takes the sizes from /status.json each second instead (input 640x480 after a 200x200 first picture)."""
    chromium = require_tool("chromium")
    port = free_port(kind=socket.SOCK_STREAM)
    sizes = {"output_size": [320, 180], "input_size": [200, 200]}
    sink = make_sink(f"preview:127.0.0.1:{port}", status=lambda: {"fps": 12.0, "frames": 3, **sizes})
    sink.start()
    stop = threading.Event()

    def feed():
        i = 0
        while not stop.is_set():
            sink.publish(frame(i, size=(320, 180)))
            i += 1
            time.sleep(0.05)
            if i == 10:
                sizes["input_size"] = [640, 480]  # the slideshow moved on to a bigger picture

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    flags = _headless_chromium(chromium, tmp_path, "--virtual-time-budget=3000")
    try:
        time.sleep(1.0)
        dom = subprocess.run(flags + ["--dump-dom", sink.url], capture_output=True, text=True, timeout=60).stdout
    finally:
        stop.set()
        feeder.join(1)
        sink.close()
    assert '<span id="input-size">640x480</span>' in dom, dom[-1500:]
    assert '<span id="output-size">320x180</span>' in dom
