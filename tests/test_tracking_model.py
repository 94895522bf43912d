"""The shipped hand, pose and face models: the exact bundles we meant (size, hash, layout), rebuilt byte for
byte by our own builder, the two model edits that make the wheel's pose and face models run under the Tasks
API, clear errors for a damaged or wrong model file, and Google's official bundles only by an opt-in,
hash-checked download."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import struct
import sys
import zipfile

import pytest

from bridge.tracking import model
from bridge.tracking.model import (BUNDLE_MEMBERS, BUNDLE_PATH, BUNDLE_SHA256, BUNDLE_SIZE, BUNDLES, HandModelError,
                                   ModelError, build_bundle, check_bundle, load_hand_model, load_model)


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
    assert model.main([str(wheel), str(tmp_path), "hand"]) == 0
    assert (tmp_path / "hand_landmarker.task").read_bytes() == BUNDLE_PATH.read_bytes()


def test_a_damaged_shipped_bundle_is_refused(tmp_path, monkeypatch):
    damaged = tmp_path / "hand_landmarker.task"
    data = bytearray(BUNDLE_PATH.read_bytes())
    data[1000] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(model, "ASSETS", tmp_path)
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


# -- pose and face ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["pose", "face"])
def test_the_shipped_pose_and_face_bundles_are_the_documented_ones(task):
    spec = BUNDLES[task]
    data = spec.path.read_bytes()
    assert len(data) == spec.size and hashlib.sha256(data).hexdigest() == spec.sha256
    assert load_model(task) == data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert [i.filename for i in archive.infolist()] == list(spec.sources) == list(spec.required)
        members = {name: archive.read(name) for name in spec.sources}
        for info in archive.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
            assert (info.header_offset + 30 + name_len + extra_len) % 4 == 0
    assert build_bundle(members) == data  # the builder reproduces the shipped file from its members


def test_all_bundles_together_stay_small():
    """They ship inside the package: hand 7.8 MB plus pose and face under 15 MB."""
    assert BUNDLES["pose"].size + BUNDLES["face"].size < 15_000_000


def _outputs(tflite: bytes):
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    graph = tfl.Model.GetRootAs(bytearray(tflite), 0).Subgraphs(0)
    return [list(graph.Tensors(graph.Outputs(i)).ShapeAsNumpy()) for i in range(graph.OutputsLength())]


def test_the_face_model_outputs_the_two_tensors_the_tasks_api_reads():
    """478 refined points x 3 and the face flag; the seven raw outputs are merged inside the model."""
    with zipfile.ZipFile(BUNDLES["face"].path) as archive:
        landmarks = archive.read("face_landmarks_detector.tflite")
    assert _outputs(landmarks) == [[1, 1434], [1, 1, 1, 1]]


def test_the_pose_model_carries_the_image_metadata_the_tasks_api_needs():
    from bridge.tracking.tflite_edit import TFLiteEditError, add_image_metadata, read_metadata

    with zipfile.ZipFile(BUNDLES["pose"].path) as archive:
        landmarks = archive.read("pose_landmarks_detector.tflite")
    meta = read_metadata(landmarks)
    image = meta.subgraphMetadata[0].inputTensorMetadata[0]
    norm = image.processUnits[0].options
    assert list(norm.mean) == [0.0] and list(norm.std) == [255.0]  # pixels / 255, as the legacy graph fed it
    assert len(meta.subgraphMetadata[0].outputTensorMetadata) == len(_outputs(landmarks)) == 5
    with pytest.raises(TFLiteEditError, match="already has TFLite metadata"):
        add_image_metadata(landmarks, "again", ("a",) * 5)


def test_refinement_indices_follow_mediapipes_refinement_order():
    from bridge.tracking.tflite_edit import LEFT_EYE, LIPS, MESH_POINTS, RIGHT_EYE, refinement_indices

    rows, z_rows = refinement_indices()
    assert rows.shape == z_rows.shape == (478,)
    assert rows[61] == MESH_POINTS + LIPS.index(61)  # lips replace the mesh's x, y
    assert rows[33] == MESH_POINTS + len(LIPS) + LEFT_EYE.index(33)
    assert rows[263] == MESH_POINTS + len(LIPS) + len(LEFT_EYE) + RIGHT_EYE.index(263)
    assert rows[1] == 1 and list(rows[468:]) == list(range(MESH_POINTS + 80 + 142, MESH_POINTS + 80 + 142 + 10))
    assert list(z_rows[:468]) == list(range(468)) and set(z_rows[468:473]) == {468} and set(z_rows[473:]) == {469}


@pytest.mark.skipif(not os.environ.get("VRB_MEDIAPIPE_WHEEL"), reason="set VRB_MEDIAPIPE_WHEEL to the 0.10.21 wheel")
def test_rebuilding_from_the_real_wheel_gives_the_shipped_files(tmp_path):
    """The full recipe, edits included (the wheel is 35 MB: not in the repository; CI skips this)."""
    assert model.main([os.environ["VRB_MEDIAPIPE_WHEEL"], str(tmp_path)]) == 0
    for spec in BUNDLES.values():
        assert (tmp_path / spec.filename).read_bytes() == spec.path.read_bytes()


def test_bundles_for_another_task_are_refused_with_what_they_lack(tmp_path):
    hand = tmp_path / "hand.task"
    hand.write_bytes(BUNDLE_PATH.read_bytes())
    with pytest.raises(ModelError, match="not a pose landmarker bundle: it lacks pose_detector.tflite"):
        load_model("pose", hand)
    with pytest.raises(ModelError, match="not a face landmarker bundle: it lacks face_detector.tflite"):
        load_model("face", hand)
    assert load_model("pose", BUNDLES["pose"].path) == BUNDLES["pose"].path.read_bytes()


# -- Google's official bundles: opt-in and hash-checked ----------------------------------------------------------
def _audit_network():
    events, watching = [], [True]

    def hook(event, args):
        if watching[0] and event in ("socket.connect", "socket.getaddrinfo", "urllib.Request", "http.client.connect"):
            events.append(event)

    sys.addaudithook(hook)
    return events, watching


def test_official_without_allow_download_names_the_flag_and_fetches_nothing(tmp_path):
    events, watching = _audit_network()
    try:
        with pytest.raises(ModelError, match="not in .*run once with --allow-download .*pose_landmarker_full.task"):
            load_model("pose", "official", cache_dir=tmp_path)
    finally:
        watching[0] = False
    assert events == []


def test_a_cached_official_bundle_is_hash_checked(tmp_path):
    (tmp_path / "face_landmarker.task").write_bytes(b"not the official bundle")
    with pytest.raises(ModelError, match="cached official face model .* is damaged .*expected 64184e229b26"):
        load_model("face", "official", cache_dir=tmp_path)


class _Server:
    """A real HTTP server on loopback serving one body (stands in for Google's model URL)."""

    def __init__(self, body: bytes):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/models/x/face_landmarker.task"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("served, pinned_ok, error", [
    (b"the real bundle", True, None),
    (b"a swapped bundle", False, "downloaded official face model is damaged"),
    (b"x" * 5000, False, "larger than the pinned"),
])
def test_allow_download_fetches_once_checks_the_hash_and_caches(tmp_path, monkeypatch, served, pinned_ok, error):
    server = _Server(served)
    try:
        good = b"the real bundle"
        spec = dataclasses.replace(BUNDLES["face"], official_url=server.url,
                                   official_sha256=hashlib.sha256(good).hexdigest(), official_size=len(good))
        monkeypatch.setitem(BUNDLES, "face", spec)
        if error:
            with pytest.raises(ModelError, match=error):
                load_model("face", "official", allow_download=True, cache_dir=tmp_path)
            assert not (tmp_path / "face_landmarker.task").exists()  # nothing saved
        else:
            assert load_model("face", "official", allow_download=True, cache_dir=tmp_path) == good
            assert (tmp_path / "face_landmarker.task").read_bytes() == good
            server.close()
            server = None
            assert load_model("face", "official", cache_dir=tmp_path) == good  # from the cache, offline
    finally:
        if server is not None:
            server.close()
