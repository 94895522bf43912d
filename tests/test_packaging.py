"""What a wheel install gets: the package, the shipped hand, pose and face models, the rig maps and the TouchDesigner script."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from conftest import REPO


@pytest.mark.slow
def test_wheel_carries_the_model_the_maps_and_the_td_script(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    wheel = next(tmp_path.glob("visual_reactive_bridge-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    data = "visual_reactive_bridge-0.1.0.data/data/share/visual-reactive-bridge"
    for expected in ("bridge/assets/hand_landmarker.task", "bridge/assets/hand_landmarker.LICENSE",
                     "bridge/assets/pose_landmarker.task", "bridge/assets/face_landmarker.task",
                     "bridge/assets/pose_landmarker.LICENSE", "bridge/assets/face_landmarker.LICENSE",
                     "bridge/stylegan/pickle_reader.py", f"{data}/osc_maps/resolume.toml",
                     f"{data}/osc_maps/README.md", f"{data}/td_project/build_vrbridge.py"):
        assert expected in names, expected
    shipped_maps = {p.name for p in (REPO / "osc_maps").glob("*.toml")}
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith(f"{data}/osc_maps/") and n.endswith(".toml")} \
        == shipped_maps
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "vrbridge = bridge.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith("tests/") for n in names)  # the test data stays out of the package
