"""Finding and reading a backbone's pretrained weights, never touching the network unless the user allowed it.

Places, in order:
1. an explicit file (``--encoder-weights FILE``; ``.pth``/``.pt`` torch files or ``.safetensors``). A file
   that was named but cannot be used is an error: we never fall back silently to something else.
2. torch's hub cache, ``torch.hub.get_dir()/checkpoints/<published file name>`` (where torchvision, torch.hub
   and earlier ``--allow-download`` runs put it; ``TORCH_HOME`` moves it), also under the names older
   releases of the same weights had (``WeightsSpec.also_cached``).
3. only with ``--allow-download``: the published URL through ``torch.hub.load_state_dict_from_url`` with
   ``check_hash=True`` and a progress bar. torchvision's file names end in the first 8 hex digits of the file's
   SHA-256 (``mobilenet_v3_large-5c1a4163.pth``), which that checks; a spec's full ``sha256`` is checked too.
   Meta's DINOv2 file names carry no hash and Meta publishes none, so that file is checked by its exact
   format (every key, shape and value) when loaded, and its SHA-256 is logged. The file lands in the hub
   cache, so the next start finds it offline.

Files are memory-mapped where the format allows, so checking a 528 MB file's keys and shapes and copying the
conv weights of a truncated network does not read the classifier from disk.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import warnings
from pathlib import Path
from typing import Mapping

import torch

from bridge.encoder.backbone import EncoderError, WeightsSpec
from bridge.text import clip_line

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FoundWeights:
    state: Mapping[str, torch.Tensor]
    origin: str  # "file", "hub cache" or "download"
    path: str

    def describe(self) -> str:
        return f"{self.origin} {self.path}"


def hub_cache_path(spec: WeightsSpec) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / spec.filename


def cached_files(spec: WeightsSpec) -> list[Path]:
    """The files in torch's hub cache under any of the names these weights were published as (usable or not)."""
    cached = hub_cache_path(spec)
    return [path for path in (cached.with_name(name) for name in (spec.filename, *spec.also_cached)) if path.is_file()]


def find_weights(spec: WeightsSpec, explicit: str | Path | None = None, allow_download: bool = False) -> FoundWeights:
    """Return the first usable weights, or raise EncoderError saying where we looked and how to fix it."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise EncoderError(f"encoder weights file not found: {path}")
        expected = f"{spec.description}: {spec.filename} (a torch state dict) or a .safetensors copy of it"
        return FoundWeights(read_state_dict(path, expected=expected), "file", str(path))
    cached = hub_cache_path(spec)
    in_cache = cached_files(spec)
    if in_cache:
        path = in_cache[0]
        try:
            return FoundWeights(read_state_dict(path), "hub cache", str(path))
        except EncoderError as exc:
            raise EncoderError(f"{exc}; fix: delete that cached file (it will be fetched again with --allow-download)") from exc
    if allow_download:
        return FoundWeights(download(spec), "download", str(cached))
    raise EncoderError(
        f"no {spec.description} found (looked in: --encoder-weights not given; torch hub cache {cached}); "
        f"fix: pass --encoder-weights FILE (the published {spec.filename}), or --allow-download to fetch "
        f"{spec.url} once into the cache"
    )


def download(spec: WeightsSpec) -> Mapping[str, torch.Tensor]:
    """Fetch the published file into the hub cache with a progress bar, checking its hash."""
    log.info("downloading %s from %s", spec.description, spec.url)
    if not spec.sha256 and not _HASH_IN_NAME.search(spec.filename):
        log.warning("%s: the publisher gives no checksum for this file; it is checked by its exact format "
                    "(keys, shapes, finite values) when loaded", spec.filename)
    try:
        state = torch.hub.load_state_dict_from_url(spec.url, map_location="cpu", progress=True, check_hash=True,
                                                   file_name=spec.filename, weights_only=True)
        _check_full_digest(spec)
        return state
    except Exception as exc:  # URLError, HTTPError, hash mismatch RuntimeError, a broken file...
        raise EncoderError(
            f"could not download {spec.url}: {_one_line(exc)}; fix: check the connection, or fetch the file "
            f"yourself and pass --encoder-weights FILE (or put it at {hub_cache_path(spec)})"
        ) from exc


# what torch.hub takes for the hash prefix in a file name ("name-<hex>.ext")
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")


def _check_full_digest(spec: WeightsSpec) -> None:
    """Log the downloaded file's SHA-256; refuse (and delete) it when it differs from the spec's."""
    path = hub_cache_path(spec)
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    digest = sha.hexdigest()
    log.info("downloaded %s, sha256 %s", path, digest)
    if spec.sha256 and digest != spec.sha256.lower():
        path.unlink(missing_ok=True)
        raise RuntimeError(f"invalid hash value (expected sha256 {spec.sha256}, got {digest})")


def read_state_dict(path: Path, what: str = "encoder weights",
                    expected: str = "a torch state dict (.pth/.pt) or a .safetensors file") -> Mapping[str, torch.Tensor]:
    """A state dict from a torch file (weights only, memory-mapped when possible) or a safetensors file.

    ``what`` names the file in the error (other models, e.g. the depth network, read theirs here too). A file
    that cannot be read is one line saying what the file is and what was ``expected``; never torch's own
    message, which suggests ``weights_only=False`` (running whatever code the file carries)."""
    try:
        with warnings.catch_warnings():  # torch warns about pickles on its way to refusing one
            warnings.simplefilter("ignore")
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path), device="cpu")
            else:
                state = _torch_load(path)
    except EncoderError:
        raise
    except Exception as exc:
        raise EncoderError(f"{path}: cannot read {what}: {describe_file(path, exc)}; expected {expected}") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]  # a checkpoint wrapping the state dict, as some training scripts save it
    return state


def _torch_load(path: Path):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):  # only the legacy (non-zip) format cannot be memory-mapped
            raise
        return torch.load(str(path), map_location="cpu", weights_only=True)


def describe_file(path: Path, exc: BaseException) -> str:
    """What an unreadable weights file is, in words, from its first bytes (and why torch refused it)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(512)
    except OSError as err:
        return f"it cannot be opened ({err.strerror or err})"
    if size == 0:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        kind = f"a zip archive ({size:,} bytes; torch.save's format)"
    elif head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        kind = f"a Python pickle ({size:,} bytes)"
    elif len(head) >= 9 and head[8:9] == b"{":
        kind = f"a safetensors file ({size:,} bytes)"
    elif _is_text(head):
        return f"it is a {size:,}-byte text file, not a weights file"
    else:
        return f"it is {size:,} bytes in no weights format (first bytes {head[:8].hex(' ')})"
    if "Weights only load failed" in str(exc):
        return f"it is {kind} that torch's weights-only reader refuses (reading it otherwise could run code)"
    return f"it is {kind} that cannot be read ({clip_line(_one_line(exc), 120)})"


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(b >= 32 or b in (9, 10, 13) for b in head)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
