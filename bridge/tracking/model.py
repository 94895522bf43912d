"""Where the hand model comes from, and proof that it is the one we meant.

The package ships ``bridge/assets/hand_landmarker.task`` so hand tracking works out of the box and offline.
MediaPipe's newer wheels ship no model files, and the official bundle is a download; instead we build the
same bundle from the two Apache-2.0 ``.tflite`` files inside the mediapipe 0.10.21 wheel (see
``bridge/assets/README.md``). A ``.task`` bundle is a plain zip whose members are *stored* (not compressed)
and 4-byte aligned, so MediaPipe can map the models straight from the file: :func:`build_bundle` writes
exactly that, reproducibly (fixed timestamps, fixed order), and the shipped file's sha256 is checked on
every load so a corrupted or swapped file fails with a clear message instead of odd landmarks.

A user-supplied ``.task`` path (the ``hand_model`` start-up setting) overrides the shipped bundle; it is
checked for being a readable zip holding the two models, not for a hash (it is the user's own model).

Rebuild the shipped file (needs the wheel; nothing here ever downloads)::

    pip download --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
        --python-version 3.11 mediapipe==0.10.21 -d /tmp/mp21
    python -m bridge.tracking.model /tmp/mp21/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl
"""
from __future__ import annotations

import hashlib
import io
import struct
import sys
import zipfile
import zlib
from pathlib import Path

BUNDLE_PATH = Path(__file__).resolve().parent.parent / "assets" / "hand_landmarker.task"
BUNDLE_SHA256 = "4327c57966533383a44f2669fc9147fe8bd9a9517d44366b3c67552c3e9b0c9e"
BUNDLE_SIZE = 7_819_041

# Member name inside the bundle -> path of its source inside the mediapipe 0.10.21 wheel.
BUNDLE_MEMBERS: dict[str, str] = {
    "hand_detector.tflite": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "hand_landmarks_detector.tflite": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
}
_ALIGN = 4
_DOS_TIME, _DOS_DATE = 0, (0 << 9) | (1 << 5) | 1  # 1980-01-01 00:00:00: fixed, so rebuilds are byte-identical


class HandModelError(RuntimeError):
    """The hand model cannot be used. The message is the one line the user sees."""


def load_hand_model(path: str | Path | None = None) -> bytes:
    """The bytes of the hand landmarker bundle to give MediaPipe (``model_asset_buffer``).

    ``path`` empty/None: the shipped bundle, verified by sha256. Otherwise the user's ``.task`` file,
    verified to be a bundle holding both models. Raises :class:`HandModelError` with a specific reason.
    """
    if not path:
        data = _read(BUNDLE_PATH, "the shipped hand model")
        digest = hashlib.sha256(data).hexdigest()
        if digest != BUNDLE_SHA256:
            raise HandModelError(
                f"the shipped hand model {BUNDLE_PATH} is damaged (sha256 {digest[:12]}..., expected "
                f"{BUNDLE_SHA256[:12]}...); reinstall the package or pass --hand-model PATH.task")
        return data
    data = _read(Path(path), "hand model")
    check_bundle(data, str(path))
    return data


def check_bundle(data: bytes, label: str = "bundle") -> None:
    """Raise HandModelError unless ``data`` is a zip holding both hand models."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        raise HandModelError(f"{label} is not a MediaPipe .task bundle (not a zip file)") from None
    missing = sorted(set(BUNDLE_MEMBERS) - names)
    if missing:
        raise HandModelError(f"{label} is not a hand landmarker bundle: it lacks {', '.join(missing)}")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise HandModelError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise HandModelError(f"{what} unreadable: {path}: {exc.strerror or exc}") from None


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


def bundle_from_wheel(wheel: str | Path) -> bytes:
    """Build the hand landmarker bundle from a mediapipe 0.10.21 wheel (or any wheel with the same files)."""
    with zipfile.ZipFile(wheel) as archive:
        members = {name: archive.read(source) for name, source in BUNDLE_MEMBERS.items()}
    return build_bundle(members)


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge.tracking.model WHEEL [OUT]``: rebuild the shipped bundle and print its sha256."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__)
        return 2
    data = bundle_from_wheel(argv[0])
    out = Path(argv[1]) if len(argv) > 1 else BUNDLE_PATH
    out.write_bytes(data)
    print(f"{out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
