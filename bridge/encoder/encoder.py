"""The visual encoder: one camera frame -> one fake latent z per layer group (coarse, middle, fine).

Pipeline per frame (each step lives in its own module):

    uint8 RGB --crop to the encode aspect, resize, mirror, ImageNet-normalise--> (1, 3, H, W)
      --backbone (frozen, truncated after the deepest tap)--> {tap: feature map}
      --regions (feature-map layout)--> per region: channel means --projection--> Eq. 2 weighted sum (z_raw)
      --standardise (none | vector | running)--> --smoothing per group (EMA | One-Euro)--> z

Live settings come from the ParamStore snapshot passed to :meth:`VisualEncoder.encode` (the ``encoder.*``
rows and ``latent.hold`` of ``bridge.params``); start-up choices (backbone, taps, weights, encode size,
device) are fixed by :func:`build_encoder`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from bridge.demo import DEMO_SEED
from bridge.device import DeviceUnavailable, resolve_device
from bridge.encoder.backbone import Backbone, EncoderError, EncoderInputError, backbone_class, guess_backbone
from bridge.encoder.ort_runtime import OrtUnavailable, choose_runner
from bridge.encoder.reduce import Projection, RunningStandardizer, region_means, standardize_vector, weighted_sum
from bridge.encoder.regions import GROUPS, Layout, parse_layout
from bridge.encoder.smoothing import Smoother
from bridge.encoder.weights import cached_files, find_weights
from bridge.params import PARAMS_BY_NAME

log = logging.getLogger(__name__)

DEFAULT_ENCODE_SIZE = (426, 320)  # the paper's 4:3
DEFAULT_BACKBONE = "vgg16"  # the paper's


@dataclasses.dataclass(frozen=True)
class DemoEncoder:
    """What the random-init demo encoder runs when the user leaves backbone / taps / size to us."""

    backbone: str
    taps: tuple[str, ...]
    size: tuple[int, int]
    why: str


# Chosen with ``vrbridge bench encoder`` (BENCHMARKS.md, "Encoder backbones"): of the four random-init networks
# and their taps at the demo size, the one whose z (and so the picture) follows the moving test pattern most
# for the least encoder time on one CPU core. VGG16 conv4_1 (the paper's) is the slowest and the dullest there.
DEMO_ENCODER = DemoEncoder(
    "efficientnet_b0", ("stage6",), (128, 96),
    "the liveliest picture for its cost: z turns ~10x more per moving-pattern frame than VGG16 conv4_1's, "
    "for about a third of VGG16's encoder time",
)
DEMO_ENCODE_SIZE = DEMO_ENCODER.size
MAX_ENCODE_SIDE = 4096

# the live parameters the encoder reads; defaults come from the one table in bridge.params
_LIVE = ("encoder.layout", "encoder.grid", "encoder.smoothing", "encoder.filter", "encoder.euro.min_cutoff",
         "encoder.euro.beta", "encoder.standardize", "encoder.adapt_s", "encoder.mirror",
         "latent.hold")


@dataclasses.dataclass(frozen=True)
class Tap:
    name: str
    weight: float  # alpha_l of Eq. 2


def parse_taps(taps: Sequence[str] | str, tap_weights: Sequence[float] | None = None) -> tuple[Tap, ...]:
    """``("conv4_1:0.7", "conv5_1:0.3")`` or names plus ``tap_weights`` -> Taps. Unweighted taps share 1 equally."""
    items = [taps] if isinstance(taps, str) else list(taps)
    if not items:
        raise EncoderError("no encoder taps given (e.g. conv4_1, or block12 for mobilenet_v3_large)")
    names, weights = [], []
    for item in items:
        name, _, weight = str(item).partition(":")
        names.append(name.strip())
        weights.append(_tap_weight(item, weight) if weight else None)
    if tap_weights is not None:
        if len(tap_weights) != len(names):
            raise EncoderError(f"{len(tap_weights)} tap weights for {len(names)} taps ({', '.join(names)})")
        weights = [_tap_weight(n, w) for n, w in zip(names, tap_weights)]
    if all(w is None for w in weights):
        weights = [1.0 / len(names)] * len(names)
    elif any(w is None for w in weights):
        raise EncoderError("give a weight to every tap or to none (e.g. conv4_1:0.7 conv5_1:0.3)")
    if not any(weights):
        raise EncoderError("encoder tap weights are all zero: z would always be zero")
    return tuple(Tap(n, w) for n, w in zip(names, weights))


def _tap_weight(item: Any, weight: Any) -> float:
    try:
        value = float(weight)
    except (TypeError, ValueError):
        raise EncoderError(f"encoder tap {item!r}: weight {weight!r} is not a number") from None
    if not np.isfinite(value):
        raise EncoderError(f"encoder tap {item!r}: weight must be finite")
    return value


def parse_encode_size(size: Sequence[int] | str | None, demo: bool, min_side: int) -> tuple[int, int]:
    """(width, height) from a pair, ``"WxH"``, or None/"" (the default for this mode)."""
    if size is None or (isinstance(size, str) and not size.strip()):
        return DEMO_ENCODER.size if demo else DEFAULT_ENCODE_SIZE
    if isinstance(size, str):
        from bridge.imageops import parse_size

        try:
            size = parse_size(size)
        except ValueError as exc:
            raise EncoderError(f"encoder size: {exc}") from None
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise EncoderError(f"encoder size {size!r} is not (width, height)") from None
    if not (min_side <= width <= MAX_ENCODE_SIDE and min_side <= height <= MAX_ENCODE_SIDE):
        raise EncoderError(f"encoder size {width}x{height}: each side must be {min_side}..{MAX_ENCODE_SIDE} pixels")
    return width, height


def build_encoder(z_dim: int = 512, taps: Sequence[str] | str | None = None,
                  tap_weights: Sequence[float] | None = None, weights: str | None = None,
                  allow_download: bool = False, demo: bool = False, device: str | torch.device = "cpu",
                  encode_size: Sequence[int] | str | None = None, backbone: str = "auto",
                  observe_taps: Sequence[str] = (), runtime: str = "auto") -> VisualEncoder:
    """Build a ready encoder, or raise EncoderError with one line saying what is wrong and how to fix it.

    ``backbone`` "auto" is VGG16 (the paper's), or DEMO_ENCODER's network when ``demo`` is set and no weights
    file is named (a named file is taken to be the paper's VGG16 unless a backbone is given). ``taps``
    None/empty = the backbone's DEFAULT_TAPS (DEMO_ENCODER's taps for its network in the demo).
    Weights: ``weights`` (a file) if given; else torch's hub cache; else, only if ``allow_download``, the
    published file. ``demo=True`` allows one more fallback when no file was named and the others give
    nothing usable: a seeded random-init network, flagged by ``is_demo``, ``describe()`` and a log warning.
    Real weights are used in the demo too whenever they are there. ``encode_size`` (width, height) or "WxH";
    None/"" = 426x320 (the paper's 4:3), or DEMO_ENCODER's size when ``demo`` is set, to stay interactive;
    a ViT then takes the largest size of multiples of its patch within it (426x320 -> 420x308 for DINOv2).
    ``observe_taps``: more taps the backbone computes without feeding z (e.g. ``fc3`` for the ImageNet
    classes); :meth:`VisualEncoder.add_observer` callbacks receive them. ``runtime``: what runs the backbone's
    forward (:func:`bridge.encoder.ort_runtime.choose_runner`: auto, torch or onnxruntime).
    """
    if not isinstance(z_dim, (int, np.integer)) or isinstance(z_dim, bool) or z_dim < 1:
        raise EncoderError(f"z_dim must be a positive integer, got {z_dim!r}")
    auto = backbone in ("auto", "", None)
    name = (DEMO_ENCODER.backbone if demo and not weights else DEFAULT_BACKBONE) if auto else backbone
    cls = backbone_class(name)
    if not taps:
        taps = DEMO_ENCODER.taps if demo and name == DEMO_ENCODER.backbone else cls.DEFAULT_TAPS
    tap_list = parse_taps(taps, tap_weights)
    cls.check_taps([t.name for t in tap_list])
    observe = tuple(t for t in observe_taps if t not in [tap.name for tap in tap_list])
    if observe:
        cls.check_taps(observe)
    try:
        dev = resolve_device(device)
    except DeviceUnavailable as exc:
        raise EncoderError(f"encoder {exc}") from None
    size = parse_encode_size(encode_size, demo=demo, min_side=cls.min_size)  # cheap checks before the weights
    fitted = cls.fit_size(*size)
    if fitted != size:
        log.info("encoder: %s takes multiples of %d pixels: encoding at %dx%d instead of %dx%d",
                 name, cls.size_multiple, *fitted, *size)
    model = cls([t.name for t in tap_list] + list(observe))
    source, random_init = _load_weights(model, cls, weights, allow_download, demo)
    model.prepare_for_inference()
    # channels-last is 10-15 % faster for VGG's 3x3 convs on this CPU (oneDNN) and the usual choice on GPUs
    model = model.to(device=dev, memory_format=torch.channels_last)
    try:
        runner, runs_on = choose_runner(model, fitted, dev, runtime)
    except OrtUnavailable as exc:
        raise EncoderError(f"encoder runtime: {exc}") from None
    note = ""
    if auto and demo and random_init:
        note = (f"the demo's choice of network: {DEMO_ENCODER.why}; --encoder-backbone vgg16 for the paper's")
    return VisualEncoder(model, int(z_dim), tap_list, fitted, dev, source, is_demo=random_init, note=note,
                         observe=tuple(observe_taps), runner=runner, runs_on=runs_on)


def _load_weights(model: Backbone, cls: type[Backbone], weights: str | None, allow_download: bool,
                  demo: bool) -> tuple[str, bool]:
    """Fill ``model``: pretrained weights, or (demo only, no file named) the seeded random init.

    Returns (where the weights came from, whether it is the random init). In the demo an unusable cache or
    a failed download falls back to the random init with a warning: the demo must start. A file the user
    named is never replaced silently.
    """
    found = None
    try:
        found = find_weights(cls.weights_spec, weights, allow_download)
        model.load_weights(found.state, found.path)
        return found.describe(), False
    except EncoderError as exc:
        other = guess_backbone(found.state) if found is not None else None
        if other and other != cls.name:
            raise EncoderError(f"{exc}; these look like {other} weights: add --encoder-backbone {other}") from exc
        if not demo or weights:
            raise
        if found is None and not allow_download and not cached_files(cls.weights_spec):  # the usual first run
            log.info("encoder: no pretrained %s weights here (--encoder-weights FILE or --allow-download); the "
                     "demo runs its random-init encoder", cls.name)
        else:
            log.warning("encoder: %s -- using the random-init demo encoder instead (NOT pretrained)", exc)
    model.init_random(DEMO_SEED)
    return f"random init (seed {DEMO_SEED})", True


@dataclasses.dataclass
class _Settings:
    """One frame's live encoder settings, read once from the params snapshot."""

    layout: str
    grid: str
    smoothing: float
    filter: str
    euro_min_cutoff: float
    euro_beta: float
    standardize: str
    adapt_s: float
    mirror: bool
    hold: bool

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> _Settings:
        params = params or {}
        values = [params.get(name, PARAMS_BY_NAME[name].default) for name in _LIVE]
        return cls(*values)


class VisualEncoder:
    """Frame -> {"coarse", "middle", "fine"} fake latents.

    ``encode`` is called from one thread (the engine's encode thread); ``describe``/``stats`` from any.
    """

    def __init__(self, backbone: Backbone, z_dim: int, taps: tuple[Tap, ...], encode_size: tuple[int, int],
                 device: torch.device, weights_source: str, is_demo: bool, note: str = "",
                 observe: tuple[str, ...] = (), runner=None, runs_on: str = "torch"):
        self.backbone = backbone
        self.runner = backbone if runner is None else runner  # what runs its forward (torch, or ONNX Runtime)
        self.runs_on = runs_on
        self.note = note  # why this backbone, when the encoder chose it (the demo's)
        self.z_dim = z_dim
        self.taps = taps
        self.encode_size = encode_size
        self.device = device
        self.weights_source = weights_source
        self.is_demo = is_demo
        self._mean = torch.tensor(backbone.mean, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(backbone.std, device=device).view(1, 3, 1, 1)
        self._projections = {t.name: Projection(t.name, backbone.tap_channels(t.name), z_dim, device) for t in taps}
        self._layout: Layout = parse_layout("whole")
        self._layout_key = ("whole", "")
        self._layout_weights: dict[tuple[str, int, int], torch.Tensor] = {}  # (spec, h, w) -> (R, h*w)
        self._standardizer = RunningStandardizer()
        self._smoothers = {g: Smoother() for g in GROUPS}
        self._last: dict[str, torch.Tensor] | None = None
        # On CUDA the encoder queues its work on a stream of its own, so it overlaps the render thread's
        # synthesis instead of waiting for it; consumers on other streams mark what they read
        # (Tensor.record_stream, see bridge.latents) so the memory is not reused under them.
        self._stream = torch.cuda.Stream(device) if torch.device(device).type == "cuda" else None
        self._last_t: float | None = None
        self.observe = observe
        self._observers: list[Callable[[str, torch.Tensor], None]] = []
        self._stats: dict[str, Any] = {"frames": 0, "ms": 0.0, "ms_backbone": 0.0, "ms_avg": 0.0,
                                       "errors": 0, "last_error": "", "layout": "whole"}

    # -- the public surface ----------------------------------------------------------------------------
    def encode(self, rgb: np.ndarray, params: Mapping[str, Any] | None = None, t: float | None = None) -> dict[str, torch.Tensor]:
        """Fake latents for one (H, W, 3) uint8 RGB frame; ``t`` (seconds, default now) paces smoothing.

        Raises EncoderInputError for a frame it cannot take, leaving all state as it was.
        """
        settings = _Settings.from_params(params)
        if settings.hold and self._last is not None:
            return self._last
        t = time.monotonic() if t is None else float(t)
        start = time.perf_counter()
        # not inference_mode: its tensors could not be saved by a caller's autograd ops
        with torch.no_grad(), _on_stream(self._stream):
            x = self._prepare(rgb, settings.mirror)
            layout = self._current_layout(settings)
            backbone_start = time.perf_counter()
            features = self.runner(x)
            if self._stream is not None:  # waits for this encoder's own work only, never for queued synthesis
                self._stream.synchronize()
            backbone_ms = (time.perf_counter() - backbone_start) * 1000.0
            self._notify(features)
            z_raw = self._reduce(features, layout)
            if not torch.isfinite(z_raw).all():
                return self._fail("the backbone produced NaN/inf for this frame; kept the last latents")
            dt = 0.0 if self._last_t is None else t - self._last_t
            z = self._standardize(z_raw, settings, dt)
            out = self._per_group(z, layout, settings, dt)
            if self._stream is not None:  # complete before another thread's stream reads it
                self._stream.synchronize()
        self._last, self._last_t = out, t
        self._record(start, backbone_ms)
        return out

    def add_observer(self, fn: Callable[[str, torch.Tensor], None]) -> None:
        """``fn(tap, tensor)`` for every ``observe`` tap of every encoded frame (encode thread; keep it cheap)."""
        self._observers.append(fn)

    def _notify(self, features: dict[str, torch.Tensor]) -> None:
        for tap in self.observe:
            for fn in self._observers:
                try:
                    fn(tap, features[tap])
                except Exception as exc:  # noqa: BLE001 - an observer must not cost the frame its latents
                    self._stats["errors"] += 1
                    self._stats["last_error"] = f"observer of {tap}: {exc}"
                    if self._stats["errors"] <= 3:
                        log.warning("encoder: observer of %s failed: %s", tap, exc)

    def describe(self) -> str:
        taps = " + ".join(f"{t.name}x{t.weight:g}" for t in self.taps)
        size = f"{self.encode_size[0]}x{self.encode_size[1]}"
        name = self.backbone.name.upper()
        where = f"{self.device}" + ("" if self.runs_on == "torch" else f" ({self.runs_on})")
        if self.is_demo:
            return (f"random-init demo encoder ({name}, {self.weights_source}, NOT pretrained: z follows the scene "
                    f"but without learned semantics), taps {taps} -> z {self.z_dim}, encode {size}, {where}"
                    + (f" ({self.note})" if self.note else ""))
        return f"{name} encoder, taps {taps} -> z {self.z_dim}, encode {size}, {where}, weights: {self.weights_source}"

    def set_runtime_threads(self, threads: int) -> None:
        """ONNX Runtime's own thread pool, when it runs the backbone (the engine halves the CPU when encode and
        synthesis overlap; torch's threads are per calling thread and the engine sets those itself)."""
        set_threads = getattr(self.runner, "set_threads", None)
        if set_threads is not None:
            set_threads(threads)

    def stats(self) -> dict[str, Any]:
        return dict(self._stats, backbone=self.backbone.name, runtime=self.runs_on, demo=self.is_demo,
                    weights=self.weights_source,
                    device=str(self.device), encode_size=f"{self.encode_size[0]}x{self.encode_size[1]}",
                    taps=[t.name for t in self.taps])

    def reset(self) -> None:
        """Forget running statistics, smoothing state and held latents (e.g. after a scene cut)."""
        self._standardizer.reset()
        for smoother in self._smoothers.values():
            smoother.reset()
        self._last = self._last_t = None

    # -- steps -----------------------------------------------------------------------------------------
    def _prepare(self, rgb: np.ndarray, mirror: bool) -> torch.Tensor:
        """uint8 frame -> normalised (1, 3, H, W) float tensor at the encode size, on the device."""
        from bridge.imageops import fit

        rgb = _as_rgb(rgb)
        rgb = fit(rgb, self.encode_size, "crop")  # keep the aspect: crop to it, then resize
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1).unsqueeze(0)
        if mirror:
            x = torch.flip(x, dims=(3,))
        x = (x.float() / 255.0 - self._mean) / self._std
        return x.contiguous(memory_format=torch.channels_last)

    def _current_layout(self, settings: _Settings) -> Layout:
        """The layout asked for; a bad grid spec keeps the last good layout and is reported (once per spec)."""
        key = (settings.layout, settings.grid if settings.layout == "grid" else "")
        if key == self._layout_key:
            return self._layout
        try:
            layout = parse_layout(*key)
        except EncoderInputError as exc:
            if self._stats["last_error"] != str(exc):
                log.warning("encoder: %s; keeping layout %s", exc, self._layout.spec)
                self._stats["errors"] += 1
                self._stats["last_error"] = str(exc)
            return self._layout
        self._layout, self._layout_key = layout, key
        self._layout_weights.clear()  # only the current layout's weights are ever needed again
        self._standardizer.reset()  # regions changed: their running statistics start again
        self._stats["layout"] = layout.spec
        return layout

    def _reduce(self, features: dict[str, torch.Tensor], layout: Layout) -> torch.Tensor:
        """Eq. 2 per region: sum over taps of alpha * projection(region means) -> (R, z_dim)."""
        vectors = []
        for tap in self.taps:
            feature = features[tap.name]
            weights = self._weights_for(layout, feature)
            vectors.append(self._projections[tap.name](region_means(feature, weights)))
        return weighted_sum(vectors, [t.weight for t in self.taps])

    def _weights_for(self, layout: Layout, feature: torch.Tensor) -> torch.Tensor:
        h, w = (feature.shape[-2], feature.shape[-1]) if feature.ndim == 4 else (1, 1)
        key = (layout.spec, h, w)
        if key not in self._layout_weights:
            self._layout_weights[key] = layout.weights(h, w, self.device)
        return self._layout_weights[key]

    def _standardize(self, z_raw: torch.Tensor, settings: _Settings, dt: float) -> torch.Tensor:
        # the running statistics follow every frame, so switching to "running" live starts from good values
        running = self._standardizer.update(z_raw, dt, settings.adapt_s)
        if settings.standardize == "running":
            return running
        if settings.standardize == "vector":
            return standardize_vector(z_raw)
        return z_raw

    def _per_group(self, z: torch.Tensor, layout: Layout, settings: _Settings, dt: float) -> dict[str, torch.Tensor]:
        """Smooth per group (so a layout change glides instead of jumping).

        Groups that share a region and have come out equal share one tensor object, so a consumer can map
        each distinct z once (the engine does, by identity).
        """
        out: dict[str, torch.Tensor] = {}
        for group in GROUPS:
            value = z[layout.group_region[group]]
            smoother = self._smoothers[group]
            if settings.filter == "one_euro":
                value = smoother.one_euro(value, dt, settings.euro_min_cutoff, settings.euro_beta)
            else:
                value = smoother.ema(value, dt, settings.smoothing)
            value = value.to(torch.float32)
            same = [g for g in out if layout.group_region[g] == layout.group_region[group] and torch.equal(out[g], value)]
            out[group] = out[same[0]] if same else value
        return out

    def _fail(self, message: str) -> dict[str, torch.Tensor]:
        self._stats["errors"] += 1
        self._stats["last_error"] = message
        log.warning("encoder: %s", message)
        if self._last is None:
            self._last = {g: torch.zeros(self.z_dim, device=self.device) for g in GROUPS}
        return self._last

    def _record(self, start: float, backbone_ms: float) -> None:
        ms = (time.perf_counter() - start) * 1000.0
        stats = self._stats
        stats["frames"] += 1
        stats["ms"], stats["ms_backbone"] = round(ms, 2), round(backbone_ms, 2)
        stats["ms_avg"] = round(ms if stats["frames"] == 1 else 0.9 * stats["ms_avg"] + 0.1 * ms, 2)


def _on_stream(stream):
    """torch.cuda.stream(stream), or nothing where there is no stream (CPU, MPS)."""
    return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()


def _as_rgb(rgb: Any) -> np.ndarray:
    """Accept (H, W, 3) uint8 RGB, and also grey (H, W) / (H, W, 1) and RGBA (H, W, 4); refuse anything else."""
    if not isinstance(rgb, np.ndarray):
        raise EncoderInputError(f"encoder input must be a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise EncoderInputError(f"encoder input must be uint8 RGB, got dtype {rgb.dtype}")
    if rgb.ndim == 2:
        rgb = rgb[:, :, None]
    if rgb.ndim != 3 or rgb.shape[2] not in (1, 3, 4) or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise EncoderInputError(f"encoder input must be (H, W, 3) RGB, got shape {rgb.shape}")
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    elif rgb.shape[2] == 4:
        rgb = rgb[:, :, :3]
    return np.ascontiguousarray(rgb)
