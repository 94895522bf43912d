"""Hand tracking with MediaPipe's Tasks API (``HandLandmarker``, VIDEO mode) on the tracker's own thread.

Why VIDEO mode: it tracks landmarks from frame to frame and only re-runs palm detection when it loses a
hand, roughly halving the cost per frame (see BENCHMARKS.md). It needs strictly increasing timestamps, so
the frame's capture time is used, nudged forward by 1 ms when two frames would share a millisecond.

The engine's capture thread calls :meth:`submit` with every frame; it only replaces the frame waiting in a
single-slot box, so tracking runs at its own rate on the newest frame and never slows capture or render.
A frame MediaPipe cannot take (wrong shape or type) or an error inside MediaPipe is counted and skipped.

Handedness: MediaPipe's Tasks API labels hands for a camera that is *not* mirrored; checked on this
project's test photos (an anatomical left hand, palm to the camera, is labelled "Left"). So its label is the
performer's own hand, and ``hand.input_mirrored`` swaps it for sources that mirror the picture.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from bridge.frames import Frame, Hand, Keypoints, Latest
from bridge.tracking.base import HandTracker, ParamsFn
from bridge.tracking.quiet import FirstFramesMuted, native_chatter_muted

_SWAP = {"left": "right", "right": "left"}


class MediaPipeHandTracker(HandTracker):
    """MediaPipe HandLandmarker fed with the newest camera frame, publishing locked :class:`Keypoints`."""

    kind = "mediapipe"

    def __init__(self, model: bytes, params: ParamsFn | None = None, num_hands: int = 2,
                 min_confidence: float = 0.5) -> None:
        super().__init__(params)
        self._model = model
        self.num_hands = int(num_hands)
        self.min_confidence = float(min_confidence)
        self._landmarker = None
        self._box: Latest[Frame] = Latest()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_ts_ms = -1
        self._first_frames_muted = FirstFramesMuted()
        self.frames = 0
        self.last_ms = 0.0
        self.avg_ms = 0.0

    # -- service ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.status = "starting"
        self._thread = threading.Thread(target=self._run, name="tracker-mediapipe", daemon=True)
        self._thread.start()

    def submit(self, frame: Frame) -> None:
        self._box.put(frame)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and release MediaPipe. If the thread is still inside a frame after ``timeout``, it
        releases MediaPipe itself when that frame ends (never closed under a running inference)."""
        self._stop.set()
        self._box.close()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._release()
        self.status = "closed"

    def _release(self) -> None:
        landmarker, self._landmarker = self._landmarker, None
        if landmarker is not None:
            try:
                with native_chatter_muted():  # LiteRT's DestroyAccelerator INFO lines
                    landmarker.close()
            except Exception as exc:  # noqa: BLE001 - closing must not raise at shutdown
                self.record_error("close", exc)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "name": "hands", "frames": self.frames, "dropped": self._box.dropped,
                "track_ms": round(self.avg_ms, 2), "last_ms": round(self.last_ms, 2)}

    def describe(self) -> str:
        return f"mediapipe hands (VIDEO mode, up to {self.num_hands} hands)"

    # -- tracking ----------------------------------------------------------------------------------
    def process(self, frame: Frame) -> Keypoints | None:
        """Track one frame now, in the calling thread (the tracker thread; tests and benchmarks call it too).

        Returns the published keypoints, or None when the frame was unusable (counted in ``errors``).
        """
        rgb = frame.rgb
        if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
                and rgb.shape[0] > 0 and rgb.shape[1] > 0):
            self.record_error("frame", ValueError(f"frame {frame.index} is not an (H, W, 3) uint8 RGB image: "
                                                  f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}"))
            return None
        landmarker = self._ensure_landmarker()
        import mediapipe as mp

        t0 = time.perf_counter()
        ts_ms = max(int(frame.t_capture * 1000.0), self._last_ts_ms + 1)
        self._last_ts_ms = ts_ms
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        with self._first_frames_muted():
            result = landmarker.detect_for_video(image, ts_ms)
        hands = self._hands(result)
        ms = (time.perf_counter() - t0) * 1000.0
        self.last_ms = ms
        self.avg_ms = ms if self.frames == 0 else 0.9 * self.avg_ms + 0.1 * ms
        self.frames += 1
        aspect = rgb.shape[1] / rgb.shape[0]
        return self.publish(hands, frame.t_capture, frame.index, aspect, "mediapipe")

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

    def _ensure_landmarker(self):
        if self._landmarker is None:
            with native_chatter_muted():  # LiteRT's INFO lines
                self._landmarker = create_landmarker(self._model, self.num_hands, self.min_confidence)
        return self._landmarker

    def _run(self) -> None:
        try:
            self._ensure_landmarker()
        except Exception as exc:  # noqa: BLE001 - no tracking, but the show goes on
            self.record_error("start", exc)
            self.status = f"failed: {exc}"
            return
        self.status = "running"
        seq = 0
        while not self._stop.is_set():
            seq, frame = self._box.get(seq, timeout=0.25)
            if frame is None:
                continue
            try:
                self.process(frame)
            except Exception as exc:  # noqa: BLE001 - a bad frame or a MediaPipe hiccup skips one frame
                self.record_error("track", exc)
        self._release()


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
