"""OSCQuery (Vidvox proposal): the OSC address space as JSON over HTTP, generated from the parameter table.

``GET /`` returns the whole tree; ``GET /vrb/psi`` one node; ``GET /vrb/psi?VALUE`` one attribute
(``{"VALUE": [0.7]}``); ``GET /?HOST_INFO`` says where to send OSC. Unknown paths are 404, attributes a node
does not have are 204 (no content), unknown attributes 400, as the proposal says.

Node attributes: FULL_PATH, CONTENTS (containers), TYPE (OSC type tags), ACCESS (3 = read/write parameter,
2 = write-only action), VALUE (array; live from the ParamStore), RANGE ([{MIN, MAX}] per value, or
[{VALS: [...]}] for a choice), CLIPMODE ("both" for clamping rows, "none" for rejecting ones), UNIT,
DESCRIPTION. Only live parameters are in the tree: start-up settings are not OSC addresses.
WebSocket LISTEN is not offered (HOST_INFO says so): clients poll, or read telemetry.
"""
from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from bridge import APP_NAME
from bridge.params import OSC_ROOT, PARAMS, Param, ParamStore

log = logging.getLogger(__name__)

EXTENSIONS = {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True, "TAGS": False,
              "CLIPMODE": True, "UNIT": True, "CRITICAL": False, "LISTEN": False, "PATH_CHANGED": False}
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


def build_tree(store: ParamStore) -> dict[str, Any]:
    """The whole address space: containers for every path segment, a method node for every live row."""
    root: dict[str, Any] = {"FULL_PATH": "/", "CONTENTS": {}, "DESCRIPTION": f"{APP_NAME} control"}
    for param in PARAMS:
        if not param.live:
            continue
        parts = param.osc_address.strip("/").split("/")
        node = root
        for depth, part in enumerate(parts[:-1]):
            contents = node.setdefault("CONTENTS", {})
            node = contents.setdefault(part, {"FULL_PATH": "/" + "/".join(parts[:depth + 1]), "CONTENTS": {}})
        leaf = param_node(param, store)
        existing = node.setdefault("CONTENTS", {}).get(parts[-1])
        if existing and "CONTENTS" in existing:  # a row that is also a container (e.g. /vrb/x and /vrb/x/y)
            existing.update(leaf)
        else:
            node["CONTENTS"][parts[-1]] = leaf
    root["CONTENTS"][OSC_ROOT.strip("/")]["DESCRIPTION"] = "Every live parameter of the engine"
    return root


def find_node(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    node = tree
    for part in [p for p in path.split("/") if p]:
        node = node.get("CONTENTS", {}).get(part)
        if node is None:
            return None
    return node


class OscQueryServer:
    """The HTTP side of OSCQuery, on its own threads (a service)."""

    kind = "oscquery"

    def __init__(self, store: ParamStore, host: str, port: int,
                 osc_endpoint: Callable[[], tuple[str, int | None]] = lambda: ("", None)):
        """``osc_endpoint()`` gives the control server's (host, port) at request time (bound after start)."""
        self.store = store
        self.host, self.port = host, port
        self.osc_endpoint = osc_endpoint
        self.requests = 0
        self.errors = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

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
        node = find_node(build_tree(self.store), path)
        if node is None:
            return HTTPStatus.NOT_FOUND, {"error": f"no OSC node at {path}"}
        if not query:
            return HTTPStatus.OK, node
        if query not in ATTRIBUTES:
            return HTTPStatus.BAD_REQUEST, {"error": f"unknown attribute {query!r}"}
        if query not in node:
            return HTTPStatus.NO_CONTENT, None
        return HTTPStatus.OK, {query: node[query]}

    # -- service ---------------------------------------------------------------------------------------
    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            server_version = f"{APP_NAME}-oscquery"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                owner.requests += 1
                try:
                    status, body = owner.answer(self.path)
                except Exception as exc:  # noqa: BLE001 - a bad request must not kill the server
                    owner.errors += 1
                    status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)}
                data = b"" if body is None else json.dumps(body).encode("utf-8")
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("oscquery: " + fmt, *args)

        try:
            self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            from bridge.cli import UserError

            raise UserError(f"oscquery: cannot listen on {self.host}:{self.port} ({exc.strerror or exc})") from None
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="oscquery", daemon=True)
        self._thread.start()
        log.info("OSCQuery on http://%s:%d/", self.host, self.port)

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "port": self.port}

    def describe(self) -> str:
        return f"oscquery http://{self.host}:{self.port}/"
