"""``vrbridge bench encoder`` stays runnable (a smoke run on tiny sizes; the figures themselves go to BENCHMARKS.md)."""
from __future__ import annotations

import types

import torch

from bridge.bench import encoder as bench


def test_bench_runs_and_reports_every_configuration(monkeypatch):
    monkeypatch.setattr(bench, "SIZES", ((64, 48),))
    monkeypatch.setattr(bench, "TAPS", ("conv1_1", "conv2_1"))
    before = torch.get_num_threads()
    result = bench.run(types.SimpleNamespace(quick=True, device="cpu", json_path=""))
    assert torch.get_num_threads() == before  # the thread count it varies is put back
    rows = result["rows"]
    assert {(r["size"], r["tap"]) for r in rows} == {("64x48", "conv1_1"), ("64x48", "conv2_1")}
    for row in rows:
        assert row["encode_ms_median"] > 0 and row["backbone_ms_median"] > 0 and row["fps"] > 0
        assert row["encode_ms_median"] <= row["encode_ms_p90"]
    assert any("demo encode size chosen: 128x96" in note for note in result["notes"])
