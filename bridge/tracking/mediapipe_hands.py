"""Hand tracking with MediaPipe's Tasks API (``HandLandmarker``, VIDEO mode) on the tracker's own thread.

Why VIDEO mode: it tracks landmarks from frame to frame and only re-runs palm detection when it loses a
hand, roughly halving the cost per frame (see BENCHMARKS.md). It needs strictly increasing timestamps, so
the frame's capture time is used, nudged forward by 1 ms when two frames would share a millisecond.

The engine's capture thread calls ``submit`` with every frame; it only replaces the frame waiting in a
single-slot box, so tracking runs at its own rate on the newest frame and never slows capture or render.
A frame MediaPipe cannot take (wrong shape or type) or an error inside MediaPipe is counted and skipped.

Handedness: MediaPipe's Tasks API labels hands for a camera that is *not* mirrored; checked on this
project's test photos (an anatomical left hand, palm to the camera, is labelled "Left"). So its label is the
performer's own hand, and ``hand.input_mirrored`` swaps it for sources that mirror the picture.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bridge.frames import Frame, Hand, Keypoints
from bridge.tracking.base import HandTracker, ParamsFn
from bridge.tracking.worker import FrameWorker

_SWAP = {"left": "right", "right": "left"}


class MediaPipeHandTracker(FrameWorker, HandTracker):
    """MediaPipe HandLandmarker fed with the newest camera frame, publishing locked :class:`Keypoints`.

    The thread, the newest-frame box, VIDEO-mode timestamps and the cost figures are the pose and face
    trackers' (:class:`~bridge.tracking.worker.FrameWorker`); the lock and ``latest()`` are every hand
    tracker's (:class:`~bridge.tracking.base.HandTracker`).
    """

    kind = "mediapipe"

    def __init__(self, model: bytes, params: ParamsFn | None = None, num_hands: int = 2,
                 min_confidence: float = 0.5) -> None:
        HandTracker.__init__(self, params)
        FrameWorker.__init__(self, params)
        self._model = model
        self.num_hands = int(num_hands)
        self.min_confidence = float(min_confidence)

    def stats(self) -> dict[str, Any]:
        return {**HandTracker.stats(self), **FrameWorker.stats(self), "name": "hands"}

    def describe(self) -> str:
        return f"mediapipe hands (VIDEO mode, up to {self.num_hands} hands)"

    # -- FrameWorker's hooks ----------------------------------------------------------------------
    def _create(self):
        return create_landmarker(self._model, self.num_hands, self.min_confidence)

    def _take(self, result, frame: Frame) -> Keypoints:
        aspect = frame.rgb.shape[1] / frame.rgb.shape[0]
        return self.publish(self._hands(result), frame.t_capture, frame.index, aspect, "mediapipe")

    def _hands(self, result) -> list[Hand]:
        swap = bool(self._params().get("hand.input_mirrored", False))
        hands = []
        for points, labels in zip(result.hand_landmarks, result.handedness):
            landmarks = np.array([(p.x, p.y, p.z) for p in points], dtype=np.float32)
            label = labels[0].category_name.lower() if labels else ""
            if swap:
                label = _SWAP.get(label, label)
            hands.append(Hand(landmarks=landmarks, handedness=label, score=float(labels[0].score) if labels else 0.0))
        return hands


def create_landmarker(model: bytes, num_hands: int = 2, min_confidence: float = 0.5):
    """A MediaPipe HandLandmarker in VIDEO mode reading the model from memory (never from the network)."""
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=model),
        running_mode=vision.RunningMode.VIDEO,
        num_hands=num_hands,
        min_hand_detection_confidence=min_confidence,
        min_hand_presence_confidence=min_confidence,
        min_tracking_confidence=min_confidence,
    )
    return vision.HandLandmarker.create_from_options(options)
