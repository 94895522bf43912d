"""One aiohttp application on its own thread and event loop, with the bounds a show machine needs.

Why aiohttp: the preview stream, the control panel and OSCQuery's LISTEN all hold connections open for a long
time. On ``http.server`` each of those costs a thread, without limit, and WebSocket framing would have to be
written by hand. aiohttp serves every connection of a server from one event loop thread, implements
WebSockets (RFC 6455, ping/pong, close handshake) and HTTP parsing with size limits, and is a mature, kept
library. What it does not bound by itself is added here:

* **connections**: at most ``max_connections`` at once. When full, the oldest connection that is not in the
  middle of a request (a slowloris socket that never finished its headers, or an idle keep-alive) is dropped to
  make room; only when every slot is busy with a real request or stream is the newcomer refused at once
  (a plain ``503`` and close, no thread, no waiting).
* **idle / slow clients**: a connection that has not completed a request within ``idle_timeout`` seconds of
  connecting, or of its last response, is closed (slowloris). A stream whose client does not read for
  ``write_timeout`` seconds is dropped (:meth:`WebServer.write`).
* **backlog**: the listen queue is ``backlog`` deep (the OS caps it at ``net.core.somaxconn``), so a burst of
  connects is accepted at once instead of waiting for SYN retries.
* **errors**: a client that disconnects early is counted (``disconnects``), never logged with a traceback.

Threads: one per server (its event loop) plus whatever a user of the server runs in :meth:`run_blocking`'s
small pool; never one per connection.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 256
IDLE_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 10.0
BACKLOG = 1024
WATCHDOG_S = 0.5
MAX_BODY = 64 * 1024  # request bodies (the surfaces send small JSON; anything larger is refused by aiohttp)
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n"
           b"Retry-After: 1\r\nConnection: close\r\n\r\nserver full, retry\r\n")
CLIENT_GONE = (ConnectionError, asyncio.CancelledError)

# aiohttp logs a traceback per broken connection at these loggers; we count those instead.
for _name in ("aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.websocket"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class SlowClient(Exception):
    """The client did not take a write within the write timeout."""


class _Refuse(asyncio.Protocol):
    """Answers 503 and closes: what a connection beyond the cap gets, costing one small write."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(REFUSAL)  # type: ignore[attr-defined]
        transport.close()


class WebServer:
    """An aiohttp app served from its own thread. Routes go on :attr:`app` before :meth:`start`.

    The port is bound in the constructor, so a busy port is an ``OSError`` at build time, not a silent
    failure after the model has loaded.
    """

    def __init__(self, name: str, host: str, port: int, *, max_connections: int = MAX_CONNECTIONS,
                 idle_timeout: float = IDLE_TIMEOUT_S, write_timeout: float = WRITE_TIMEOUT_S,
                 backlog: int = BACKLOG, blocking_workers: int = 2):
        self.name = name
        self.host = host
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.write_timeout = write_timeout
        self.backlog = backlog
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[self._track_request],
                                   # aiohttp's own keep-alive close comes after ours, so every idle close is counted
                                   handler_args={"keepalive_timeout": idle_timeout + 5.0})
        self.sock = _listen(host, port, backlog)
        self.port = self.sock.getsockname()[1]
        self.loop: asyncio.AbstractEventLoop | None = None
        self.counts = dict.fromkeys(("requests", "refused", "evicted", "timeouts", "disconnects", "slow",
                                     "errors"), 0)
        self._conns: dict[Any, list] = {}  # RequestHandler -> [last activity, requests in flight, was open]
        self._pool = concurrent.futures.ThreadPoolExecutor(blocking_workers, thread_name_prefix=f"{name}-work")
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._on_stop: list[Callable[[], Awaitable[None]]] = []

    # -- life cycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-loop", daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0):
            raise RuntimeError(f"{self.name}: the web server did not start")

    def close(self, timeout: float = 2.0) -> None:
        """Stop serving and close every connection; bounded in time. Safe to call twice or before start."""
        loop, stopping = self.loop, self._stopping
        if loop is not None and stopping is not None and loop.is_running():
            loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        try:
            self.sock.close()
        except OSError:
            pass
        self._pool.shutdown(wait=False, cancel_futures=True)

    def on_stop(self, coro_fn: Callable[[], Awaitable[None]]) -> None:
        """``await coro_fn()`` on the loop as the server stops (close open WebSockets, wake streams)."""
        self._on_stop.append(coro_fn)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        loop.set_exception_handler(self._loop_exception)
        try:
            loop.run_until_complete(self._serve())
        except Exception:  # noqa: BLE001 - reported once; the engine keeps running without this surface
            log.exception("%s: web server stopped", self.name)
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        server = await asyncio.get_running_loop().create_server(self._accept, sock=self.sock,
                                                                backlog=self.backlog)
        watchdog = asyncio.ensure_future(self._watchdog())
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            watchdog.cancel()
            server.close()
            for hook in self._on_stop:
                try:
                    await asyncio.wait_for(hook(), 1.0)
                except Exception:  # noqa: BLE001 - closing must finish
                    pass
            for handler in list(self._conns):
                _abort(handler)
            try:
                await asyncio.wait_for(self._runner.cleanup(), 2.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - the sockets are closed either way
                pass

    # -- connection bounds ------------------------------------------------------------------------------
    def _accept(self) -> asyncio.Protocol:
        """Protocol factory: a new aiohttp handler, or a refusal when every slot is busy."""
        self._forget_closed()
        if len(self._conns) >= self.max_connections:
            victim = self._oldest_idle()
            if victim is None:
                self.counts["refused"] += 1
                return _Refuse()
            self.counts["evicted"] += 1
            _abort(victim)
            self._conns.pop(victim, None)
        handler = self._runner.server()  # type: ignore[union-attr]
        self._conns[handler] = [time.monotonic(), 0, False]
        return handler

    def _oldest_idle(self):
        idle = [(state[0], id(h), h) for h, state in self._conns.items() if state[1] == 0]
        return min(idle)[2] if idle else None

    def _forget_closed(self) -> None:
        """Drop handlers whose connection has ended (a new one has no transport yet either: give it 5 s)."""
        now = time.monotonic()
        for handler, state in list(self._conns.items()):
            if handler.transport is not None:
                state[2] = True
            elif state[2] or now - state[0] > 5.0:
                del self._conns[handler]

    async def _watchdog(self) -> None:
        """Close connections idle (or slow to send a request) for longer than ``idle_timeout``."""
        while True:
            await asyncio.sleep(WATCHDOG_S)
            self._forget_closed()
            now = time.monotonic()
            for handler, (last, in_flight, _) in list(self._conns.items()):
                if in_flight == 0 and now - last > self.idle_timeout:
                    self.counts["timeouts"] += 1
                    _abort(handler)
                    self._conns.pop(handler, None)

    @web.middleware
    async def _track_request(self, request: web.Request, handler):
        self.counts["requests"] += 1
        state = self._conns.get(request.protocol)
        if state is not None:
            state[1] += 1
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except CLIENT_GONE:
            self.counts["disconnects"] += 1
            raise
        except SlowClient:
            self.counts["slow"] += 1
            raise asyncio.CancelledError() from None
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the server down
            self.counts["errors"] += 1
            log.warning("%s: %s %s failed: %s", self.name, request.method, request.path, exc)
            return web.json_response({"error": str(exc)}, status=500)
        finally:
            if state is not None:
                state[1] -= 1
                state[0] = time.monotonic()

    def _loop_exception(self, loop, context: dict) -> None:
        exc = context.get("exception")
        if isinstance(exc, CLIENT_GONE):
            self.counts["disconnects"] += 1
            return
        self.counts["errors"] += 1
        log.debug("%s: %s", self.name, context.get("message"), exc_info=exc)

    # -- helpers for handlers ---------------------------------------------------------------------------
    async def write(self, response: web.StreamResponse, data: bytes) -> None:
        """Write to a stream, giving up on a client that has not read for ``write_timeout`` seconds."""
        try:
            await asyncio.wait_for(response.write(data), self.write_timeout)
        except asyncio.TimeoutError:
            raise SlowClient() from None

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run CPU work (JPEG encoding) on the server's small pool, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` on the loop from any thread (a no-op before start or after close)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # closed between the check and the call
                pass

    @property
    def stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "connections": len(self._conns), "max_connections": self.max_connections}


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _abort(handler) -> None:
    transport = handler.transport
    if transport is not None:
        transport.abort()
