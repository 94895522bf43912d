"""Busy ports and missing files are one line, naming the flag, before the camera opens or a model loads."""
from __future__ import annotations

import socket
import subprocess
import time

import pytest

from bridge.preflight import PreflightError, check
from conftest import free_port, vrbridge_cmd


@pytest.fixture
def busy():
    """Occupy a TCP and a UDP port on loopback the way another engine would."""
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    udp = socket.socket(type=socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    yield tcp.getsockname()[1], udp.getsockname()[1]
    tcp.close()
    udp.close()


@pytest.mark.parametrize("setting, kind", [("osc_in", "udp"), ("oscquery", "tcp"), ("preview", "tcp")])
def test_every_listening_port_is_checked_with_its_flag(busy, setting, kind):
    tcp_port, udp_port = busy
    port = udp_port if kind == "udp" else tcp_port
    settings = {"osc_in": f"127.0.0.1:{free_port()}", "oscquery": "off", "preview": "off",
                setting: f"127.0.0.1:{port}"}
    with pytest.raises(PreflightError) as info:
        check(settings)
    flag = "--" + setting.replace("_", "-")
    assert f"{setting}: cannot listen on {kind} 127.0.0.1:{port}" in str(info.value)
    assert "already in use" in str(info.value) and f"{flag} 127.0.0.1:PORT" in str(info.value)


def test_two_settings_on_one_port_and_missing_files(tmp_path):
    with pytest.raises(PreflightError, match="preview and oscquery both want 127.0.0.1:7799"):
        check({"preview": "127.0.0.1:7799", "oscquery": "127.0.0.1:7799", "osc_in": "off"})
    with pytest.raises(PreflightError, match=r"encoder_weights: no such file .*--encoder-weights FILE; or drop .*--allow-download"):
        check({"encoder_weights": str(tmp_path / "vgg.pth"), "osc_in": "off", "preview": "off", "oscquery": "off"})
    with pytest.raises(PreflightError, match="network: no such file .*vrbridge models"):
        check({"network": str(tmp_path / "ffhq.pkl"), "osc_in": "off", "preview": "off", "oscquery": "off"})
    check({"osc_in": "off", "preview": "off", "oscquery": "off", "network": ""})  # nothing to complain about


def test_run_reports_a_busy_port_before_opening_the_camera(busy):
    """The real command: a missing camera would log a warning if it were opened first; it never is."""
    tcp_port, _ = busy
    start = time.monotonic()
    result = subprocess.run(vrbridge_cmd() + ["run", "--source", "camera:97", "--preview", f"127.0.0.1:{tcp_port}",
                                              "--osc-in", "127.0.0.1:0", "--oscquery", "off"],
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert f"preview: cannot listen on tcp 127.0.0.1:{tcp_port}" in lines[0] and "--preview" in lines[0]
    assert "camera" not in result.stderr and "loading" not in result.stderr
    assert time.monotonic() - start < 60
