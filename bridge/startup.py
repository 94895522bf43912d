"""Building an engine from settings (show file + flags, see :mod:`bridge.config`).

Cheap checks first, so a busy port, a mistyped path or a missing device is one line before torch loads a
model: ports and named files are checked (:mod:`bridge.preflight`), the source is opened, then the device
resolved, then the network and the encoder are loaded. Other packages
(OSC, tracking, the signal sources) plug themselves in through their ``attach(engine, settings)``.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from bridge import imageops, preflight
from bridge.demo import DEMO_NOTICE, DEMO_SEED
from bridge.engine import Engine
from bridge.manipulate import tensor_levers
from bridge.params import DEFAULTS, PARAMS_BY_NAME, ParamStore

class StartupError(RuntimeError):
    """A setting that cannot be honoured at start (the message is the one line the user sees)."""


def startup_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "cannot start as configured": shown as one line, exit code 2."""
    from bridge.params import ParamError
    from bridge.sinks import SinkUnavailable
    from bridge.sources import SourceUnavailable

    kinds: list[type[BaseException]] = [StartupError, SinkUnavailable, SourceUnavailable, ParamError]
    for module, name in (("bridge.encoder", "EncoderError"), ("bridge.stylegan.pickle_reader", "NetworkLoadError"),
                         ("bridge.levers", "LeverError")):
        # only modules already loaded can have raised: importing them here would pull in torch for nothing
        kind = getattr(sys.modules.get(module), name, None)
        if kind is not None:
            kinds.append(kind)
    return tuple(kinds)


def complete_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every table row's value: the given ones (validated) over the defaults."""
    out = dict(DEFAULTS)
    for name, value in settings.items():
        if name in PARAMS_BY_NAME:
            out[name] = PARAMS_BY_NAME[name].coerce(value)
        else:
            out[name] = value  # extra keys (e.g. set by a command) pass through untouched
    return out


def build_engine(settings: Mapping[str, Any], progress: bool = False) -> Engine:
    """Build generator, encoder, source and sinks from merged settings; let OSC and tracking attach.

    Raises one of :func:`startup_errors` for anything the user has to fix.
    """
    settings = complete_settings(settings)
    packages = _packages_to_attach(settings)  # a mistyped tracker is one line before anything loads
    demo = not settings["network"]
    resolution = _parse_resolution(settings["resolution"])
    try:
        preflight.check(settings)  # busy ports and missing files: before the camera, the device and the model
    except preflight.PreflightError as exc:
        raise StartupError(str(exc)) from None
    source = _make_source(settings)
    source.open()  # cheap checks first: a mistyped path fails before torch loads and the model is read
    try:
        device = _resolve_device(settings["device"])
        generator, model_description, plan = _load_generator(settings, device, progress)
        levers = _prepare_levers(settings, generator, device)
        encoder = _build_encoder(settings, generator, device, demo)
    except BaseException:
        source.close()
        raise
    params = ParamStore({name: value for name, value in settings.items() if name in PARAMS_BY_NAME})
    engine = Engine(params, generator, encoder, source, resolution=resolution, device=device, demo=demo,
                    model_description=model_description, schedule=plan.schedule)
    engine.plan_description = plan.describe()
    engine.source_opened = True
    if plan.compile in ("background", "cudagraph"):
        engine.compiled_synthesis = compiled_synthesis(plan.compile, generator)
        engine.add_service(engine.compiled_synthesis)
    for sink in _make_sinks(settings, engine):
        engine.add_sink(sink)
    levers.attach(engine)  # before the hand levers: model mixing must run first each frame
    for lever in tensor_levers():
        engine.add_manipulation(lever)
    for package in packages:
        importlib.import_module(package).attach(engine, settings)
    _add_show_routes(engine, settings.get("route") or ())
    return engine


def compiled_synthesis(mode: str, generator):
    """The engine's compiled synthesis service for ``mode``: built in a child process on the CPU (and kept
    only if it beats the eager network on the first frames), captured on the render thread on CUDA. Either
    returns None for a frame it does not cover (that frame runs eagerly)."""
    if mode == "cudagraph":
        from bridge.cuda_graph import GraphedSynthesis

        return GraphedSynthesis(generator)
    from bridge.aot import AotSynthesis

    return AotSynthesis(generator, race=True)


# What each name in the ``track`` setting starts: the package whose ``attach(engine, settings)`` starts it.
TRACKS: dict[str, str] = {"hands": "bridge.tracking", "pose": "bridge.tracking.performer",
                          "face": "bridge.tracking.performer", "scene": "bridge.scene", "depth": "bridge.scene"}
# OSC, the hands (they read ``hands``), the panel, MIDI, Link and audio (each does nothing unless its settings ask)
ALWAYS_ATTACHED = ("bridge.osc", "bridge.tracking", "bridge.web", "bridge.midi", "bridge.link", "bridge.audio")


def _packages_to_attach(settings: Mapping[str, Any]) -> list[str]:
    from bridge.signals import closest

    packages = list(ALWAYS_ATTACHED)
    for name in tracked(settings):
        if name not in TRACKS:
            raise StartupError(f"track: {name!r} is not one of {', '.join(TRACKS)}{closest(name, TRACKS)}")
        if TRACKS[name] not in packages:
            packages.append(TRACKS[name])
    return packages


def tracked(settings: Mapping[str, Any]) -> list[str]:
    """The ``track`` setting as names (``--track hands,pose`` and repeated flags alike)."""
    items = settings.get("track") or ()
    items = [items] if isinstance(items, str) else items
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _add_show_routes(engine: Engine, tables) -> None:
    """The show file's routes, checked against every signal the started inputs declared (same ids replace
    the default routes)."""
    from bridge.routes import RouteError, parse_route
    from bridge.signals import catalogue

    known = {**catalogue(), **{spec.name: spec for spec in engine.signals.specs()}}
    for index, table in enumerate(tables):
        try:
            engine.routes.add(parse_route(table, known, where=f"route[{index}]"))
        except RouteError as exc:
            raise StartupError(str(exc)) from None


def _resolve_device(name: str) -> str:
    from bridge.device import DeviceUnavailable, resolve_device

    try:
        return str(resolve_device(name))
    except DeviceUnavailable as exc:
        raise StartupError(f"device: {exc}") from None


def _load_generator(settings: Mapping[str, Any], device: str, progress: bool):
    """The network (with a progress bar over the load steps), or the embedded demo network, placed and
    switched as bridge.device.plan_run decides; returns (generator, description, plan)."""
    from tqdm import tqdm

    import torch

    from bridge.device import DeviceUnavailable, apply_plan, plan_run

    steps = tqdm(total=3, desc="loading model", unit="step", disable=not progress, leave=False)
    try:
        backend = settings.get("backend", "torch")
        if backend == "onnxruntime":
            generator, description = _onnx_generator(settings, steps, progress)
        else:
            generator, description = _torch_generator(settings, steps, progress)
        steps.update(1)
        try:
            plan = plan_run(device, generator.arch, settings.get("schedule", "auto"),
                            compile=settings.get("compile", "auto"), backend=backend)
        except DeviceUnavailable as exc:
            raise StartupError(f"device: {exc}") from None
        apply_plan(plan)
        if backend == "torch":
            generator = generator.to(device).eval().requires_grad_(False)
            generator.set_fast(plan.fast)
            if plan.compile == "startup":
                compile_synthesis(generator)
        steps.update(1)
        with torch.inference_mode():  # warm-up (and compilation): before the show, not in it
            z = torch.zeros(1, int(generator.z_dim), device=device)
            c = torch.zeros(1, int(generator.c_dim), device=device) if generator.c_dim else None
            generator.synthesis(generator.mapping(z, c), noise_mode="const")
        steps.update(1)
    finally:
        steps.close()
    return generator, description, plan


def _torch_generator(settings: Mapping[str, Any], steps, progress: bool):
    if not settings["network"]:
        from bridge.stylegan import Generator, demo_config

        generator = Generator.from_config(demo_config(), seed=DEMO_SEED)
        return generator, f"embedded demo ({describe_generator(generator)}, untrained random weights)"
    from bridge.stylegan import NetworkLoadError, load_network
    from bridge.stylegan.library import LibraryError, resolve_network

    steps.set_postfix_str(str(settings["network"]))
    try:
        path = resolve_network(str(settings["network"]), bool(settings.get("allow_download", False)),
                               progress=progress)
        generator = load_network(path, device="cpu")
    except (NetworkLoadError, LibraryError) as exc:
        raise StartupError(f"network: {exc}") from None
    return generator, f"{settings['network']} ({describe_generator(generator)})"


def _onnx_generator(settings: Mapping[str, Any], steps, progress: bool):
    """ONNX Runtime on the graphs of ``vrbridge export``: the network setting names their folder, or a model
    (or the demo) exported into the cache folder on first use. Levers the graphs cannot honour are refused."""
    from bridge.onnx_backend import UNSUPPORTED_LEVERS, OnnxUnavailable, OrtGenerator, refusal

    for row, only in UNSUPPORTED_LEVERS.items():
        if settings.get(row, only) != only:
            raise StartupError(refusal(row, settings[row]))
    network = Path(settings["network"]) if settings["network"] else None
    try:
        if network is not None and network.is_dir():
            folder = network
        else:
            folder = _exported_copy(settings, steps, progress)
        generator = OrtGenerator(folder)
    except OnnxUnavailable as exc:
        raise StartupError(f"backend: {exc}") from None
    return generator, f"{folder} ({describe_generator(generator)}, {generator.describe()})"


def _exported_copy(settings: Mapping[str, Any], steps, progress: bool) -> Path:
    """The ONNX export of the network (or the demo) in the cache, written on first use."""
    from bridge.onnx_backend import MAPPING_FILE, SYNTHESIS_FILE, export_onnx

    generator, _ = _torch_generator(settings, steps, progress)
    folder = cache_dir() / "onnx" / cache_key(generator, json.dumps(generator.config, sort_keys=True))
    if not ((folder / MAPPING_FILE).is_file() and (folder / SYNTHESIS_FILE).is_file()):
        steps.set_postfix_str(f"exporting to ONNX in {folder} (once)")
        export_onnx(generator, folder, progress=lambda *_: None)
    return folder


def cache_dir() -> Path:
    """Where compiled and exported artefacts are kept between starts (VRBRIDGE_CACHE or ~/.cache/vrbridge)."""
    return Path(os.environ.get("VRBRIDGE_CACHE") or Path.home() / ".cache" / "vrbridge")


def cache_key(module, header: str) -> str:
    """16 hex digits naming a cached artefact of ``module``: the sha256 of ``header`` (what else the artefact
    depends on) and of every tensor of the module's state, so new weights never meet an old export."""
    import hashlib

    digest = hashlib.sha256(header.encode())
    for tensor in module.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def compile_synthesis(generator) -> None:
    """torch.compile the synthesis network in place (parameter names, and so the levers, stay as they are).

    Inductor's caches go to the cache folder, so the second start reuses the first one's work.
    """
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    generator.synthesis.compile(dynamic=False)


def _prepare_levers(settings: Mapping[str, Any], generator, device: str):
    """Directions, network_b, class_map checked and loaded (bridge.levers); LeverError is a start-up error."""
    from bridge.levers import prepare

    return prepare(settings, generator, device)


def describe_generator(generator) -> str:
    """One line for the start-up report: architecture, resolution, z size and style-layer count."""
    return (f"{getattr(generator, 'arch', '?')}, {generator.img_resolution}px, z {generator.z_dim}, "
            f"{generator.num_ws} ws")


def _build_encoder(settings: Mapping[str, Any], generator, device: str, demo: bool):
    """The visual encoder; its start-up rows (encoder_*) are passed through, the encoder picks its defaults."""
    from bridge.encoder import build_encoder

    kwargs: dict[str, Any] = {"z_dim": int(generator.z_dim), "device": device,
                              "demo": demo or bool(settings.get("demo_encoder", False)),
                              "allow_download": bool(settings.get("allow_download", False))}
    optional = {"weights": "encoder_weights", "taps": "encoder_taps", "encode_size": "encoder_size",
                "backbone": "encoder_backbone", "runtime": "encoder_runtime"}
    for kwarg, row in optional.items():
        if settings.get(row):
            kwargs[kwarg] = tuple(settings[row]) if isinstance(settings[row], (list, tuple)) else settings[row]
    if settings.get("classify"):  # VGG16's ImageNet logits, for scene.class.* (bridge.classes)
        if settings.get("encoder_backbone") not in ("", "auto", "vgg16", None):
            raise StartupError(f"classify needs the vgg16 encoder backbone (its fc3 ImageNet classes), not "
                               f"{settings['encoder_backbone']}")
        kwargs["backbone"], kwargs["observe_taps"] = "vgg16", ("fc3",)
    return build_encoder(**kwargs)


def _make_source(settings: Mapping[str, Any]):
    from bridge.sources import SourceUnavailable, make_source

    options = {"size": _parse_resolution(settings.get("source_size", "")),
               "fps": float(settings.get("source_fps", 30.0)),
               "slide_s": float(settings.get("slide_s", 5.0))}
    try:
        return make_source(settings["source"], **options)
    except ValueError as exc:
        raise SourceUnavailable(f"source: {exc}") from None


def _make_sinks(settings: Mapping[str, Any], engine: Engine) -> list:
    from bridge.sinks import SinkUnavailable, make_sink

    specs: list[tuple[str, dict]] = []
    if settings["preview"] and settings["preview"].lower() != "off":
        specs.append((f"preview:{settings['preview']}", {"status": engine.health, "demo_notice":
                                                        DEMO_NOTICE if engine.demo else "",
                                                        "token": settings.get("control_token", ""),
                                                        "allow": settings.get("control_allow", ()),
                                                        "public_view": settings.get("preview_public", False)}))
    if settings["record"]:
        specs.append((f"record:{settings['record']}", {"side_by_side": bool(settings.get("record_input", False)),
                                                       "fps": float(settings.get("record_fps", 30.0))}))
    if settings["png_dir"]:
        specs.append((f"png:{settings['png_dir']}", {"params": engine.params}))  # alpha.* rows
    specs.extend((spec, {"params": engine.params}) for spec in settings["sink"])  # live rows (ndi.*, alpha)
    sinks = []
    for spec, options in specs:
        try:
            sinks.append(make_sink(spec, **options))
        except ValueError as exc:
            raise SinkUnavailable(f"sink {spec!r}: {exc}") from None
    return sinks


def _parse_resolution(text: str) -> tuple[int, int] | None:
    try:
        return imageops.parse_size(text or "")
    except ValueError as exc:
        raise StartupError(f"resolution: {exc}") from None
