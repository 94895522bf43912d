"""The generator's levers at start-up: directions, bending, model mixing and classes, wired into an engine.

:func:`prepare` runs while the engine is built (before anything is started) and checks every lever's
start-up setting, so a mistake is one line and nothing runs: the directions spec, ``network_b`` (loaded and
compared with the network), ``class_map``. :meth:`Levers.attach` then plugs them in:

* directions -> ``engine.mixer.directions`` (the latent path adds the ``dir.*`` slots before truncation).
  A file or SeFa is loaded at once; PCA comes from the cache at once, or is computed in a background
  thread the first time a ``dir.*.amount`` leaves 0 (nobody who never touches a direction pays for it);
* bending -> a :class:`~bridge.bending.Bender` manipulation (sets the synthesis bend points per frame);
* model mixing -> a :class:`~bridge.model_mix.ModelMixer` manipulation, when ``network_b`` is given;
* classes -> ``engine.mixer.classes`` (c for conditional models) and, with ``classify``, the encoder's
  ``fc3`` observer that publishes ``scene.class.*`` signals.
The two manipulations change the picture only when a parameter changes (they are never ``settling``), so
they do not make the engine render continuously.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Mapping

log = logging.getLogger(__name__)


def _ready_spec():
    from bridge.signals import SignalSpec

    return SignalSpec(name="directions.ready", source="directions",
                      description="1 once the latent directions are loaded (PCA: computed or read from the cache)")


DIRECTIONS_READY = _ready_spec()
SIGNALS = (DIRECTIONS_READY,)  # for the signal catalogue (bridge.signals.SIGNAL_MODULES)


class LeverError(ValueError):
    """A lever's start-up setting that cannot be honoured (one line; the engine does not start)."""


class Levers:
    """What :func:`prepare` checked and loaded, ready to :meth:`attach` to the engine."""

    def __init__(self, settings: Mapping[str, Any], generator, network_b=None, directions=None,
                 class_map: dict[int, int] | None = None) -> None:
        self.settings = dict(settings)
        self.generator = generator
        self.network_b = network_b
        self.directions = directions  # Directions now, or None (off, or PCA still to compute)
        self.class_map = class_map or {}
        self.bender = None
        self.mixer = None
        self._pca_thread: threading.Thread | None = None
        self._bus = None

    def attach(self, engine) -> None:
        from bridge.bending import Bender
        from bridge.classes import ClassSource
        from bridge.model_mix import ModelMixer

        latents = engine.mixer
        self._bus = getattr(engine, "signals", None)
        if self._bus is not None and _method(self.settings) != "off":
            self._bus.declare(DIRECTIONS_READY)
        if self.directions is not None:
            latents.directions.set(self.directions)
            log.info("directions: %s", self.directions.describe())
            self._publish_ready(1.0)
        elif _method(self.settings) == "pca":
            latents.directions.request = self._start_pca
            self._publish_ready(0.0)
        if self.network_b is not None:
            self.mixer = ModelMixer(engine.generator, self.network_b)
            engine.add_manipulation(self.mixer)
            self.network_b = None  # the mixer holds what it needs
        self.bender = Bender()
        engine.add_manipulation(self.bender)
        classes = ClassSource(latents.c_dim, self.class_map, bus=self._bus if self.settings.get("classify") else None)
        latents.classes = classes
        if self.settings.get("classify"):
            engine.encoder.add_observer(lambda tap, tensor: classes.observe_logits(tensor) if tap == "fc3" else None)

    def _publish_ready(self, value: float) -> None:
        if self._bus is not None:
            self._bus.publish(DIRECTIONS_READY.name, value)

    def _start_pca(self, slots) -> None:
        """Compute (or read) the PCA directions off the render thread, then install them into ``slots``."""
        if self._pca_thread is not None:
            return
        import copy

        mapping = copy.deepcopy(self.generator.mapping)  # a frozen copy: model mixing may rewrite the live one
        spec, samples, folder = self.settings.get("directions", ""), int(self.settings.get("directions_samples", 10000)), \
            self.settings.get("directions_cache", "")

        def work() -> None:
            from bridge.directions.source import resolve

            try:
                directions = resolve(spec, _MappingOnly(mapping), samples=samples, folder=folder)
            except Exception as exc:  # noqa: BLE001 - a failed PCA leaves the slots off; the show goes on
                log.error("directions: could not compute %s: %s", spec, exc)
                return
            slots.set(directions)
            log.info("directions: %s", directions.describe())
            self._publish_ready(1.0)  # a signal change also makes the engine render the now-active slots

        log.info("directions: computing %s from %d samples in the background", spec, samples)
        self._pca_thread = threading.Thread(target=work, name="directions-pca", daemon=True)
        self._pca_thread.start()


class _MappingOnly:
    """What the PCA needs of a generator: its mapping network and dims."""

    def __init__(self, mapping) -> None:
        self.mapping = mapping
        self.w_dim, self.z_dim, self.c_dim = mapping.w_dim, mapping.z_dim, mapping.c_dim


def _method(settings: Mapping[str, Any]) -> str:
    from bridge.directions.source import parse_spec

    return parse_spec(str(settings.get("directions", "")))[0]


def prepare(settings: Mapping[str, Any], generator, device: str = "cpu") -> Levers:
    """Check and load every lever's start-up setting; raise LeverError with one line naming the problem."""
    return Levers(settings, generator, network_b=_network_b(settings, generator, device),
                  directions=_directions(settings, generator), class_map=_class_map(settings, generator))


def _directions(settings: Mapping[str, Any], generator):
    from bridge.directions import DirectionsError
    from bridge.directions.source import cache_path, parse_spec, resolve

    spec = str(settings.get("directions", ""))
    try:
        method, _ = parse_spec(spec)
        if method in ("file", "sefa"):
            return resolve(spec, generator)
        if method == "pca":  # at once only when cached: computing waits until a direction is used
            samples, folder = int(settings.get("directions_samples", 10000)), settings.get("directions_cache", "")
            if cache_path(generator, samples, folder=folder).is_file():
                return resolve(spec, generator, samples=samples, folder=folder)
    except DirectionsError as exc:
        raise LeverError(str(exc)) from None
    return None


def _network_b(settings: Mapping[str, Any], generator, device: str):
    path = settings.get("network_b", "")
    if not path:
        return None
    from bridge.model_mix import compatibility_problem
    from bridge.stylegan import NetworkLoadError, load_network
    from bridge.stylegan.library import LibraryError, resolve_network

    try:  # a file, or a model-library name like --network's
        network_b = load_network(resolve_network(str(path), bool(settings.get("allow_download", False))),
                                 device=device)
    except (NetworkLoadError, LibraryError) as exc:
        raise LeverError(f"network_b: {exc}") from None
    problem = compatibility_problem(generator, network_b)
    if problem:
        raise LeverError(f"network_b {path}: cannot mix with the network: {problem}")
    return network_b.eval().requires_grad_(False)


def _class_map(settings: Mapping[str, Any], generator) -> dict[int, int]:
    from bridge.classes import ClassMapError, parse_class_map

    entries = settings.get("class_map", ()) or ()
    if entries and not int(generator.c_dim):
        raise LeverError("class_map: this model is not conditional (c_dim 0): it has no classes to map to")
    if settings.get("class.source") == "camera" and not settings.get("classify"):
        log.warning("class.source is camera but classify is off: the classes stay manual until classify is on")
    try:
        return parse_class_map(entries, int(generator.c_dim))
    except ClassMapError as exc:
        raise LeverError(f"class_map: {exc}") from None
