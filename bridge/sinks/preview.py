"""The preview web server: watch the output (and the camera input) in any browser on this machine.

    /              a small page: output stream and camera input side by side, fps and stage timings,
                   and a plain banner when the untrained demo network is running (links to /control)
    /stream.mjpg   the output as multipart MJPEG (latest frame wins)
    /input.mjpg    the camera input the same way
    /snapshot.jpg  the newest output frame;  /input.jpg  the newest input frame
    /status.json   the engine's health (fps, stage ms, dropped frames, errors, sinks)

Default address 127.0.0.1:7780 (``--preview HOST:PORT``; ``--preview off`` disables it). The port is bound
when the sink is built, so a busy port is a one-line start-up error, not a silent failure later. It is served
by :class:`bridge.web.server.WebServer` (aiohttp: one event-loop thread, bounded connections, idle and
slow-client timeouts); other surfaces (the control panel) add their routes with :meth:`PreviewSink.add_routes`.
Beyond localhost the rules of :mod:`bridge.web.access` apply (token or allow-list).

Why it never slows rendering: ``publish`` only drops the frame in a box and wakes the streams; JPEG encoding
happens on the server's small worker pool, at most once per frame and only when someone is watching, and
every stream waits for the newest frame, so a slow client just skips frames.
"""
from __future__ import annotations

import asyncio
import html
import json
import logging
import threading
from typing import Any, Callable

import numpy as np
from aiohttp import web

from bridge import imageops
from bridge.endpoints import split_endpoint
from bridge.frames import RenderedFrame
from bridge.sinks.base import Sink, SinkUnavailable
from bridge.web.access import COOKIE, HEADER, Access
from bridge.web.server import WebServer

log = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7780
BOUNDARY = "vrbframe"
JPEG_QUALITY = 80
CONTROL_PATHS = ("/control/ws",)  # requests that change values (the rest only view)


class PreviewSink(Sink):
    kind = "preview"

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 status: Callable[[], dict] | None = None, demo_notice: str = "",
                 access: Access | None = None, **server_options: Any) -> None:
        super().__init__(f"{host}:{port}")
        self.host = host
        self.status_fn = status
        self.demo_notice = demo_notice
        self.access = access or Access.for_host(host)
        self.clients = 0
        self.jpegs_encoded = 0
        self.denied = 0
        self.links: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._frame: RenderedFrame | None = None
        self._seq = 0
        self._jpeg: dict[str, tuple[int, bytes]] = {}
        self._encode_lock = threading.Lock()
        self._frame_waiter: asyncio.Future | None = None
        try:
            self.web = WebServer("preview", host, port, **server_options)
        except OSError as exc:
            raise SinkUnavailable(f"preview: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                                  f"choose another with --preview {host}:PORT or --preview off") from None
        self.port = self.web.port
        self.name = f"{host}:{self.port}"
        self.web.app.middlewares.append(self._check_access)
        self.web.on_stop(self._wake_streams_async)
        routes = [("/", self._page), ("/index.html", self._page), ("/status.json", self._status),
                  ("/stream.mjpg", self._stream), ("/input.mjpg", self._stream),
                  ("/snapshot.jpg", self._still), ("/input.jpg", self._still)]
        for path, handler in routes:
            self.web.app.router.add_get(path, handler)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def add_routes(self, routes: list[web.RouteDef], link: tuple[str, str] | None = None) -> None:
        """More pages on this server (before start); ``link`` = (path, label) shown on the preview page."""
        self.web.app.router.add_routes(routes)
        if link:
            self.links.append(link)

    def start(self) -> None:
        super().start()
        self.web.start()

    def _send(self, frame: RenderedFrame) -> None:
        with self._lock:
            self._frame = frame
            self._seq += 1
        self.web.call_soon(self._wake_streams)

    def close(self, timeout: float = 1.0) -> None:
        self.web.close(timeout=max(timeout, 1.0))
        super().close(timeout)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "url": self.url, "clients": self.clients, "jpegs": self.jpegs_encoded,
                "denied": self.denied, "http": self.web.stats()}

    def describe(self) -> str:
        return f"preview {self.url} (MJPEG /stream.mjpg, /snapshot.jpg)"

    # -- frames -----------------------------------------------------------------------------------------
    def jpeg(self, which: str = "output") -> tuple[int, bytes | None]:
        """(seq, JPEG bytes) of the newest output or input picture; encoded once per frame (any thread)."""
        with self._lock:
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

    def _wake_streams(self) -> None:
        waiter, self._frame_waiter = self._frame_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wake_streams_async(self) -> None:
        self._wake_streams()

    async def _next_frame(self, after: int, timeout: float = 1.0) -> None:
        """Return once a frame newer than ``after`` is in (or after ``timeout``)."""
        if self._seq > after:
            return
        if self._frame_waiter is None:
            self._frame_waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._frame_waiter), timeout)
        except asyncio.TimeoutError:
            pass

    @property
    def closing(self) -> bool:
        return self.web.stopping

    def status(self) -> dict[str, Any]:
        status = dict(self.status_fn()) if self.status_fn else {}
        status.setdefault("notice", self.demo_notice)
        return status

    # -- HTTP ------------------------------------------------------------------------------------------------
    @web.middleware
    async def _check_access(self, request: web.Request, handler):
        given = request.query.get("token") or request.headers.get(HEADER) or request.cookies.get(COOKIE)
        control = request.path in CONTROL_PATHS
        if not self.access.allowed(request.remote, given, control):
            self.denied += 1
            what = "control" if control else "viewing"
            raise web.HTTPForbidden(text=f"{what} from {request.remote} needs the control token "
                                         f"(?token=...) or an allow-listed address\n")
        response = await handler(request)
        if not self.access.local and request.query.get("token") and self.access.token_ok(given) \
                and not response.prepared:
            response.set_cookie(COOKIE, given, httponly=True, samesite="Strict")
        return response

    async def _still(self, request: web.Request) -> web.Response:
        which = "input" if request.path == "/input.jpg" else "output"
        _, data = await self.web.run_blocking(self.jpeg, which)
        if data is None:
            return web.Response(status=503, text=f"no {which} frame yet\n", headers={"Retry-After": "1"})
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _status(self, request: web.Request) -> web.Response:
        body = json.dumps(await self.web.run_blocking(self.status), default=str)
        return web.Response(text=body, content_type="application/json", headers={"Cache-Control": "no-store"})

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=render_page(self.demo_notice, self.links), content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        which = "input" if request.path == "/input.mjpg" else "output"
        response = web.StreamResponse(headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                               "Cache-Control": "no-store"})
        response.force_close()
        await response.prepare(request)
        self.clients += 1
        try:
            sent = -1
            while not self.web.stopping:
                seq, data = await self.web.run_blocking(self.jpeg, which)
                if data is not None and seq != sent:
                    await self.web.write(response, f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                                   f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                    sent = seq
                await self._next_frame(seq)
        finally:
            self.clients -= 1
        return response


def encode_jpeg(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", imageops.rgb_to_bgr(rgb), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def render_page(demo_notice: str, links: list[tuple[str, str]] = ()) -> str:
    banner = (f'<p id="demo" class="demo">{html.escape(demo_notice)}</p>' if demo_notice else "")
    nav = " ".join(f'<a href="{html.escape(path)}">{html.escape(label)}</a>' for path, label in links)
    return PAGE.replace("{banner}", banner).replace("{nav}", nav)


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
 a{color:#8cf} #status{font-family:monospace;white-space:pre;color:#9c9}
</style></head><body>
<h3>vrbridge preview <small>{nav}</small></h3>
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
      'out '+(s.output_fps||0).toFixed(1)+' fps   render '+(s.fps||0).toFixed(1)+'   source '+
      (s.source_fps||0).toFixed(0)+'   frames '+s.frames+'   status '+s.status+
      '\\n'+ms+(s.last_error?'\\nlast error: '+s.last_error:'');
    // sizes from the engine each second: an MJPEG <img> fires 'load' once, so its own size goes stale
    // when the input changes (a slideshow of differently sized pictures, a camera reconnecting)
    for (const [id, size] of [['output', s.output_size], ['input', s.input_size]]) {
      if (size) showSize(id, size[0] + 'x' + size[1]);
    }
  }catch(e){document.getElementById('status').textContent='engine not reachable';}
}
function showSize(id, text){  // the caption, and data-size for tests reading the DOM
  document.getElementById(id).dataset.size = text;
  document.getElementById(id + '-size').textContent = text;
}
for (const id of ['output','input']) {  // until the first status arrives: the stream's own first picture
  const img = document.getElementById(id);
  img.addEventListener('load', () => { if (!img.dataset.size) showSize(id, img.naturalWidth + 'x' + img.naturalHeight); });
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


def make(arg: str = "", status: Callable[[], dict] | None = None, demo_notice: str = "", token: str = "",
         allow=(), public_view: bool = False, **_options) -> PreviewSink:
    """The preview sink; beyond localhost, control (and viewing unless ``public_view``) needs ``token``
    (made up and printed when not given) or an address in ``allow``."""
    host, port = parse_address(arg)
    try:
        access = Access.for_host(host, token=token, allow=allow, public_view=public_view)
    except ValueError as exc:
        raise SinkUnavailable(f"preview: {exc}") from None
    sink = PreviewSink(host, port, status=status, demo_notice=demo_notice, access=access)
    if not access.local:
        shown = "THIS-MACHINE" if host in ("0.0.0.0", "::") else host
        log.warning("preview listens on %s: reachable from other machines; %s needs the token: "
                    "http://%s:%d/control?token=%s%s", host, "control" if public_view else "viewing and control",
                    shown, sink.port, access.token,
                    f" (or from {', '.join(access.allow)})" if access.allow else "")
    return sink
