"""The OSC bridge: control in, telemetry out, rig maps, OSCQuery, presets and tempo.

``attach(engine, settings)`` is the one entry point the engine builder calls. It works on any object with
``params`` (a ParamStore), ``add_service(svc)`` and ``add_report_observer(fn)``, and sets
``engine.osc_server`` so other stages can ``engine.osc_server.add_handler(pattern, fn)`` for addresses that
are not parameters (e.g. keypoints from TouchDesigner).

Modules: codec (packets), patterns (address matching), server (control in), telemetry (out), maps,
oscquery, presets, tempo; net and ratelimit are small helpers. See docs/osc.md.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping

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


def attach(engine, settings: Mapping[str, Any]) -> OscBridge:
    """Create and register the OSC services from settings (osc_in, osc_out, osc_allow, osc_maps, oscquery,
    presets, telemetry.*). Raises bridge.cli.UserError for a setting that cannot work."""
    from bridge.osc.maps import MapError, MapRouter, load_map
    from bridge.osc.net import parse_endpoint, resolve
    from bridge.osc.presets import PresetBank, default_presets_path
    from bridge.osc.server import OscServer
    from bridge.osc.telemetry import Telemetry
    from bridge.osc.tempo import Tempo
    from bridge.cli import UserError

    store = engine.params
    get = settings.get
    osc_in = str(get("osc_in", "127.0.0.1:7700")).strip()
    if osc_in.lower() == "off":
        server = OscServer(store, port=None)
    else:
        host, port = parse_endpoint(osc_in, "osc_in")
        server = OscServer(store, host, port, allow=get("osc_allow", ()) or ())
    bridge = OscBridge(server=server)
    engine.osc_server = server
    engine.add_service(server)

    targets = [parse_endpoint(t, "osc_out") for t in _as_list(get("osc_out", ())) if t.lower() != "off"]
    targets = [(resolve(host, "osc_out"), port) for host, port in targets]  # look names up once, not per send
    if targets:
        bridge.telemetry = Telemetry(store, targets)
        engine.add_report_observer(bridge.telemetry.observe)
        server.add_error_listener(bridge.telemetry.send_error)
        bridge.telemetry.add_provider(lambda: server_counters(server))
        engine.add_service(bridge.telemetry)

    bridge.router = MapRouter(store)
    for spec in _as_list(get("osc_maps", ())):
        try:
            bridge.router.install(load_map(spec), server)
        except MapError as exc:
            raise UserError(f"osc_maps: {exc}") from None

    show = str(get(SHOW_FILE_KEY)) if get(SHOW_FILE_KEY) else None
    send_names = (lambda names: bridge.telemetry.send_list("/vrb/preset/names", names)) if bridge.telemetry else None
    bridge.presets = PresetBank(store, default_presets_path(str(get("presets", "") or ""), show),
                                on_error=server.report_error, on_names=send_names)
    bridge.presets.attach_ticks(server)
    bridge.tempo = Tempo(store, on_error=server.report_error)
    bridge.tempo.attach_ticks(server)
    if bridge.telemetry:
        bridge.telemetry.add_provider(bridge.tempo.telemetry, every_frame=True)
        bridge.telemetry.add_provider(bridge.presets.telemetry)

    oscquery = str(get("oscquery", "off")).strip()
    if oscquery.lower() != "off":
        from bridge.osc.oscquery import OscQueryServer

        host, port = parse_endpoint(oscquery, "oscquery")
        bridge.oscquery = OscQueryServer(store, host, port, lambda: (server.host, server.port))
        engine.add_service(bridge.oscquery)
    engine.osc = bridge
    return bridge


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
