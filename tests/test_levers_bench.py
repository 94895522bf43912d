"""``vrbridge bench levers`` runs end to end on a small size (no timings asserted: figures go in BENCHMARKS.md)."""
from __future__ import annotations


def test_levers_bench_smoke(monkeypatch, capsys):
    from bridge.cli import main

    monkeypatch.setenv("VRBRIDGE_BENCH_RESOLUTIONS", "16")
    monkeypatch.setenv("VRBRIDGE_BENCH_THREADS", "1")
    import bridge.bench.levers as levers

    monkeypatch.setattr(levers, "BUDGET_S", 0.05)
    assert main(["bench", "levers", "--quick"]) == 0
    out = capsys.readouterr().out
    for lever in ("| base | 16 |", "| 8 directions | 16 |", "| 4 bends | 16 |", "| mix (moving) | 16 |",
                  "| mix (held) | 16 |", "| swap fine from B | 16 |", "| PCA 2000 samples |", "| SeFa |"):
        assert lever in out, lever
    assert "failed" not in out
