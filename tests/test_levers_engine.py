"""The levers in a real engine built from settings: model mixing, bends, directions (lazy PCA), classes, and
start-up errors that name the problem in one line."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from bridge.startup import build_engine, startup_errors
from conftest import STYLEGAN_FIXTURES, wait_for
from levers_cases import CONDITIONAL_FIXTURE, fixture, perturbed

SG2 = str(STYLEGAN_FIXTURES / "sg2_tiny.pkl")


def settings(tmp_path, **overrides):
    return {"network": SG2, "source": "pattern", "source_size": "64x48", "osc_in": "off", "osc_out": [],
            "oscquery": "off", "preview": "off", "demo_encoder": True, "encoder_size": "64x48",
            "directions_cache": str(tmp_path / "cache"), **overrides}


def frame(engine, **values) -> np.ndarray:
    """Set live values and render one frame the way the render thread does (no camera latents)."""
    for name, value in values.items():
        engine.params.set(name, value)
    rgb = engine._synthesize(engine.params.snapshot(), None, time.monotonic(), None)
    assert rgb is not None, engine.stage_health.last_error
    return rgb


def direct(generator, seed: int = 0, psi: float = 0.7) -> np.ndarray:
    from bridge import imageops

    z = torch.from_numpy(np.random.RandomState(seed).randn(1, generator.z_dim)).float()
    with torch.no_grad():
        ws = generator.mapping.truncate(generator.mapping(z, None), psi)
        return imageops.tensor_to_rgb(generator.synthesis(ws, noise_mode="const"))


@pytest.fixture
def network_b(tmp_path):
    from bridge.stylegan import save_network

    b = perturbed(fixture("sg2"), seed=21)
    path, _ = save_network(b, tmp_path / "b.safetensors")
    return b, str(path)


def test_mix_bend_and_directions_through_the_engine(tmp_path, network_b):
    b, path = network_b
    engine = build_engine(settings(tmp_path, network_b=path, directions="sefa:8"))
    try:
        base = frame(engine)
        assert np.array_equal(base, direct(fixture("sg2")))
        assert np.array_equal(frame(engine, **{"model.mix": 1.0}), direct(b))  # network B, bit for bit
        assert np.array_equal(frame(engine, **{"model.mix": 0.0}), base)
        frame(engine, **{"bend.0.layer": "b8", "bend.0.kind": "flip_x", "bend.0.amount": 1.0})
        assert np.array_equal(frame(engine), base)  # configured but not enabled
        bent = frame(engine, **{"bend.0.enable": True})
        assert np.abs(bent.astype(int) - base).mean() > 0.5
        assert np.array_equal(frame(engine, **{"bend.0.enable": False}), base)
        moved = frame(engine, **{"dir.0.amount": 8.0, "dir.0.layers": [0, 4]})
        assert np.abs(moved.astype(int) - base).mean() > 0.5
        assert np.array_equal(frame(engine, **{"dir.0.amount": 0.0}), base)
        assert "directions" in engine.mixer.directions.directions.describe()
        # Bends and the mix change the picture only on a parameter change: no continuous rendering for them.
        assert not engine._animating()
    finally:
        engine.source.close()


def test_pca_is_computed_lazily_off_the_render_thread(tmp_path):
    engine = build_engine(settings(tmp_path, directions="pca:4", directions_samples=300))
    try:
        base = frame(engine)
        assert engine.mixer.directions.directions is None and not list((tmp_path / "cache").glob("*.npz"))
        assert engine.signals.value("directions.ready") == 0.0
        frame(engine, **{"dir.1.amount": 3.0})  # the first use starts the PCA and renders at once
        assert wait_for(lambda: engine.mixer.directions.directions is not None, timeout=60)
        assert wait_for(lambda: engine.signals.value("directions.ready") == 1.0, timeout=5)
        assert engine.mixer.directions.directions.count == 4
        assert np.abs(frame(engine).astype(int) - base).mean() > 0.5
        assert len(list((tmp_path / "cache").glob("pca-*-n300-s0.npz"))) == 1
    finally:
        engine.source.close()
    # A second engine on the same model reads the cache at start-up.
    engine = build_engine(settings(tmp_path, directions="pca:2", directions_samples=300))
    try:
        assert engine.mixer.directions.directions.count == 2
        assert engine.signals.value("directions.ready") == 1.0
    finally:
        engine.source.close()


def test_conditional_model_classes_through_the_engine(tmp_path):
    routes = [{"from": "scene.class.top1_p", "to": "bend.0.amount", "range": [0.0, 1.0]},
              {"from": "scene.class.golden_retriever", "to": "bend.1.amount"}]  # any class can be named
    engine = build_engine(settings(tmp_path, network=str(CONDITIONAL_FIXTURE), directions="off", classify=True,
                                   class_map=["golden_retriever:3", "281:1"], route=routes))
    try:
        first = frame(engine, **{"class.a": 0})
        assert not np.array_equal(first, frame(engine, **{"class.a": 2}))
        assert np.array_equal(frame(engine, **{"class.a": 0}), first)
        halfway = frame(engine, **{"class.b": 2, "class.blend": 0.5})
        assert not np.array_equal(halfway, first)
        # classify: the encoder computes fc3 and the class source sees its probabilities.
        rgb = (np.random.RandomState(0).rand(48, 64, 3) * 255).astype(np.uint8)
        engine.encoder.encode(rgb, engine.params.snapshot())
        top = engine.mixer.classes.top
        assert len(top) == 5 and all(0 <= i < 1000 for i, _ in top) and top[0][1] >= top[-1][1]
        # ... and publishes the top classes as signals, which routes carry onto any lever.
        from bridge.classes import signal_names

        values = engine.signals.values()
        assert values["scene.class.top1_id"] == top[0][0] and values["scene.class.top1_p"] == pytest.approx(top[0][1])
        assert values[f"scene.class.{signal_names()[top[1][0]]}"] == pytest.approx(top[1][1])
        routed = engine.routes.evaluate(dict(engine.params.snapshot()), values, time.monotonic())
        assert routed["bend.0.amount"] == pytest.approx(top[0][1], abs=1e-6)
    finally:
        engine.source.close()


@pytest.mark.parametrize("overrides, message", [
    ({"network_b": str(STYLEGAN_FIXTURES / "sg3t_tiny.pkl")},
     "cannot mix with the network: arch 'stylegan3' differs from the network's 'stylegan2'"),
    ({"network_b": "/nonexistent/b.pkl"}, "network_b: "),
    ({"directions": "ica:3"}, "use pca:K, sefa:K"),
    ({"directions": "/nonexistent/d.npy"}, "cannot open"),
    ({"class_map": ["207:1"]}, "not conditional"),
    ({"route": [{"from": "scene.class.tabby", "to": "psi"}]}, "scene.class.tabby"),  # needs classify
    ({"classify": True, "encoder_backbone": "efficientnet_b0"}, "classify needs the vgg16 encoder backbone"),
])
def test_bad_lever_settings_stop_start_up_with_one_line(tmp_path, overrides, message):
    with pytest.raises(startup_errors()) as info:
        build_engine(settings(tmp_path, **overrides))
    text = str(info.value)
    assert message in text and "\n" not in text


def test_every_lever_reaches_the_cli_table_oscquery_and_touchdesigner():
    import importlib.util
    import json

    from bridge.commands.params import markdown
    from bridge.osc.oscquery import build_tree, find_node
    from bridge.params import BEND_SLOTS, DIRECTION_SLOTS, PARAMS, ParamStore
    from conftest import REPO

    levers = [f"dir.{i}.{k}" for i in range(DIRECTION_SLOTS) for k in ("amount", "component", "layers")]
    levers += [f"bend.{i}.{k}" for i in range(BEND_SLOTS)
               for k in ("enable", "amount", "kind", "layer", "channels", "mask")]
    levers += ["model.mix", "model.swap", "class.a", "class.b", "class.blend", "class.source"]
    table = markdown()
    tree = build_tree(ParamStore())
    spec = importlib.util.spec_from_file_location("build_vrbridge", REPO / "td_project" / "build_vrbridge.py")
    td = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(td)
    labels = {s["label"]: s for s in td.plan(td.rows_from_table(json.loads(json.dumps([p.to_dict() for p in PARAMS]))))}
    for name in levers:
        address = "/vrb/" + name.replace(".", "/")
        assert f"`{address}`" in table, name
        assert find_node(tree, address) is not None, name
        assert name in labels, name
    assert {labels["dir.0.amount"]["page"], labels["bend.3.kind"]["page"], labels["model.mix"]["page"],
            labels["class.blend"]["page"]} == {"Directions", "Bending", "Model", "Classes"}
    for startup in ("directions", "directions_samples", "directions_cache", "network_b", "classify", "class_map"):
        assert f"| `{startup}` |" in table


def test_the_guides_show_file_example_loads(tmp_path):
    from bridge.config import load_show_file
    from conftest import REPO

    text = (REPO / "docs" / "levers.md").read_text(encoding="utf-8")
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "show.toml").write_text(block)
    values = load_show_file(str(tmp_path / "show.toml"))
    assert values["classify"] is True and values["class.source"] == "camera"
    assert values["class_map"] == ("golden_retriever:3", "tabby:1", "281:1")
