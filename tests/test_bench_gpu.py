"""The GPU check (bench/gpu_check.sh, ``vrbridge bench gpu``) where no GPU exists: its step list, its refusal,
and the pieces of its logic that run on a CPU (the convolution layout probe, the const corruption)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bridge.bench import gpu
from bridge.stylegan.generator import Generator

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_lists_every_step_without_a_gpu():
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in gpu.STEPS:
        assert f"| {name} |" in proc.stdout
        assert callable(getattr(gpu, f"step_{name}"))
    assert "dry run: nothing executed" in proc.stdout
    assert not (ROOT / "bench" / "results" / "gpu.json").exists() or "gpu.json" not in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where no CUDA device exists")
def test_refuses_in_one_line_without_cuda():
    proc = subprocess.run([sys.executable, "-m", "bridge", "bench", "gpu", "--device", "cpu"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--device cuda" in proc.stderr


def test_layout_probe_reports_what_the_convolutions_see():
    config = {"arch": "stylegan3", "z_dim": 8, "w_dim": 8, "c_dim": 0, "img_resolution": 16, "img_channels": 3,
              "mapping_kwargs": {}, "synthesis_kwargs": {"channel_base": 256, "channel_max": 16, "num_layers": 4,
                                                         "num_critical": 1, "margin_size": 2}}
    generator = Generator.from_config(config, seed=0)
    ws = generator.mapping(torch.zeros(1, 8), None)
    plain = gpu.conv_layouts(generator, ws)
    generator.set_fast(True)
    fast = gpu.conv_layouts(generator, ws)
    assert {name for name, _, _ in fast} >= {f"synthesis.{n}" for n in generator.synthesis.layer_names}
    assert all(exact for _, _, exact in fast) and all(dtype == "float32" for _, dtype, _ in fast)
    assert not all(exact for _, _, exact in plain)  # the plain path runs NCHW: the probe can tell


def test_const_corruption_is_restored():
    config = {"arch": "stylegan2", "z_dim": 8, "w_dim": 8, "c_dim": 0, "img_resolution": 8, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 1}, "synthesis_kwargs": {"channel_base": 64, "channel_max": 8}}
    generator = Generator.from_config(config, seed=0)
    before = generator.synthesis.b4.const.detach().clone()
    with gpu._const_corrupted(generator):
        assert not torch.equal(generator.synthesis.b4.const, before)
    assert torch.equal(generator.synthesis.b4.const, before)


def test_every_bench_suite_imports():
    """A suite that does not even import is only found when someone runs the benchmarks: catch it here."""
    import importlib

    from bridge.bench import SUITES

    for name, module in SUITES.items():
        assert callable(importlib.import_module(module).run), name
