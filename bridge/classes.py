"""Classes of a conditional model (c_dim > 0), chosen by hand or by what the camera sees.

The c vector, NVIDIA's convention (gen_images.py: ``label[:, class_idx] = 1``): a one-hot row of length
c_dim; the mapping network embeds it (a linear layer) and normalises the embedding to unit RMS before
concatenating it to the normalised z (bridge/stylegan/mapping.py does exactly that). Here

    c = (1 - class.blend) * onehot(class.a) + class.blend * onehot(class.b)

which is the one-hot of class.a at blend 0 and of class.b at blend 1; in between, because the embedding is
linear and the weights sum to 1, the embedding moves on the straight line between the two classes'.

With ``class.source = camera`` the classes come from the scene instead: the encoder's VGG16 already computes
ImageNet logits at ``fc3``; their softmax p (1000 probabilities) goes through the show's ``class_map``
(ImageNet class -> model class) and

    c = sum over mapped ImageNet classes j of p_j * onehot(map[j]),  divided by its sum

(when none of the mapped classes has any probability, class.a is used). The top ImageNet classes are
published as signals ``scene.class.<name>`` (probability 0..1; a class that drops out of the top is
published once more as 0), plus ``scene.class.top1_id`` and ``scene.class.top1_p``. With ``classify`` on,
all 1000 class signals are declared at start-up, so routes (show file or live) can name any class and the
rig finds them in OSCQuery; the signal catalogue (``vrbridge signals``) lists the two fixed ones.
"""
from __future__ import annotations

import functools
import logging
import re
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

IMAGENET_FILE = Path(__file__).parent / "assets" / "imagenet_classes.txt"
TOP_K = 5


def _fixed_specs() -> tuple:
    """The two class signals every classifying engine publishes (the signal catalogue lists these)."""
    from bridge.signals import SignalSpec

    return (SignalSpec(name="scene.class.top1_id", low=0.0, high=999.0, source="classes",
                       description="ImageNet id of the most likely class in the camera picture (VGG16 fc3; with "
                                   "classify)"),
            SignalSpec(name="scene.class.top1_p", low=0.0, high=1.0, source="classes",
                       description="Probability of the most likely ImageNet class; scene.class.<name> is each "
                                   "class's (e.g. scene.class.golden_retriever; bridge/assets/imagenet_classes.txt)"))


def class_specs() -> tuple:
    """One signal per ImageNet class, ``scene.class.<name>`` (declared at start-up when classify is on)."""
    from bridge.signals import SignalSpec

    return tuple(SignalSpec(name=f"scene.class.{safe}", low=0.0, high=1.0, source="classes",
                            description=f"Probability of ImageNet class {i} ({imagenet_names()[i]})")
                 for i, safe in enumerate(signal_names()))


class ClassMapError(ValueError):
    """A class_map entry that cannot be used (one line; the engine does not start)."""


@functools.lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names in logit order (bridge/assets/imagenet_classes.txt)."""
    names = []
    for line in IMAGENET_FILE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            index, _, name = line.partition(",")
            if int(index) != len(names):
                raise ValueError(f"{IMAGENET_FILE}: ids out of order at {line!r}")
            names.append(name)
    return tuple(names)


@functools.lru_cache(maxsize=1)
def signal_names() -> tuple[str, ...]:
    """Signal-safe names (lower case, [a-z0-9_]); a name used twice in ImageNet gets its id appended."""
    base = [re.sub(r"[^a-z0-9]+", "_", n.lower()).strip("_") for n in imagenet_names()]
    counts: dict[str, int] = {}
    for name in base:
        counts[name] = counts.get(name, 0) + 1
    return tuple(f"{name}_{i}" if counts[name] > 1 else name for i, name in enumerate(base))


def imagenet_id(text: str) -> int:
    """An ImageNet class id from an id or a name (as in the asset, or its signal form)."""
    text = text.strip()
    if text.isdigit():
        value = int(text)
        if not 0 <= value < 1000:
            raise ClassMapError(f"ImageNet class {value} is out of range 0..999")
        return value
    for names in (imagenet_names(), signal_names()):
        lowered = [n.lower() for n in names]
        if text.lower() in lowered:
            return lowered.index(text.lower())
    raise ClassMapError(f"unknown ImageNet class {text!r} (an id 0..999 or a name such as golden_retriever)")


def parse_class_map(entries: Sequence[str], c_dim: int) -> dict[int, int]:
    """``["207:3", "tabby:1"]`` -> {ImageNet id: model class}; ClassMapError naming a bad entry."""
    out: dict[int, int] = {}
    for entry in entries:
        source, sep, target = str(entry).rpartition(":")
        if not sep or not target.strip().isdigit():
            raise ClassMapError(f"class_map entry {entry!r}: use IMAGENET:MODEL_CLASS, e.g. 207:3 or tabby:1")
        model_class = int(target)
        if c_dim and not 0 <= model_class < c_dim:
            raise ClassMapError(f"class_map entry {entry!r}: model class {model_class} is out of range 0..{c_dim - 1}")
        out[imagenet_id(source)] = model_class
    return out


def one_hot_blend(c_dim: int, a: int, b: int, blend: float) -> np.ndarray:
    """(c_dim,) float32: (1 - blend) onehot(a) + blend onehot(b); a, b clipped into 0..c_dim-1."""
    c = np.zeros(c_dim, dtype=np.float32)
    if c_dim == 0:
        return c
    a, b = min(max(int(a), 0), c_dim - 1), min(max(int(b), 0), c_dim - 1)
    blend = min(max(float(blend), 0.0), 1.0)
    c[a] += 1.0 - blend
    c[b] += blend
    return c


class ClassSource:
    """Builds the per-frame c from the snapshot (manual) or the latest scene classification (camera)."""

    def __init__(self, c_dim: int, class_map: Mapping[int, int] | None = None, bus=None) -> None:
        self.c_dim = int(c_dim)
        self.class_map = dict(class_map or {})
        self.bus = bus
        self._scene: np.ndarray | None = None  # latest camera-derived c
        self._lock = threading.Lock()
        self._published: set[int] = set()
        self._warned_range = False
        self.top: list[tuple[int, float]] = []
        if bus is not None:
            self._declare()

    # -- per frame (render thread) ---------------------------------------------------------------
    def vector(self, snapshot: Mapping[str, Any]) -> np.ndarray | None:
        """The (c_dim,) c for this frame, or None for an unconditional model."""
        if not self.c_dim:
            return None
        a, b = int(snapshot.get("class.a", 0)), int(snapshot.get("class.b", 0))
        if max(a, b) >= self.c_dim and not self._warned_range:
            self._warned_range = True
            log.warning("class.a/class.b beyond this model's %d classes are clipped to %d", self.c_dim, self.c_dim - 1)
        if snapshot.get("class.source", "manual") == "camera":
            with self._lock:
                scene = self._scene
            if scene is not None:
                return scene
        return one_hot_blend(self.c_dim, a, b, float(snapshot.get("class.blend", 0.0)))

    # -- per encoded frame (encode thread) --------------------------------------------------------
    def observe_logits(self, logits) -> None:
        """ImageNet logits (1000,) or (N, 1000) of the newest frame (a tensor or an array): update the scene c
        and the signals."""
        if hasattr(logits, "detach"):
            logits = logits.detach().float().cpu().numpy()
        array = np.asarray(logits, dtype=np.float64)
        row = array.reshape(-1, array.shape[-1])[0]
        if row.shape[0] != 1000 or not np.isfinite(row).all():
            return
        p = np.exp(row - row.max())
        p /= p.sum()
        top = np.argsort(p)[::-1][:TOP_K]
        self.top = [(int(i), float(p[i])) for i in top]
        if self.c_dim and self.class_map:
            c = np.zeros(self.c_dim, dtype=np.float64)
            for source, target in self.class_map.items():
                c[target] += p[source]
            total = c.sum()
            with self._lock:
                self._scene = (c / total).astype(np.float32) if total > 0 else None
        self._publish(p, top)

    def _declare(self) -> None:
        self.bus.declare(*SIGNALS, *class_specs())

    def _publish(self, p: np.ndarray, top: np.ndarray) -> None:
        if self.bus is None:
            return
        names = signal_names()
        values: dict[str, float] = {"scene.class.top1_id": float(top[0]), "scene.class.top1_p": float(p[top[0]])}
        current = set()
        for i in top:
            values[f"scene.class.{names[i]}"] = float(p[i])
            current.add(int(i))
        for i in self._published - current:
            values[f"scene.class.{names[i]}"] = 0.0
        self._published = current
        self.bus.publish_many(values, source="classes")


SIGNALS = _fixed_specs()
