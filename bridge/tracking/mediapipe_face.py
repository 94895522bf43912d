"""Face tracking with MediaPipe's Tasks API (``FaceLandmarker``, VIDEO mode) on the tracker's own thread.

The 478 landmarks of each face (and the 52 blendshape scores when the bundle carries a blendshape model) go to
a :class:`~bridge.tracking.face.FaceStage`, which picks the performer's face, calibrates, smooths and publishes
the ``face.*`` signals on the engine's signal bus.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bridge.frames import Frame
from bridge.tracking.face import FaceStage, blendshape_scores
from bridge.tracking.model import bundle_members
from bridge.tracking.worker import FrameWorker, ParamsFn

BLENDSHAPE_MEMBER = "face_blendshapes.tflite"


class MediaPipeFaceTracker(FrameWorker):
    """MediaPipe FaceLandmarker fed with the newest camera frame; publishes ``face.*``."""

    kind = "face"

    def __init__(self, model: bytes, params: ParamsFn | None = None, bus=None, num_faces: int = 1,
                 min_confidence: float = 0.5, max_hz: float = 0.0) -> None:
        super().__init__(params, bus, max_hz)
        self._model = model
        self.num_faces = int(num_faces)
        self.min_confidence = float(min_confidence)
        self.blendshapes = BLENDSHAPE_MEMBER in bundle_members(model)
        self.stage = FaceStage(self._params, bus, source="face")

    def describe(self) -> str:
        how = "blendshapes" if self.blendshapes else "gestures from landmarks"
        faces = "1 face" if self.num_faces == 1 else f"{self.num_faces} faces"
        return f"mediapipe face (VIDEO mode, up to {faces}, {how})"

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "faces": self.stage.faces, "calibrated": self.stage.features.calibrated,
                "calibrating": self.stage.features.calibrating}

    def calibrate(self, seconds: float) -> None:
        """Measure the neutral face over the next ``seconds`` (the ``face.calibrate`` action)."""
        self.stage.features.calibrate(seconds)

    def telemetry(self) -> dict:
        """``/vrb/f1/...``: the active face's named points (a telemetry provider)."""
        return self.stage.telemetry()

    def _create(self):
        return create_landmarker(self._model, self.num_faces, self.min_confidence, self.blendshapes)

    def _take(self, result, frame: Frame) -> dict[str, float]:
        faces = [np.array([(p.x, p.y, p.z) for p in face], dtype=np.float32) for face in result.face_landmarks]
        blends = [blendshape_scores(b) for b in (result.face_blendshapes or [])]
        aspect = frame.rgb.shape[1] / frame.rgb.shape[0]
        signals = self.stage.take(faces, blends, frame.t_capture, aspect)
        return signals if faces else {}


def create_landmarker(model: bytes, num_faces: int = 1, min_confidence: float = 0.5, blendshapes: bool = False):
    """A MediaPipe FaceLandmarker in VIDEO mode reading the model from memory (never from the network)."""
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=model),
        running_mode=vision.RunningMode.VIDEO,
        num_faces=num_faces,
        min_face_detection_confidence=min_confidence,
        min_face_presence_confidence=min_confidence,
        min_tracking_confidence=min_confidence,
        output_face_blendshapes=blendshapes,
    )
    return vision.FaceLandmarker.create_from_options(options)
