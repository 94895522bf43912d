"""Body tracking with MediaPipe's Tasks API (``PoseLandmarker``, VIDEO mode) on the tracker's own thread.

VIDEO mode tracks each person's landmarks from frame to frame and runs the person detector only when it has
fewer people than ``num_poses``, so it costs about half of IMAGE mode per frame (BENCHMARKS.md). Each frame's
people go to a :class:`~bridge.tracking.body.BodyStage`: the performer lock picks the active one and the
``body.*`` signals are published on the engine's signal bus.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bridge.frames import Frame
from bridge.tracking.body import BodyStage
from bridge.tracking.worker import FrameWorker, ParamsFn


class MediaPipePoseTracker(FrameWorker):
    """MediaPipe PoseLandmarker fed with the newest camera frame; publishes ``body.*``."""

    kind = "pose"

    def __init__(self, model: bytes, params: ParamsFn | None = None, bus=None, num_poses: int = 2,
                 min_confidence: float = 0.5, max_hz: float = 0.0) -> None:
        super().__init__(params, bus, max_hz)
        self._model = model
        self.num_poses = int(num_poses)
        self.min_confidence = float(min_confidence)
        self.stage = BodyStage(self._params, bus, source="pose")

    def describe(self) -> str:
        people = "1 person" if self.num_poses == 1 else f"{self.num_poses} people"
        return f"mediapipe pose (VIDEO mode, up to {people})"

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "people": self.stage.people, "lock_switches": self.stage.lock.switches}

    def telemetry(self) -> dict:
        """``/vrb/p1/...``: the active performer's keypoints (a telemetry provider)."""
        return self.stage.telemetry()

    def _create(self):
        return create_landmarker(self._model, self.num_poses, self.min_confidence)

    def _take(self, result, frame: Frame) -> dict[str, float]:
        people = [np.array([(p.x, p.y, p.z, _visibility(p)) for p in person], dtype=np.float32)
                  for person in result.pose_landmarks]
        aspect = frame.rgb.shape[1] / frame.rgb.shape[0]
        signals = self.stage.take(people, frame.t_capture, aspect)
        return signals if people else {}


def _visibility(landmark) -> float:
    value = getattr(landmark, "visibility", None)
    return 1.0 if value is None else float(value)


def create_landmarker(model: bytes, num_poses: int = 2, min_confidence: float = 0.5):
    """A MediaPipe PoseLandmarker in VIDEO mode reading the model from memory (never from the network)."""
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=model),
        running_mode=vision.RunningMode.VIDEO,
        num_poses=num_poses,
        min_pose_detection_confidence=min_confidence,
        min_pose_presence_confidence=min_confidence,
        min_tracking_confidence=min_confidence,
        output_segmentation_masks=False,
    )
    return vision.PoseLandmarker.create_from_options(options)
