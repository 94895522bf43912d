"""The pickle reader never runs what a pickle says: refused globals, inert module_src, bad files.

Every malicious payload here is *armed*: a control step shows that plain ``pickle.loads`` (or running the
stored source) really does create the marker file. Our reader must refuse or ignore the same bytes, name
the offending global, and leave no marker behind.
"""
from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from bridge.stylegan.loader import load_network
from bridge.stylegan.pickle_reader import (
    EasyDict, NetworkLoadError, NetworkRecord, UnsafePickleError, read_snapshot,
)
from conftest import STYLEGAN_FIXTURES
from stylegan_cases import dumps_snapshot, nvidia_globals, persistent_from_record

SG2 = STYLEGAN_FIXTURES / "sg2_tiny.pkl"
PICKLES = [STYLEGAN_FIXTURES / f"{m}_tiny.pkl" for m in ("sg2", "sg3t", "sg3r")]


def _str(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def global_call(module: str, name: str, *args, opcode: str = "STACK_GLOBAL") -> bytes:
    """A pickle that calls module.name(*args), written opcode by opcode so the global names are exact."""
    body = pickle.dumps(args, protocol=2)[2:-1]  # the args tuple without PROTO and STOP
    if opcode == "STACK_GLOBAL":
        head = b"\x80\x04" + _str(module) + _str(name) + b"\x93"
    else:  # protocol-0 GLOBAL opcode
        head = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
    return head + body + b"R."


def _touch_python(marker) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _payloads(marker):
    """(label, pickle bytes, the global it must name) for each top-level attack."""
    touch = f"{sys.executable} -c \"{_touch_python(marker)}\""
    return [
        ("os.system", global_call("os", "system", touch), "os.system"),
        ("os.system GLOBAL opcode", global_call("os", "system", touch, opcode="GLOBAL"), "os.system"),
        ("builtins.eval", global_call("builtins", "eval", _touch_python(marker)), "builtins.eval"),
        ("builtins.exec", global_call("builtins", "exec", _touch_python(marker)), "builtins.exec"),
        ("subprocess.Popen", global_call("subprocess", "Popen", [sys.executable, "-c", _touch_python(marker)]),
         "subprocess.Popen"),
    ]


def _wait_gone(marker, seconds: float = 0.3) -> bool:
    """True when the marker still does not exist after a short wait (a spawned process would be slower)."""
    time.sleep(seconds)
    return not marker.exists()


@pytest.mark.parametrize("index", range(5), ids=[p[0] for p in _payloads("x")])
def test_top_level_payloads_are_armed_and_refused(tmp_path, index):
    control, marker = tmp_path / "control", tmp_path / "marker"
    label, armed, _ = _payloads(control)[index]
    result = pickle.loads(armed)  # control: plain pickle runs the payload
    if isinstance(result, subprocess.Popen):
        result.wait(timeout=30)
    assert control.exists(), f"{label}: control payload did not fire; the test would prove nothing"

    label, payload, name = _payloads(marker)[index]
    with pytest.raises(UnsafePickleError) as info:
        read_snapshot(payload)
    assert name in str(info.value)
    assert _wait_gone(marker), f"{label}: the payload ran"


def test_refused_file_through_load_network(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pkl"
    path.write_bytes(_payloads(marker)[0][1])
    with pytest.raises(UnsafePickleError, match=r"os\.system"):
        load_network(path)
    assert _wait_gone(marker)


class _Evil:
    """Pickles as a call of os.system (its __reduce__), wherever it sits in a snapshot."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_reduce_payload_nested_in_network_state_is_refused(tmp_path):
    marker = tmp_path / "marker"
    snapshot = read_snapshot(SG2)
    g_ema = persistent_from_record(snapshot["G_ema"])
    fc0 = g_ema.meta["state"]["_modules"]["mapping"].meta["state"]["_modules"]["fc0"]
    fc0.meta["state"]["_extra"] = _Evil(f"{sys.executable} -c \"{_touch_python(marker)}\"")
    with nvidia_globals():
        payload = pickle.dumps({"G_ema": g_ema}, protocol=4)
    with pytest.raises(UnsafePickleError) as info:
        read_snapshot(payload)
    assert f"{os.system.__module__}.system" in str(info.value)  # posix.system on Linux
    assert _wait_gone(marker)


def test_module_src_is_never_executed(tmp_path):
    """A persistent object's module_src is code; loading must read the state and leave the code alone."""
    marker = tmp_path / "marker"
    src = f'"""Alias-Free Generative Adversarial Networks (StyleGAN3)."""\n{_touch_python(marker)}\n'
    exec(compile(src, "module_src", "exec"), {})  # control: the stored source is live code
    assert marker.exists()
    marker.unlink()

    snapshot = read_snapshot(SG2)
    g_ema = persistent_from_record(snapshot["G_ema"], module_src=src)
    with nvidia_globals():
        payload = pickle.dumps({"G_ema": g_ema}, protocol=4)
    path = tmp_path / "src.pkl"
    path.write_bytes(payload)
    loaded = read_snapshot(path)["G_ema"]
    assert loaded.source_title == "Alias-Free Generative Adversarial Networks (StyleGAN3)."
    assert loaded.source_sha256 and not hasattr(loaded, "module_src")
    torch.testing.assert_close(loaded.state_dict(), snapshot["G_ema"].state_dict(), rtol=0, atol=0)
    assert not marker.exists()
    generator = load_network(path)
    assert generator.num_ws == 8 and not marker.exists()


def test_global_inside_a_storage_blob_is_refused():
    data = SG2.read_bytes()
    needle = b"ctorch\nFloatStorage\n"
    evil = b"csubprocess\nPopen__\n"
    assert len(needle) == len(evil) and needle in data
    with pytest.raises(UnsafePickleError, match=r"subprocess\.Popen__"):
        read_snapshot(data.replace(needle, evil, 1))


def test_build_cannot_patch_allowed_globals():
    """BUILD with slot state would setattr on whatever the pickle fetched: our stand-ins refuse it."""
    build_state = b"N}" + _str("__call__") + b"K\x01s\x86b."  # (None, {'__call__': 1}) BUILD STOP
    for module, name in (("torch._utils", "_rebuild_parameter"), ("dnnlib.util", "EasyDict"),
                         ("torch_utils.persistence", "_reconstruct_persistent_obj")):
        with pytest.raises(UnsafePickleError, match="set"):
            read_snapshot(b"\x80\x04" + _str(module) + _str(name) + b"\x93" + build_state)
    assert "__call__" not in EasyDict.__dict__


def test_build_on_a_network_record_is_refused():
    snapshot = read_snapshot(SG2)
    with nvidia_globals():
        data = pickle.dumps({"G_ema": persistent_from_record(snapshot["G_ema"])}, protocol=4)
    # insert a BUILD of {'x': 1} on the record right after its REDUCE: the last 'R' before the closing
    # SETITEM of the top-level dict is the G_ema record's REDUCE.
    assert data.endswith(b"s."), data[-4:]
    patched = data[:-2] + b"}" + _str("x") + b"K\x01sb" + b"s."
    with pytest.raises(UnsafePickleError, match="record"):
        read_snapshot(patched)


@pytest.mark.parametrize("path", PICKLES, ids=lambda p: p.stem)
def test_truncated_files_give_a_clear_error(tmp_path, path):
    data = path.read_bytes()
    for cut in sorted({1, 2, 11, 100, 1000, 5000, len(data) // 3, len(data) // 2, len(data) - 100,
                       len(data) - 1}):
        target = tmp_path / f"cut{cut}.pkl"
        target.write_bytes(data[:cut])
        with pytest.raises(NetworkLoadError) as info:
            load_network(target)
        message = str(info.value)
        assert str(target) in message and "\n" not in message, message
        assert "truncated" in message or "corrupt" in message, message


def test_random_bytes_give_a_clear_error(tmp_path):
    rng = np.random.default_rng(7)
    for i in range(40):
        blob = rng.integers(0, 256, size=int(rng.integers(1, 4000)), dtype=np.uint8).tobytes()
        if i % 2:  # half of them look like a pickle so the unpickler itself has to cope
            blob = b"\x80\x04" + blob
        target = tmp_path / f"random{i}.pkl"
        target.write_bytes(blob)
        with pytest.raises(NetworkLoadError) as info:
            load_network(target)
        assert "\n" not in str(info.value) and str(target) in str(info.value)


@pytest.mark.parametrize("content, expect", [
    (b"", "empty"),
    (b"hello, I am a text file\n", "unrecognised"),
    (pickle.dumps([1, 2, 3], protocol=4), "not a network snapshot"),
    (pickle.dumps({"a": 1, "b": [2]}, protocol=4), "no network objects"),
    (pickle.dumps({"a": np.arange(3)}, protocol=4), "no network objects"),
])
def test_non_network_files(tmp_path, content, expect):
    target = tmp_path / "model.pkl"
    target.write_bytes(content)
    with pytest.raises(NetworkLoadError, match=expect):
        load_network(target)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(NetworkLoadError, match="cannot open"):
        load_network(tmp_path / "nope.pkl")
    with pytest.raises(NetworkLoadError, match="cannot open"):
        load_network(tmp_path)


def test_missing_key_lists_the_networks():
    with pytest.raises(NetworkLoadError) as info:
        load_network(SG2, key="G_emma")
    assert "'G_emma'" in str(info.value) and "D, G, G_ema" in str(info.value)
    with pytest.raises(NetworkLoadError, match="Discriminator, not a Generator"):
        load_network(SG2, key="D")


def test_tensor_view_past_its_storage_is_refused():
    """A tensor whose size/stride reaches beyond its storage must not read foreign memory."""
    snapshot = read_snapshot(SG2)
    data = dumps_snapshot({"G_ema": snapshot["G_ema"]})
    # synthesis.b4.const is (32, 4, 4) with stride (16, 4, 1): claim 64 rows instead of 32.
    good = struct.pack("<BBBBBB", 0x4B, 32, 0x4B, 4, 0x4B, 4)  # BININT1 32, BININT1 4, BININT1 4
    bad = struct.pack("<BBBBBB", 0x4B, 64, 0x4B, 4, 0x4B, 4)
    assert good in data
    with pytest.raises(NetworkLoadError, match="past its storage"):
        read_snapshot(data.replace(good, bad, 1))


def test_records_expose_the_tree():
    snapshot = read_snapshot(SG2)
    assert set(snapshot) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    g = snapshot["G_ema"]
    assert isinstance(g, NetworkRecord) and g.class_name == "Generator"
    assert g.submodule("synthesis.b4").init_args == (0, 32)
    assert g.submodule("synthesis.b4.conv1").attrs["resolution"] == 4
    assert g.init_kwargs["mapping_kwargs"] == {"num_layers": 2}
    assert g.submodule("synthesis").attrs["block_resolutions"] == [4, 8, 16, 32]
    assert snapshot["augment_pipe"] is None and snapshot["D"].class_name == "Discriminator"


def test_mutated_pickles_load_or_fail_cleanly(tmp_path):
    """Random byte flips anywhere in a real snapshot: it loads, or it fails with NetworkLoadError (never
    another exception type out of the unpickler, never a hang)."""
    data = bytearray(SG2.read_bytes())
    rng = np.random.default_rng(11)
    # the opcode structure outside the big tensor blobs, where flips matter most
    import pickletools

    structure = [pos for op, arg, pos in pickletools.genops(bytes(data)) if op.name not in ("BINBYTES",)]
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(60):
        mutated = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.choice(structure)) + int(rng.integers(0, 3))
            mutated[pos] = int(rng.integers(0, 256))
        target = tmp_path / f"m{i}.pkl"
        target.write_bytes(bytes(mutated))
        try:
            load_network(target)
            outcomes["loaded"] += 1
        except NetworkLoadError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 10, outcomes  # the flips really did break files


def test_progress_bar_for_big_files(capsys):
    snapshot = read_snapshot(SG2, progress=True)
    assert "sg2_tiny.pkl" in capsys.readouterr().err  # tqdm writes its bar to stderr
    plain = read_snapshot(SG2, progress=False)
    torch.testing.assert_close(snapshot["G_ema"].state_dict(), plain["G_ema"].state_dict(), rtol=0, atol=0)


def test_tensorflow_network_called_without_state_is_a_load_error(tmp_path):
    """dnnlib.tflib.network.Network is allowed (as a data record, see test_stylegan_formats); a pickle that
    merely calls it, without the state a real file BUILDs into it, gives one line, not a traceback."""
    path = tmp_path / "empty_tf.pkl"
    path.write_bytes(global_call("dnnlib.tflib.network", "Network"))
    with pytest.raises(NetworkLoadError, match="has no state") as info:
        load_network(path)
    assert "\n" not in str(info.value)
