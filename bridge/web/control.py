"""The web control panel at ``/control`` on the preview server: every live parameter of the table as a
control, live both ways over one WebSocket (``/control/ws``).

The page is generated from ``bridge/params.py`` (grouped like the table: sliders for ranged numbers, switches
for bools, menus for choices, text fields for strings, number fields for wide ranges and pairs; every control
carries ``data-param="<name>"``), with big freeze / blackout / tap buttons, preset recall and save, the live
signals as meters and the routes as an editable list when the engine has them, and the output and input
previews. Nothing here keeps a list of parameters of its own.

WebSocket messages (JSON text frames):

    client -> server   {"op": "set", "name": "psi", "value": 0.5, "id": 7}
                       (routes are edited with the table's route.add / route.remove actions, MIDI learn
                       with midi.learn: the same "set", so the same validation as OSC)
    server -> client   {"type": "hello", "values": {...}, "presets": [...], "signals": [...], "routes": [...]}
                       {"type": "values", "values": {"psi": 0.5, ...}}   changes from any writer, coalesced
                       {"type": "ack", "id": 7, "name": "psi", "value": 2.0, "note": "5 clamped to 2.0"}
                       {"type": "error", "id": 7, "error": "seed: 2147483648 is outside [...]"}
                       {"type": "live", "values": {...}}   what routes made of the parameters they drive, per frame
                       {"type": "signals", "values": {...}}   ~15 times a second while signals exist
                       {"type": "presets", "names": [...]}
                       {"type": "meters", "signals": [...]}  /  {"type": "routes", "routes": [...]}

Every ``set`` goes through ``ParamStore.set`` exactly like OSC: out of range is clamped and said so (or
rejected, per the table), garbage changes nothing; both are counted here and reported to the OSC control
server's error listeners (so they reach ``/vrb/error`` and its counters) when one is running.
"""
from __future__ import annotations

import asyncio
import html
import json
import logging
import math
from typing import Any

from aiohttp import WSMsgType, web

from bridge.osc.ratelimit import RateLimiter
from bridge.params import PARAMS, PARAMS_BY_NAME, Param, ParamError
from bridge.web.access import same_origin

log = logging.getLogger(__name__)

SOURCE = "panel"
SEND_HZ = 60.0  # most value messages per second per client
SIGNALS_HZ = 15.0
MAX_CLIENTS = 32
MAX_MESSAGE = 16 * 1024
MESSAGES_PER_S = 200  # per panel: a finger makes at most 60 (one per frame); beyond this is a runaway client
MESSAGE_BURST = 400
SLIDER_SPAN_MAX = 10_000  # wider ranges get a number field (a slider over 2^31 seeds is no use)
BIG_BUTTONS = ("freeze", "blackout")
OWN_UI = ("preset.", "route.", "midi.learn")  # rows with their own part of the page
PANEL_GROUPS = ("output", "synthesis", "tempo", "presets", "encoder", "hands", "telemetry")


class ControlPanel:
    """Serves ``/control`` and ``/control/ws`` on a preview sink for one engine."""

    def __init__(self, engine, preview):
        self.engine = engine
        self.store = engine.params
        self.preview = preview
        self.web = preview.web
        self.counts = dict.fromkeys(("messages", "applied", "clamped", "rejected", "garbage", "busy",
                                     "clients_refused"), 0)
        self._limit = RateLimiter(per_second=MESSAGES_PER_S, burst=MESSAGE_BURST)
        self._clients: dict[web.WebSocketResponse, _Client] = {}
        self._observing = False
        self._routed: tuple[int, frozenset[str]] = (-1, frozenset())
        self._live_sent: dict[str, Any] = {}
        preview.add_routes([web.get("/control", self._page), web.get("/control/ws", self._socket)],
                           link=("/control", "control panel"))
        self.web.on_stop(self._close_clients)

    # -- life cycle (an engine service) ----------------------------------------------------------------
    def start(self) -> None:
        self.store.add_listener(self._on_change)
        add_observer = getattr(self.engine, "add_report_observer", None)
        if add_observer is not None and not self._observing:
            add_observer(self._on_frame)
            self._observing = True

    def close(self) -> None:
        self.store.remove_listener(self._on_change)

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "clients": len(self._clients)}

    def describe(self) -> str:
        return f"control panel {self.preview.url}control"

    # -- page ----------------------------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=render_panel(bool(self._presets())), content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    # -- WebSocket -----------------------------------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if not same_origin(request.headers.get("Origin"), request.host):
            raise web.HTTPForbidden(text="control from a page of another site is refused\n")
        if len(self._clients) >= MAX_CLIENTS:
            self.counts["clients_refused"] += 1
            raise web.HTTPServiceUnavailable(text="too many control panels open\n")
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        client = _Client(ws)
        self._clients[ws] = client
        tasks = [asyncio.ensure_future(self._send_loop(client)), asyncio.ensure_future(self._signal_loop(client))]
        try:
            await client.send({"type": "hello", "values": live_values(self.store), "presets": self._presets(),
                               "signals": self._signal_specs(), "routes": self._routes()}, self.web.write_timeout)
            async for message in ws:
                if message.type == WSMsgType.TEXT and not self._limit.allow(str(id(ws))):
                    self.counts["busy"] += 1  # dropped unread: a flood must not hold the worker pool
                elif message.type == WSMsgType.TEXT:
                    reply = await self.web.run_blocking(self.handle_text, message.data)
                    if reply is not None:
                        await client.send(reply, self.web.write_timeout)
                elif message.type in (WSMsgType.BINARY, WSMsgType.ERROR):
                    self.counts["garbage"] += 1
        except (asyncio.TimeoutError, ConnectionError):
            pass  # a client that stopped reading or went away: dropped
        finally:
            self._clients.pop(ws, None)
            self._limit.forget(str(id(ws)))
            for task in tasks:
                task.cancel()
        return ws

    def handle_text(self, text: str) -> dict[str, Any] | None:
        """One message from a panel (runs on the server's worker pool: a set may take a lock or write a file)."""
        self.counts["messages"] += 1
        try:
            message = json.loads(text)
            if not isinstance(message, dict) or message.get("op") != "set" or not isinstance(message.get("name"), str):
                raise ValueError("expects {\"op\": \"set\", \"name\": ..., \"value\": ...}")
        except ValueError as exc:
            self.counts["garbage"] += 1
            self._report("malformed", f"control panel: {exc}")
            return {"type": "error", "error": f"garbage: {exc}"}
        return self.apply(message["name"], message.get("value"), message.get("id"))

    def apply(self, name: str, value: Any, ident: Any = None) -> dict[str, Any]:
        """Set one parameter through the store's validation; the reply says what was stored."""
        problem = self._check_route_edit(name, value) if name in ("route.add", "route.remove") else ""
        if problem:
            self.counts["rejected"] += 1
            self._report("invalid", f"control panel: {problem}")
            return {"type": "error", "id": ident, "name": name, "error": problem}
        try:
            stored = self.store.set(name, value, source=SOURCE)
        except ParamError as exc:
            self.counts["rejected"] += 1
            self._report(exc.code, f"control panel: {exc}")
            return {"type": "error", "id": ident, "name": name, "error": str(exc)}
        reply: dict[str, Any] = {"type": "ack", "id": ident, "name": name, "value": _jsonable(stored)}
        if _was_clamped(value, stored):
            self.counts["clamped"] += 1
            reply["note"] = f"{value} clamped to {stored}"
            self._report("clamped", f"control panel: {name} {value} clamped to {stored}")
        self.counts["applied"] += 1
        if name in ("preset.save", "preset.delete"):
            self.web.call_soon(self._broadcast_presets)
        return reply

    def _report(self, code: str, detail: str) -> None:
        server = getattr(self.engine, "osc_server", None)
        if server is not None and code != "clamped":
            server.report_error(code, detail)
        elif code == "clamped":
            log.info("%s", detail)

    # -- pushing changes -------------------------------------------------------------------------------
    def _on_change(self, name: str, value: Any, source: str) -> None:
        """A ParamStore listener (any thread); the change is queued on the loop for every panel."""
        if self._clients and PARAMS_BY_NAME[name].kind != "action":
            self.web.call_soon(self._queue, name, _jsonable(value))

    def _on_frame(self, report) -> None:
        """Report observer (render thread): the values routes gave this frame, for parameters they drive.

        Routes act on the per-frame snapshot, not the store, so without this a hand moving psi would not show.
        Only changed values are handed to the loop; nothing is done while no panel is open."""
        if not self._clients:
            return
        table = getattr(self.engine, "routes", None)
        if table is None:
            return
        if self._routed[0] != table.version:
            self._routed = (table.version, frozenset(route.target for route in table.routes()))
        changed = {}
        for name in self._routed[1]:
            value = _jsonable(report.params.get(name))
            if self._live_sent.get(name) != value:
                changed[name] = self._live_sent[name] = value
        if changed:
            self.web.call_soon(self._queue_live, changed)

    def _queue_live(self, values: dict[str, Any]) -> None:
        for client in self._clients.values():
            client.live.update(values)
            client.event.set()

    def _queue(self, name: str, value: Any) -> None:
        for client in self._clients.values():
            client.pending[name] = value
            client.event.set()

    async def _send_loop(self, client: "_Client") -> None:
        while not client.ws.closed:
            await client.event.wait()
            client.event.clear()
            values, client.pending = client.pending, {}
            live, client.live = client.live, {}
            if values:
                await client.send({"type": "values", "values": values}, self.web.write_timeout)
            if live:
                await client.send({"type": "live", "values": live}, self.web.write_timeout)
            await asyncio.sleep(1.0 / SEND_HZ)

    async def _signal_loop(self, client: "_Client") -> None:
        """Signal values (when they moved), the meter list (when signals were declared) and the routes (when
        edited), at most SIGNALS_HZ times a second."""
        bus, table = getattr(self.engine, "signals", None), getattr(self.engine, "routes", None)
        seen_version = seen_specs = seen_routes = -1
        while not client.ws.closed:
            await asyncio.sleep(1.0 / SIGNALS_HZ)
            if bus is not None and len(bus.specs()) != seen_specs:
                seen_specs = len(bus.specs())
                await client.send({"type": "meters", "signals": self._signal_specs()}, self.web.write_timeout)
            if bus is not None and bus.version != seen_version:
                seen_version = bus.version
                await client.send({"type": "signals", "values": self._signal_values()}, self.web.write_timeout)
            if table is not None and table.version != seen_routes:
                if seen_routes != -1:
                    await client.send({"type": "routes", "routes": self._routes()}, self.web.write_timeout)
                seen_routes = table.version

    def _broadcast_presets(self) -> None:
        message = {"type": "presets", "names": self._presets()}
        for client in self._clients.values():
            asyncio.ensure_future(client.send(message, self.web.write_timeout))

    async def _close_clients(self) -> None:
        for ws in list(self._clients):
            await ws.close()

    # -- what the engine has ---------------------------------------------------------------------------
    def _presets(self) -> list[str]:
        bank = getattr(getattr(self.engine, "osc", None), "presets", None)
        return bank.names() if bank is not None else []

    def _signal_specs(self) -> list[dict[str, Any]]:
        bus = getattr(self.engine, "signals", None)
        if bus is None:
            return []
        return [{"name": spec.name, "low": spec.low, "high": spec.high, "unit": spec.unit}
                for spec in sorted(bus.specs(), key=lambda spec: spec.name)]

    def _signal_values(self) -> dict[str, float]:
        bus = getattr(self.engine, "signals", None)
        return bus.values() if bus is not None else {}

    def _routes(self) -> list[dict[str, Any]]:
        table = getattr(self.engine, "routes", None)
        if table is None:
            return []
        return [{"id": route.id, "text": route.describe(), "enabled": route.enabled} for route in table.routes()]

    def _check_route_edit(self, name: str, value: Any) -> str:
        """A route edit the panel can check before it is applied, so its error comes back to the panel."""
        from bridge.routes import RouteError, parse_text
        from bridge.signals import catalogue

        try:
            if name == "route.add":
                known = {spec.name: spec for spec in self.engine.signals.specs()}
                parse_text(value, {**catalogue(), **known})
            elif name == "route.remove" and str(value).strip() not in {r.id for r in self.engine.routes.routes()}:
                return f"route.remove: no route {str(value)[:80]!r}"
        except RouteError as exc:
            return str(exc)
        return ""


class _Client:
    def __init__(self, ws: web.WebSocketResponse):
        self.ws = ws
        self.pending: dict[str, Any] = {}
        self.live: dict[str, Any] = {}  # values routes gave the last frame (parameters they drive)
        self.event = asyncio.Event()

    async def send(self, message: dict[str, Any], timeout: float) -> None:
        await asyncio.wait_for(self.ws.send_str(json.dumps(message)), timeout)


def live_values(store) -> dict[str, Any]:
    snapshot = store.snapshot()
    return {p.name: _jsonable(snapshot[p.name]) for p in PARAMS if p.live and p.kind != "action"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _was_clamped(asked: Any, stored: Any) -> bool:
    if isinstance(asked, bool) or not isinstance(asked, (int, float)) or not isinstance(stored, (int, float)):
        return False
    return float(asked) != float(stored)


# ------------------------------------------------------------------------------------------------------
# The page
# ------------------------------------------------------------------------------------------------------
def control_html(param: Param) -> str:
    """The control for one parameter: its kind and range decide the element; every one carries data-param."""
    name = html.escape(param.name)
    attrs = f'data-param="{name}" id="p-{name}" data-kind="{param.kind}"'
    unit = f'<span class="unit">{html.escape(param.unit)}</span>' if param.unit else ""
    if param.kind == "bool":
        field = f'<input type="checkbox" role="switch" {attrs}>'
    elif param.kind == "enum":
        options = "".join(f'<option value="{html.escape(c)}">{html.escape(c)}</option>' for c in param.choices)
        field = f'<select {attrs}>{options}</select>'
    elif param.kind in ("float", "int") and _slider(param):
        step = "1" if param.kind == "int" else _step(param)
        field = (f'<input type="range" {attrs} min="{param.min:g}" max="{param.max:g}" step="{step}">'
                 f'<output for="p-{name}" class="readout"></output>')
    elif param.kind in ("float", "int"):
        bounds = "".join(f' {k}="{v:g}"' for k, v in (("min", param.min), ("max", param.max)) if v is not None)
        step = "1" if param.kind == "int" else "any"
        field = f'<input type="number" inputmode="decimal" {attrs}{bounds} step="{step}">'
    elif param.kind == "int2":
        bounds = f' min="{param.min:g}" max="{param.max:g}"'
        field = "".join(f'<input type="number" inputmode="numeric" data-param="{name}" data-kind="int2" '
                        f'data-part="{i}" step="1"{bounds} aria-label="{name} {part}">'
                        for i, part in enumerate(("start", "end")))
    elif param.kind == "action":
        field = f'<button type="button" class="action" {attrs}>{name}</button>'
    else:
        field = f'<input type="text" {attrs} maxlength="256" spellcheck="false">'
    return (f'<div class="ctl" title="{html.escape(param.description)}"><label for="p-{name}">{name}</label>'
            f'{field}{unit}</div>')


def _slider(param: Param) -> bool:
    return param.min is not None and param.max is not None and param.max - param.min <= SLIDER_SPAN_MAX


def _step(param: Param) -> str:
    span = float(param.max) - float(param.min)
    return f"{10 ** math.floor(math.log10(span / 1000)):g}" if span > 0 else "any"


def groups() -> list[tuple[str, list[Param]]]:
    """Live parameters by table group, in the panel's order (groups it does not know come last)."""
    found: dict[str, list[Param]] = {}
    for param in PARAMS:
        if param.live and not param.name.startswith(OWN_UI) and param.name not in BIG_BUTTONS + ("tap",):
            found.setdefault(param.group, []).append(param)
    order = [g for g in PANEL_GROUPS if g in found] + [g for g in found if g not in PANEL_GROUPS]
    return [(g, found[g]) for g in order]


def render_panel(has_presets: bool = True) -> str:
    sections = []
    for index, (group, params) in enumerate(groups()):
        body = "".join(control_html(p) for p in params)
        sections.append(f'<details class="group" data-group="{html.escape(group)}"{" open" if index < 2 else ""}>'
                        f'<summary>{html.escape(group)}</summary>{body}</details>')
    return PANEL.replace("{preset_fade}", control_html(PARAMS_BY_NAME["preset.fade"])).replace(
        "{groups}", "".join(sections))


PANEL = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<title>vrbridge control</title>
<style>
 :root{color-scheme:dark}
 body{background:#111;color:#ddd;font:16px system-ui,sans-serif;margin:0;padding:0 10px 40px}
 header{position:sticky;top:0;background:#111;padding:8px 0;z-index:2;border-bottom:1px solid #333}
 .big{display:grid;grid-template-columns:repeat(3,1fr);gap:8px}
 .big button{font-size:20px;font-weight:600;padding:18px 4px;border-radius:10px;border:2px solid #555;background:#222;color:#eee;touch-action:manipulation}
 .big button[aria-pressed=true]{background:#b33;border-color:#f66}
 #tap.flash{background:#3a6}
 #state{font-size:12px;color:#888;margin-top:4px;min-height:1.2em}
 #state.bad{color:#f88}
 .previews{display:flex;gap:8px;margin:8px 0}
 .previews img{width:50%;max-width:360px;background:#000;border-radius:6px}
 details{border:1px solid #333;border-radius:8px;margin:8px 0;padding:0 8px}
 summary{font-weight:600;padding:10px 0;font-size:17px;text-transform:capitalize}
 .ctl{display:grid;grid-template-columns:minmax(90px,38%) 1fr auto auto;align-items:center;gap:6px;padding:6px 0;border-top:1px solid #222}
 main{display:block}
 @media (min-width:900px){ main{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:0 12px;align-items:start}
  .previews img{width:calc(50% - 4px)} details{margin:6px 0} }
 .ctl label{font-size:13px;color:#aaa;overflow-wrap:anywhere}
 input[type=range]{width:100%;height:36px;accent-color:#4af}
 input[type=checkbox]{width:36px;height:36px;accent-color:#4af}
 select,input[type=text],input[type=number]{font-size:16px;background:#222;color:#eee;border:1px solid #444;border-radius:6px;padding:8px;min-width:0;width:100%;box-sizing:border-box}
 .ctl input[data-kind=int2]{width:48%}
 .readout{font:13px monospace;color:#9cf;min-width:4em;text-align:right}
 .unit{font-size:12px;color:#888}
 button.action,.row button{font-size:16px;padding:10px 14px;border-radius:8px;background:#234;color:#eee;border:1px solid #456}
 .row{display:flex;gap:6px;flex-wrap:wrap;align-items:center;padding:6px 0}
 .meter{display:grid;grid-template-columns:minmax(90px,38%) 1fr;gap:6px;align-items:center;font-size:13px}
 .meter progress{width:100%;height:14px}
 .flashok{outline:2px solid #3a6} .flashbad{outline:2px solid #f55}
</style></head><body>
<header>
 <div class="big">
  <button type="button" id="freeze" data-param="freeze" data-kind="bool" aria-pressed="false">FREEZE</button>
  <button type="button" id="blackout" data-param="blackout" data-kind="bool" aria-pressed="false">BLACKOUT</button>
  <button type="button" id="tap" data-param="tap" data-kind="action">TAP</button>
 </div>
 <div id="state">connecting...</div>
</header>
<main>
<div class="previews"><img id="out" src="/stream.mjpg" alt="output"><img id="in" src="/input.mjpg" alt="input"></div>
<details open class="group" data-group="presets"><summary>presets</summary>
 <div class="row" id="presets"></div>
 <div class="row"><input type="text" id="preset-name" placeholder="preset name" maxlength="64">
  <button type="button" id="preset-save" data-param="preset.save" data-kind="action">save</button></div>
 {preset_fade}
</details>
<details class="group" id="signals-box" hidden><summary>signals</summary><div id="signals"></div></details>
<details class="group" id="routes-box"><summary>routes</summary><div id="routes"></div>
 <div class="row"><input type="text" id="route-text" placeholder="hand.x psi range=0,1.5 smooth=0.2" spellcheck="false">
  <button type="button" id="route-add" data-param="route.add" data-kind="action">add</button>
  <button type="button" id="route-clear" data-param="route.clear" data-kind="action">clear all</button></div>
</details>
<div class="row"><button type="button" id="learn" data-param="midi.learn" data-kind="action" aria-pressed="false">MIDI learn</button>
 <span class="unit">then tap a control's name and move a knob</span></div>
{groups}
</main>
<script>
"use strict";
const token = new URLSearchParams(location.search).get('token');
const els = name => document.querySelectorAll('[data-param="'+CSS.escape(name)+'"]');
const state = document.getElementById('state');
let learning = false;
document.addEventListener('click', ev => {  // in MIDI learn, a control's name arms it
  const label = ev.target.closest('.ctl label');
  if (!learning || !label) return;
  ev.preventDefault(); learning = false; document.getElementById('learn').setAttribute('aria-pressed', 'false');
  send('midi.learn', label.htmlFor.slice(2)); say('MIDI learn armed for ' + label.htmlFor.slice(2) + ': move a knob');
}, true);
let ws, nextId = 1, dragging = new Set(), pending = new Map(), values = {};
function say(text, bad){ state.textContent = text; state.className = bad ? 'bad' : ''; }
function send(name, value){ if(ws && ws.readyState === 1) ws.send(JSON.stringify({op:'set', name, value, id: nextId++})); }
function show(name, value){
  values[name] = value;
  for (const el of els(name)) {
    if (dragging.has(el)) continue;
    const kind = el.dataset.kind;
    if (el.tagName === 'BUTTON' && kind === 'bool') { el.setAttribute('aria-pressed', String(!!value)); continue; }
    if (kind === 'bool') el.checked = !!value;
    else if (kind === 'int2') el.value = value[+el.dataset.part];
    else if (document.activeElement !== el || el.type === 'range') el.value = value;
    el.dataset.value = JSON.stringify(value);
    const out = el.parentElement.querySelector('output'); if (out) out.textContent = (+value).toPrecision(3);
  }
}
function live(name, value){  // what a route made of the parameter this frame: readout and a bar behind the row
  for (const el of els(name)) {
    el.dataset.live = JSON.stringify(value);
    const row = el.closest('.ctl'); if (!row) continue;
    const out = row.querySelector('output'); if (out && typeof value === 'number') out.textContent = '\u21e2' + value.toPrecision(3);
    if (el.type === 'range' && typeof value === 'number') {
      const f = Math.min(1, Math.max(0, (value - +el.min) / ((+el.max - +el.min) || 1))) * 100;
      row.style.background = 'linear-gradient(90deg,#1d3347 ' + f + '%,transparent ' + f + '%)';
    }
  }
}
function throttled(name){  // one message per animation frame while a slider moves
  if (pending.has(name)) return;
  pending.set(name, true);
  requestAnimationFrame(() => { pending.delete(name); const el = els(name)[0]; send(name, el.dataset.kind === 'int' ? parseInt(el.value) : parseFloat(el.value)); });
}
function wire(el){
  const name = el.dataset.param, kind = el.dataset.kind;
  if (el.tagName === 'BUTTON') {
    el.addEventListener('click', () => {
      if (name === 'route.clear' && !confirm('Remove every route?')) return;
      if (kind === 'bool') send(name, !values[name]);
      else if (name === 'preset.save') { const n = document.getElementById('preset-name').value.trim(); if (n) send(name, n); }
      else if (name === 'route.add') { const t = document.getElementById('route-text').value.trim(); if (t) send(name, t); }
      else if (name === 'midi.learn') { learning = !learning; el.setAttribute('aria-pressed', String(learning)); if (!learning) send(name, ''); say(learning ? 'MIDI learn: tap the name of a control' : 'MIDI learn off'); }
      else send(name, '');
      if (name === 'tap') { el.classList.add('flash'); setTimeout(() => el.classList.remove('flash'), 120); }
    });
  } else if (el.type === 'range') {
    el.addEventListener('pointerdown', () => dragging.add(el));
    const up = () => dragging.delete(el);
    el.addEventListener('pointerup', up); el.addEventListener('pointercancel', up); el.addEventListener('change', up);
    el.addEventListener('input', () => { const o = el.parentElement.querySelector('output'); if (o) o.textContent = (+el.value).toPrecision(3); throttled(name); });
  } else if (kind === 'bool') {
    el.addEventListener('change', () => send(name, el.checked));
  } else if (kind === 'int2') {
    el.addEventListener('change', () => { const pair = [...els(name)].map(e => parseInt(e.value)); send(name, pair); });
  } else {
    el.addEventListener('change', () => send(name, kind === 'float' ? parseFloat(el.value) : kind === 'int' ? parseInt(el.value) : el.value));
  }
}
document.querySelectorAll('[data-param]').forEach(wire);
function presets(names){
  const box = document.getElementById('presets'); box.replaceChildren();
  for (const n of names) {
    const b = document.createElement('button'); b.type = 'button'; b.textContent = n;
    b.dataset.preset = n; b.addEventListener('click', () => send('preset.recall', n)); box.appendChild(b);
  }
  if (!names.length) box.textContent = 'no presets saved yet';
}
function meters(specs){
  const box = document.getElementById('signals'); box.replaceChildren();
  document.getElementById('signals-box').hidden = !specs.length;
  for (const s of specs) {
    const row = document.createElement('div'); row.className = 'meter';
    const label = document.createElement('span'); label.textContent = s.name;
    const bar = document.createElement('progress'); bar.max = 1; bar.dataset.signal = s.name;
    bar.dataset.low = s.low; bar.dataset.high = s.high; row.append(label, bar); box.appendChild(row);
  }
}
function routes(list){
  const box = document.getElementById('routes'); box.replaceChildren();
  for (const r of list) {
    const row = document.createElement('div'); row.className = 'row route'; row.dataset.route = r.id;
    const text = document.createElement('span'); text.className = 'unit'; text.textContent = r.text;
    const del = document.createElement('button'); del.type = 'button'; del.textContent = 'remove'; del.dataset.param = 'route.remove';
    del.addEventListener('click', () => send('route.remove', r.id));
    row.append(del, text); box.appendChild(row);
  }
  if (!list.length) box.textContent = 'no routes';
}
function connect(){
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/control/ws' + (token ? '?token=' + encodeURIComponent(token) : '');
  ws = new WebSocket(url);
  ws.onopen = () => say('connected');
  ws.onclose = () => { say('disconnected: retrying', true); setTimeout(connect, 1000); };
  ws.onmessage = ev => {
    const m = JSON.parse(ev.data);
    if (m.type === 'hello') { for (const [k, v] of Object.entries(m.values)) show(k, v); presets(m.presets); meters(m.signals); routes(m.routes); document.body.dataset.ready = '1'; }
    else if (m.type === 'values') { for (const [k, v] of Object.entries(m.values)) show(k, v); }
    else if (m.type === 'presets') presets(m.names);
    else if (m.type === 'meters') meters(m.signals);
    else if (m.type === 'live') { for (const [k, v] of Object.entries(m.values)) live(k, v); }
    else if (m.type === 'routes') routes(m.routes);
    else if (m.type === 'signals') { for (const [k, v] of Object.entries(m.values)) { const bar = document.querySelector('[data-signal="'+CSS.escape(k)+'"]'); if (bar) { const lo = +bar.dataset.low, hi = +bar.dataset.high; bar.value = Math.min(1, Math.max(0, (v - lo) / ((hi - lo) || 1))); } } }
    else if (m.type === 'ack') { window.vrbLastAck = {name: m.name, value: m.value, t: Date.now()}; if (m.note) say(m.note); if (m.name && m.value !== undefined && !/^(preset|route|midi)[.]/.test(m.name) && m.name !== 'tap') show(m.name, m.value); }
    else if (m.type === 'error') say(m.error, true);
  };
}
connect();
</script>
</body></html>
"""


def attach(engine, settings) -> ControlPanel | None:
    """Put the panel on the engine's preview server (none when the preview is off)."""
    preview = next((s for s in engine.sinks if getattr(s, "kind", "") == "preview"), None)
    if preview is None:
        return None
    panel = ControlPanel(engine, preview)
    engine.add_service(panel)
    engine.control_panel = panel
    return panel
