"""The shipped hand model: the exact bundle we meant (size, hash, layout), rebuilt byte for byte by our own
builder, and clear errors for a damaged or wrong model file."""
from __future__ import annotations

import hashlib
import io
import struct
import zipfile

import pytest

from bridge.tracking import model
from bridge.tracking.model import (BUNDLE_MEMBERS, BUNDLE_PATH, BUNDLE_SHA256, BUNDLE_SIZE, HandModelError,
                                   build_bundle, check_bundle, load_hand_model)


def test_the_shipped_bundle_is_the_documented_one():
    data = BUNDLE_PATH.read_bytes()
    assert len(data) == BUNDLE_SIZE == 7_819_041
    assert hashlib.sha256(data).hexdigest() == BUNDLE_SHA256
    assert load_hand_model() == data


def test_bundle_members_are_stored_and_4_byte_aligned():
    """MediaPipe maps the models straight out of the file: stored (uncompressed), payloads aligned to 4 bytes."""
    data = BUNDLE_PATH.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == list(BUNDLE_MEMBERS)
        for info in infos:
            assert info.compress_type == zipfile.ZIP_STORED
            name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
            payload = info.header_offset + 30 + name_len + extra_len
            assert payload % 4 == 0
            assert data[payload:payload + info.file_size] == archive.read(info.filename)
            assert data[payload + 4:payload + 8] == b"TFL3"  # a TFLite flatbuffer's identifier


def test_the_builder_reproduces_the_shipped_file_byte_for_byte():
    with zipfile.ZipFile(BUNDLE_PATH) as archive:
        members = {name: archive.read(name) for name in BUNDLE_MEMBERS}
    assert build_bundle(members) == BUNDLE_PATH.read_bytes()


def test_bundle_from_wheel_reads_the_wheel_paths(tmp_path):
    """The rebuild recipe: a wheel-shaped zip with the two tflite files at mediapipe's paths."""
    with zipfile.ZipFile(BUNDLE_PATH) as archive:
        members = {name: archive.read(name) for name in BUNDLE_MEMBERS}
    wheel = tmp_path / "mediapipe-0.10.21-test.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as out:
        for name, source in BUNDLE_MEMBERS.items():
            out.writestr(source, members[name])
        out.writestr("mediapipe/__init__.py", "")
    target = tmp_path / "rebuilt.task"
    assert model.main([str(wheel), str(target)]) == 0
    assert target.read_bytes() == BUNDLE_PATH.read_bytes()


def test_a_damaged_shipped_bundle_is_refused(tmp_path, monkeypatch):
    damaged = tmp_path / "hand_landmarker.task"
    data = bytearray(BUNDLE_PATH.read_bytes())
    data[1000] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(model, "BUNDLE_PATH", damaged)
    with pytest.raises(HandModelError, match="is damaged .*expected 4327c5796653"):
        load_hand_model()


def test_user_bundles_override_and_are_checked(tmp_path):
    own = tmp_path / "own.task"
    own.write_bytes(BUNDLE_PATH.read_bytes())
    assert load_hand_model(own) == BUNDLE_PATH.read_bytes()
    with pytest.raises(HandModelError, match="hand model not found: .*missing.task"):
        load_hand_model(tmp_path / "missing.task")
    text = tmp_path / "notes.task"
    text.write_text("hello")
    with pytest.raises(HandModelError, match="not a MediaPipe .task bundle"):
        load_hand_model(text)
    pose = tmp_path / "pose.task"
    pose.write_bytes(build_bundle({"pose_detector.tflite": b"x", "pose_landmarks_detector.tflite": b"y"}))
    with pytest.raises(HandModelError, match="lacks hand_detector.tflite, hand_landmarks_detector.tflite"):
        load_hand_model(pose)
    with pytest.raises(HandModelError, match="unreadable"):
        load_hand_model(tmp_path)  # a folder


def test_check_bundle_accepts_the_shipped_one():
    check_bundle(BUNDLE_PATH.read_bytes())
