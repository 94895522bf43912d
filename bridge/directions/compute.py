"""Computing directions: GANSpace PCA of sampled w, SeFa factorisation of the style weights, user files.

All three return :class:`Directions`; rows are unit length, float32, most important first.

PCA (GANSpace):
    z_i = RandomState(seed).randn(N, z_dim); w_i = mapping(z_i, c_i) (untruncated; c_i a random one-hot
    class for a conditional model); C = cov(w) (float64); the rows are C's eigenvectors by decreasing
    eigenvalue, each with its sign chosen so that its largest-magnitude entry is positive (deterministic).
    scale_k = sqrt(eigenvalue_k) (the standard deviation of w along row k); ratio_k = eigenvalue_k / trace(C).
SeFa:
    A = the style affine weights of the modulated layers, stacked (sum of channels, w_dim), each row
    divided by its length; the rows are the eigenvectors of AᵀA by decreasing eigenvalue (same sign rule);
    ratio_k = eigenvalue_k / trace(AᵀA); scale 1. Layers whose style drives no convolution (StyleGAN3's
    input affine, which makes a rotation and a translation) are left out.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

MAX_FILE_BYTES = 64 << 20  # a direction file is a few KB; refuse anything absurd before reading it


class DirectionsError(ValueError):
    """A direction source that cannot be used (bad spec, unreadable or mis-shaped file): one line."""


@dataclasses.dataclass(frozen=True)
class Directions:
    """K unit directions in w space, most important first.

    vectors (K, w_dim) float32 unit rows; scales (K,) float32: what amount 1 means along each row (PCA: the
    component's std; else 1); ratios (K,) float64: explained-variance (PCA) or eigenvalue (SeFa) ratio,
    None for a user file; method: "pca", "sefa" or "file"; source: for messages (spec or path).
    """

    vectors: np.ndarray
    scales: np.ndarray
    ratios: np.ndarray | None
    method: str
    source: str = ""

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.scales.shape != (self.vectors.shape[0],):
            raise ValueError(f"directions: vectors {self.vectors.shape} and scales {self.scales.shape} do not fit")

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def w_dim(self) -> int:
        return int(self.vectors.shape[1])

    def head(self, count: int) -> "Directions":
        """The first ``count`` rows."""
        ratios = None if self.ratios is None else self.ratios[:count]
        return dataclasses.replace(self, vectors=self.vectors[:count], scales=self.scales[:count], ratios=ratios)

    def describe(self) -> str:
        what = {"pca": "GANSpace PCA", "sefa": "SeFa", "file": "file"}.get(self.method, self.method)
        top = "" if self.ratios is None else f", top ratio {float(self.ratios[0]):.3f}" if self.count else ""
        return f"{self.count} {what} directions ({self.source}){top}"


# ------------------------------------------------------------------------------------------------ PCA
def sample_w(mapping, n: int, seed: int = 0, batch: int = 1000) -> np.ndarray:
    """(n, w_dim) float64 untruncated w of n seeded z (and random one-hot classes when conditional).

    ``mapping``: a Generator or its MappingNetwork. Batched so memory stays flat for any n.
    """
    mapping = getattr(mapping, "mapping", mapping)
    if n < 2:
        raise DirectionsError(f"PCA needs at least 2 samples, got {n}")
    rng = np.random.RandomState(seed)
    device = next(iter(mapping.parameters())).device
    out = np.empty((n, mapping.w_dim), dtype=np.float64)
    with torch.no_grad():
        for start in range(0, n, batch):
            count = min(batch, n - start)
            z = torch.from_numpy(rng.randn(count, mapping.z_dim)).to(device) if mapping.z_dim else None
            c = None
            if mapping.c_dim:
                labels = torch.from_numpy(rng.randint(0, mapping.c_dim, size=count))
                c = torch.nn.functional.one_hot(labels, mapping.c_dim).float().to(device)
            ws = mapping(z, c, truncation_psi=1.0)
            out[start:start + count] = ws[:, 0].double().cpu().numpy()
    return out


def pca_directions(samples: np.ndarray, source: str = "pca") -> Directions:
    """Every principal component of ``samples`` (N, w_dim), by decreasing variance (see the module docstring)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[0] < 2:
        raise DirectionsError(f"PCA needs an (N >= 2, w_dim) sample array, got {samples.shape}")
    centred = samples - samples.mean(axis=0, keepdims=True)
    cov = centred.T @ centred / (samples.shape[0] - 1)
    values, vectors = np.linalg.eigh(cov)  # ascending, columns
    order = np.argsort(values)[::-1]
    values = np.clip(values[order], 0.0, None)
    rows = _fix_signs(vectors[:, order].T)
    total = float(values.sum())
    ratios = values / total if total > 0 else np.zeros_like(values)
    return Directions(vectors=rows.astype(np.float32), scales=np.sqrt(values).astype(np.float32), ratios=ratios,
                      method="pca", source=source)


# ----------------------------------------------------------------------------------------------- SeFa
def style_affine_weights(generator) -> list[tuple[str, torch.Tensor]]:
    """(name, effective-or-stored weight (channels, w_dim)) of every style affine that modulates a convolution.

    StyleGAN2: every SynthesisLayer and ToRGBLayer; StyleGAN3: every L* layer (ToRGB included); the SG3
    input's affine (w -> rotation + translation) is not a style and is left out.
    """
    out = []
    for name, module in generator.synthesis.named_modules():
        affine = getattr(module, "affine", None)
        if affine is None or not hasattr(module, "weight") or name == "input":
            continue
        out.append((f"synthesis.{name}.affine.weight", affine.weight.detach()))
    if not out:
        raise DirectionsError("this generator has no style affine layers for SeFa")
    return out


def sefa_directions(generator, source: str = "sefa") -> Directions:
    """Every SeFa direction of ``generator`` by decreasing eigenvalue (see the module docstring)."""
    a = np.concatenate([w.double().cpu().numpy() for _, w in style_affine_weights(generator)], axis=0)
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    a = a / np.where(norms > 0, norms, 1.0)
    gram = a.T @ a
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1]
    values = np.clip(values[order], 0.0, None)
    rows = _fix_signs(vectors[:, order].T)
    total = float(values.sum())
    return Directions(vectors=rows.astype(np.float32), scales=np.ones(len(values), dtype=np.float32),
                      ratios=values / total if total > 0 else np.zeros_like(values), method="sefa", source=source)


# ------------------------------------------------------------------------------------------ user files
def load_direction_file(path: "str | Path", w_dim: int) -> Directions:
    """A user's ``.npy`` of shape (K, w_dim) or (w_dim,): rows normalised to unit length, scale 1.

    Read with ``allow_pickle=False`` (a .npy can carry pickled objects; we never load those).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DirectionsError(f"directions file {path}: cannot open ({exc.strerror or exc})") from None
    if size > MAX_FILE_BYTES:
        raise DirectionsError(f"directions file {path}: {size} bytes is too big for a direction file")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DirectionsError(f"directions file {path}: not a readable .npy array ({str(exc)[:120]})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise DirectionsError(f"directions file {path}: expected a numeric array, got {getattr(array, 'dtype', type(array))}")
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != w_dim or array.shape[0] == 0:
        raise DirectionsError(f"directions file {path}: shape {array.shape} does not fit this model "
                              f"(expected (K, {w_dim}) or ({w_dim},))")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise DirectionsError(f"directions file {path}: holds NaN or infinite values")
    norms = np.linalg.norm(array, axis=1)
    if (norms == 0).any():
        raise DirectionsError(f"directions file {path}: row {int(np.argmin(norms))} is all zeros")
    return Directions(vectors=(array / norms[:, None]).astype(np.float32),
                      scales=np.ones(array.shape[0], dtype=np.float32), ratios=None, method="file",
                      source=str(path))


def _fix_signs(rows: np.ndarray) -> np.ndarray:
    """Flip each row so its largest-magnitude entry is positive: eigenvectors are only defined up to sign."""
    idx = np.argmax(np.abs(rows), axis=1)
    signs = np.sign(rows[np.arange(rows.shape[0]), idx])
    return rows * np.where(signs == 0, 1.0, signs)[:, None]


def explained_summary(directions: Directions, count: int | None = None) -> str:
    """'0.213 0.101 ...' of the first ``count`` ratios (what the CLI prints)."""
    if directions.ratios is None:
        return ""
    ratios = directions.ratios[: count or directions.count]
    return " ".join(f"{r:.4f}" if math.isfinite(r) else "nan" for r in ratios)
