"""NDI for tests: the real runtime (ndi-python) on loopback, discovery without mDNS (see shared notes).

``NDI_CONFIG_DIR`` must point at the config before the process first initialises NDI; probe processes
inherit it. A missing ndi-python skips locally but fails under CI=true, like conftest.require_tool.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("ndi_probe.py")
LOOPBACK_CONFIG = {"ndi": {"networks": {"ips": "127.0.0.1", "discovery": ""}}}


def require_ndi(config_dir: Path):
    """Import ndi-python with the loopback config in place, or skip (locally) / fail (CI)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "ndi-config.v1.json").write_text(json.dumps(LOOPBACK_CONFIG))
    os.environ["NDI_CONFIG_DIR"] = str(config_dir)
    try:
        import NDIlib
    except ImportError:
        message = 'ndi-python not installed: pip install -e ".[ndi]" in the clone'
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return NDIlib


def probe_receive(name: str, frames: int, save: Path | None = None, timeout: float = 20.0) -> tuple[int, list[dict]]:
    """Run the independent receiver process; return its exit status and one dict per received frame."""
    cmd = [sys.executable, str(PROBE), "receive", name, "--frames", str(frames), "--timeout", str(timeout)]
    if save is not None:
        cmd += ["--save", str(save)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, [r for r in records if "error" not in r]


def probe_sender(name: str, seconds: float, size: str = "320x240", fps: float = 30.0) -> subprocess.Popen:
    """Start the independent sender process and wait until its NDI sender exists."""
    proc = subprocess.Popen([sys.executable, str(PROBE), "send", name, "--seconds", str(seconds), "--size", size,
                             "--fps", str(fps)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise RuntimeError(f"NDI probe sender did not start (said {line!r}, exit {proc.poll()})")
    return proc
