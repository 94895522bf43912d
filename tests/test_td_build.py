"""td_project/build_vrbridge.py against the strict stand-in ``td`` module (tests/standins/td.py).

The stand-in fails on any operator type / parameter name not pinned from Derivative's documentation; OSC in
and out of it is real UDP on loopback, so "a parameter change reaches the engine" is checked against the
engine's own OSC server and ParamStore.
"""
from __future__ import annotations

import importlib.util
import socket
import sys
import time

import pytest

from conftest import REPO, free_port
from bridge.params import PARAMS, ParamStore, live_params

sys.path.insert(0, str(REPO / "tests"))
from standins import td  # noqa: E402

sys.modules["td"] = td  # what `import td` finds inside build()


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_vrbridge", REPO / "td_project" / "build_vrbridge.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = _load_builder()
TABLE = [p.to_dict() for p in PARAMS]


@pytest.fixture
def project():
    return td.reset()


def build(**kw):
    kw.setdefault("params_source", TABLE)
    return builder.build("/project1", **kw)


def structure(comp):
    ops = sorted((c.name, c.OPType) for c in comp.children)
    pars = sorted((p.name, p.style, p.page.name) for p in comp.customPars)
    return ops, pars


# ------------------------------------------------------------------------------------------------
def test_stand_in_refuses_names_not_in_the_pinned_list(project):
    with pytest.raises(td.StandinError, match="not pinned"):
        project.create("moviefileinTOP", "x")
    osc = project.create("oscoutDAT", "o")
    with pytest.raises(td.StandinError, match="no pinned parameter 'netaddress'"):
        osc.par.netaddress = "127.0.0.1"
    with pytest.raises(td.StandinError, match="menu value"):
        osc.par.protocol = "udp"
    with pytest.raises(td.StandinError, match="Page.appendRGB"):
        project.appendCustomPage("P").appendRGB("Color")
    with pytest.raises(td.tdError, match="uppercase"):
        project.appendCustomPage("Q").appendFloat("psi")


def test_build_is_idempotent(project):
    comp = build()
    first = structure(comp)
    created = list(td.record.created)
    comp.par.Psi = 1.25  # a value the user set survives a rebuild
    again = build()
    assert again is comp
    assert structure(comp) == first
    assert td.record.created == created, "the second run created operators"
    assert len(project.children) == 1
    assert comp.par.Psi.eval() == 1.25
    names = [p.name for p in comp.customPars]
    assert len(names) == len(set(names))


def test_every_live_row_becomes_a_matching_custom_parameter(project):
    comp = build()
    pars = {p.name: p for p in comp.customPars}
    live = list(live_params())
    styles = {"float": "Float", "int": "Int", "bool": "Toggle", "enum": "Menu", "str": "Str", "action": "Pulse"}
    for param in live:
        name = builder.custom_name(param.name)
        group = [pars[name + "1"], pars[name + "2"]] if param.kind == "int2" else [pars[name]]
        defaults = list(param.default) if param.kind == "int2" else [param.default]
        for par, default in zip(group, defaults):
            assert par.style == styles.get(param.kind, "Int"), param.name
            assert par.label == param.name
            assert param.description in par.help and param.osc_address in par.help
            assert par.page.name == param.group.capitalize()
            if param.kind == "action":
                assert pars[name + "arg"].style == "Str"
                continue
            assert par.default == default and par.eval() == default, param.name
            if param.min is not None:
                assert (par.min, par.normMin, par.clampMin) == (param.min, param.min, True), param.name
            if param.max is not None:
                assert (par.max, par.normMax, par.clampMax) == (param.max, param.max, True), param.name
            if param.kind == "enum":
                assert par.menuNames == list(param.choices), param.name
    engine_pars = {p.name for p in comp.customPars if p.page.name != builder.SETUP_PAGE}
    expected = sum(2 if p.kind in ("int2", "action") else 1 for p in live)
    assert len(engine_pars) == expected
    assert not any(p.name == builder.custom_name(q.name) for p in comp.customPars for q in PARAMS if not q.live)


def test_removed_and_changed_rows_are_updated_on_rebuild(project):
    comp = build()
    table = [dict(row) for row in TABLE if row["name"] != "bpm"]
    psi = next(row for row in table if row["name"] == "psi")
    psi.update(max=1.5, description="changed help")
    build(params_source=table)
    names = {p.name for p in comp.customPars}
    assert "Bpm" not in names
    assert comp.par.Psi.max == 1.5 and "changed help" in comp.par.Psi.help


def test_parameter_changes_reach_the_engine_over_osc(project):
    from bridge.osc.server import OscServer

    store = ParamStore()
    heard = []
    store.add_listener(lambda name, value, source: heard.append((name, value)))
    server = OscServer(store, "127.0.0.1", free_port())
    server.start()
    try:
        comp = build(control_port=server.port)
        comp.par.Psi = 0.25
        comp.par.Mixcoarse1 = 2
        comp.par.Noisemode = "random"
        comp.par.Freeze = True
        comp.par.Encodergrid = "3x1"
        comp.par.Presetsavearg = "intro"
        comp.par.Presetsave.pulse()
        comp.par.Tap.pulse()
        _wait(lambda: ("tap", "") in heard and store.get("freeze") is True)
        assert store.get("psi") == pytest.approx(0.25)
        assert store.get("mix.coarse") == (2, -1)
        assert store.get("noise_mode") == "random"
        assert store.get("encoder.grid") == "3x1"
        assert ("preset.save", "intro") in heard
        assert server.stats()["errors"] == 0, server.stats()
    finally:
        server.close()


def test_builds_from_the_engines_oscquery_endpoint(project):
    from bridge.osc.oscquery import OscQueryServer

    store = ParamStore()
    server = OscQueryServer(store, "127.0.0.1", 0)
    server.start()
    try:
        comp = build(params_source=f"http://127.0.0.1:{server.port}/")
    finally:
        server.close()
    td.reset()
    reference = builder.build("/project1", params_source=TABLE)
    by_name = {p.name: p for p in reference.customPars}
    for par in comp.customPars:
        if par.page.name == builder.SETUP_PAGE:
            continue
        ref = by_name[par.name]
        assert (par.style, par.label, par.default, par.menuNames) == (ref.style, ref.label, ref.default,
                                                                    ref.menuNames), par.name
        assert (par.min, par.max) == (ref.min, ref.max), par.name
    assert {p.name for p in comp.customPars} == set(by_name)


def test_unreachable_source_is_a_clear_error(project, tmp_path):
    with pytest.raises(builder.BuildError, match="vrbridge params --json"):
        build(params_source=f"http://127.0.0.1:{free_port(kind=socket.SOCK_STREAM)}/")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(builder.BuildError, match="bad.json"):
        build(params_source=str(bad))
    assert not project.children, "a failed build must not leave half a component"


def test_telemetry_channels_and_watchdog(project):
    from bridge.osc.codec import encode_message

    port = free_port()
    comp = build(telemetry_port=port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send = lambda address, *args: sock.sendto(encode_message(address, args), ("127.0.0.1", port))  # noqa: E731
    td.run_frame()
    assert comp.par.Enginestate.eval() == "waiting"
    for i, (addr, value) in enumerate([("/vrb/fps", 29.5), ("/vrb/ms/synth", 12.0), ("/vrb/h1/wrist/x", 0.4),
                                       ("/vrb/z/coarse/mean", 0.1), ("/vrb/psi", 0.7), ("/vrb/heartbeat", 1)]):
        send(addr, value)
    _wait(lambda: (td.run_frame(), comp.par.Enginestate.eval() == "running")[1])
    assert set(td.selected_channels(comp.op("vrb_stats"))) >= {"fps", "ms/synth", "heartbeat"}
    assert td.selected_channels(comp.op("vrb_hand")) == ["h1/wrist/x"]
    assert td.selected_channels(comp.op("vrb_latents")) == ["z/coarse/mean"]
    assert "psi" in td.selected_channels(comp.op("vrb_echo"))
    for _ in range(int(3.5 * 60)):  # no heartbeat for longer than Heartbeattimeout (3 s)
        td.run_frame()
    assert comp.par.Enginestate.eval() == "lost"
    send("/vrb/heartbeat", 2)
    _wait(lambda: (td.run_frame(), comp.par.Enginestate.eval() == "running")[1])


def test_start_stop_pulse_runs_the_engine_command(project):
    command = f'"{sys.executable}" -c "import time, sys; time.sleep(60)"'
    comp = build(engine_command=command)
    comp.par.Framesource = "none"
    args = comp.op("vrb_logic").module.engine_args()
    assert args[-4:] == ["--osc-in", "127.0.0.1:7700", "--osc-out", "127.0.0.1:7701"]
    comp.par.Addsink = True
    comp.par.Framesource = "ndi"
    assert comp.op("vrb_logic").module.engine_args()[-2:] == ["--sink", "ndi:vrbridge"]
    comp.par.Framesource = "none"
    comp.par.Start.pulse()
    proc = comp.op("vrb_logic").module._state["proc"]
    try:
        assert proc.poll() is None
        td.run_frame()
        assert comp.par.Enginestate.eval() == "starting"
        comp.par.Stop.pulse()
        assert proc.wait(timeout=10) is not None
        assert comp.par.Enginestate.eval() == "waiting"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_round_trip_with_a_real_engine(project, tmp_path):
    """Start pulse -> `vrbridge run` subprocess -> heartbeat -> running; a parameter set in TD comes back in
    the engine's telemetry echo; Stop ends it."""
    control, telemetry = free_port(), free_port()
    command = (f'"{sys.executable}" -m bridge run --duration 120 --preview off --oscquery off --status-every 0 '
               f'--source-size 64x48 --source-fps 10')
    comp = build(engine_command=command, control_port=control, telemetry_port=telemetry)
    comp.par.Framesource = "none"
    comp.par.Start.pulse()
    proc = comp.op("vrb_logic").module._state["proc"]
    try:
        _wait(lambda: (td.run_frame(), comp.par.Enginestate.eval() == "running")[1], timeout=120)
        _wait(lambda: (td.run_frame(), "fps" in td.selected_channels(comp.op("vrb_stats")))[1], timeout=60)
        comp.par.Psi = 1.5
        telemetry_chop = comp.op("vrb_telemetry")
        _wait(lambda: (td.run_frame(), telemetry_chop.channels.get("psi") == pytest.approx(1.5))[1], timeout=30)
    finally:
        comp.par.Stop.pulse()
        if proc.poll() is None:
            proc.kill()
    assert proc.poll() is not None


def _wait(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
