"""Shared test helpers. Tests use real components; only platform boundaries this machine cannot reach are stood in."""
from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
STYLEGAN_FIXTURES = DATA / "stylegan"
IMAGES = DATA / "images"
REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# On a busy 2-core machine OpenMP threads that spin-wait make small torch ops 20-50x slower; set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Tests must never fetch weights: make any torch.hub download fail loudly.
os.environ.setdefault("TORCH_HOME", str(Path(__file__).parent / ".torch_home_unused"))
# exported and compiled artefacts (the encoder's ONNX file, Inductor) go to a folder of this run, not the user's
os.environ.setdefault("VRBRIDGE_CACHE", tempfile.mkdtemp(prefix="vrbridge-test-cache-"))
# no background compiler per engine start (each would compile its network for a minute); tests/test_aot.py asks
os.environ.setdefault("VRBRIDGE_COMPILE", "off")

try:
    import torch

    torch.set_num_threads(1)  # tiny test networks: a second thread only adds contention on 2 busy cores
except ImportError:  # pragma: no cover
    pass


def require_tool(name: str) -> str:
    """Path of a system tool; skip locally where it is missing, but FAIL under CI (a missing install step)."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not installed (Debian: see .ci/run)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def free_port(host: str = "127.0.0.1", kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.01):
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes (its last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def read_frames(source, count: int, timeout: float = 10.0) -> list:
    """Up to ``count`` frames from a source's ``read`` loop, giving up after ``timeout`` seconds."""
    frames, deadline = [], time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        frame = source.read(timeout=0.1)
        if frame is not None:
            frames.append(frame)
    return frames


def vrbridge_cmd() -> list[str]:
    """The CLI as a subprocess command, independent of PATH."""
    return [sys.executable, "-m", "bridge"]


@pytest.fixture
def data_dir() -> Path:
    return DATA
