"""The preview web server: watch the output (and the camera input) in any browser on this machine.

    /              a small page: output stream and camera input side by side, fps and stage timings,
                   and a plain banner when the untrained demo network is running
    /stream.mjpg   the output as multipart MJPEG (latest frame wins)
    /input.mjpg    the camera input the same way
    /snapshot.jpg  the newest output frame;  /input.jpg  the newest input frame
    /status.json   the engine's health (fps, stage ms, dropped frames, errors, sinks)

Default address 127.0.0.1:7780 (``--preview HOST:PORT``; ``--preview off`` disables it). The port is bound
when the sink is built, so a busy port is a one-line start-up error, not a silent failure later.

Why it never slows rendering: ``publish`` only drops the frame in a box; JPEG encoding happens lazily on the
HTTP threads, at most once per frame and only when someone is watching, and every client thread waits for
the newest frame, so a slow client just skips frames.
"""
from __future__ import annotations

import html
import ipaddress
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import numpy as np

from bridge import imageops
from bridge.endpoints import split_endpoint
from bridge.frames import RenderedFrame
from bridge.sinks.base import Sink, SinkUnavailable

log = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7780
BOUNDARY = "vrbframe"
JPEG_QUALITY = 80


class PreviewSink(Sink):
    kind = "preview"

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 status: Callable[[], dict] | None = None, demo_notice: str = "") -> None:
        super().__init__(f"{host}:{port}")
        self.host = host
        self.status_fn = status
        self.demo_notice = demo_notice
        self.clients = 0
        self.jpegs_encoded = 0
        self._cond = threading.Condition()
        self._frame: RenderedFrame | None = None
        self._seq = 0
        self._jpeg: dict[str, tuple[int, bytes]] = {}
        self._encode_lock = threading.Lock()
        self._closing = False
        try:
            self.server = ThreadingHTTPServer((host, port), _handler_for(self))
        except OSError as exc:
            raise SinkUnavailable(f"preview: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                                  f"choose another with --preview {host}:PORT or --preview off") from None
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.name = f"{host}:{self.port}"
        self._server_thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> None:
        super().start()
        self._server_thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                               name="preview-http", daemon=True)
        self._server_thread.start()

    def _send(self, frame: RenderedFrame) -> None:
        with self._cond:
            self._frame = frame
            self._seq += 1
            self._cond.notify_all()

    def close(self, timeout: float = 1.0) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._server_thread is not None:
            self.server.shutdown()
        self.server.server_close()
        super().close(timeout)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "url": self.url, "clients": self.clients, "jpegs": self.jpegs_encoded}

    def describe(self) -> str:
        return f"preview {self.url} (MJPEG /stream.mjpg, /snapshot.jpg)"

    # -- used by the HTTP threads ---------------------------------------------------------------
    def wait_jpeg(self, which: str, after: int, timeout: float) -> tuple[int, bytes | None]:
        """The newest frame's JPEG once it is newer than ``after`` (or (after, None) on timeout / close)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after or self._closing, timeout)
            if self._seq <= after or self._closing:
                return after, None
        return self.jpeg(which)

    def jpeg(self, which: str = "output") -> tuple[int, bytes | None]:
        """(seq, JPEG bytes) of the newest output or input picture; encoded once per frame."""
        with self._cond:
            seq, frame = self._seq, self._frame
        if frame is None:
            return seq, None
        with self._encode_lock:
            cached = self._jpeg.get(which)
            if cached is not None and cached[0] == seq:
                return cached
            rgb = frame.rgb if which == "output" else frame.input_rgb
            if rgb is None:
                return seq, None
            data = encode_jpeg(rgb)
            self.jpegs_encoded += 1
            self._jpeg[which] = (seq, data)
            return seq, data

    @property
    def closing(self) -> bool:
        return self._closing

    def status(self) -> dict[str, Any]:
        status = dict(self.status_fn()) if self.status_fn else {}
        status.setdefault("notice", self.demo_notice)
        return status


def encode_jpeg(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", imageops.rgb_to_bgr(rgb), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _handler_for(sink: PreviewSink):
    class Handler(PreviewHandler):
        pass

    Handler.sink = sink
    return Handler


class PreviewHandler(BaseHTTPRequestHandler):
    sink: PreviewSink
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        routes = {"/": self._page, "/index.html": self._page, "/stream.mjpg": lambda: self._stream("output"),
                  "/input.mjpg": lambda: self._stream("input"), "/snapshot.jpg": lambda: self._still("output"),
                  "/input.jpg": lambda: self._still("input"), "/status.json": self._status}
        route = routes.get(path)
        if route is None:
            self._reply(404, "text/plain", b"not found: try / /stream.mjpg /snapshot.jpg /status.json\n")
            return
        try:
            route()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _reply(self, code: int, ctype: str, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _still(self, which: str) -> None:
        _, data = self.sink.jpeg(which)
        if data is None:
            self._reply(503, "text/plain", f"no {which} frame yet\n".encode(), {"Retry-After": "1"})
            return
        self._reply(200, "image/jpeg", data)

    def _status(self) -> None:
        body = json.dumps(self.sink.status(), default=str).encode()
        self._reply(200, "application/json", body)

    def _page(self) -> None:
        self._reply(200, "text/html; charset=utf-8", render_page(self.sink.demo_notice).encode())

    def _stream(self, which: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.sink.clients += 1
        try:
            seq, data = self.sink.jpeg(which)  # the current picture straight away
            while not self.sink.closing:
                if data is not None:
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                     f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                seq, data = self.sink.wait_jpeg(which, seq, timeout=1.0)
        finally:
            self.sink.clients -= 1

    def log_message(self, fmt: str, *args) -> None:
        log.debug("preview %s " + fmt, self.address_string(), *args)


def render_page(demo_notice: str) -> str:
    banner = (f'<p id="demo" class="demo">{html.escape(demo_notice)}</p>' if demo_notice else "")
    return PAGE.replace("{banner}", banner)


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>vrbridge preview</title>
<style>
 body{background:#111;color:#ddd;font:14px system-ui,sans-serif;margin:12px}
 .row{display:flex;gap:12px;flex-wrap:wrap;align-items:flex-start}
 figure{margin:0} figcaption{color:#888;margin:4px 0}
 img{background:#000;display:block}
 #output{width:min(55vw,78vh);height:auto}
 #input{max-width:38vw;max-height:60vh}
 .demo{background:#5a3b00;color:#ffd27f;padding:8px;border-radius:4px}
 #status{font-family:monospace;white-space:pre;color:#9c9}
</style></head><body>
<h3>vrbridge preview</h3>
{banner}
<div class="row">
 <figure><figcaption>output <span id="output-size"></span></figcaption><img id="output" src="/stream.mjpg" alt="output stream"></figure>
 <figure><figcaption>camera input <span id="input-size"></span></figcaption><img id="input" src="/input.mjpg" alt="input stream"></figure>
</div>
<div id="status">waiting for status...</div>
<script>
async function poll(){
  try{
    const s = await (await fetch('/status.json',{cache:'no-store'})).json();
    const ms = Object.entries(s.stage_ms||{}).map(([k,v])=>k+' '+v.toFixed(1)+' ms').join('  ');
    document.getElementById('status').textContent =
      'fps '+(s.fps||0).toFixed(1)+'   frames '+s.frames+'   dropped '+s.dropped+'   status '+s.status+
      '\\n'+ms+(s.last_error?'\\nlast error: '+s.last_error:'');
  }catch(e){document.getElementById('status').textContent='engine not reachable';}
}
for (const id of ['output','input']) {  // shows the stream size (and lets tests read it from the DOM)
  const img = document.getElementById(id);
  img.addEventListener('load', () => {
    img.dataset.size = img.naturalWidth + 'x' + img.naturalHeight;
    document.getElementById(id + '-size').textContent = img.dataset.size;
  });
}
setInterval(poll,1000); poll();
</script>
</body></html>
"""


def parse_address(arg: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or empty -> (host, port); raises SinkUnavailable naming the rule."""
    arg = arg.strip()
    if not arg:
        return DEFAULT_HOST, DEFAULT_PORT
    try:
        return split_endpoint(arg, DEFAULT_HOST)
    except ValueError:
        raise SinkUnavailable(f"preview: {arg!r} is not HOST:PORT (port 0-65535), e.g. 127.0.0.1:7780, or off") from None


def make(arg: str = "", status: Callable[[], dict] | None = None, demo_notice: str = "", **_options) -> PreviewSink:
    host, port = parse_address(arg)
    try:
        if not ipaddress.ip_address(host).is_loopback:
            log.warning("preview listens on %s: reachable from other machines on the network", host)
    except ValueError:
        if host != "localhost":
            log.warning("preview listens on %s: may be reachable from other machines", host)
    return PreviewSink(host, port, status=status, demo_notice=demo_notice)
