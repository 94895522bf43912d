"""Where the MediaPipe models come from, and proof that they are the ones we meant.

The package ships three MediaPipe Tasks bundles in ``bridge/assets/`` so hand, pose and face tracking work
out of the box and offline: ``hand_landmarker.task``, ``pose_landmarker.task`` and ``face_landmarker.task``.
MediaPipe's newer wheels ship no model files and Google's official bundles are downloads; instead each bundle
is built from Apache-2.0 ``.tflite`` files inside the mediapipe 0.10.21 wheel (see ``bridge/assets/README.md``):

* hand: the two models, as they are;
* pose: the two models, the landmark model given the image metadata the Tasks API needs
  (:func:`bridge.tracking.tflite_edit.add_image_metadata`);
* face: the detector and the 478-point attention model, whose seven outputs are merged inside the model into
  the two the Tasks API reads (:func:`bridge.tracking.tflite_edit.merge_face_refinement`). No blendshape
  model exists in that wheel, so the face tracker computes its gestures from the landmarks.

A ``.task`` bundle is a plain zip whose members are *stored* (not compressed) and 4-byte aligned, so MediaPipe
can map the models straight from the file: :func:`build_bundle` writes exactly that, reproducibly (fixed
timestamps, fixed order), and each shipped file's sha256 is checked on every load so a corrupted or swapped
file fails with a clear message instead of odd landmarks.

A user-supplied ``.task`` path (``hand_model``, ``pose_model``, ``face_model``) overrides the shipped bundle;
it is checked for being a readable zip holding the models its task needs, not for a hash (it is the user's
own model). The word ``official`` instead names Google's own bundle: read from this package's model cache,
or, only with ``allow_download``, fetched once from Google's versioned URL and refused unless its sha256 is
the pinned one.

Rebuild the shipped files (needs the wheel; nothing here ever downloads)::

    pip download --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
        --python-version 3.11 mediapipe==0.10.21 -d /tmp/mp21
    python -m bridge.tracking.model /tmp/mp21/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import struct
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Callable

ASSETS = Path(__file__).resolve().parent.parent / "assets"
_ALIGN = 4
_DOS_TIME, _DOS_DATE = 0, (0 << 9) | (1 << 5) | 1  # 1980-01-01 00:00:00: fixed, so rebuilds are byte-identical
MAX_MODEL_BYTES = 64 * 1024 * 1024  # a larger "model" is refused before it is read or downloaded


def _pose_landmarks(data: bytes) -> bytes:
    from bridge.tracking.tflite_edit import add_image_metadata

    return add_image_metadata(data, "Pose landmarks detection (full)",
                              ("landmarks", "pose_flag", "segmentation", "heatmap", "world_landmarks"))


def _face_landmarks(data: bytes) -> bytes:
    from bridge.tracking.tflite_edit import merge_face_refinement

    return merge_face_refinement(data)


@dataclasses.dataclass(frozen=True)
class BundleSpec:
    """One shipped bundle: where its members come from in the wheel, what it must hash to, and Google's own."""

    task: str  # "hand", "pose", "face": also the prefix of its start-up setting (hand_model, ...)
    filename: str
    sha256: str
    size: int
    # member name inside the bundle -> (path of its source inside the mediapipe 0.10.21 wheel, edit or None)
    sources: dict[str, tuple[str, Callable[[bytes], bytes] | None]]
    required: tuple[str, ...]  # members any bundle for this task must hold
    official_url: str
    official_sha256: str
    official_size: int

    @property
    def path(self) -> Path:
        return ASSETS / self.filename


BUNDLES: dict[str, BundleSpec] = {
    "hand": BundleSpec(
        "hand", "hand_landmarker.task", "4327c57966533383a44f2669fc9147fe8bd9a9517d44366b3c67552c3e9b0c9e",
        7_819_041,
        {"hand_detector.tflite": ("mediapipe/modules/palm_detection/palm_detection_full.tflite", None),
         "hand_landmarks_detector.tflite": ("mediapipe/modules/hand_landmark/hand_landmark_full.tflite", None)},
        ("hand_detector.tflite", "hand_landmarks_detector.tflite"),
        "https://storage.googleapis.com/mediapipe-models/hand_landmarker/hand_landmarker/float16/1/"
        "hand_landmarker.task",
        "fbc2a30080c3c557093b5ddfc334698132eb341044ccee322ccf8bcf3607cde1", 7_819_105),
    "pose": BundleSpec(
        "pose", "pose_landmarker.task", "7d5fa38a7b2d6330f212370db87b30e3ff561ef78bac94b3da861bb52a8d1542", 9_398_828,
        {"pose_detector.tflite": ("mediapipe/modules/pose_detection/pose_detection.tflite", None),
         "pose_landmarks_detector.tflite": ("mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
                                            _pose_landmarks)},
        ("pose_detector.tflite", "pose_landmarks_detector.tflite"),
        "https://storage.googleapis.com/mediapipe-models/pose_landmarker/pose_landmarker_full/float16/1/"
        "pose_landmarker_full.task",
        "4eaa5eb7a98365221087693fcc286334cf0858e2eb6e15b506aa4a7ecdcec4ad", 9_398_198),
    "face": BundleSpec(
        "face", "face_landmarker.task", "ad59876934b22cfec875f57c9c3f394fe25307849247d55252b5733bfceb3679", 2_733_384,
        {"face_detector.tflite": ("mediapipe/modules/face_detection/face_detection_short_range.tflite", None),
         "face_landmarks_detector.tflite": ("mediapipe/modules/face_landmark/face_landmark_with_attention.tflite",
                                            _face_landmarks)},
        ("face_detector.tflite", "face_landmarks_detector.tflite"),
        "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
        "face_landmarker.task",
        "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff", 3_758_596),
}

# The hand bundle's names, kept for the code and tests that predate pose and face.
BUNDLE_PATH = BUNDLES["hand"].path
BUNDLE_SHA256 = BUNDLES["hand"].sha256
BUNDLE_SIZE = BUNDLES["hand"].size
BUNDLE_MEMBERS: dict[str, str] = {name: src for name, (src, _) in BUNDLES["hand"].sources.items()}


class ModelError(RuntimeError):
    """A model cannot be used. The message is the one line the user sees."""


HandModelError = ModelError


def load_hand_model(path: str | Path | None = None) -> bytes:
    """The bytes of the hand landmarker bundle to give MediaPipe (``model_asset_buffer``)."""
    return load_model("hand", path)


def load_model(task: str, path: str | Path | None = None, allow_download: bool = False,
               cache_dir: str | Path | None = None) -> bytes:
    """The bytes of the ``task`` ("hand", "pose", "face") landmarker bundle to give MediaPipe.

    ``path`` empty/None: the shipped bundle, verified by sha256. ``"official"``: Google's bundle from the
    model cache (downloaded first only if ``allow_download``), verified by its pinned sha256. Otherwise the
    user's ``.task`` file, verified to be a bundle holding the task's models. Raises :class:`ModelError`.
    """
    spec = BUNDLES[task]
    if not path:
        data = _read(spec.path, f"the shipped {task} model")
        _check_hash(data, spec.sha256, f"the shipped {task} model {spec.path}",
                    f"reinstall the package or pass --{task}-model PATH.task")
        return data
    if str(path) == "official":
        return _official(spec, allow_download, cache_dir)
    data = _read(Path(path), f"{task} model")
    check_bundle(data, str(path), task)
    return data


def check_bundle(data: bytes, label: str = "bundle", task: str = "hand") -> None:
    """Raise ModelError unless ``data`` is a zip holding the models ``task`` needs."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        raise ModelError(f"{label} is not a MediaPipe .task bundle (not a zip file)") from None
    missing = sorted(set(BUNDLES[task].required) - names)
    if missing:
        raise ModelError(f"{label} is not a {task} landmarker bundle: it lacks {', '.join(missing)}")


def bundle_members(data: bytes) -> list[str]:
    """Member names of a bundle (e.g. to see whether a face bundle carries a blendshape model)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.namelist()


def _check_hash(data: bytes, expected: str, label: str, fix: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ModelError(f"{label} is damaged (sha256 {digest[:12]}..., expected {expected[:12]}...); {fix}")


def _read(path: Path, what: str) -> bytes:
    try:
        if path.is_file() and path.stat().st_size > MAX_MODEL_BYTES:
            raise ModelError(f"{what} {path} is larger than {MAX_MODEL_BYTES // 2**20} MB: not a landmarker bundle")
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ModelError(f"{what} unreadable: {path}: {exc.strerror or exc}") from None


# ------------------------------------------------------------------------------------------------
# Google's official bundles (opt-in, hash-checked)
# ------------------------------------------------------------------------------------------------
def model_cache_dir() -> Path:
    """Where official bundles are kept: $VRB_MODEL_CACHE, else ~/.cache/visual-reactive-bridge/models."""
    env = os.environ.get("VRB_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "visual-reactive-bridge" / "models"


def _official(spec: BundleSpec, allow_download: bool, cache_dir: str | Path | None) -> bytes:
    if not spec.official_sha256:
        raise ModelError(f"no pinned official {spec.task} bundle: the shipped one is the same models "
                         f"(pass --{spec.task}-model PATH.task for your own file)")
    target = Path(cache_dir) if cache_dir else model_cache_dir()
    cached = target / spec.official_url.rsplit("/", 1)[-1]
    if cached.is_file():
        data = _read(cached, f"official {spec.task} model")
        _check_hash(data, spec.official_sha256, f"the cached official {spec.task} model {cached}",
                    "delete it and run again with --allow-download")
        return data
    if not allow_download:
        raise ModelError(f"the official {spec.task} bundle is not in {target}: run once with --allow-download "
                         f"(fetches {spec.official_url}, {spec.official_size:,} bytes, sha256-checked), "
                         f"or put the file there yourself")
    data = _download(spec.official_url, spec.official_size)
    _check_hash(data, spec.official_sha256, f"the downloaded official {spec.task} model",
                "the file at Google's URL is not the pinned one; nothing was saved")
    target.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(cached)
    return data


def _download(url: str, size: int, timeout_s: float = 60.0) -> bytes:
    """Fetch ``url`` (at most ``size`` bytes plus a margin); ModelError on any failure."""
    import urllib.error
    import urllib.request

    limit = max(size, 1) + 1024
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - a fixed https URL
            data = response.read(limit + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(f"download of {url} failed: {exc}") from None
    if len(data) > limit:
        raise ModelError(f"download of {url} is larger than the pinned {size:,} bytes; refused")
    return data


# ------------------------------------------------------------------------------------------------
# Building the bundle
# ------------------------------------------------------------------------------------------------
def build_bundle(members: dict[str, bytes]) -> bytes:
    """A zip of ``members`` (name -> bytes, in order), stored, each payload aligned to 4 bytes.

    Written by hand rather than with :mod:`zipfile` because the alignment padding goes in the *local*
    header's extra field only (as Android's zipalign does); zipfile would repeat it in the central directory.
    """
    out = bytearray()
    central = bytearray()
    for name, payload in members.items():
        encoded = name.encode("ascii")
        offset = len(out)
        pad = (-(offset + 30 + len(encoded))) % _ALIGN
        crc = zlib.crc32(payload) & 0xFFFFFFFF
        common = struct.pack("<HHHHHIII", 10, 0, 0, _DOS_TIME, _DOS_DATE, crc, len(payload), len(payload))
        out += b"PK\x03\x04" + common + struct.pack("<HH", len(encoded), pad) + encoded + b"\0" * pad + payload
        central += (b"PK\x01\x02" + struct.pack("<H", 20) + common
                    + struct.pack("<HHHHHII", len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
    count = len(members)
    out += central + b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, count, count, len(central), len(out), 0)
    return bytes(out)


def bundle_from_wheel(wheel: str | Path, task: str = "hand") -> bytes:
    """Build the ``task`` bundle from a mediapipe 0.10.21 wheel (or any wheel with the same files)."""
    with zipfile.ZipFile(wheel) as archive:
        members = {}
        for name, (source, edit) in BUNDLES[task].sources.items():
            data = archive.read(source)
            members[name] = edit(data) if edit is not None else data
    return build_bundle(members)


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge.tracking.model WHEEL [OUTDIR] [TASK ...]``: rebuild the bundles, print their sha256.

    Without OUTDIR the shipped files in ``bridge/assets`` are rewritten; without TASKs all three are built.
    Each result is compared with the sha256 the package pins.
    """
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__)
        return 2
    wheel, rest = argv[0], argv[1:]
    out = ASSETS
    if rest and rest[0] not in BUNDLES:
        out, rest = Path(rest[0]), rest[1:]
    tasks = rest or list(BUNDLES)
    unknown = [t for t in tasks if t not in BUNDLES]
    if unknown:
        print(f"unknown task(s) {', '.join(unknown)}: choose from {', '.join(BUNDLES)}", file=sys.stderr)
        return 2
    status = 0
    for task in tasks:
        spec = BUNDLES[task]
        data = bundle_from_wheel(wheel, task)
        target = out / spec.filename
        target.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        same = digest == spec.sha256
        status |= 0 if same else 1
        print(f"{target}: {len(data)} bytes, sha256 {digest} "
              f"({'as pinned' if same else 'DIFFERS from the pinned ' + spec.sha256})")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
