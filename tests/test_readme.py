"""The README cannot rot: every command it shows is run here (or, for hardware, named with the test covering it),
and CI runs the README's test command exactly."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

README = (REPO / "README.md").read_text()
# Commands that need hardware or files this machine cannot have; each names the test that runs its code path.
COVERED_ELSEWHERE = {
    "vrbridge run --config examples/camera_sg2_hands_td.toml": "tests/test_examples_run.py",
}


def shell_blocks() -> list[list[str]]:
    """Command lines of each ```sh block, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    return [[line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]
            for block in blocks]


def vrbridge_commands() -> list[str]:
    commands = []
    for block in shell_blocks():
        for line in block:
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("vrbridge"):
                    commands.append(part)
    return commands


def argv(command: str) -> list[str]:
    words = shlex.split(command)
    exe = shutil.which("vrbridge")
    return ([exe] if exe else [sys.executable, "-m", "bridge"]) + words[1:]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch folder that sees the repository's data like a clone does, so outputs land outside the repo."""
    for name in ("tests", "examples", "osc_maps"):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


def port_free(port: int, kind=socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:  # as the preview server does: a TIME_WAIT leftover does not count
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_readme_opens_with_the_two_fresh_machine_commands():
    first, second = shell_blocks()[:2]
    assert first == ["pip install torch==2.13.0 -e . && vrbridge run"]
    assert second == ['pip install torch==2.13.0 -e ".[test]" && python -m pytest']


def test_ci_runs_the_readme_test_command_exactly():
    test_command = shell_blocks()[1][0]
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    assert "set -euo pipefail" in ci_lines  # so a failing test fails CI


def test_every_vrbridge_command_is_exercised():
    """Each command is either run by a test below or explicitly covered by a named test file."""
    run_here = set(RUNNERS)
    for command in vrbridge_commands():
        if command in COVERED_ELSEWHERE:
            assert (REPO / COVERED_ELSEWHERE[command]).exists()
            continue
        assert command in run_here, f"README command not exercised by a test: {command}"


def _start(command: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(argv(command), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _wait_for_snapshot(proc: subprocess.Popen, url: str, timeout: float = 120.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"engine exited early ({proc.returncode}):\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body = response.read()
                if body[:2] == b"\xff\xd8":
                    return body
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError("preview never answered")


def _stop_with_ctrl_c(proc: subprocess.Popen) -> str:
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out


def run_live_engine(command: str, cwd: Path) -> None:
    for port in (7780, 7700, 7702):
        if not port_free(port, socket.SOCK_STREAM if port != 7700 else socket.SOCK_DGRAM):
            pytest.skip(f"default port {port} is busy on this machine")
    proc = _start(command, cwd)
    try:
        jpeg = _wait_for_snapshot(proc, "http://127.0.0.1:7780/snapshot.jpg")
        assert len(jpeg) > 500
    finally:
        if proc.poll() is None:
            out = _stop_with_ctrl_c(proc)
            assert "vrbridge running" in out


def run_inspect(command: str, cwd: Path) -> None:
    out = subprocess.run(argv(command), cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "stylegan2" in out.stdout.lower() and "sha256" in out.stdout.lower()


def run_render(command: str, cwd: Path) -> None:
    out = subprocess.run(argv(command), cwd=cwd, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    pngs = sorted((cwd / "renders").glob("*.png"))
    assert len(pngs) == 4


def run_params(command: str, cwd: Path) -> None:
    out = subprocess.run(argv(command), cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    generated_part = (REPO / "docs" / "parameters.md").read_text().split("<!-- table -->\n", 1)[1]
    assert out.stdout == generated_part


def run_osc_send(command: str, cwd: Path) -> None:
    if not port_free(7700, socket.SOCK_DGRAM):
        pytest.skip("port 7700 is busy on this machine")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 7700))
        listener.settimeout(30)
        out = subprocess.run(argv(command), cwd=cwd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        datagram = listener.recv(2048)
    assert datagram.startswith(b"/vrb/psi\x00") and b",f\x00" in datagram


def run_osc_monitor(command: str, cwd: Path) -> None:
    if not port_free(7701, socket.SOCK_DGRAM):
        pytest.skip("port 7701 is busy on this machine")
    proc = _start(command, cwd)
    try:
        from pythonosc.udp_client import SimpleUDPClient

        client = SimpleUDPClient("127.0.0.1", 7701)
        deadline = time.monotonic() + 60
        lines: list[str] = []
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)  # read the raw pipe: a text wrapper over a non-blocking pipe fails on "no data"
        while time.monotonic() < deadline and not any("/vrb/fps" in line for line in lines):
            client.send_message("/vrb/fps", 29.5)
            time.sleep(0.3)
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            lines.extend(chunk.decode(errors="replace").splitlines())
        assert any("/vrb/fps" in line and "29.5" in line for line in lines), lines
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)


def run_models(command: str, cwd: Path) -> None:
    """The library listing needs no network: it prints the catalog and the cache folder."""
    env = {**os.environ, "VRBRIDGE_MODELS_DIR": str(cwd / "models-cache")}
    proc = subprocess.run(argv(command), cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "sg3r-afhqv2-512" in proc.stdout and "api.ngc.nvidia.com" in proc.stdout
    assert str(cwd / "models-cache") in proc.stdout


def run_convert(command: str, cwd: Path) -> None:
    proc = subprocess.run(argv(command), cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    from bridge.stylegan.loader import load_network

    assert load_network(cwd / "tiny.safetensors").img_resolution == 32
    assert (cwd / "tiny.json").is_file()


def run_signals(command: str, cwd: Path) -> None:
    out = subprocess.run(argv(command), cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("hand.x", "hand.distance", "beat.phase", "lfo"):
        assert name in out.stdout


def run_routes(command: str, cwd: Path) -> None:
    out = subprocess.run(argv(command), cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("hand.const: hand.distance -> const.corrupt") for line in lines)  # a default route
    assert any(line.startswith("hand.openness->mix.amount: ") for line in lines)  # the example's own
    assert any(line.startswith("lfo->psi: ") and " add" in line for line in lines)


RUNNERS = {
    "vrbridge signals": run_signals,
    "vrbridge routes --config examples/camera_sg2_hands_td.toml": run_routes,
    "vrbridge models": run_models,
    "vrbridge convert tests/data/stylegan/formats/tf_sg2_tiny.pkl tiny.safetensors": run_convert,
    "vrbridge run": run_live_engine,
    "vrbridge inspect tests/data/stylegan/sg2_tiny.pkl": run_inspect,
    "vrbridge render tests/data/stylegan/sg2_tiny.pkl --seeds 0-3 --psi 0.7 --out renders": run_render,
    "vrbridge run --network tests/data/stylegan/sg2_tiny.pkl --demo-encoder --source images:tests/data/images"
    " --hands mediapipe": run_live_engine,
    "vrbridge params --markdown": run_params,
    "vrbridge osc-send 7700 /vrb/psi 0.5": run_osc_send,
    "vrbridge osc-monitor 7701": run_osc_monitor,
}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(RUNNERS))
def test_readme_command_runs(command: str, workdir: Path):
    assert command in vrbridge_commands(), f"runner for a command the README no longer shows: {command}"
    RUNNERS[command](command, workdir)
