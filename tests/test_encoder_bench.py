"""``vrbridge bench encoder`` stays runnable (a smoke run on tiny sizes; the figures themselves go to BENCHMARKS.md)."""
from __future__ import annotations

import types

import pytest
import torch

from bridge.bench import encoder as bench


def test_bench_runs_and_reports_every_configuration(monkeypatch):
    monkeypatch.setattr(bench, "SIZES", ((64, 48),))
    monkeypatch.setattr(bench, "BACKBONE_TAPS", {"vgg16": ("conv1_1", "conv2_1"), "mobilenet_v3_large": ("block2",),
                                                 "dinov2_vits14": ("cls1",)})
    monkeypatch.setattr(bench, "QUICK_PATTERN_FRAMES", (0, 60, 120))
    monkeypatch.setattr(bench, "RUNTIME_CASES", (("mobilenet_v3_large", "block2", (64, 48)),))
    before = torch.get_num_threads()
    result = bench.run(types.SimpleNamespace(quick=True, device="cpu", json_path=""))
    assert torch.get_num_threads() == before  # the thread count it sets is put back
    rows = result["rows"]
    assert {(r["backbone"], r["size"], r["tap"]) for r in rows} == {
        ("vgg16", "64x48", "conv1_1"), ("vgg16", "64x48", "conv2_1"), ("mobilenet_v3_large", "64x48", "block2"),
        ("dinov2_vits14", "56x42", "cls1")}  # the ViT takes whole 14-pixel patches
    for row in rows:
        assert row["encode_ms_median"] > 0 and row["backbone_ms_median"] > 0 and row["fps"] > 0
        assert row["encode_ms_median"] <= row["encode_ms_p90"]
    demo = result["tables"]["embedded demo with each backbone"]
    assert [r["backbone"] for r in demo] == ["vgg16", "mobilenet_v3_large", "dinov2_vits14"]
    for row in demo:
        assert row["demo_fps"] > 0 and row["encode_cpu_ms"] > 0 and row["map_synth_cpu_ms"] > 0
        assert row["z_step_deg"] > row["noise_deg"] >= 0  # the pattern moves z more than pixel noise does
        assert row["picture_step"] > 0
    assert any(note.startswith("demo encoder chosen: ") for note in result["notes"])
    (runtime,) = result["tables"]["backbone runtime, torch vs onnxruntime"]
    assert runtime["torch_ms"] > 0 and runtime["onnxruntime_ms"] > 0
    assert runtime["speedup"] == pytest.approx(runtime["torch_ms"] / runtime["onnxruntime_ms"], rel=0.02)
