"""``vrbridge run`` end to end in a subprocess, over real loopback HTTP: the embedded demo and the sg2_tiny
fixture pickle; the output follows the source; SIGTERM/SIGINT stop it cleanly and quickly."""
from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from conftest import IMAGES, STYLEGAN_FIXTURES, free_port, vrbridge_cmd

START_LIMIT_S = 120  # torch import + model build on a busy 2-core machine


class Running:
    def __init__(self, args: list[str], tmp_path):
        self.port = free_port(kind=socket.SOCK_STREAM)
        self.log = tmp_path / "engine.log"
        cmd = vrbridge_cmd() + ["run", "--preview", f"127.0.0.1:{self.port}", "--osc-in", "off", "--oscquery", "off",
                                "--osc-out", f"127.0.0.1:{free_port()}"] + args
        self._log_fh = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log_fh, stderr=subprocess.STDOUT)

    def get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def status(self) -> dict:
        data = self.get("/status.json")
        return json.loads(data) if data else {}

    def snapshot(self) -> np.ndarray | None:
        data = self.get("/snapshot.jpg")
        return None if data is None else cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    def wait(self, predicate, limit_s: float, what: str):
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"engine exited early:\n{self.log.read_text()[-3000:]}"
            value = predicate()
            if isinstance(value, np.ndarray) or (value is not None and value is not False):
                return value
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig=signal.SIGTERM) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=20)
        self._log_fh.close()
        return code, time.monotonic() - t0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log_fh.close()


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def test_embedded_demo_end_to_end(tmp_path):
    run = Running(["--source-size", "160x120"], tmp_path)
    try:
        first = run.wait(run.snapshot, START_LIMIT_S, "the first snapshot")
        assert first.shape == (256, 256, 3)  # the demo network's own size
        status = run.status()
        assert status["demo"] is True and "untrained demo network" in status["notice"]
        assert "--network" in status["notice"]
        page = run.get("/").decode()
        assert "untrained demo network" in page
        # the pattern moves, so fresh camera latents keep changing the picture
        n = status["frames"]
        run.wait(lambda: run.status().get("frames", 0) >= n + 3, 90, "three more frames")
        later = run.snapshot()
        assert diff(first, later) > 1.0
        run.wait(lambda: "| render" in run.log.read_text(), 30, "the once-a-second status line")
        code, took = run.stop(signal.SIGTERM)
    finally:
        run.kill()
    log = run.log.read_text()
    assert code == 0, log[-3000:]
    assert took < 2.0, f"SIGTERM took {took:.2f} s"
    assert "untrained demo network" in log and "vrbridge running" in log
    assert "model:" in log and "device:" in log and "output:" in log and "preview http://127.0.0.1" in log
    assert "out " in log and "| render" in log and "| source" in log  # the once-a-second status line


def test_fixture_pickle_output_follows_the_source(tmp_path):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    shutil.copy(IMAGES / "handSrc.jpg", pictures / "a.jpg")
    run = Running(["--network", str(STYLEGAN_FIXTURES / "sg2_tiny.pkl"), "--demo-encoder", "--encoder-size", "64x48",
                   "--source", f"images:{pictures}", "--slide-s", "0.2", "--source-fps", "10",
                   "--resolution", "96x64", "--set", "encoder.standardize=vector", "--set", "psi=1"], tmp_path)
    try:
        run.wait(lambda: run.status().get("frames", 0) >= 3, START_LIMIT_S, "frames from the pickle")
        a1 = run.snapshot()
        assert a1.shape == (64, 96, 3)  # --resolution, letterboxed
        assert a1[:, :10].max() < 30 and a1[:, -10:].max() < 30  # black bars left and right of the square
        time.sleep(1.0)
        a2 = run.snapshot()
        assert diff(a1, a2) < 1.0, "same picture in, same picture out"
        shutil.copy(IMAGES / "basketball1.png", pictures / "a.jpg")  # the scene changes
        b = run.wait(lambda: s if (s := run.snapshot()) is not None and diff(a1, s) > 2.0 else None, 60,
                     "the output to change")
        assert "sg2_tiny.pkl" in run.status()["model"] and run.status()["demo"] is False
        code, took = run.stop(signal.SIGINT)
    finally:
        run.kill()
    assert code == 0, run.log.read_text()[-3000:]
    assert took < 2.0
    assert b is not None


def test_startup_errors_are_one_line(tmp_path):
    missing = tmp_path / "nope.pkl"
    cases = [(["--source", f"video:{tmp_path / 'missing.mp4'}"], "no such file"),
             (["--network", str(missing)], "nope.pkl")]
    for args, needle in cases:
        result = subprocess.run(vrbridge_cmd() + ["run", "--preview", "off", "--osc-in", "off", "--oscquery", "off"] + args,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr[-2000:]
        error_lines = [line for line in result.stderr.splitlines() if line.startswith("vrbridge run: error:")]
        assert len(error_lines) == 1 and needle in error_lines[0], result.stderr[-2000:]
        assert "Traceback" not in result.stderr
