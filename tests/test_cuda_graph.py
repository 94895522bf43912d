"""The CUDA-graph synthesis (bridge.cuda_graph) where no GPU exists: what a graph covers, the synthesis
making no host tensors per frame (a capture cannot copy them to the device), and the clear refusals. The
replay itself is checked on a GPU by tests/test_gpu_graph.py (``vrbridge bench gpu``)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bridge.bending import BEND_SLOTS, Bender
from bridge.cuda_graph import GraphedSynthesis
from bridge.manipulate.const_corruption import ConstCorruption
from bridge.stylegan import load_network
from bridge.stylegan.export_graph import FrameCoverage
from conftest import STYLEGAN_FIXTURES

ROOT = Path(__file__).resolve().parents[1]


class _OpNames(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("model", ["sg2_tiny", "sg3t_tiny", "sg3r_tiny"])
def test_the_synthesis_makes_no_tensor_from_host_data_per_frame(model, fast):
    """``lift_fresh`` is a tensor made from Python data; on a GPU each is a host-to-device copy, which a CUDA
    graph capture refuses (measured on the H200: StyleGAN3's plain path wrote its sampling grid that way)."""
    generator = load_network(STYLEGAN_FIXTURES / f"{model}.pkl").set_fast(fast)
    ws = torch.zeros(1, generator.num_ws, generator.w_dim)
    with torch.inference_mode():
        generator.synthesis(ws, noise_mode="const")  # the fast path's caches are made once, before a capture
        ops = _OpNames()
        with ops:
            generator.synthesis(ws, noise_mode="const")
    assert "aten.lift_fresh.default" not in ops.names


def _no_bends() -> dict:
    return {f"bend.{i}.{k}": v for i in range(BEND_SLOTS) for k, v in
            (("enable", False), ("amount", 0.0), ("kind", "rotate"), ("layer", ""), ("channels", ""), ("mask", "all"))}


def test_coverage_follows_the_lever_and_refuses_what_the_graph_did_not_record():
    generator = load_network(STYLEGAN_FIXTURES / "sg2_tiny.pkl")
    coverage = FrameCoverage(generator, "cpu")
    ws = torch.zeros(1, generator.num_ws, generator.w_dim)
    assert coverage.covers(ws, "const")
    lever = ConstCorruption()
    lever.apply(generator, {"const.corrupt": 1.0}, now=1.0)  # edits b4.const in place: the graph reads it live
    assert coverage.covers(ws, "const")
    lever.restore()
    assert not coverage.covers(ws, "random") and not coverage.covers(ws, "none")
    assert not coverage.covers(torch.cat([ws, ws]), "const") and not coverage.covers(ws.double(), "const")
    assert not FrameCoverage(generator, "cuda").covers(ws, "const")  # another device
    bender = Bender()
    bender.apply(generator, {**_no_bends(), "bend.0.enable": True, "bend.0.amount": 0.5, "bend.0.layer": "b8"})
    assert not coverage.covers(ws, "const")
    bender.apply(generator, _no_bends())
    assert coverage.covers(ws, "const")
    with torch.no_grad():
        generator.synthesis.b8.conv0.weight.mul_(0.5)  # a lever that edits the weights (model mixing)
    assert not coverage.covers(ws, "const")


def test_on_the_cpu_the_graph_declines_and_every_frame_stays_eager():
    generator = load_network(STYLEGAN_FIXTURES / "sg3t_tiny.pkl")
    graphed = GraphedSynthesis(generator)
    graphed.start()
    assert graphed.status.startswith("failed: CUDA graphs need a CUDA device")
    assert graphed(torch.zeros(1, generator.num_ws, generator.w_dim), "const") is None
    assert graphed.stats() == {"status": graphed.status, "compiled_frames": 0}


def test_run_refuses_cudagraph_without_cuda_in_one_line():
    if torch.cuda.is_available():
        pytest.skip("checks the refusal where no CUDA device exists")
    proc = subprocess.run([sys.executable, "-m", "bridge", "run", "--device", "cpu", "--compile", "cudagraph",
                           "--frames", "1", "--preview", "off", "--osc-in", "off", "--oscquery", "off"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("compile cudagraph needs a CUDA device, not cpu: use "
                                                         "background, startup or off")
    assert "Traceback" not in proc.stderr
