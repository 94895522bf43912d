"""CUDA: the synthesis captured as a CUDA graph (bridge.cuda_graph) replays what the eager network computes,
follows the tensor levers edited in place, leaves every frame it does not cover to the eager network, and runs
in the engine. Run by ``vrbridge bench gpu`` (``pytest -m gpu``); skipped where no CUDA device exists."""
from __future__ import annotations

import pytest
import torch

from bridge.bending import BEND_SLOTS, Bender
from bridge.cuda_graph import GraphedSynthesis
from bridge.manipulate.const_corruption import ConstCorruption
from bridge.manipulate.sg3_transform import InputTransform
from bridge.stylegan import load_network
from conftest import STYLEGAN_FIXTURES
from stylegan_cases import psnr

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

LEVERS = {"sg2_tiny": (ConstCorruption, {"const.corrupt": 0.8}, "b8"),
          "sg3t_tiny": (InputTransform, {"sg3.rotate": 40.0, "sg3.translate.x": 0.1}, "L3"),
          "sg3r_tiny": (InputTransform, {"sg3.rotate": -20.0, "sg3.zoom": 0.4}, "input")}


def _ws(generator, seed: int) -> torch.Tensor:
    z = torch.randn(1, generator.z_dim, generator=torch.Generator().manual_seed(seed)).cuda()
    with torch.inference_mode():
        return generator.mapping(z, None, truncation_psi=0.7)


def _eager(generator, ws, noise_mode: str = "const") -> torch.Tensor:
    with torch.inference_mode():
        return generator.synthesis(ws, noise_mode=noise_mode).float().cpu()


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("model", sorted(LEVERS))
def test_replay_equals_eager_and_follows_the_levers(model, fast):
    generator = load_network(STYLEGAN_FIXTURES / f"{model}.pkl", device="cuda").set_fast(fast)
    graphed = GraphedSynthesis(generator)
    graphed.start()
    first = graphed(_ws(generator, 1), "const")  # captures; this frame is the eager picture
    assert graphed.status == "ready" and first is not None
    for seed in (2, 3):
        ws = _ws(generator, seed)
        got = graphed(ws, "const").float().cpu()
        assert psnr(got.numpy(), _eager(generator, ws).numpy()) > 60
    lever_cls, params, layer = LEVERS[model]
    lever = lever_cls()
    lever.apply(generator, params, now=2.0)  # edits b4.const / input.transform in place
    ws = _ws(generator, 4)
    with_lever = graphed(ws, "const").float().cpu()
    expected = _eager(generator, ws)
    lever.restore()
    assert float((expected - _eager(generator, ws)).abs().max()) > 1e-2  # the lever really changes the picture
    assert psnr(with_lever.numpy(), expected.numpy()) > 60
    assert graphed.frames == 3


def test_frames_it_does_not_cover_are_left_to_the_eager_network():
    generator = load_network(STYLEGAN_FIXTURES / "sg2_tiny.pkl", device="cuda").set_fast(True)
    graphed = GraphedSynthesis(generator)
    ws = _ws(generator, 1)
    graphed(ws, "const")
    assert graphed(ws, "random") is None  # random noise
    assert graphed(torch.cat([ws, ws]), "const") is None  # batch 2
    assert graphed(ws.cpu(), "const") is None  # another device
    bender = Bender()
    snap = {f"bend.{i}.{k}": v for i in range(BEND_SLOTS) for k, v in
            (("enable", False), ("amount", 0.0), ("kind", "rotate"), ("layer", ""), ("channels", ""), ("mask", "all"))}
    bender.apply(generator, {**snap, "bend.0.enable": True, "bend.0.amount": 0.5, "bend.0.layer": "b8"})
    assert graphed(ws, "const") is None  # a network bend
    bender.apply(generator, snap)
    assert graphed(ws, "const") is not None
    with torch.no_grad():
        generator.synthesis.b8.conv0.weight.mul_(0.5)  # a lever that edits the weights (model mixing)
    assert graphed(ws, "const") is None


def test_the_engine_runs_the_graph_on_cuda():
    from bridge.startup import build_engine

    engine = build_engine({"device": "cuda", "compile": "cudagraph", "source": "pattern", "source_fps": 120.0,
                           "network": str(STYLEGAN_FIXTURES / "sg3t_tiny.pkl"), "demo_encoder": True,
                           "preview": "off", "osc_in": "off", "oscquery": "off", "osc_out": []})
    engine.start()
    try:
        engine.run_forever(duration=30.0, max_frames=120)
        health = engine.health()
    finally:
        engine.stop()
    graph = health["services"]["GraphedSynthesis"]
    assert health["status"] == "ok" and health["frames"] >= 120
    assert graph["status"] == "ready" and graph["compiled_frames"] >= 100
