"""OSCQuery (Vidvox proposal): the OSC address space as JSON over HTTP, generated from the parameter table.

``GET /`` returns the whole tree; ``GET /vrb/psi`` one node; ``GET /vrb/psi?VALUE`` one attribute
(``{"VALUE": [0.7]}``); ``GET /?HOST_INFO`` says where to send OSC. Unknown paths are 404, attributes a node
does not have are 204 (no content), unknown attributes 400, as the proposal says.

Node attributes: FULL_PATH, CONTENTS (containers), TYPE (OSC type tags), ACCESS (3 = read/write parameter,
2 = write-only action), VALUE (array; live from the ParamStore), RANGE ([{MIN, MAX}] per value, or
[{VALS: [...]}] for a choice), CLIPMODE ("both" for clamping rows, "none" for rejecting ones), UNIT,
DESCRIPTION. Only live parameters are in the tree: start-up settings are not OSC addresses.
WebSocket LISTEN is offered on the same port (see :class:`OscQueryServer`); HOST_INFO says so.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from bridge import APP_NAME
from bridge.osc.codec import encode_message
from bridge.params import OSC_ROOT, PARAMS, PARAMS_BY_ADDRESS, PARAMS_BY_NAME, Param, ParamStore

log = logging.getLogger(__name__)

EXTENSIONS = {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True, "TAGS": False,
              "CLIPMODE": True, "UNIT": True, "CRITICAL": False, "LISTEN": True, "PATH_CHANGED": False}
ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "ACCESS", "VALUE", "RANGE", "CLIPMODE", "UNIT", "DESCRIPTION")


def json_value(param: Param, value: Any) -> list:
    """A value as OSCQuery's VALUE array (one entry per type tag)."""
    if param.kind == "int2":
        return [int(value[0]), int(value[1])]
    return [value]


def param_node(param: Param, store: ParamStore) -> dict[str, Any]:
    node: dict[str, Any] = {"FULL_PATH": param.osc_address, "TYPE": param.osc_typetags,
                            "DESCRIPTION": param.description}
    if param.kind == "action":
        node["ACCESS"] = 2
        return node
    node["ACCESS"] = 3
    node["VALUE"] = json_value(param, store.get(param.name))
    count = len(param.osc_typetags)
    if param.kind == "enum":
        node["RANGE"] = [{"VALS": list(param.choices)}]
    elif param.kind == "bool":
        node["RANGE"] = [{"VALS": [False, True]}]
    elif param.min is not None or param.max is not None:
        bounds = {k: v for k, v in (("MIN", param.min), ("MAX", param.max)) if v is not None}
        if param.kind in ("int", "int2"):
            bounds = {k: int(v) for k, v in bounds.items()}
        node["RANGE"] = [dict(bounds) for _ in range(count)]
        node["CLIPMODE"] = ["both" if param.out_of_range == "clamp" else "none"] * count
    if param.unit:
        node["UNIT"] = [param.unit] * count
    return node


def build_tree(store: ParamStore, signals=None, routes=None) -> dict[str, Any]:
    """The whole address space: containers for every path segment, a method node for every live row, and
    (read-only) every signal at its telemetry address and every route under ``/vrb/routes``."""
    root: dict[str, Any] = {"FULL_PATH": "/", "CONTENTS": {}, "DESCRIPTION": f"{APP_NAME} control"}
    for param in PARAMS:
        if param.live:
            _insert(root, param.osc_address, param_node(param, store))
    if signals is not None:
        values = signals.values()
        for spec in signals.specs():
            _insert(root, spec.osc_address, signal_node(spec, values.get(spec.name)))
    if routes is not None:
        for route in routes.routes():
            address = f"{OSC_ROOT}/routes/{_SAFE.sub('_', route.id)}"
            _insert(root, address, {"FULL_PATH": address, "TYPE": "s", "ACCESS": 1, "VALUE": [route.describe()],
                                    "DESCRIPTION": f"route {route.id}: {route.source} -> {route.target}"})
    root["CONTENTS"][OSC_ROOT.strip("/")]["DESCRIPTION"] = "Every live parameter of the engine"
    return root


_SAFE = re.compile(r"[^A-Za-z0-9._-]")  # route ids become one OSC address part


def signal_node(spec, value: float | None) -> dict[str, Any]:
    """A read-only node: what a signal means and its newest value (``/vrb/signal/hand/x``)."""
    node: dict[str, Any] = {"FULL_PATH": spec.osc_address, "TYPE": "f", "ACCESS": 1,
                            "DESCRIPTION": f"signal {spec.name} ({spec.source}): {spec.description}",
                            "RANGE": [{"MIN": spec.low, "MAX": spec.high}]}
    if value is not None:
        node["VALUE"] = [value]
    if spec.unit:
        node["UNIT"] = [spec.unit]
    return node


def _insert(root: dict[str, Any], address: str, leaf: dict[str, Any]) -> None:
    parts = address.strip("/").split("/")
    node = root
    for depth, part in enumerate(parts[:-1]):
        contents = node.setdefault("CONTENTS", {})
        node = contents.setdefault(part, {"FULL_PATH": "/" + "/".join(parts[:depth + 1]), "CONTENTS": {}})
    existing = node.setdefault("CONTENTS", {}).get(parts[-1])
    if existing and "CONTENTS" in existing:  # a row that is also a container (e.g. /vrb/x and /vrb/x/y)
        existing.update(leaf)
    else:
        node["CONTENTS"][parts[-1]] = leaf


def find_node(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    node = tree
    for part in [p for p in path.split("/") if p]:
        node = node.get("CONTENTS", {}).get(part)
        if node is None:
            return None
    return node


class OscQueryServer:
    """The HTTP side of OSCQuery and its WebSocket LISTEN, on one aiohttp loop thread (a service).

    LISTEN (the proposal's WebSocket extension): a client opens a WebSocket on this same host and port and
    sends text frames ``{"COMMAND": "LISTEN", "DATA": "/vrb/psi"}`` (``IGNORE`` to stop); from then on every
    change of that parameter, from any writer, arrives as a binary frame holding one OSC message
    (``/vrb/psi ,f 0.5``). Changes are coalesced per client (the newest value of each address wins), so a
    slow client gets fewer updates, never an unbounded queue; one that does not read is dropped.
    """

    kind = "oscquery"
    MAX_LISTENERS = 64  # WebSocket clients at once
    MAX_PATHS = 1024  # paths one client may listen to

    def __init__(self, store: ParamStore, host: str, port: int,
                 osc_endpoint: Callable[[], tuple[str, int | None]] = lambda: ("", None), signals=None, routes=None):
        """``osc_endpoint()`` gives the control server's (host, port) at request time (bound after start).
        The port is bound here: a busy port is a one-line error before the slow start-up."""
        from bridge.web.server import WebServer

        self.store = store
        self.signals, self.routes = signals, routes  # shown read-only beside the parameters
        self.host = host
        self.osc_endpoint = osc_endpoint
        self.errors = 0
        self.pushed = 0
        self.bad_commands = 0
        self._clients: dict[Any, _Listener] = {}
        try:
            self.web = WebServer("oscquery", host, port)
        except OSError as exc:
            from bridge.cli import UserError

            raise UserError(f"oscquery: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                            f"choose another with --oscquery {host}:PORT or --oscquery off") from None
        self.port = self.web.port
        self.web.app.router.add_get("/{tail:.*}", self._get)
        self.web.on_stop(self._close_listeners)

    @property
    def requests(self) -> int:
        return self.web.counts["requests"]

    def host_info(self) -> dict[str, Any]:
        info = {"NAME": APP_NAME, "OSC_TRANSPORT": "UDP", "EXTENSIONS": dict(EXTENSIONS)}
        osc_host, osc_port = self.osc_endpoint()
        if osc_port:
            info.update(OSC_IP=osc_host, OSC_PORT=osc_port)
        return info

    def answer(self, raw_path: str) -> tuple[int, Any]:
        """(HTTP status, JSON body or None) for one request path with an optional ?ATTRIBUTE."""
        parts = urlsplit(raw_path)
        path, query = unquote(parts.path) or "/", unquote(parts.query)
        if query == "HOST_INFO":
            return HTTPStatus.OK, self.host_info()
        node = find_node(build_tree(self.store, self.signals, self.routes), path)
        if node is None:
            return HTTPStatus.NOT_FOUND, {"error": f"no OSC node at {path}"}
        if not query:
            return HTTPStatus.OK, node
        if query not in ATTRIBUTES:
            return HTTPStatus.BAD_REQUEST, {"error": f"unknown attribute {query!r}"}
        if query not in node:
            return HTTPStatus.NO_CONTENT, None
        return HTTPStatus.OK, {query: node[query]}

    # -- HTTP --------------------------------------------------------------------------------------------
    async def _get(self, request):
        from aiohttp import web

        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._listen(request)
        try:
            status, body = self.answer(request.path_qs)
        except Exception as exc:  # noqa: BLE001 - a bad request must not kill the server
            self.errors += 1
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)}
        if body is None:
            return web.Response(status=status)
        return web.Response(status=status, body=json.dumps(body).encode("utf-8"),
                            headers={"Content-Type": "application/json"})

    # -- LISTEN ------------------------------------------------------------------------------------------
    async def _listen(self, request):
        from aiohttp import WSMsgType, web

        if len(self._clients) >= self.MAX_LISTENERS:
            return web.Response(status=503, text="too many LISTEN clients\n")
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=4096)
        await ws.prepare(request)
        client = _Listener(ws)
        self._clients[ws] = client
        sender = asyncio.ensure_future(self._send_loop(client))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._command(client, message.data)
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            self._clients.pop(ws, None)
            client.wake()
            sender.cancel()
        return ws

    def _command(self, client: "_Listener", text: str) -> None:
        """One LISTEN / IGNORE command; anything else is counted and ignored."""
        try:
            command = json.loads(text)
            verb, path = command["COMMAND"], command["DATA"]
            param = PARAMS_BY_ADDRESS.get(path) if isinstance(path, str) else None
            if verb not in ("LISTEN", "IGNORE") or param is None or not param.live or param.kind == "action":
                raise ValueError(path)
        except (ValueError, KeyError, TypeError):
            self.bad_commands += 1
            return
        if verb == "IGNORE":
            client.paths.discard(path)
        elif len(client.paths) < self.MAX_PATHS:
            client.paths.add(path)

    def _on_change(self, name: str, value: Any, source: str) -> None:
        """A ParamStore listener (any thread): hand the change to the loop."""
        if self._clients:
            self.web.call_soon(self._queue_change, name, value)

    def _queue_change(self, name: str, value: Any) -> None:
        param = PARAMS_BY_NAME.get(name)
        if param is None or param.kind == "action":
            return
        address = param.osc_address
        for client in self._clients.values():
            if address in client.paths:
                client.pending[address] = (param, value)
                client.wake()

    async def _send_loop(self, client: "_Listener") -> None:
        while not client.ws.closed:
            await client.event.wait()
            client.event.clear()
            pending, client.pending = client.pending, {}
            for address, (param, value) in pending.items():
                packet = encode_message(address, osc_args(param, value), osc_tags(param, value))
                try:
                    await asyncio.wait_for(client.ws.send_bytes(packet), self.web.write_timeout)
                except (asyncio.TimeoutError, ConnectionError):
                    await client.ws.close()
                    return
                self.pushed += 1

    async def _close_listeners(self) -> None:
        for ws in list(self._clients):
            await ws.close()

    # -- service ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self.store.add_listener(self._on_change)
        self.web.start()
        log.info("OSCQuery on http://%s:%d/", self.host, self.port)

    def close(self) -> None:
        self.store.remove_listener(self._on_change)
        self.web.close()

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "port": self.port,
                "listeners": len(self._clients), "pushed": self.pushed, "bad_commands": self.bad_commands,
                "http": self.web.stats()}

    def describe(self) -> str:
        return f"oscquery http://{self.host}:{self.port}/ (WebSocket LISTEN on the same port)"


class _Listener:
    """One LISTEN WebSocket: the paths it listens to and the newest unsent value of each."""

    def __init__(self, ws):
        self.ws = ws
        self.paths: set[str] = set()
        self.pending: dict[str, tuple[Param, Any]] = {}
        self.event = asyncio.Event()

    def wake(self) -> None:
        self.event.set()


def osc_args(param: Param, value: Any) -> list:
    """A stored value as OSC arguments (the same shape as the parameter's OSC input)."""
    return list(value) if param.kind == "int2" else [value]


def osc_tags(param: Param, value: Any) -> str:
    if param.kind == "bool":
        return "T" if value else "F"
    return param.osc_typetags
