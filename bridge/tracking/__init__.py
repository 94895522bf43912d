"""Hands: keypoints from MediaPipe (or from the rig over OSC), one locked active hand, smoothed features.

    source frame ─► tracker (own thread) ─► Keypoints (all hands + the locked active one)
                          └─► HandSignals (render thread: smoothed features) ─► hand.* signals ─► routes

Modules: :mod:`.model` (the shipped hand, pose and face models and their hashes; :mod:`.tflite_edit` the two
model edits), :mod:`.mediapipe_hands` (Tasks API tracker), :mod:`.osc_input` (keypoints over OSC), :mod:`.lock`
(the active-hand lock and the performer lock), :mod:`.features` (the hand's signals), :mod:`bridge.one_euro`
(smoothing). :func:`default_routes` are the paper's hand manipulations as routes. Body and face
(``--track pose,face``) are :mod:`.performer`.

Conventions a performer and a rig builder need:

* **Left and right** always mean the performer's own hands. MediaPipe's Tasks API labels hands that way for a
  camera that is not mirrored (checked on the test photos). If the source mirrors the picture (a selfie
  view), set ``hand.input_mirrored`` so labels stay anatomical.
* **Features are in the picture** as the camera sees it (x right, y down); ``hand.mirror`` computes them on the
  mirrored picture instead, which is what a performer watching the output like a mirror expects: moving your
  right hand to your right then increases x. The angle is 0 with the fingers up and positive when the hand
  leans clockwise in that picture. See :mod:`.features` for each feature.

``attach(engine, settings)`` is how the engine builder plugs hands in (start-up settings ``hands``,
``hand_model``, ``hand_max``; live ``hand.*`` parameters).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

log = logging.getLogger(__name__)


def attach(engine, settings: Mapping[str, Any]) -> None:
    """Give ``engine`` a hand tracker and the hand's signals, as the ``hands`` setting says (off: nothing).

    ``mediapipe``: loads the hand model (the shipped bundle, hash-checked, or ``hand_model``) and sets the
    engine's keypoint tracker. ``osc``: registers an OSC keypoint receiver with ``engine.osc_server``. Either
    way the hand's signals (``hand.*``) are published each frame and, unless ``default_routes`` is off, the
    paper's manipulations are routed from them (:func:`default_routes`). A bad ``hand_model`` raises a
    start-up error.
    """
    mode = hand_mode(settings)
    if mode == "off":
        return
    from bridge.cli import UserError

    params_fn = engine.params.snapshot
    if mode == "mediapipe":
        from bridge.tracking.mediapipe_hands import MediaPipeHandTracker
        from bridge.tracking.model import HandModelError, load_hand_model

        try:
            model = load_hand_model(settings.get("hand_model") or None)
        except HandModelError as exc:
            raise UserError(str(exc)) from None
        tracker = MediaPipeHandTracker(model, params_fn, num_hands=int(settings.get("hand_max", 2)))
    elif mode == "osc":
        from bridge.tracking.osc_input import OSC_PATTERNS, OscHandTracker

        server = getattr(engine, "osc_server", None)
        if server is None or getattr(server, "port", 0) is None:  # osc_in off: the server never listens
            raise UserError("hands = osc needs the OSC control input: set osc_in (it is 'off')")
        tracker = OscHandTracker(params_fn)
        for pattern in OSC_PATTERNS:
            server.add_handler(pattern, tracker.handle)
    else:
        raise UserError(f"hands: {mode!r} is not one of off, mediapipe, osc")
    from bridge.tracking.features import HandSignals

    engine.set_keypoint_tracker(tracker)
    engine.add_signal_stage(HandSignals(engine.signals))
    if settings.get("default_routes", True):
        from bridge.routes import parse_route

        for entry in default_routes():
            engine.routes.add(parse_route(entry, where=f"default route {entry['id']}"))
    log.info("hands: %s", tracker.describe())


def hand_mode(settings: Mapping[str, Any]) -> str:
    """How hands are tracked: the ``hands`` setting, or ``mediapipe`` when ``track`` names hands; else ``off``."""
    from bridge.startup import tracked

    mode = settings.get("hands") or "off"
    return "mediapipe" if mode == "off" and "hands" in tracked(settings) else mode


def default_routes() -> list[dict[str, Any]]:
    """The paper's hand manipulations as routes (show-file ``[[route]]`` tables; ``vrbridge routes`` lists them).

    StyleGAN2 (Test 2): ``const.corrupt = curve(hand.distance) * hand.const.amount``; StyleGAN3: rotation =
    ``hand.angle * hand.transform.rotate``, translation = ``(hand.x|y - 0.5) * hand.transform.translate``,
    zoom = ``hand.zoom * hand.transform.scale``. Each is multiplied by ``hand.present`` (the engagement that
    eases in and out over ``hand.ease_s``) and acts while its ``hand.*.enable`` is on (fading over ``hand.ease_s``
    when it is switched).
    """
    def pair(name, source, target, span, scale, when, **extra):
        drive = {"id": f"hand.{name}", "from": source, "to": target, "input": list(span[0]), "range": list(span[1]),
                 "scale": scale, "when": when, "fade": "@hand.ease_s", **extra}
        ease = {"id": f"hand.{name}.ease", "from": "hand.present", "to": target, "combine": "multiply",
                "input": [0.0, 1.0], "range": [0.0, 1.0], "when": when, "fade": "@hand.ease_s"}
        return [drive, ease]

    const, sg3 = "hand.const.enable", "hand.transform.enable"
    return [*pair("const", "hand.distance", "const.corrupt", ((0.0, 1.0), (0.0, 1.0)), "hand.const.amount", const,
                  curve="@hand.const.curve"),
            *pair("rotate", "hand.angle", "sg3.rotate", ((-180.0, 180.0), (-180.0, 180.0)), "hand.transform.rotate", sg3),
            *pair("translate_x", "hand.x", "sg3.translate.x", ((0.0, 1.0), (-0.5, 0.5)), "hand.transform.translate", sg3),
            *pair("translate_y", "hand.y", "sg3.translate.y", ((0.0, 1.0), (-0.5, 0.5)), "hand.transform.translate", sg3),
            *pair("zoom", "hand.zoom", "sg3.zoom", ((-4.0, 4.0), (-4.0, 4.0)), "hand.transform.scale", sg3)]
