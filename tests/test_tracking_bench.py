"""``vrbridge bench tracking --quick`` runs and reports every row (figures go to BENCHMARKS.md, not here)."""
from __future__ import annotations

import argparse

from bridge.bench import tracking


def test_quick_tracking_benchmark_reports_every_row():
    result = tracking.run(argparse.Namespace(quick=True, device="cpu", json_path=""))
    rows = {row["what"]: row for row in result["rows"]}
    assert {"mediapipe hands VIDEO, num_hands=1", "mediapipe hands VIDEO, num_hands=2",
            "const corruption (blend) 512x4x4", "sg3 input transform 3x3", "active-hand lock, 2 hands",
            "features + One-Euro update"} <= set(rows)
    for row in rows.values():
        assert row["n"] > 0 and 0 < row["median_ms"] <= row["p90_ms"]
    assert rows["mediapipe hands VIDEO, num_hands=1"]["note"] == "hand found in 10/10 frames"
