"""Where a show's directions come from: the ``directions`` spec, and the on-disk PCA cache.

Spec (start-up row ``directions``): ``pca:K`` | ``sefa:K`` | ``pca`` / ``sefa`` (K = 16) | a ``.npy`` path |
``off`` / empty.

The PCA cache: sampling 10 000 w takes seconds, so every component of a PCA is stored once per mapping
network in ``<cache>/pca-<hash>-n<N>-s<seed>.npz`` (plain arrays, read with ``allow_pickle=False``). The
hash is the SHA-256 of the mapping network's tensors (names, dtypes, shapes, bytes) and its dims: w depends
on nothing else, so a renamed or re-saved model, or one whose synthesis was fine-tuned, finds its cache.
The cache folder: the ``directions_cache`` row, else ``$XDG_CACHE_HOME/vrbridge/directions``, else
``~/.cache/vrbridge/directions``. A broken cache file is ignored and rewritten.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bridge.directions.compute import (Directions, DirectionsError, load_direction_file, pca_directions, sample_w,
                                       sefa_directions)

log = logging.getLogger(__name__)

DEFAULT_COUNT = 16
DEFAULT_SAMPLES = 10_000
MAX_COUNT = 4096


def parse_spec(spec: str) -> tuple[str, int | str]:
    """("off", 0) | ("pca", K) | ("sefa", K) | ("file", path); DirectionsError naming what is wrong."""
    text = (spec or "").strip()
    if text.lower() in ("", "off", "none"):
        return "off", 0
    method, sep, count = text.partition(":")
    if method.lower() in ("pca", "sefa"):
        if not sep:
            return method.lower(), DEFAULT_COUNT
        try:
            k = int(count)
        except ValueError:
            raise DirectionsError(f"directions {spec!r}: the count after ':' must be an integer") from None
        if not 1 <= k <= MAX_COUNT:
            raise DirectionsError(f"directions {spec!r}: count must be 1..{MAX_COUNT}")
        return method.lower(), k
    if text.lower().endswith(".npy"):
        return "file", text
    raise DirectionsError(f"directions {spec!r}: use pca:K, sefa:K, a .npy file, or off")


def mapping_hash(generator) -> str:
    """SHA-256 (hex) of the mapping network's content and dims (see the module docstring)."""
    mapping = getattr(generator, "mapping", generator)
    digest = hashlib.sha256(f"z{mapping.z_dim} c{mapping.c_dim} w{mapping.w_dim}".encode())
    for name, tensor in sorted(mapping.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def cache_dir(configured: str = "") -> Path:
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vrbridge" / "directions"


def cache_path(generator, samples: int = DEFAULT_SAMPLES, seed: int = 0, folder: "str | Path" = "") -> Path:
    """Where the PCA of ``generator``'s mapping network from ``samples`` z of ``seed`` is cached."""
    return cache_dir(str(folder)) / f"pca-{mapping_hash(generator)[:24]}-n{samples}-s{seed}.npz"


def cached_pca(generator, samples: int = DEFAULT_SAMPLES, seed: int = 0, folder: "str | Path" = "",
               batch: int = 1000) -> tuple[Directions, bool]:
    """(every PCA component, whether it came from the cache); computes and stores it when missing."""
    path = cache_path(generator, samples, seed, folder)
    label = f"pca, {samples} samples"
    cached = _read_cache(path, int(generator.w_dim), label)
    if cached is not None:
        return cached, True
    start = time.perf_counter()
    directions = pca_directions(sample_w(generator, samples, seed=seed, batch=batch), source=label)
    log.info("directions: PCA of %d w took %.1f s", samples, time.perf_counter() - start)
    _write_cache(path, directions)
    return directions, False


def resolve(spec: str, generator, samples: int = DEFAULT_SAMPLES, folder: "str | Path" = "") -> Directions | None:
    """The Directions a spec names for ``generator`` (None for off). Raises DirectionsError."""
    method, arg = parse_spec(spec)
    if method == "off":
        return None
    if method == "file":
        return load_direction_file(arg, int(generator.w_dim))
    if method == "sefa":
        return sefa_directions(generator, source="sefa").head(int(arg))
    directions, _ = cached_pca(generator, samples=samples, folder=folder)
    return directions.head(int(arg))


def _read_cache(path: Path, w_dim: int, label: str) -> Directions | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            vectors, scales, ratios = data["vectors"], data["scales"], data["ratios"]
        if vectors.ndim != 2 or vectors.shape[1] != w_dim or scales.shape != (vectors.shape[0],):
            raise ValueError(f"shapes {vectors.shape} {scales.shape}")
        return Directions(vectors=vectors.astype(np.float32), scales=scales.astype(np.float32),
                          ratios=ratios.astype(np.float64), method="pca", source=f"{label}, cached")
    except (OSError, ValueError, KeyError) as exc:
        log.warning("directions: ignoring unreadable cache %s (%s)", path, exc)
        return None


def _write_cache(path: Path, directions: Directions) -> None:
    """Write atomically (temp file + rename); a cache that cannot be written is only a warning."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        log.warning("directions: could not write the PCA cache %s (%s)", path, exc)
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, vectors=directions.vectors, scales=directions.scales, ratios=directions.ratios)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("directions: could not write the PCA cache %s (%s)", path, exc)
    finally:
        Path(tmp).unlink(missing_ok=True)
