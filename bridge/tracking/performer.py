"""Body and face: how ``--track pose`` / ``--track face`` plug into the engine.

    source frame ─► MediaPipePoseTracker / MediaPipeFaceTracker (own threads, newest frame wins)
                      └─► BodyStage / FaceStage: performer lock, smoothing ─► body.* / face.* signals ─► routes
    or OSC /vrb/in/pN/..., /vrb/in/fN/... ─► OscBodyFaceInput (same stages)   (performer_input = osc)

Modules: :mod:`.body` (pose landmarks -> ``body.*``), :mod:`.face` (face landmarks or blendshapes ->
``face.*``, neutral-face calibration), :mod:`.mediapipe_pose`, :mod:`.mediapipe_face` (Tasks API trackers),
:mod:`.osc_input` (:class:`~bridge.tracking.osc_input.OscBodyFaceInput`), :mod:`.lock` (the performer lock),
:mod:`.model` (the shipped bundles and their hashes).

No route is installed by default: the hands' default routes already drive the paper's levers, and a show file
says what the body and face drive (``examples/camera_sg2_body_td.toml`` routes ``body.distance`` to
``const.corrupt``, the paper's Test 2). Telemetry gets the performer's keypoints (``/vrb/p1/<landmark>/x|y``,
``/vrb/f1/<point>/x|y``) and each tracker's cost (``/vrb/track/<pose|face>/ms``, ``.../frames``,
``.../dropped``); every signal goes out at ``/vrb/signal/...`` like any other.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

log = logging.getLogger(__name__)

TASKS = ("pose", "face")


def attach(engine, settings: Mapping[str, Any]) -> list:
    """Start what ``track`` asks of pose and face; returns the trackers added (none: nothing asked)."""
    from bridge.startup import StartupError, tracked

    wanted = [name for name in TASKS if name in tracked(settings)]
    if not wanted:
        return []
    from bridge.tracking import body, face

    engine.signals.declare(*(body.SIGNALS if "pose" in wanted else ()), *(face.SIGNALS if "face" in wanted else ()))
    params = engine.params.snapshot
    if settings.get("performer_input", "mediapipe") == "osc":
        trackers = [_osc_input(engine, params, wanted, StartupError)]
    else:
        trackers = [_mediapipe(task, engine, params, settings, StartupError) for task in wanted]
    for tracker in trackers:
        engine.add_tracker(tracker)
        log.info("%s: %s", "+".join(wanted), tracker.describe())
    engine.params.add_listener(_calibration_listener(trackers, engine.params))
    telemetry = getattr(getattr(engine, "osc", None), "telemetry", None)
    if telemetry is not None:
        telemetry.add_provider(lambda: telemetry_values(trackers), every_frame=True)
    return trackers


def _mediapipe(task: str, engine, params, settings: Mapping[str, Any], error):
    from bridge.tracking.model import ModelError, load_model

    try:
        model = load_model(task, settings.get(f"{task}_model") or None, bool(settings.get("allow_download", False)))
    except ModelError as exc:
        raise error(str(exc)) from None
    if task == "pose":
        from bridge.tracking.mediapipe_pose import MediaPipePoseTracker

        return MediaPipePoseTracker(model, params, engine.signals, num_poses=int(settings.get("pose_max", 2)),
                                    max_hz=float(settings.get("pose_hz", 15.0)))
    from bridge.tracking.mediapipe_face import MediaPipeFaceTracker

    return MediaPipeFaceTracker(model, params, engine.signals, num_faces=int(settings.get("face_max", 1)),
                                max_hz=float(settings.get("face_hz", 15.0)))


def _osc_input(engine, params, wanted: list[str], error):
    from bridge.tracking.osc_input import BODY_FACE_PATTERNS, OscBodyFaceInput

    server = getattr(engine, "osc_server", None)
    if server is None or getattr(server, "port", 0) is None:
        raise error("performer_input = osc needs the OSC control input: set osc_in (it is 'off')")
    receiver = OscBodyFaceInput(params, engine.signals, pose="pose" in wanted, face="face" in wanted)
    for pattern in BODY_FACE_PATTERNS:
        server.add_handler(pattern, receiver.handle)
    return receiver


def _calibration_listener(trackers: list, store):
    """The ``face.calibrate`` action: a neutral-face calibration over its argument's seconds (0.05..30) or, with
    no (or an unusable) argument, ``face.calibrate_s`` (1 s when that is 0)."""
    def listener(name: str, value: Any, source: str) -> None:
        if name != "face.calibrate":
            return
        try:
            seconds = float(value) if str(value).strip() else None
        except ValueError:
            seconds = None
        if seconds is None or not 0.05 <= seconds <= 30.0:
            if str(value).strip():
                log.warning("face.calibrate: %r is not seconds in 0.05..30; using face.calibrate_s", value)
            seconds = float(store.get("face.calibrate_s")) or 1.0
        for tracker in trackers:
            calibrate = getattr(tracker, "calibrate", None)
            if calibrate is not None:
                calibrate(seconds)

    return listener


def telemetry_values(trackers: list) -> dict[str, Any]:
    """The performer's keypoints and each tracker's cost, for the telemetry bundle of every frame."""
    out: dict[str, Any] = {}
    for tracker in trackers:
        out.update(tracker.telemetry())
        stats = tracker.stats()
        if "track_ms" in stats:
            out[f"/vrb/track/{tracker.kind}/ms"] = float(stats["track_ms"])
            out[f"/vrb/track/{tracker.kind}/frames"] = int(stats["frames"])
            out[f"/vrb/track/{tracker.kind}/dropped"] = int(stats["dropped"])
    return out
