"""The OSC bridge: control in, telemetry out, rig maps, OSCQuery, presets and tempo.

``attach(engine, settings)`` is the one entry point the engine builder calls. It works on any object with
``params`` (a ParamStore), ``signals`` (a SignalBus), ``routes`` (a RouteTable), ``add_service(svc)``,
``add_signal_stage(stage)`` and ``add_report_observer(fn)``, and sets
``engine.osc_server`` so other stages can ``engine.osc_server.add_handler(pattern, fn)`` for addresses that
are not parameters (e.g. keypoints from TouchDesigner).

Modules: codec (packets), patterns (address matching), server (control in), telemetry (out), maps,
oscquery, presets, tempo, signal_input (incoming addresses as ``osc:`` signals); net and ratelimit are small
helpers. See docs/osc.md.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping

from bridge.osc.signal_input import OscSignalInput
from bridge.params import PARAMS_BY_NAME

log = logging.getLogger(__name__)

SHOW_FILE_KEY = "show_file"  # an extra settings key: the show file's path (presets are stored beside it)


@dataclasses.dataclass
class OscBridge:
    """What :func:`attach` built (each part is also registered with the engine as a service)."""

    server: Any
    telemetry: Any = None
    oscquery: Any = None
    router: Any = None
    presets: Any = None
    tempo: Any = None
    routes: Any = None  # the route.* actions (bridge.routes.RouteEditor)
    signal_input: Any = None  # incoming addresses published as osc: signals


def attach(engine, settings: Mapping[str, Any]) -> OscBridge:
    """Create and register the OSC services from settings (osc_in, osc_out, osc_allow, osc_maps, oscquery,
    presets, show_file). Raises bridge.cli.UserError for a setting that cannot work."""
    def setting(name: str) -> Any:
        return settings.get(name, PARAMS_BY_NAME[name].default if name in PARAMS_BY_NAME else None)

    server = _control_server(engine.params, setting)
    engine.osc_server = server
    engine.add_service(server)
    bridge = OscBridge(server=server, telemetry=_telemetry(engine, server, setting))
    bridge.signal_input = OscSignalInput(engine.signals, server)
    bridge.router = _maps(engine.params, server, setting, bridge.signal_input)
    bridge.routes = _routes(engine, bridge)
    _presets_and_tempo(bridge, engine, setting)
    from bridge.osc.tempo import TempoSignals

    engine.add_signal_stage(TempoSignals(bridge.tempo, engine.signals))
    bridge.oscquery = _oscquery(engine, server, setting)
    engine.osc = bridge
    return bridge


def _control_server(store, setting):
    from bridge.osc.net import parse_endpoint
    from bridge.osc.server import OscServer

    osc_in = str(setting("osc_in")).strip()
    if osc_in.lower() == "off":
        return OscServer(store, port=None)  # no socket; still hosts the tickers (fades, LFO)
    host, port = parse_endpoint(osc_in, "osc_in")
    return OscServer(store, host, port, allow=setting("osc_allow") or ())


def _telemetry(engine, server, setting):
    from bridge.osc.net import parse_endpoint, resolve
    from bridge.osc.telemetry import Telemetry

    targets = [parse_endpoint(t, "osc_out") for t in _as_list(setting("osc_out")) if t.lower() != "off"]
    if not targets:
        return None
    telemetry = Telemetry(engine.params, [(resolve(host, "osc_out"), port) for host, port in targets])
    engine.add_report_observer(telemetry.observe)
    server.add_error_listener(telemetry.send_error)
    telemetry.add_provider(lambda: server_counters(server))
    engine.add_service(telemetry)
    return telemetry


def _maps(store, server, setting, signal_input):
    """Rig maps set stored values; each literal address they name is also published as an ``osc:`` signal."""
    from bridge.cli import UserError
    from bridge.osc.maps import MapError, MapRouter, load_map
    from bridge.osc.patterns import is_pattern

    router = MapRouter(store)
    for spec in _as_list(setting("osc_maps")):
        try:
            rig_map = load_map(spec)
        except MapError as exc:
            raise UserError(f"osc_maps: {exc}") from None
        router.install(rig_map, server)
        for route in rig_map.routes:
            if not is_pattern(route.address):
                signal_input.watch("osc:" + route.address, quiet=True)
    return router


def _routes(engine, bridge: OscBridge):
    """The route.* actions over OSC; routes naming osc: signals start their addresses' publishing."""
    from bridge.routes import RouteEditor

    telemetry = bridge.telemetry
    send_lines = (lambda lines: telemetry.send_list("/vrb/route/list", lines)) if telemetry else None
    editor = RouteEditor(engine.params, engine.routes, engine.signals, on_error=bridge.server.report_error,
                         on_list=send_lines)
    engine.routes.add_source_listener(bridge.signal_input.watch)
    return editor


def _presets_and_tempo(bridge: OscBridge, engine, setting) -> None:
    from bridge.osc.presets import PresetBank, default_presets_path
    from bridge.osc.tempo import Tempo

    server, telemetry, store = bridge.server, bridge.telemetry, engine.params
    show = str(setting(SHOW_FILE_KEY)) if setting(SHOW_FILE_KEY) else None
    send_names = (lambda names: telemetry.send_list("/vrb/preset/names", names)) if telemetry else None
    bridge.presets = PresetBank(store, default_presets_path(str(setting("presets") or ""), show),
                                on_error=server.report_error, on_names=send_names)
    bridge.presets.attach_ticks(server)
    engine.add_service(bridge.presets)
    bridge.presets.routes = engine.routes  # presets save and recall the routes with the values
    bridge.tempo = Tempo(store, on_error=server.report_error)
    bridge.tempo.attach_ticks(server)
    if telemetry:
        telemetry.add_provider(bridge.tempo.telemetry, every_frame=True)
        telemetry.add_provider(bridge.presets.telemetry)


def _oscquery(engine, server, setting):
    from bridge.osc.net import is_loopback, parse_endpoint, resolve
    from bridge.osc.oscquery import OscQueryServer

    text = str(setting("oscquery")).strip()
    if text.lower() == "off":
        return None
    host, port = parse_endpoint(text, "oscquery")
    if not is_loopback(resolve(host, "oscquery")):
        log.warning("oscquery listens on %s:%d: reachable from other machines, which can read every parameter "
                    "and follow its live value (read only: control still needs osc_allow); "
                    "use --oscquery 127.0.0.1:%d to keep it on this computer", host, port, port)
    service = OscQueryServer(engine.params, host, port, lambda: (server.host, server.port),
                             signals=engine.signals, routes=engine.routes)
    engine.add_service(service)
    return service


def server_counters(server) -> dict[str, int]:
    """The control server's counters as telemetry: /vrb/osc/<counter> and /vrb/osc/errors/<code>."""
    stats = server.stats()
    out = {f"/vrb/osc/{k}": int(v) for k, v in stats.items() if isinstance(v, int) and k not in ("port", "errors")}
    out["/vrb/osc/errors/total"] = int(stats["errors"])
    out.update({f"/vrb/osc/errors/{code}": int(n) for code, n in stats["errors_by_code"].items()})
    return out


def _as_list(value: Any) -> list[str]:
    """A list setting as strings; "a,b" items are split (``--osc-maps touchosc,grandma3``)."""
    items = [value] if isinstance(value, str) else list(value or ())
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]
