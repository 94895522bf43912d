"""Signals and routes: the transfer function, how routes to one parameter combine, bad routes refused in one
line, the signal bus's bounds, and the default hand routes reproducing the paper's manipulations exactly."""
from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from bridge.curves import Ramp, apply_curve
from bridge.frames import Hand, Keypoints
from bridge.params import DEFAULTS, ParamStore
from bridge.routes import RouteEditor, RouteError, RouteTable, parse_route, parse_text
from bridge.signals import SignalBus, SignalError, SignalSpec, catalogue
from bridge.tracking import default_routes
from bridge.tracking.features import FEATURE_NAMES, HandFeatures, HandSignals

from test_tracking_features import hand_points

SPECS = {"hand.x": SignalSpec("hand.x", 0.0, 1.0), "test.s": SignalSpec("test.s", -1.0, 1.0)}


def evaluate(table: RouteTable, signals: dict, now: float = 0.0, **params) -> dict:
    return table.evaluate({**DEFAULTS, **params}, signals, now)


# -- the transfer function --------------------------------------------------------------------------------
def test_the_signal_span_maps_onto_the_output_range():
    table = RouteTable([parse_route({"from": "hand.x", "to": "psi", "range": [0.2, 1.2]}, SPECS)])
    assert [evaluate(table, {"hand.x": x})["psi"] for x in (0.0, 0.5, 1.0)] == pytest.approx([0.2, 0.7, 1.2])
    assert evaluate(table, {"hand.x": 7.0})["psi"] == pytest.approx(1.2)  # outside the input span: clamped


def test_input_span_invert_and_curve():
    route = parse_route({"from": "test.s", "to": "psi", "range": [0.0, 1.0], "input": [0.0, 0.5], "invert": True,
                         "curve": "ease_in"}, SPECS)
    table = RouteTable([route])
    for x in (0.0, 0.1, 0.25, 0.5, 0.9):
        t = 1.0 - min(1.0, x / 0.5)
        assert evaluate(table, {"test.s": x})["psi"] == pytest.approx(t * t)


def test_default_output_range_is_the_parameters_own_and_ints_and_bools_are_typed():
    table = RouteTable([parse_route({"from": "hand.x", "to": "psi"}, SPECS),
                        parse_route({"from": "hand.x", "to": "trunc_cutoff"}, SPECS),
                        parse_route({"from": "hand.x", "to": "freeze"}, SPECS)])
    out = evaluate(table, {"hand.x": 0.75})
    assert out["psi"] == pytest.approx(-1.0 + 3.0 * 0.75)  # psi's table range is [-1, 2]
    assert out["trunc_cutoff"] == 48 and out["freeze"] is True
    assert evaluate(table, {"hand.x": 0.25})["freeze"] is False


def test_a_route_whose_signal_never_arrived_leaves_the_stored_value():
    table = RouteTable([parse_route({"from": "hand.x", "to": "psi"}, SPECS)])
    assert evaluate(table, {}, psi=0.42)["psi"] == 0.42


def test_smoothing_glides_and_deadband_holds():
    smooth = RouteTable([parse_route({"from": "hand.x", "to": "psi", "range": [0, 1], "smooth": 0.5}, SPECS)])
    assert evaluate(smooth, {"hand.x": 0.0}, now=0.0)["psi"] == 0.0
    halfway = evaluate(smooth, {"hand.x": 1.0}, now=0.5)["psi"]
    assert halfway == pytest.approx(1.0 - math.exp(-1.0)) and smooth.settling
    assert evaluate(smooth, {"hand.x": 1.0}, now=20.0)["psi"] == pytest.approx(1.0)
    band = RouteTable([parse_route({"from": "hand.x", "to": "psi", "range": [0, 1], "deadband": 0.05}, SPECS)])
    assert evaluate(band, {"hand.x": 0.5})["psi"] == 0.5
    assert evaluate(band, {"hand.x": 0.53})["psi"] == 0.5  # jitter inside the deadband: held
    assert evaluate(band, {"hand.x": 0.6})["psi"] == pytest.approx(0.6)


def test_routes_to_one_parameter_combine_replace_then_add_then_multiply():
    routes = [parse_route({"id": "mul", "from": "test.s", "to": "psi", "input": [0, 1], "range": [0, 2],
                           "combine": "multiply"}, SPECS),
              parse_route({"id": "add", "from": "hand.x", "to": "psi", "range": [0, 0.5], "combine": "add"}, SPECS)]
    table = RouteTable(routes)
    # no replace route: the stored value is the base
    assert evaluate(table, {"hand.x": 1.0, "test.s": 0.25}, psi=0.5)["psi"] == pytest.approx((0.5 + 0.5) * 0.5)
    table.add(parse_route({"id": "rep", "from": "hand.x", "to": "psi", "range": [0, 1]}, SPECS))
    assert evaluate(table, {"hand.x": 0.2, "test.s": 0.75}, psi=0.5)["psi"] == pytest.approx((0.2 + 0.1) * 1.5)
    table.remove("rep")
    table.remove("mul")
    table.remove("add")
    assert evaluate(table, {"hand.x": 0.2, "test.s": 0.75}, psi=0.5)["psi"] == 0.5  # back to the base


def test_when_gates_a_route_and_fades_it():
    route = parse_route({"from": "hand.x", "to": "psi", "range": [0, 1], "when": "latent.hold", "fade": 1.0}, SPECS)
    table = RouteTable([route])
    assert evaluate(table, {"hand.x": 1.0}, now=0.0, psi=0.0)["psi"] == 0.0  # off from the start: no effect
    values = [evaluate(table, {"hand.x": 1.0}, now=t, psi=0.0, **{"latent.hold": True})["psi"]
              for t in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)]
    assert values[0] == 0.0 and np.all(np.diff(values[:5]) > 0) and values[-1] == 1.0


def test_a_route_that_fails_is_counted_and_the_frame_still_evaluates():
    table = RouteTable([parse_route({"from": "hand.x", "to": "psi", "scale": "mix.amount"}, SPECS),
                        parse_route({"from": "hand.x", "to": "bpm", "range": [60, 180]}, SPECS)])
    out = evaluate(table, {"hand.x": 0.5}, **{"mix.amount": "not a number"})
    assert table.errors == 1 and "ValueError" in table.last_error and table.last_error.startswith("route hand.x->psi")
    assert out["bpm"] == pytest.approx(120.0)


# -- bad routes: one line, nothing changes ------------------------------------------------------------------
@pytest.mark.parametrize("text, words", [
    ("hand.xx psi", ["unknown signal 'hand.xx'", "did you mean hand.x"]),
    ("hand.x psy", ["unknown parameter 'psy'", "did you mean psi"]),
    ("hand.x network", ["start-up", "live float, int and bool"]),
    ("hand.x noise_mode", ["enum", "live float, int and bool"]),
    ("hand.x psi range=nan,1", ["range", "finite"]),
    ("hand.x psi range=0,inf", ["range", "finite"]),
    ("hand.x psi input=0.5,0.5", ["input", "must not be empty"]),
    ("hand.x psi curve=wobbly", ["curve", "not one of linear"]),
    ("hand.x psi combine=mix", ["combine", "replace, add, multiply"]),
    ("hand.x psi colour=red", ["unknown key", "did you mean curve"]),
    ("hand.x psi smooth=-1", ["smooth", "outside"]),
    ("osc:/vrb/psi psi", ["engine's own address", "loop"]),
    ("psi", ["expected 'FROM TO"]),
    ('{"from": "hand.x"', ["not valid JSON"]),
])
def test_bad_routes_are_refused_with_one_line_and_change_nothing(text, words):
    store = ParamStore()
    table = RouteTable([parse_route({"id": "keep", "from": "hand.x", "to": "psi"}, SPECS)])
    errors = []
    RouteEditor(store, table, SignalBus(SPECS.values()), on_error=lambda code, detail: errors.append((code, detail)))
    store.set("route.add", text)
    assert len(errors) == 1 and errors[0][0] == "route"
    detail = errors[0][1]
    assert "\n" not in detail and len(detail) < 300
    for word in words:
        assert word in detail, detail
    assert [r.id for r in table.routes()] == ["keep"]
    with pytest.raises(RouteError):
        parse_text(text, SPECS)


def test_a_huge_route_string_is_refused_without_echoing_it():
    with pytest.raises(RouteError) as info:
        parse_text("hand.x psi " + "x" * 100_000, SPECS)
    assert len(str(info.value)) < 200


def test_route_actions_add_replace_remove_clear_and_list():
    store, table, lines = ParamStore(), RouteTable(), []
    errors = []
    RouteEditor(store, table, SignalBus(SPECS.values()), on_error=lambda c, d: errors.append(d), on_list=lines.extend)
    store.set("route.add", "hand.x psi range=0.2,1.2")
    store.set("route.add", '{"id": "wobble", "from": "test.s", "to": "mix.amount", "combine": "add"}')
    store.set("route.add", "hand.x psi range=0,1")  # the same id (FROM->TO): replaces
    assert {r.id: r.out_range for r in table.routes()} == {"hand.x->psi": (0.0, 1.0), "wobble": (0.0, 1.0)}
    store.set("route.list", "")
    assert len(lines) == 2 and lines[0].startswith("hand.x->psi: hand.x -> psi")
    store.set("route.remove", "wobble")
    store.set("route.remove", "nope")
    assert [r.id for r in table.routes()] == ["hand.x->psi"] and "no such route" in errors[-1]
    store.set("route.clear", "")
    assert table.routes() == [] and store.get("psi") == DEFAULTS["psi"]  # routes never write the store


def test_show_file_routes_are_checked_when_the_file_is_read(tmp_path):
    from bridge.config import ConfigError, load_show_file

    good = tmp_path / "good.toml"
    good.write_text('psi = 0.5\n[[route]]\nfrom = "hand.x"\nto = "psi"\nrange = [0.3, 1.2]\n\n'
                    '[[route]]\nfrom = "beat.phase"\nto = "mix.amount"\ncombine = "multiply"\n')
    settings = load_show_file(str(good))
    assert settings["psi"] == 0.5 and [r["from"] for r in settings["route"]] == ["hand.x", "beat.phase"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[route]]\nfrom = "hand.x"\nto = "psi"\n\n[[route]]\nfrom = "hand.pinch"\nto = "sead"\n')
    with pytest.raises(ConfigError) as info:
        load_show_file(str(bad))
    assert str(info.value) == "bad.toml: route[1].to: unknown parameter 'sead' (did you mean seed?)"


# -- the signal bus --------------------------------------------------------------------------------------------
def test_the_bus_takes_declared_finite_values_only_and_newest_wins():
    bus = SignalBus([SignalSpec("a.b", 0.0, 1.0, source="test")])
    assert bus.publish("a.b", 0.3) and bus.publish("a.b", 0.4)
    assert not bus.publish("a.c", 1.0) and not bus.publish("a.b", float("nan")) and not bus.publish("a.b", "x")
    assert bus.value("a.b") == 0.4 and bus.stats()["rejected"] == 3
    assert bus.describe("a.b")["source"] == "test" and bus.age("a.b") < 1.0
    with pytest.raises(SignalError, match="did you mean a.b"):
        bus.spec("a.bb")
    with pytest.raises(SignalError):
        SignalSpec("Bad Name")
    with pytest.raises(SignalError):
        SignalSpec("a.d", 1.0, 1.0)


def test_a_source_thread_that_raises_or_stalls_only_costs_its_own_signals():
    bus = SignalBus([SignalSpec("slow.x"), SignalSpec("bad.x")])
    release = threading.Event()

    def stalling():
        bus.publish("slow.x", 0.5)
        release.wait(5)  # a source stuck in a driver call

    def raising():
        try:
            raise OSError("device vanished")
        except OSError as exc:
            bus.report_error("bad", exc)

    threads = [threading.Thread(target=stalling), threading.Thread(target=raising)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    table = RouteTable([parse_route({"from": "slow.x", "to": "psi", "range": [0, 1]}, {"slow.x": bus.spec("slow.x")})])
    t0 = time.perf_counter()
    assert evaluate(table, bus.values())["psi"] == 0.5  # the last value holds while the source is stuck
    assert time.perf_counter() - t0 < 0.05
    assert bus.stats()["errors"] == {"bad": 1} and "device vanished" in bus.stats()["last_error"]
    release.set()
    for t in threads:
        t.join()


def test_the_catalogue_lists_the_hand_and_tempo_signals():
    names = catalogue()
    for name in ("hand.x", "hand.y", "hand.distance", "hand.angle", "hand.size", "hand.pinch", "hand.openness",
                 "hand.present", "beat.phase", "lfo"):
        assert name in names
    assert names["hand.x"].osc_address == "/vrb/signal/hand/x"


# -- the default hand routes are the paper's manipulations, exactly ---------------------------------------------
def keypoints_at(cx, cy, angle, scale, t, index) -> Keypoints:
    return Keypoints(hands=(Hand(hand_points(cx, cy, angle, scale), "right", 0.95),), active=0, t_capture=t,
                     frame_index=index, aspect=4 / 3)


def test_default_routes_reproduce_the_hand_manipulations_bit_for_bit():
    """The formulas the hand manipulations used before they became routes, evaluated beside the routes."""
    bus = SignalBus()
    stage = HandSignals(bus)
    table = RouteTable(parse_route(e) for e in default_routes())
    reference_features, reference_ramp = HandFeatures(), Ramp()
    params = {**DEFAULTS, "hand.ease_s": 0.4, "hand.const.amount": 0.8, "hand.const.curve": "smooth",
              "hand.transform.rotate": -1.5, "hand.transform.translate": 0.7, "hand.transform.scale": 0.9}
    checked = 0
    for i, t in enumerate(np.arange(0.0, 2.0, 0.05)):
        present = t < 1.2  # the hand eases in, stays, is lost and eases out
        kp = keypoints_at(0.3 + 0.3 * t, 0.6 - 0.1 * t, 25 * t, 1.0 + 0.2 * t, t, i) if present else \
            Keypoints(hands=(), active=None, t_capture=t, frame_index=i, aspect=4 / 3)
        snapshot = dict(params)
        stage.update(kp, snapshot, t)
        routed = table.evaluate(snapshot, bus.values(), t)
        # the formulas the manipulations used
        seen = reference_features.update(kp, params)
        level = reference_ramp.update(1.0 if seen else 0.0, t, params["hand.ease_s"])
        v = reference_features.values()
        if level <= 0.0:
            continue
        a = apply_curve(params["hand.const.curve"], v["distance"]) * params["hand.const.amount"] * level
        assert routed["const.corrupt"] == a  # exact
        angle = v["angle"] * params["hand.transform.rotate"] * level
        assert routed["sg3.rotate"] == angle  # exact
        move = params["hand.transform.translate"] * level
        tx = (v["x"] - 0.5) * move
        if level == 1.0:
            assert routed["sg3.translate.x"] == tx  # exact once engaged ...
        assert routed["sg3.translate.x"] == pytest.approx(tx, rel=1e-12, abs=1e-15)  # ... an ulp while easing
        ratio = max(v["area"], 1e-6) / params["hand.transform.area_ref"]
        zoom = min(4.0, max(0.25, ratio ** (params["hand.transform.scale"] * 0.5 * level)))
        assert 2.0 ** routed["sg3.zoom"] == pytest.approx(zoom, rel=1e-12)
        checked += 1
    assert checked > 20


def test_default_routes_can_be_replaced_to_drive_psi_instead():
    bus = SignalBus()
    stage = HandSignals(bus)
    table = RouteTable(parse_route(e) for e in default_routes())
    table.remove("hand.const")
    table.add(parse_route({"from": "hand.distance", "to": "psi", "range": [0.2, 1.2]}))
    snapshot = {**DEFAULTS, "hand.ease_s": 0.0}
    stage.update(keypoints_at(0.9, 0.85, 0, 1, 0.0, 0), snapshot, 0.0)
    routed = table.evaluate(snapshot, bus.values(), 0.0)
    assert routed["const.corrupt"] == 0.0  # the multiply-only ease route on a zero base
    assert routed["psi"] == pytest.approx(0.2 + bus.value("hand.distance"))
    assert FEATURE_NAMES  # the feature names the signals come from stay exported


# -- presets keep the routes -----------------------------------------------------------------------------------
def test_presets_save_and_recall_the_routes(tmp_path):
    from bridge.osc.presets import PresetBank

    store = ParamStore()
    table = RouteTable([parse_route({"from": "hand.x", "to": "psi", "range": [0.2, 1.2]}, SPECS)])
    errors = []
    bank = PresetBank(store, tmp_path / "presets.toml", on_error=lambda code, detail: errors.append(detail))
    bank.routes = table
    store.set("psi", 0.4)
    store.set("preset.save", "verse")
    table.clear()
    table.add(parse_route({"from": "test.s", "to": "mix.amount"}, SPECS))
    store.set("psi", 0.9)
    store.set("preset.recall", "verse")
    assert store.get("psi") == pytest.approx(0.4)
    assert [(r.id, r.out_range) for r in table.routes()] == [("hand.x->psi", (0.2, 1.2))]
    assert bank.flush() and '"from" = "hand.x", "to" = "psi"' in (tmp_path / "presets.toml").read_text()
    # a preset whose stored route no longer parses is refused whole: nothing changes
    reread = PresetBank(ParamStore(), tmp_path / "presets.toml")
    reread.routes = RouteTable()
    assert reread.presets["verse"]["routes"][0]["range"] == [0.2, 1.2]  # the file reads back as route tables
    reread.presets["verse"]["routes"] = [{"from": "hand.nope", "to": "psi"}]
    reread.store.set("psi", 1.5)
    with pytest.raises(Exception) as info:
        reread.recall("verse")
    assert "hand.nope" in str(info.value) and reread.store.get("psi") == 1.5 and reread.routes.routes() == []
    assert not errors


def test_the_routes_guide_says_what_the_code_does(tmp_path):
    """docs/routes.md: its show-file snippet loads, its OSC examples parse, its default-route table names the ids."""
    import re

    from bridge.config import load_show_file
    from conftest import REPO

    guide = (REPO / "docs" / "routes.md").read_text(encoding="utf-8")
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", guide, re.S)):
        show = tmp_path / f"snippet{i}.toml"
        show.write_text(block)
        assert load_show_file(str(show))["route"]
    examples = re.findall(r'/vrb/route/add "([^"]+)"', guide)
    assert len(examples) >= 2
    for text in examples:
        parse_text(text)
    for route_id in {r["id"].removesuffix(".ease") for r in default_routes()} - {"hand.translate_x", "hand.translate_y"}:
        assert f"`{route_id}`" in guide, route_id
