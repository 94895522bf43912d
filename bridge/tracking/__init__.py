"""Hands: keypoints from MediaPipe (or from the rig over OSC), one locked active hand, smoothed features.

    source frame ─► tracker (own thread) ─► Keypoints (all hands + the locked active one)
                                               └─► HandFeatures (smoothed) ─► manipulations (render thread)

Modules: :mod:`.model` (the shipped hand model and its hash), :mod:`.mediapipe_hands` (Tasks API tracker),
:mod:`.osc_input` (keypoints over OSC), :mod:`.lock` (the active-hand lock), :mod:`.features` (what the
manipulations read), :mod:`bridge.one_euro` (smoothing).

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
    """Give ``engine`` a tracker and the hand manipulations, as the ``hands`` setting says (off: nothing).

    ``mediapipe``: loads the hand model (the shipped bundle, hash-checked, or ``hand_model``) and sets
    ``engine.tracker``. ``osc``: registers an OSC keypoint receiver with ``engine.osc_server``. Either way the
    manipulations (StyleGAN2 const corruption, StyleGAN3 input transform) are added; each one that does not
    fit the loaded network says so once and stays idle. A bad ``hand_model`` raises a start-up error.
    """
    mode = settings.get("hands", "off")
    if mode in ("off", "", None):
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
        engine.tracker = MediaPipeHandTracker(model, params_fn, num_hands=int(settings.get("hand_max", 2)))
    elif mode == "osc":
        from bridge.tracking.osc_input import OSC_PATTERNS, OscHandTracker

        server = getattr(engine, "osc_server", None)
        if server is None or getattr(server, "port", 0) is None:  # osc_in off: the server never listens
            raise UserError("hands = osc needs the OSC control input: set osc_in (it is 'off')")
        tracker = OscHandTracker(params_fn)
        for pattern in OSC_PATTERNS:
            server.add_handler(pattern, tracker.handle)
        engine.tracker = tracker
    else:
        raise UserError(f"hands: {mode!r} is not one of off, mediapipe, osc")
    for manipulation in hand_manipulations():
        engine.add_manipulation(manipulation)
    log.info("hands: %s", engine.tracker.describe())


def hand_manipulations() -> list:
    """The shared feature stage and the manipulations it feeds, in the order they run each frame."""
    from bridge.manipulate.const_corruption import ConstCorruption
    from bridge.manipulate.sg3_transform import InputTransform
    from bridge.tracking.features import HandFeatureStage, HandFeatures

    features = HandFeatures()
    return [HandFeatureStage(features), ConstCorruption(features), InputTransform(features)]
