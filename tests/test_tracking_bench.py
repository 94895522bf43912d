"""``vrbridge bench tracking --quick`` runs and reports every row (figures go to BENCHMARKS.md, not here)."""
from __future__ import annotations

import argparse

from bridge.bench import tracking


def test_quick_tracking_benchmark_reports_every_row():
    result = tracking.run(argparse.Namespace(quick=True, device="cpu", json_path=""))
    rows = {row["what"]: row for row in result["rows"]}
    assert {"mediapipe hands VIDEO, num_hands=1", "mediapipe hands VIDEO, num_hands=2",
            "mediapipe pose VIDEO, num_poses=1", "mediapipe face VIDEO, num_faces=1",
            "together: hands (3 trackers on 3 threads)", "together: pose (3 trackers on 3 threads)",
            "together: face (3 trackers on 3 threads)", "together: wall time per frame, all three",
            "engine fps, no trackers", "engine fps, hands + pose + face",
            "const corruption (blend) 512x4x4", "sg3 input transform 3x3", "active-hand lock, 2 hands",
            "features + One-Euro update"} <= set(rows)
    for row in rows.values():
        assert row["n"] > 0 and 0 < row["median_ms"] <= row["p90_ms"], row
    assert rows["mediapipe hands VIDEO, num_hands=1"]["note"] == "hand found in 10/10 frames"
    assert rows["mediapipe pose VIDEO, num_poses=1"]["note"] == "pose found in 6/6 frames"
    assert rows["mediapipe face VIDEO, num_faces=1"]["note"] == "face found in 6/6 frames"
    assert "tracker ms/frame hands" in rows["engine fps, hands + pose + face"]["note"]
