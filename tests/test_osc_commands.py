"""``vrbridge osc-send`` and ``vrbridge osc-monitor`` as subprocesses, against python-osc and each other."""
from __future__ import annotations

import re
import subprocess

import pytest

from bridge.commands.osc_send import parse_arg
from bridge.osc import codec
from conftest import free_port, vrbridge_cmd
from test_osc_support import Collector, send_raw


@pytest.mark.parametrize("word, expected", [
    ("3", ("i", 3)), ("-7", ("i", -7)), ("0.5", ("f", 0.5)), ("1e3", ("f", 1000.0)), ("dusk", ("s", "dusk")),
    ("T", ("T", True)), ("F", ("F", False)), ("N", ("N", None)), ("i:3", ("i", 3)), ("f:2", ("f", 2.0)),
    ("s:3", ("s", "3")), ("d:0.25", ("d", 0.25)), ("h:5", ("h", 5)), ("5000000000", ("h", 5000000000)),
    ("x:y", ("s", "x:y")),
])
def test_argument_typing(word, expected):
    assert parse_arg(word) == expected


def test_osc_send_reaches_python_osc():
    collector = Collector()
    try:
        out = subprocess.run(vrbridge_cmd() + ["osc-send", str(collector.port), "/vrb/mix/coarse", "0", "4"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert collector.wait_for("/vrb/mix/coarse") == (0, 4)
        out = subprocess.run(vrbridge_cmd() + ["osc-send", collector.endpoint, "/x", "s:7", "T", "f:1"],
                             capture_output=True, text=True, timeout=60)
        assert collector.wait_for("/x") == ("7", True, 1.0)
    finally:
        collector.close()


def test_osc_send_user_errors_are_one_line():
    out = subprocess.run(vrbridge_cmd() + ["osc-send", "nohost:port", "/x"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "HOST:PORT" in out.stderr
    out = subprocess.run(vrbridge_cmd() + ["osc-send", "9", "x", "i:zz"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2


def test_osc_monitor_decodes_and_survives_garbage():
    port = free_port()
    monitor = subprocess.Popen(vrbridge_cmd() + ["osc-monitor", str(port), "--count", "4", "--timeout", "30"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening" in monitor.stdout.readline()
        send_raw(b"nonsense", port)
        send_raw(codec.encode_message("/vrb/psi", (0.5,)), port)
        send_raw(codec.encode_bundle([codec.encode_message("/vrb/seed", (3,)),
                                      codec.encode_message("/vrb/noise_mode", ("none",))], codec.timetag_in(2.0)), port)
        subprocess.run(vrbridge_cmd() + ["osc-send", str(port), "/vrb/freeze", "T", "--at", "-1"], check=True,
                       capture_output=True, timeout=60)
        out, err = monitor.communicate(timeout=60)
    finally:
        if monitor.poll() is None:
            monitor.kill()
    assert monitor.returncode == 0, err
    assert "malformed (8 bytes)" in out
    assert "/vrb/psi ,f 0.5" in out
    assert re.search(r"#bundle at \+[12]\.\d+ s \(2 elements\)", out), out
    assert "/vrb/seed ,i 3" in out and "/vrb/noise_mode ,s 'none'" in out
    assert "#bundle at -1." in out and "/vrb/freeze ,T True" in out
