"""Scene analysers: signals from the picture itself, for routes to read (``--track scene``, ``--track depth``).

Modules: :mod:`.analyser` (the thread every analyser runs on: newest frame wins, own rate), :mod:`.motion`
(optical flow, frame difference, light and colour: ``scene.*``), :mod:`.depth_model` (Depth-Anything-V2-Small
in plain torch), :mod:`.depth` (its weights and the ``scene.depth.*`` signals).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

log = logging.getLogger(__name__)


def attach(engine, settings: Mapping[str, Any]) -> None:
    """Start the analysers the ``track`` setting names (scene, depth) as engine trackers fed every frame."""
    from bridge.startup import StartupError, tracked

    names = tracked(settings)
    if "scene" in names:
        from bridge.scene.analyser import parse_size
        from bridge.scene.motion import DEFAULT_SIZE, SceneAnalyser

        try:
            size = parse_size(str(settings.get("scene_size") or ""), DEFAULT_SIZE)
        except ValueError as exc:
            raise StartupError(f"scene_size: {exc}") from None
        analyser = SceneAnalyser(engine.signals, size, float(settings.get("scene_hz", 30.0)), engine.params.snapshot)
        engine.add_tracker(analyser)
        log.info("%s", analyser.describe())
    if "depth" in names:
        engine.add_tracker(_depth_analyser(engine, settings))


def _depth_analyser(engine, settings: Mapping[str, Any]):
    from bridge.scene.depth import DepthAnalyser, DepthError, load_depth_model
    from bridge.startup import StartupError

    demo = bool(settings.get("depth_demo")) or bool(getattr(engine, "demo", False))
    try:
        model, description, is_demo = load_depth_model(settings.get("depth_weights") or None,
                                                       bool(settings.get("allow_download")), demo, engine.device)
    except DepthError as exc:
        raise StartupError(f"depth: {exc}") from None
    analyser = DepthAnalyser(engine.signals, model, description, is_demo, side=int(settings.get("depth_size", 252)),
                             max_hz=float(settings.get("depth_hz", 10.0)), device=engine.device,
                             params=engine.params.snapshot)
    log.info("%s", analyser.describe())
    return analyser
