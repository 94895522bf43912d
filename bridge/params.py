"""The one table of every parameter the engine exposes, and the store that holds their live values.

Everything that names, validates, documents or transmits a parameter reads this table: OSC addresses and
OSCQuery (``bridge.osc``), the osc_maps validator, the show file and CLI (``bridge.config``), the
TouchDesigner component, ``vrbridge params --json|--markdown`` and telemetry echo. Add a parameter here and
all of them pick it up; never keep a second list elsewhere.

Conventions
-----------
* ``name`` is dotted (``mix.coarse``); the OSC address is ``/vrb/`` + name with dots as slashes.
* ``kind`` is one of ``float``, ``int``, ``bool``, ``enum``, ``str``, ``int2`` (an [start, end) pair, two
  ints on the wire), ``list`` (of strings; start-up settings only) and ``action`` (a trigger with an
  optional string argument: it has no stored value).
* ``live=False`` marks a start-up setting (show file / CLI only): it is validated here but not settable
  over OSC while running.
* ``out_of_range`` says what a value outside [min, max] does: ``clamp`` (set the nearest bound and report
  it) or ``reject`` (change nothing and report it).
"""
from __future__ import annotations

import dataclasses
import math
import re
import threading
import time
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from bridge.text import brief

OSC_ROOT = "/vrb"

MAX_LIVE_TEXT = 256  # characters of a live text value (telemetry echoes it inside a 1472-byte datagram)
MAX_TEXT = 4096  # characters of a start-up text value (a path, a grid spec)

KINDS = ("float", "int", "bool", "enum", "str", "int2", "list", "action")
# The compile row's choices (bridge.device.plan_run decides what auto means on a device).
COMPILE_MODES = ("auto", "background", "cudagraph", "startup", "off")


class ParamError(ValueError):
    """A value that cannot be applied. ``code`` is a short stable word for counters and OSC error replies."""

    code = "invalid"

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.detail = message


class UnknownParam(ParamError):
    code = "unknown"


class WrongType(ParamError):
    code = "type"


class OutOfRange(ParamError):
    code = "range"


class NotLive(ParamError):
    code = "not_live"


@dataclasses.dataclass(frozen=True)
class Param:
    """One controllable parameter: everything any interface needs to know about it."""

    name: str
    kind: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    out_of_range: str = "clamp"
    smoothing_s: float = 0.0
    group: str = "engine"
    live: bool = True
    telemetry: bool = True
    check: Callable[[Any], None] | None = None  # extra test of a coerced value (raises ParamError)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"param {self.name}: unknown kind {self.kind!r}")
        if self.kind == "enum" and self.default not in self.choices:
            raise ValueError(f"param {self.name}: default {self.default!r} not in {self.choices}")
        if self.out_of_range not in ("clamp", "reject"):
            raise ValueError(f"param {self.name}: out_of_range must be clamp or reject")

    @property
    def osc_address(self) -> str:
        return OSC_ROOT + "/" + self.name.replace(".", "/")

    @property
    def osc_typetags(self) -> str:
        """OSC type tag string of the value (OSCQuery TYPE); actions take an optional string."""
        return {"float": "f", "int": "i", "bool": "T", "enum": "s", "str": "s", "int2": "ii", "list": "s", "action": "s"}[
            self.kind
        ]

    def coerce(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type and range, or raise a specific ParamError.

        Coercion is only done where it is unambiguous: an int for a float, 0/1 or 0.0/1.0 for a bool,
        an integral float for an int, the name of a choice for an enum (case-insensitive). A bool is not a
        number (``F`` sent to a float is refused, not taken as 0.0), and text is bounded
        (:data:`MAX_LIVE_TEXT` characters for a live value, which telemetry echoes; :data:`MAX_TEXT` else).
        """
        value = self._coerce(value)
        if self.check is not None:
            self.check(value)
        return value

    def _coerce(self, value: Any) -> Any:
        kind = self.kind
        if kind == "float":
            return self._ranged(_as_float(self.name, value))
        if kind == "int":
            return int(self._ranged(_as_int(self.name, value)))
        if kind == "bool":
            return _as_bool(self.name, value)
        if kind == "enum":
            text = _as_str(self.name, value)
            for choice in self.choices:
                if choice.lower() == text.lower():
                    return choice
            raise OutOfRange(self.name, f"{brief(text)} is not one of {', '.join(self.choices)}")
        if kind in ("str", "action"):
            if value is None and kind == "action":
                return ""
            text = _as_str(self.name, value)
            limit = MAX_LIVE_TEXT if self.live else MAX_TEXT
            if len(text) > limit:
                raise OutOfRange(self.name, f"text of {len(text):,} characters (at most {limit})")
            return text
        if kind == "list":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise WrongType(self.name, f"expects a list of strings, got {brief(value)}")
            return tuple(_as_str(self.name, item) for item in items)
        if kind == "int2":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise WrongType(self.name, f"expects two ints [start, end), got {brief(value)}")
            start, end = (int(self._ranged(_as_int(self.name, v))) for v in value)
            return (start, end)
        raise AssertionError(kind)

    def _ranged(self, number: float) -> float:
        low = -math.inf if self.min is None else self.min
        high = math.inf if self.max is None else self.max
        if low <= number <= high:
            return number
        if self.out_of_range == "reject":
            raise OutOfRange(self.name, f"{number} is outside [{self.min}, {self.max}]")
        return min(max(number, low), high)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able description (``vrbridge params --json``, the TouchDesigner component, docs)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "check"}
        out["choices"] = list(self.choices)
        out["osc_address"] = self.osc_address
        out["osc_typetags"] = self.osc_typetags
        if isinstance(self.default, tuple):  # int2 and list defaults
            out["default"] = list(self.default)
        return out


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise WrongType(name, f"expects a number, got the bool {value} (a bool is not a number)")
    if isinstance(value, (int, float)):
        if not math.isfinite(float(value)):
            raise WrongType(name, f"{value!r} is not a finite number")
        return float(value)
    raise WrongType(name, f"expects a number, got {_what(value)}")


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise WrongType(name, f"expects an integer, got the bool {value} (a bool is not a number)")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise WrongType(name, f"expects an integer, got {_what(value)}")


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "on", "off"):
        return value.lower() in ("true", "on")
    raise WrongType(name, f"expects a bool (T/F, 0/1, true/false, on/off), got {_what(value)}")


def _as_str(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise WrongType(name, f"expects a string, got {_what(value)}")


def _what(value: Any) -> str:
    """'str 'abc'', 'timetag 12345': the type and (shortened) value of something refused."""
    kind = type(value).__name__
    if kind in ("Timetag", "Char"):  # OSC wire types (bridge.osc.codec): their str says what they are
        return str(value)
    return f"{kind} {brief(value)}"


# Fixed slot counts and choices of the generator levers (bridge/directions, bridge/bending read them here).
DIRECTION_SLOTS = 8
BEND_SLOTS = 4
BEND_KINDS = ("rotate", "scale", "translate_x", "translate_y", "flip_x", "flip_y", "dilate", "erode", "invert",
              "threshold", "ablate")
BEND_MASKS = ("all", "left", "right", "top", "bottom", "circle", "outside_circle")


def _direction_rows() -> list[Param]:
    """dir.<i>.amount / .component / .layers for each direction slot."""
    rows = []
    for i in range(DIRECTION_SLOTS):
        rows += [
            Param(f"dir.{i}.amount", "float", 0.0,
                  f"Slot {i}: move w along its direction by this much (PCA: standard deviations of that component; "
                  "SeFa or a file: w units); 0 = off.", min=-20.0, max=20.0, smoothing_s=0.05, group="directions"),
            Param(f"dir.{i}.component", "int", i, f"Slot {i}: which direction (row of the directions source).",
                  min=0, max=4095, group="directions"),
            Param(f"dir.{i}.layers", "int2", (-1, -1),
                  f"Slot {i}: style layers [start, end) it edits; -1 -1 = all.", min=-1, max=64,
                  out_of_range="reject", group="directions"),
        ]
    return rows


def _bend_rows() -> list[Param]:
    """bend.<i>.enable / amount / kind / layer / channels / mask for each bend slot."""
    rows = []
    for i in range(BEND_SLOTS):
        rows += [
            Param(f"bend.{i}.enable", "bool", False, f"Bend {i}: on/off.", group="bending"),
            Param(f"bend.{i}.amount", "float", 0.0,
                  f"Bend {i}: strength -1..1 (rotate: x180 degrees, scale: zoom 2**amount, translate: fraction "
                  "of the size, others: blend); 0 = no change.", min=-1.0, max=1.0, smoothing_s=0.05,
                  group="bending"),
            Param(f"bend.{i}.kind", "enum", "rotate", f"Bend {i}: the transform.", choices=BEND_KINDS,
                  group="bending"),
            Param(f"bend.{i}.layer", "str", "",
                  f"Bend {i}: after which synthesis layer (StyleGAN2 b4..b1024, StyleGAN3 input or L5_84_1024 / "
                  "L5); empty = off.", group="bending"),
            Param(f"bend.{i}.channels", "str", "",
                  f"Bend {i}: channels to bend: all (empty), a list like 0-15,32, or random:0.5.", group="bending"),
            Param(f"bend.{i}.mask", "enum", "all", f"Bend {i}: region to bend.", choices=BEND_MASKS,
                  group="bending"),
        ]
    return rows


# --------------------------------------------------------------------------------------------------
# The table. Sections are grouped by the stage that reads them; keep each section's rows together.
# --------------------------------------------------------------------------------------------------
_P = Param

PARAMS: tuple[Param, ...] = (
    # ---- synthesis (the paper's Test 1) -----------------------------------------------------------
    _P("psi", "float", 0.7, "Truncation psi: 0 pulls every image to the average, 1 is untruncated, >1 exaggerates.",
       min=-1.0, max=2.0, smoothing_s=0.05, group="synthesis"),
    _P("trunc_cutoff", "int", 0, "Truncate only the first N style layers (0 = every layer).",
       min=0, max=64, group="synthesis"),
    _P("seed", "int", 0, "Seed of the static latent the camera latent is style-mixed with.",
       min=0, max=2**31 - 1, out_of_range="reject", group="synthesis"),
    _P("mix.coarse", "int2", (-1, -1),
       "Style layers [start, end) driven by the coarse camera latent; -1 -1 = default split, 0 0 = off (seed).",
       min=-1, max=64, out_of_range="reject", group="synthesis"),
    _P("mix.middle", "int2", (-1, -1),
       "Style layers [start, end) driven by the middle camera latent; -1 -1 = default split, 0 0 = off.",
       min=-1, max=64, out_of_range="reject", group="synthesis"),
    _P("mix.fine", "int2", (-1, -1),
       "Style layers [start, end) driven by the fine camera latent; -1 -1 = default split, 0 0 = off.",
       min=-1, max=64, out_of_range="reject", group="synthesis"),
    _P("mix.amount", "float", 1.0, "Blend of camera w over the static w inside the mixed layers (0 = seed only).",
       min=0.0, max=1.0, smoothing_s=0.05, group="synthesis"),
    _P("noise_mode", "enum", "const", "Per-pixel noise: const (stable), random (shimmer) or none.",
       choices=("const", "random", "none"), group="synthesis"),
    _P("freeze", "bool", False, "Hold the last rendered frame (sinks keep publishing it).", group="output"),
    _P("blackout", "bool", False, "Publish black frames (the output stays alive).", group="output"),
    # ---- latent directions (bridge/directions): summed onto the mixed w before truncation -------------
    *_direction_rows(),
    _P("directions", "str", "pca:16",
       "Latent directions the dir.* slots use: pca:K (GANSpace PCA of sampled w, cached per model), sefa:K "
       "(SeFa factorisation of the style weights), a .npy file of shape (K, w_dim) or (w_dim,), or off. "
       "PCA is computed the first time a dir.*.amount moves (seconds; off the render thread).",
       group="startup", live=False, telemetry=False),
    _P("directions_samples", "int", 10000, "Number of sampled z the PCA directions are computed from.",
       min=100, max=1_000_000, out_of_range="reject", group="startup", live=False, telemetry=False),
    _P("directions_cache", "str", "",
       "Folder of the PCA cache; empty = $XDG_CACHE_HOME/vrbridge/directions (~/.cache/vrbridge/directions).",
       group="startup", live=False, telemetry=False),
    # ---- network bending (bridge/bending.py): transforms after a chosen synthesis layer ------------
    *_bend_rows(),
    # ---- model mixing (bridge/model_mix.py) and classes (bridge/classes.py) -----------------------
    _P("model.mix", "float", 0.0,
       "Blend every weight of the network toward network_b: 0 = the network, 1 = network_b (bit for bit).",
       min=0.0, max=1.0, smoothing_s=0.1, group="model"),
    _P("model.swap", "int2", (0, 0),
       "Style layers [start, end) whose synthesis weights come wholly from network_b (layer swapping, e.g. "
       "fine layers from B); 0 0 = none.", min=0, max=64, out_of_range="reject", group="model"),
    _P("network_b", "str", "",
       "Second network (a file or a model-library name, as for network) of the same architecture and size for "
       "model.mix / model.swap (empty = none).",
       group="startup", live=False, telemetry=False),
    _P("class.a", "int", 0, "Class of a conditional model (one-hot c, NVIDIA's convention); beyond the model's "
       "classes it is clipped to the last one.", min=0, max=1_000_000, group="classes"),
    _P("class.b", "int", 0, "Second class, blended in by class.blend.", min=0, max=1_000_000, group="classes"),
    _P("class.blend", "float", 0.0, "Blend from class.a to class.b: c = (1 - blend) * onehot(a) + blend * onehot(b).",
       min=0.0, max=1.0, smoothing_s=0.1, group="classes"),
    _P("class.source", "enum", "manual",
       "Where c comes from: manual (class.a/b/blend) or camera (what VGG16 sees, through class_map; needs "
       "classify).", choices=("manual", "camera"), group="classes"),
    _P("classify", "bool", False,
       "Run the VGG16 encoder up to fc3 and publish the top ImageNet classes as scene.class.* signals.",
       group="startup", live=False, telemetry=False),
    _P("class_map", "list", (),
       "ImageNet class -> model class, each IMAGENET:MODEL (an id 0..999 or a name, e.g. 207:3 or tabby:1), "
       "for class.source camera.", group="startup", live=False, telemetry=False),
    # ---- encoder (camera -> fake latents) ---------------------------------------------------------
    _P("encoder.layout", "enum", "whole",
       "Which frame region drives which layer group: whole frame; paper (top half coarse, bottom-left middle, "
       "bottom-right fine); columns or rows (thirds: coarse, middle, fine); grid (see encoder.grid).",
       choices=("whole", "paper", "columns", "rows", "grid"), group="encoder"),
    _P("encoder.grid", "str", "2x2:ccmf",
       "Grid used when encoder.layout is grid: COLUMNSxROWS[:CELLS], one letter per cell in reading order "
       "(c coarse, m middle, f fine, . unused); without CELLS the cells split into three equal runs. "
       "A bad spec is reported and the last good layout kept.", group="encoder"),
    _P("encoder.smoothing", "float", 0.0,
       "EMA filter: weight of the old z per frame at 30 fps, frame-rate independent (0 = none, 0.9 ~ 0.3 s, 0.99 ~ 3 s).",
       min=0.0, max=0.999, group="encoder"),
    _P("encoder.filter", "enum", "ema",
       "Smoothing filter of z: ema (encoder.smoothing) or one_euro (encoder.euro.*: steady when still, quick when moving).",
       choices=("ema", "one_euro"), group="encoder"),
    _P("encoder.euro.min_cutoff", "float", 1.0, "One-Euro minimum cutoff of z: lower = steadier when the scene is still.",
       min=0.01, max=30.0, unit="Hz", group="encoder"),
    _P("encoder.euro.beta", "float", 0.5, "One-Euro speed coefficient of z (per unit/s of change): higher = less lag in motion.",
       min=0.0, max=10.0, group="encoder"),
    _P("encoder.standardize", "enum", "vector",
       "Standardise z to N(0, I): none, per vector (stable), or per dimension with running statistics (what changes "
       "moves z; a static scene sits at z ~ 0, whose direction StyleGAN's z normalisation turns into noise).",
       choices=("none", "vector", "running"), group="encoder"),
    _P("encoder.adapt_s", "float", 10.0,
       "Time constant of the running standardisation: after a change, z drifts back to the centre over about this long.",
       min=0.1, max=3600.0, unit="s", group="encoder"),
    _P("encoder.mirror", "bool", False, "Mirror the frame left-right before encoding (selfie cameras).",
       group="encoder"),
    _P("latent.hold", "bool", False, "Stop following the camera: keep the current latents.", group="encoder"),
    # start-up settings of the encoder (kept with their section; live=False)
    _P("encoder_backbone", "enum", "auto",
       "Frozen network of the visual encoder: vgg16 (the paper's), mobilenet_v3_large, efficientnet_b0 "
       "(torchvision's ImageNet weights) or dinov2_vits14 (Meta's self-supervised ViT-S/14); auto = vgg16, "
       "or, in the embedded demo without --encoder-weights, the demo encoder's network (its start-up line says which).",
       choices=("auto", "vgg16", "mobilenet_v3_large", "efficientnet_b0", "dinov2_vits14"),
       group="startup", live=False, telemetry=False),
    _P("encoder_weights", "str", "",
       "Encoder weights file (torchvision's vgg16-397923af.pth, mobilenet_v3_large-5c1a4163.pth, "
       "efficientnet_b0_rwightman-7f5810bc.pth, Meta's dinov2_vits14_pretrain.pth, or .safetensors); "
       "empty = torch's hub cache.",
       group="startup", live=False, telemetry=False),
    _P("allow_download", "bool", False,
       "Allow fetching the encoder weights (VGG16 528 MB, the others 21-85 MB; torchvision's hash-checked) "
       "into torch's hub cache when none are found, Google's official pose/face bundles "
       "(pose_model / face_model 'official', sha256-pinned), and a --network library model not yet cached.",
       group="startup", live=False, telemetry=False),
    _P("encoder_taps", "list", (),
       "Encoder taps, each TAP or TAP:WEIGHT (Eq. 2); empty = the backbone's default (marked *). "
       "vgg16: conv4_1*, convB_L (after ReLU), convB_L_pre, poolN, avgpool, fc1, fc2, fc3; "
       "mobilenet_v3_large: block0-block16 (block12* ends the stride-16 stage), fc1, logits; "
       "efficientnet_b0: stage0-stage8 (stage5*), logits; "
       "dinov2_vits14: patch1-patch12 (patch tokens of block N on the 14 px grid; patch12*), cls1-cls12.",
       group="startup", live=False, telemetry=False),
    _P("encoder_size", "str", "",
       "Encode resolution WxH the frame is cropped to the aspect of and resized to; empty = 426x320 "
       "(the paper's 4:3), or the demo encoder's size in the embedded demo (interactive on a small CPU). "
       "dinov2_vits14 rounds each side down to a multiple of 14.",
       group="startup", live=False, telemetry=False),
    _P("encoder_runtime", "enum", "auto",
       "What runs the encoder backbone's forward: torch, or onnxruntime (CPU only: exported once into the cache "
       "and checked against torch; 2-2.6x faster for the depthwise networks here); auto = onnxruntime for "
       "efficientnet_b0 and mobilenet_v3_large on the CPU when it is installed, else torch.",
       choices=("auto", "torch", "onnxruntime"), group="startup", live=False, telemetry=False),
    # ---- hands / manipulations -------------------------------------------------------------------
    # "left"/"right" are the performer's own hands; see bridge/tracking/__init__.py for the conventions.
    _P("hand.lock.mode", "enum", "first",
       "How the active hand is chosen when none is locked: first seen, by handedness (hand.lock.prefer), "
       "or nearest to where the last one was.", choices=("first", "handedness", "nearest"), group="hands"),
    _P("hand.lock.prefer", "enum", "right", "Preferred hand (performer's own) when hand.lock.mode is handedness.",
       choices=("right", "left"), group="hands"),
    _P("hand.lock.timeout_s", "float", 0.6, "Keep the lock this long after the active hand is lost before another may take over.",
       min=0.0, max=30.0, unit="s", group="hands"),
    _P("hand.lock.radius", "float", 0.25,
       "How far (fraction of frame height) the locked hand may move between sightings and still be the same hand.",
       min=0.01, max=2.0, group="hands"),
    _P("hand.min_score", "float", 0.5, "Ignore hands MediaPipe is less sure of than this.",
       min=0.0, max=1.0, group="hands"),
    _P("hand.mirror", "bool", False,
       "Compute hand features on the mirrored picture (x and angle flip), as a performer watching the output expects.",
       group="hands"),
    _P("hand.input_mirrored", "bool", False,
       "The camera picture is already mirrored (selfie view): swap MediaPipe's handedness so labels stay anatomical.",
       group="hands"),
    _P("hand.osc_y_up", "bool", False, "OSC keypoint input has y pointing up (0 = bottom), as in TouchDesigner.",
       group="hands"),
    _P("hand.smooth.min_cutoff", "float", 1.0, "One-Euro minimum cutoff of the hand features: lower = steadier when still.",
       min=0.01, max=30.0, unit="Hz", group="hands"),
    _P("hand.smooth.beta", "float", 0.5, "One-Euro speed coefficient: higher = less lag when the hand moves fast.",
       min=0.0, max=50.0, group="hands"),
    _P("hand.ease_s", "float", 0.5, "Time for the manipulations to ease in when a hand appears and back to neutral when it is lost.",
       min=0.0, max=30.0, unit="s", group="hands"),
    _P("hand.const.enable", "bool", True,
       "StyleGAN2: the default hand routes corrupt the learned constant (const.corrupt) by hand distance.",
       group="hands"),
    _P("hand.const.amount", "float", 1.0,
       "Corruption strength at full response of the default hand route (const.corrupt = curve(distance) * amount).",
       min=0.0, max=1.0, smoothing_s=0.05, group="hands"),
    _P("hand.const.curve", "enum", "linear", "Response curve from hand distance (0 centre .. 1 corner) to corruption.",
       choices=("linear", "smooth", "ease_in", "ease_out", "inverse"), group="hands"),
    _P("hand.const.mode", "enum", "blend",
       "Corruption: blend (1-a)*const + a*noise, additive const + a*noise, or shuffle (blend toward shuffled channels).",
       choices=("blend", "additive", "shuffle"), group="hands"),
    _P("hand.const.period_s", "float", 20.0, "Loop time of the slowly moving random constant.",
       min=0.5, max=3600.0, unit="s", group="hands"),
    _P("hand.const.seed", "int", 0, "Seed of the random constant and of the channel shuffle.",
       min=0, max=2**31 - 1, out_of_range="reject", group="hands"),
    _P("hand.transform.enable", "bool", True,
       "StyleGAN3: the default hand routes rotate/translate/zoom the input (sg3.*) by the hand.", group="hands"),
    _P("hand.transform.rotate", "float", 1.0, "Image rotation per degree of hand angle (negative turns the other way).",
       min=-4.0, max=4.0, smoothing_s=0.05, group="hands"),
    _P("hand.transform.translate", "float", 0.5, "Translation per unit of hand offset from the frame centre.",
       min=-4.0, max=4.0, smoothing_s=0.05, group="hands"),
    _P("hand.transform.scale", "float", 0.5,
       "Zoom exponent on hand size: zoom = (area / area_ref) ** (scale / 2); 0 = no zoom.",
       min=-4.0, max=4.0, smoothing_s=0.05, group="hands"),
    _P("hand.transform.area_ref", "float", 0.03, "Palm area (fraction of the frame) that means zoom 1.",
       min=0.001, max=1.0, group="hands"),
    # ---- levers on the network's own tensors (bridge/manipulate; routes drive them) -------------------
    _P("const.corrupt", "float", 0.0,
       "StyleGAN2: how far the learned constant is blended toward a moving random one (0 = the network's own). "
       "With hands on, the default routes set it from the hand's distance to the centre (the paper's Test 2).",
       min=0.0, max=1.0, group="levers"),
    _P("sg3.rotate", "float", 0.0, "StyleGAN3: rotate the picture through its input transform (clockwise on screen).",
       min=-720.0, max=720.0, unit="deg", group="levers"),
    _P("sg3.translate.x", "float", 0.0, "StyleGAN3: move the picture right (input units, about one image width each).",
       min=-4.0, max=4.0, group="levers"),
    _P("sg3.translate.y", "float", 0.0, "StyleGAN3: move the picture down (input units, about one image width each).",
       min=-4.0, max=4.0, group="levers"),
    _P("sg3.zoom", "float", 0.0, "StyleGAN3: zoom in octaves (1 = twice as big, -1 = half).",
       min=-2.0, max=2.0, unit="oct", group="levers"),
    # start-up settings of the hands stage (kept with their section; live=False)
    _P("hands", "enum", "off",
       "Hand keypoints: off, mediapipe (tracked here from the source frames) or osc (received on /vrb/in/...).",
       choices=("off", "mediapipe", "osc"), group="startup", live=False, telemetry=False),
    _P("track", "list", (),
       "Trackers and analysers to start, any of: hands (MediaPipe; same as hands = mediapipe), pose (body.*), "
       "face (face.*), scene (optical flow, light, colour: scene.*), depth (Depth-Anything-V2-Small: "
       "scene.depth.*). Each publishes "
       "signals that routes read (see `vrbridge signals`).", group="startup", live=False, telemetry=False),
    _P("default_routes", "bool", True,
       "Install the paper's default routes for the inputs started (e.g. hand distance -> const.corrupt); "
       "off = only the routes the show file and OSC give.", group="startup", live=False, telemetry=False),
    _P("hand_model", "str", "", "Hand landmarker .task bundle; empty = the one shipped with the package.",
       group="startup", live=False, telemetry=False),
    _P("hand_max", "int", 2, "Most hands MediaPipe tracks at once (the lock picks one of them).",
       min=1, max=4, group="startup", live=False, telemetry=False),
    # ---- body and face (bridge/tracking/body.py, face.py) ------------------------------------------
    _P("performer.lock.mode", "enum", "first",
       "How the active performer (body and face) is chosen when none is locked: first (most confident in view), "
       "largest in frame, nearest to where the last one was, or most central. A locked performer is kept while "
       "in view, whoever else appears.", choices=("first", "largest", "nearest", "central"), group="performer"),
    _P("performer.lock.hold_s", "float", 1.0,
       "Keep the lock this long after the performer is lost before someone else may take over.",
       min=0.0, max=30.0, unit="s", group="performer"),
    _P("performer.lock.radius", "float", 0.3,
       "How far (fraction of frame height) the performer may move between sightings and still be the same person.",
       min=0.02, max=2.0, group="performer"),
    _P("pose.min_visibility", "float", 0.5, "Body keypoints MediaPipe rates less visible than this are left out.",
       min=0.0, max=1.0, group="performer"),
    _P("pose.mirror", "bool", False,
       "Compute body signals and /vrb/p1 x on the mirrored picture (x and lean flip), like hand.mirror.",
       group="performer"),
    _P("pose.smooth.min_cutoff", "float", 1.0, "One-Euro minimum cutoff of the body signals: lower = steadier when still.",
       min=0.01, max=30.0, unit="Hz", group="performer"),
    _P("pose.smooth.beta", "float", 0.5, "One-Euro speed coefficient of the body signals: higher = less lag in motion.",
       min=0.0, max=50.0, group="performer"),
    _P("pose.energy.full", "float", 1.0,
       "Mean keypoint speed (frame heights per second) at which body.energy reads 1.",
       min=0.05, max=20.0, group="performer"),
    _P("face.mirror", "bool", False,
       "Compute face signals and /vrb/f1 x on the mirrored picture (yaw and roll flip, left and right eyes swap).",
       group="performer"),
    _P("face.smooth.min_cutoff", "float", 1.0, "One-Euro minimum cutoff of the face signals: lower = steadier when still.",
       min=0.01, max=30.0, unit="Hz", group="performer"),
    _P("face.smooth.beta", "float", 0.5, "One-Euro speed coefficient of the face signals: higher = less lag in motion.",
       min=0.0, max=50.0, group="performer"),
    _P("face.calibrate_s", "float", 1.0,
       "Neutral-face calibration when the first face is seen, this long (0 = none: a built-in average face).",
       min=0.0, max=30.0, unit="s", group="performer"),
    _P("face.calibrate", "action", "",
       "Measure the performer's neutral face now (relaxed, facing the camera), over face.calibrate_s seconds or "
       "the seconds given as the argument.", group="performer", telemetry=False),
    # start-up settings of body and face tracking (kept with their section; live=False)
    _P("pose_model", "str", "",
       "Pose landmarker .task bundle; empty = the one shipped with the package; 'official' = Google's "
       "pose_landmarker_full.task from the model cache (fetched, sha256-checked, only with --allow-download).",
       group="startup", live=False, telemetry=False),
    _P("face_model", "str", "",
       "Face landmarker .task bundle; empty = the one shipped (no blendshapes: gestures from landmarks); "
       "'official' = Google's face_landmarker.task with blendshapes (model cache; --allow-download fetches it).",
       group="startup", live=False, telemetry=False),
    _P("performer_input", "enum", "mediapipe",
       "Where pose and face keypoints come from: tracked here from the source frames (mediapipe) or sent by the "
       "rig over OSC (osc: /vrb/in/pN/..., /vrb/in/fN/..., TouchDesigner's pN:landmark:axis channels).",
       choices=("mediapipe", "osc"), group="startup", live=False, telemetry=False),
    _P("pose_max", "int", 2, "Most people MediaPipe tracks at once (the performer lock picks one of them).",
       min=1, max=6, group="startup", live=False, telemetry=False),
    _P("pose_hz", "float", 15.0,
       "Most pose trackings per second (the tracker's own thread; fewer leave more of a small machine to "
       "rendering; 0 = every camera frame). Signals are smoothed in time, so they stay continuous.",
       min=0.0, max=240.0, unit="Hz", group="startup", live=False, telemetry=False),
    _P("face_hz", "float", 15.0, "Most face trackings per second (as pose_hz).",
       min=0.0, max=240.0, unit="Hz", group="startup", live=False, telemetry=False),
    _P("face_max", "int", 1, "Most faces MediaPipe tracks at once (the performer lock picks one of them).",
       min=1, max=4, group="startup", live=False, telemetry=False),
    # ---- scene and sound analysers (bridge/scene, bridge/audio): signals scene.*, audio.* -----------
    _P("scene.motion.full", "float", 0.25,
       "Mean optical-flow speed (frame widths per second) that reads as scene.motion.energy 1.",
       min=0.01, max=10.0, unit="widths/s", group="scene"),
    _P("scene.depth.near_threshold", "float", 0.6,
       "Nearness (0 farthest .. 1 nearest in the frame) above which a pixel counts for scene.depth.near.",
       min=0.0, max=1.0, group="scene"),
    _P("audio.gain.freeze", "bool", False,
       "Freeze the automatic gain of the audio.* signals where it is (stop adapting to the room).", group="audio"),
    _P("audio.gain.release_s", "float", 10.0,
       "How fast the automatic gain recovers after a loud passage (time constant of its peak follower).",
       min=0.5, max=600.0, unit="s", group="audio"),
    _P("audio.onset.threshold", "float", 6.0,
       "Onset sensitivity: flux must exceed its recent median by this many median deviations (lower = more onsets).",
       min=1.0, max=50.0, group="audio"),
    _P("audio.onset.decay_s", "float", 0.15, "Decay time of the audio.onset and audio.beat pulses.",
       min=0.01, max=5.0, unit="s", group="audio"),
    # start-up settings of the analysers (kept with their section; live=False)
    _P("scene_size", "str", "160x120", "Size WxH the frame is scaled to for optical flow and colour (--track scene).",
       group="startup", live=False, telemetry=False),
    _P("scene_hz", "float", 30.0, "Most scene analyses per second (--track scene).",
       min=1.0, max=240.0, out_of_range="reject", unit="Hz", group="startup", live=False, telemetry=False),
    _P("depth_weights", "str", "",
       "Depth-Anything-V2-Small weights (depth_anything_v2_vits.pth or .safetensors); empty = torch's hub cache.",
       group="startup", live=False, telemetry=False),
    _P("depth_size", "int", 252,
       "Shorter side (px, rounded to a multiple of 14) the frame is resized to for the depth network; "
       "518 is the authors' (slow on a CPU).", min=56, max=1036, out_of_range="reject",
       unit="px", group="startup", live=False, telemetry=False),
    _P("depth_hz", "float", 10.0, "Most depth analyses per second (--track depth).",
       min=0.1, max=120.0, out_of_range="reject", unit="Hz", group="startup", live=False, telemetry=False),
    _P("depth_demo", "bool", False,
       "Use a random-init depth network when no depth weights are found (the depth signals then mean nothing).",
       group="startup", live=False, telemetry=False),
    _P("audio", "str", "",
       "Audio input: a device NAME (part of it) or INDEX (vrbridge devices), or file:PATH looped in real time; "
       "empty = off.", group="startup", live=False, telemetry=False),
    _P("audio_tempo", "bool", False,
       "Let the audio's tempo and beat tracking drive bpm and the beat phase (the LFO locks to the music).",
       group="startup", live=False, telemetry=False),
    # ---- OSC / telemetry / presets ---------------------------------------------------------------
    _P("telemetry.rate_hz", "float", 0.0, "Telemetry bundles per second (0 = one per rendered frame).",
       min=0.0, max=240.0, group="telemetry"),
    _P("telemetry.z_dims", "int", 8, "How many leading dimensions of each z are sent in telemetry.",
       min=0, max=64, group="telemetry"),
    _P("preset.save", "action", "", "Save every live parameter under this preset name (in the presets file).",
       group="presets", telemetry=False),
    _P("preset.recall", "action", "",
       "Recall the named preset over preset.fade seconds: numbers glide, other values switch at the end.",
       group="presets", telemetry=False),
    _P("preset.delete", "action", "", "Delete the named preset from the presets file.",
       group="presets", telemetry=False),
    _P("preset.list", "action", "", "Send the preset names to the telemetry targets on /vrb/preset/names.",
       group="presets", telemetry=False),
    _P("preset.fade", "float", 0.0, "Crossfade time of preset.recall (0 = cut).",
       min=0.0, max=600.0, unit="s", group="presets"),
    # ---- routes (bridge/routes.py): signal -> parameter connections, edited live -------------------
    _P("route.add", "action", "",
       "Add a route, or replace the one with the same id: 'FROM TO key=value ...' (e.g. 'hand.x psi range=0.2,1.2') "
       "or a JSON object with the show file's [[route]] keys.", group="routes", telemetry=False),
    _P("route.remove", "action", "", "Remove the route with this id (FROM->TO unless it was given an id).",
       group="routes", telemetry=False),
    _P("route.clear", "action", "", "Remove every route (the default hand routes too).", group="routes",
       telemetry=False),
    _P("route.list", "action", "", "Send every route, one line each, to the telemetry targets on /vrb/route/list.",
       group="routes", telemetry=False),
    _P("bpm", "float", 120.0, "Tempo the beat phase and the LFO follow; set it, or tap it on /vrb/tap.",
       min=20.0, max=300.0, unit="bpm", group="tempo"),
    _P("tempo.source", "enum", "auto",
       "Which clock drives bpm and the beat phase: auto = the first running of Link (with peers), MIDI clock, "
       "audio (--audio-tempo); manual = none (OSC, tap and the panel only).",
       choices=("auto", "link", "midi-clock", "audio", "manual"), group="tempo"),
    _P("tap", "action", "", "Tap tempo: taps under 2 s apart set bpm from their mean interval (last 8 taps).",
       group="tempo", telemetry=False),
    _P("beat.resync", "action", "", "Make this instant a downbeat (beat phase 0), keeping bpm.",
       group="tempo", telemetry=False),
    _P("lfo.target", "str", "", "Live number parameter the beat-synced LFO drives (e.g. psi); empty = off.",
       group="tempo", check=lambda name: _check_lfo_target(name)),  # defined below the table
    _P("lfo.shape", "enum", "sine", "LFO wave shape.", choices=("sine", "triangle", "saw", "square"),
       group="tempo"),
    _P("lfo.beats", "float", 4.0, "LFO period in beats (4 = one bar of 4/4).",
       min=0.25, max=64.0, unit="beats", group="tempo"),
    _P("lfo.low", "float", 0.0, "Target value at the bottom of the LFO wave (in the target's units).",
       min=-1e6, max=1e6, group="tempo"),
    _P("lfo.high", "float", 1.0, "Target value at the top of the LFO wave (in the target's units).",
       min=-1e6, max=1e6, group="tempo"),
    _P("midi.learn", "action", "",
       "Arm MIDI learn for this parameter: the next CC, note or pitch bend moved is bound to it and saved to "
       "midi_learn_file (empty = cancel).", group="midi", telemetry=False),
    _P("midi.clock", "bool", True, "Follow MIDI clock from the MIDI inputs: bpm and the beat phase.", group="tempo"),
    _P("midi_in", "list", (),
       "MIDI input ports to take control from (a port name or a unique part of it; `vrbridge devices` lists them).",
       group="startup", live=False, telemetry=False),
    _P("midi_out", "str", "", "MIDI output port for feedback to the controller (LEDs, motor faders); empty = none.",
       group="startup", live=False, telemetry=False),
    _P("midi_maps", "list", (), "MIDI maps (.toml): CCs, notes and pitch bend -> parameters (format: docs/midi.md).",
       group="startup", live=False, telemetry=False),
    _P("midi_learn_file", "str", "",
       "Where MIDI learn saves its bindings (loaded at start when present); empty = SHOW.midi.toml beside the "
       "show file, else ./vrbridge-midi.toml.", group="startup", live=False, telemetry=False),
    _P("link", "bool", False, "Join an Ableton Link session on the network for tempo and beat phase (aalink).",
       group="startup", live=False, telemetry=False),
    _P("oscquery", "str", "127.0.0.1:7702",
       "OSCQuery HTTP server HOST:PORT serving the address tree as JSON; 'off' disables.",
       group="startup", live=False, telemetry=False),
    _P("osc_maps", "list", (),
       "Rig maps to load: a shipped map name (touchdesigner, resolume, grandma3, eos, touchosc) or a .toml path.",
       group="startup", live=False, telemetry=False),
    _P("presets", "str", "",
       "Presets file (TOML); empty = beside the show file (SHOW.presets.toml), else ./vrbridge-presets.toml.",
       group="startup", live=False, telemetry=False),
    # ---- start-up settings (show file / CLI; validated here, not live) ----------------------------
    # CLI flag = "--" + name with "_" as "-"; show-file key = name. Rows for later stages go here too.
    _P("network", "str", "", "Network file (NVIDIA .pkl of any era, rosinality .pt, .safetensors) or a library "
       "name from `vrbridge models` (cached; fetched first with allow_download); empty = the embedded demo "
       "network.",
       group="startup", live=False, telemetry=False),
    _P("source", "str", "pattern", "Frame source: pattern | camera:N | video:PATH | images:DIR (and rig inputs).",
       group="startup", live=False, telemetry=False),
    _P("device", "str", "auto", "Torch device for encoder and generator: auto, cpu, cuda, cuda:N (the N-th GPU) "
       "or mps.", group="startup", live=False, telemetry=False, check=lambda text: _check_device(text)),
    _P("schedule", "enum", "auto", "How encode and synthesis share the device: overlap (own threads, at once: GPU, "
       "4+ CPU threads, or 2-3 with the synthesis compiled in the background), serial (the render thread encodes "
       "each fresh frame, then synthesises: fewer CPU cores, MPS), auto (chosen per device).", choices=("auto", "overlap", "serial"),
       group="startup", live=False, telemetry=False),
    _P("backend", "enum", "torch", "What runs the generator: torch, or onnxruntime (the graphs of vrbridge export, "
       "on the best execution provider: TensorRT, CUDA, DirectML, CoreML, CPU; network = the export folder or a "
       "model file, exported on first use).", choices=("torch", "onnxruntime"),
       group="startup", live=False, telemetry=False),
    _P("compile", "enum", "auto", "Compiled synthesis: background (ahead of "
       "time in a low-priority child process, cached; the show starts at once, eagerly, and switches when the "
       "package is ready, if it beats the eager network on the first frames; CPU), cudagraph (the synthesis captured once as a CUDA graph at the first frame and "
       "replayed; CUDA), startup (torch.compile before the first frame: slow first start), off, or auto "
       "(background on the CPU and cudagraph on CUDA with the torch backend, else off; the VRBRIDGE_COMPILE "
       "environment variable, when set to a mode, decides instead).", choices=COMPILE_MODES, group="startup", live=False, telemetry=False),
    _P("resolution", "str", "", "Output size WxH the sinks get (e.g. 1920x1080); empty = the network's own.",
       group="startup", live=False, telemetry=False),
    _P("fit", "enum", "letterbox", "How the square image fills a non-square output: letterbox, crop or stretch.",
       choices=("letterbox", "crop", "stretch"), group="output"),
    # ---- output / alpha (bridge/sinks; read by every sink through bridge.sinks.convert) -----------------
    _P("alpha.mode", "enum", "opaque",
       "Alpha the sinks publish for compositing: opaque, luma (a luminance key: dark = transparent) or mask "
       "(a greyscale image, alpha.mask).", choices=("opaque", "luma", "mask"), group="output"),
    _P("alpha.mask", "str", "", "Greyscale image used as alpha when alpha.mode is mask (white = opaque), scaled to the "
       "output size; a file that cannot be read keeps the previous mask and is reported.",
       group="output", telemetry=False),
    _P("alpha.luma_low", "float", 0.0, "Luma key: pixels at or below this brightness are fully transparent.",
       min=0.0, max=1.0, group="output"),
    _P("alpha.luma_high", "float", 1.0, "Luma key: pixels at or above this brightness are fully opaque.",
       min=0.0, max=1.0, group="output"),
    _P("alpha.invert", "bool", False, "Invert the alpha (luma or mask): bright = transparent.", group="output"),
    _P("ndi.fps", "float", 60.0, "Frame rate NDI senders declare (and pace a clocked send at).",
       min=1.0, max=240.0, out_of_range="reject", unit="fps", group="startup", live=False, telemetry=False),
    _P("ndi.clock", "bool", True, "Let NDI pace sends at ndi.fps (on the sink's own thread, never the render loop).",
       group="startup", live=False, telemetry=False),
    _P("ndi.format", "enum", "bgra", "Pixels handed to NDI: bgra (keeps alpha) or uyvy (4:2:2, no alpha).",
       choices=("bgra", "uyvy"), group="startup", live=False, telemetry=False),
    _P("ndi.groups", "str", "", "NDI groups the senders join (comma-separated; empty = NDI's default group).",
       group="startup", live=False, telemetry=False),
    _P("preview", "str", "127.0.0.1:7780", "Preview web server HOST:PORT (MJPEG, /snapshot.jpg); 'off' disables.",
       group="startup", live=False, telemetry=False),
    _P("control_token", "str", "",
       "Token the web control panel needs when the preview listens beyond localhost (?token=...); empty = a random "
       "one made at start and printed.", group="startup", live=False, telemetry=False),
    _P("control_allow", "list", (), "Client IPs that may use the web control panel without the token (LAN mode).",
       group="startup", live=False, telemetry=False),
    _P("preview_public", "bool", False,
       "When the preview listens beyond localhost, let anyone on the network watch it (control still needs the token).",
       group="startup", live=False, telemetry=False),
    _P("record", "str", "", "Record the output to this .mp4 file (empty = off).",
       group="startup", live=False, telemetry=False),
    _P("png_dir", "str", "", "Write every output frame as a PNG into this folder (empty = off).",
       group="startup", live=False, telemetry=False),
    _P("record_input", "bool", False, "Record the camera input side by side with the output.",
       group="startup", live=False, telemetry=False),
    _P("record_fps", "float", 30.0, "Frame rate of the recording (frames are repeated/skipped to keep real time).",
       min=1.0, max=240.0, out_of_range="reject", unit="fps", group="startup", live=False, telemetry=False),
    _P("source_size", "str", "", "Capture size WxH asked of a camera / drawn by the pattern (empty = the camera's own; 640x480 pattern).",
       group="startup", live=False, telemetry=False),
    _P("source_fps", "float", 30.0, "Capture rate asked of a camera; pace of the test pattern and image slideshow.",
       min=1.0, max=240.0, out_of_range="reject", unit="fps", group="startup", live=False, telemetry=False),
    _P("slide_s", "float", 5.0, "Seconds each picture of an images:DIR slideshow stays up.",
       min=0.05, max=3600.0, out_of_range="reject", unit="s", group="startup", live=False, telemetry=False),
    _P("demo_encoder", "bool", False,
       "Use the random-init demo encoder when no encoder weights are found, also with a real --network "
       "(always on for the embedded demo network). For trying a model before the weights are in place.",
       group="startup", live=False, telemetry=False),
    _P("sink", "list", (), "Extra sinks, each kind:NAME (spout:NAME, syphon:NAME, ndi:NAME, png:DIR, record:FILE.mp4).",
       group="startup", live=False, telemetry=False),
    _P("osc_in", "str", "127.0.0.1:7700", "Listen for OSC control on HOST:PORT ('off' disables).",
       group="startup", live=False, telemetry=False),
    _P("osc_out", "list", ("127.0.0.1:7701",), "Send telemetry to these HOST:PORT targets.",
       group="startup", live=False, telemetry=False),
    _P("osc_allow", "list", (), "Sender IPs allowed when osc_in listens beyond localhost (required then).",
       group="startup", live=False, telemetry=False),
)
PARAMS_BY_NAME: Mapping[str, Param] = MappingProxyType({p.name: p for p in PARAMS})
PARAMS_BY_ADDRESS: Mapping[str, Param] = MappingProxyType({p.osc_address: p for p in PARAMS})
assert len(PARAMS_BY_NAME) == len(PARAMS), "duplicate parameter name"
# Every value's default (actions have no value): what a fresh store, the show file and the trackers start from.
def _check_device(text: str) -> None:
    """auto, cpu, mps, cuda or cuda:N (whether that device exists is bridge.device's question, at start)."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text.strip().lower()):
        raise OutOfRange("device", f"{brief(text)} is not auto, cpu, cuda, cuda:N or mps")


def _check_lfo_target(name: str) -> None:
    """lfo.target names a live number parameter outside the tempo group (or is empty: LFO off)."""
    param = PARAMS_BY_NAME.get(name)
    if name and (param is None or not param.live or param.kind not in ("float", "int") or param.group == "tempo"):
        raise OutOfRange("lfo.target", f"{brief(name)} is not a live number parameter (e.g. psi, mix.amount)")


DEFAULTS: Mapping[str, Any] = MappingProxyType({p.name: p.default for p in PARAMS if p.kind != "action"})


def get_param(name: str) -> Param:
    try:
        return PARAMS_BY_NAME[name]
    except KeyError:
        raise UnknownParam(name, "no such parameter") from None


def live_params() -> Iterable[Param]:
    return (p for p in PARAMS if p.live)


# --------------------------------------------------------------------------------------------------
# Live values
# --------------------------------------------------------------------------------------------------
Listener = Callable[[str, Any, str], None]


class ParamStore:
    """Thread-safe live values of every parameter.

    Writers (OSC, maps, presets, the web panel) call :meth:`set`; the render loop takes one
    :meth:`snapshot` per frame so a frame never mixes two control states. Listeners hear every change
    (OSCQuery LISTEN, telemetry echo); a listener that raises never breaks a set.
    """

    def __init__(self, overrides: Mapping[str, Any] | None = None):
        self._lock = threading.Lock()
        self._values: dict[str, Any] = dict(DEFAULTS)
        self._listeners: list[Listener] = []
        self.version = 0
        self.last_change = time.monotonic()
        for name, value in (overrides or {}).items():
            self.set(name, value, source="config", allow_startup=True)

    def set(self, name: str, value: Any, source: str = "api", allow_startup: bool = False) -> Any:
        """Validate and apply one value; return what was stored. Raises ParamError and changes nothing."""
        param = get_param(name)
        if not param.live and not allow_startup:
            raise NotLive(name, "is a start-up setting (show file / command line), not a live parameter")
        value = param.coerce(value)
        if param.kind == "action":
            self._notify(name, value, source)
            return value
        with self._lock:
            self._values[name] = value
            self.version += 1
            self.last_change = time.monotonic()
        self._notify(name, value, source)
        return value

    def get(self, name: str) -> Any:
        get_param(name)
        with self._lock:
            return self._values[name]

    def snapshot(self) -> Mapping[str, Any]:
        """An immutable copy of every value: what one rendered frame uses."""
        with self._lock:
            return MappingProxyType(dict(self._values))

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, name: str, value: Any, source: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(name, value, source)
            except Exception:  # a broken listener must never break control input
                pass
