"""CUDA: the fast path with the live levers active (const corruption, SG3's input transform, network bends)
equals the plain path, and the plain path on CUDA equals the CPU's; a generator moved between devices serves
the new device's tensors. Run by ``vrbridge bench gpu`` (``pytest -m gpu``); skipped where no CUDA device exists."""
from __future__ import annotations

import pytest
import torch

from bridge.bending import BEND_SLOTS, Bender
from bridge.manipulate.const_corruption import ConstCorruption
from bridge.manipulate.sg3_transform import InputTransform
from bridge.stylegan import load_network
from conftest import STYLEGAN_FIXTURES
from stylegan_cases import psnr

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

# model -> (the tensor lever it has, that lever's parameters at a strong setting, a layer to bend)
LEVERS = {
    "sg2_tiny": (ConstCorruption, {"const.corrupt": 1.0, "hand.const.mode": "blend"}, "b8"),
    "sg3t_tiny": (InputTransform, {"sg3.rotate": 30.0, "sg3.translate.x": 0.2, "sg3.zoom": 0.5}, "L3"),
    "sg3r_tiny": (InputTransform, {"sg3.rotate": -45.0, "sg3.translate.y": -0.1, "sg3.zoom": -0.3}, "input"),
}


def _bends(layer: str) -> dict:
    snap = {}
    for i in range(BEND_SLOTS):
        snap.update({f"bend.{i}.enable": False, f"bend.{i}.amount": 0.0, f"bend.{i}.kind": "rotate",
                     f"bend.{i}.layer": "", f"bend.{i}.channels": "", f"bend.{i}.mask": "all"})
    snap.update({"bend.0.enable": True, "bend.0.amount": 0.5, "bend.0.layer": layer,
                 "bend.1.enable": True, "bend.1.amount": 1.0, "bend.1.kind": "ablate", "bend.1.layer": layer,
                 "bend.1.channels": "0-3", "bend.1.mask": "circle"})
    return snap


def _render(generator, model: str, ws, params: dict, fast: bool) -> torch.Tensor:
    """One frame with the levers applied as the render thread applies them (lever, then bends, then synthesis)."""
    lever_cls = LEVERS[model][0]
    generator.set_fast(fast)
    lever, bender = lever_cls(), Bender()
    lever.apply(generator, params, now=3.0)
    bender.apply(generator, params)
    try:
        with torch.no_grad():
            return generator.synthesis(ws).float().cpu()
    finally:
        bender.apply(generator, _bends("")), lever.restore()


@pytest.mark.parametrize("model", sorted(LEVERS))
def test_levers_on_cuda_fast_equal_plain_and_cpu(model):
    _, lever_params, layer = LEVERS[model]
    params = {**_bends(layer), **lever_params}
    cpu = load_network(STYLEGAN_FIXTURES / f"{model}.pkl")
    cuda = load_network(STYLEGAN_FIXTURES / f"{model}.pkl", device="cuda")
    ws = cpu.mapping(torch.randn(1, cpu.z_dim, generator=torch.Generator().manual_seed(5)), None,
                     truncation_psi=0.8)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        reference = _render(cpu, model, ws, params, fast=False)
        untouched = _render(cpu, model, ws, _bends(""), fast=False)
        plain = _render(cuda, model, ws.cuda(), params, fast=False)
        fast = _render(cuda, model, ws.cuda(), params, fast=True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    assert float((reference - untouched).abs().max()) > 1e-2  # the levers really act
    assert psnr(plain.numpy(), reference.numpy()) > 80  # CUDA fp32 == CPU fp32 up to rounding
    assert torch.isfinite(fast).all() and psnr(fast.numpy(), plain.numpy()) > 35  # fp16 rounding only


@pytest.mark.parametrize("model", ["sg2_tiny", "sg3t_tiny"])
def test_fast_generator_moved_between_devices_serves_the_new_devices_tensors(model):
    generator = load_network(STYLEGAN_FIXTURES / f"{model}.pkl").set_fast(True)
    ws = generator.mapping(torch.randn(1, generator.z_dim, generator=torch.Generator().manual_seed(2)), None)
    with torch.no_grad():
        on_cpu = generator.synthesis(ws)  # fills the fast path's derived caches on the CPU
        generator.to("cuda:0")
        on_cuda = generator.synthesis(ws.to("cuda:0"))
        generator.to("cpu")
        back = generator.synthesis(ws)
    assert on_cuda.device.type == "cuda" and torch.isfinite(on_cuda).all()
    assert psnr(on_cuda.float().cpu().numpy(), on_cpu.float().numpy()) > 35
    assert torch.equal(back, on_cpu)
