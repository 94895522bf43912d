"""The data that flows between stages, and the single-slot box that hands it over.

source --Frame--> tracker --Keypoints--> render --RenderedFrame--> sinks
                  encoder --Latents----^          --FrameReport--> telemetry

Every hand-off is a :class:`Latest` box: the newest value replaces an unread one (counted as dropped),
so a slow stage never builds a queue of stale frames.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")

# The three layer groups a camera latent can drive (coarse = 4-8 px layers, middle, fine): the encoder makes one z
# per group, the latent mixer maps each onto its style-layer range.
GROUPS: tuple[str, ...] = ("coarse", "middle", "fine")


@dataclasses.dataclass(frozen=True)
class Frame:
    """One captured picture. ``rgb`` is (H, W, 3) uint8 RGB, C-contiguous: BGR is converted at the source."""

    rgb: np.ndarray
    index: int
    t_capture: float  # time.monotonic() when it was captured
    source: str = ""


# MediaPipe's 21 hand landmarks, in its order; telemetry and OSC keypoint input use these names.
HAND_LANDMARK_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)


@dataclasses.dataclass(frozen=True)
class Hand:
    """One tracked hand. ``landmarks`` is (21, 3) float32: x, y normalised to the frame (0..1, y down), z depth."""

    landmarks: np.ndarray
    handedness: str  # "left" | "right", from the performer's point of view (see bridge.tracking)
    score: float


@dataclasses.dataclass(frozen=True)
class Keypoints:
    """All hands seen in one frame, and which one is the locked active hand (None: no active hand)."""

    hands: tuple[Hand, ...]
    active: int | None
    t_capture: float
    frame_index: int
    source: str = "mediapipe"
    aspect: float = 1.0  # width / height of the tracked frame: landmarks are normalised per axis

    @property
    def active_hand(self) -> Hand | None:
        return None if self.active is None else self.hands[self.active]


@dataclasses.dataclass(frozen=True)
class RenderedFrame:
    """One generated picture for the sinks. ``rgb`` is (H, W, 3) uint8; ``input_rgb`` the frame it came from."""

    rgb: np.ndarray
    index: int
    source_index: int
    t_capture: float
    t_rendered: float
    input_rgb: np.ndarray | None = None


@dataclasses.dataclass
class FrameReport:
    """What telemetry says about one rendered frame (built by the engine, sent by bridge.osc)."""

    index: int
    fps: float
    stage_ms: dict[str, float]
    dropped: int
    params: dict[str, Any]
    latents: dict[str, np.ndarray]  # group name -> z (z_dim,) float32
    keypoints: Keypoints | None = None
    features: dict[str, float] = dataclasses.field(default_factory=dict)
    health: dict[str, Any] = dataclasses.field(default_factory=dict)
    signals: dict[str, float] = dataclasses.field(default_factory=dict)  # every published signal's newest value


class Latest(Generic[T]):
    """A single-slot mailbox: ``put`` replaces, ``get`` waits for something newer than what you last saw."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._value: T | None = None
        self._seq = 0
        self._taken = 0
        self.taken_at = 0.0  # time.monotonic() of the last get that returned a value
        self.dropped = 0
        self.closed = False

    def put(self, value: T) -> None:
        with self._cond:
            if self._seq > self._taken:
                self.dropped += 1
            self._value = value
            self._seq += 1
            self._cond.notify_all()

    def get(self, after: int = 0, timeout: float | None = None) -> tuple[int, T | None]:
        """Return ``(seq, value)`` once a value with seq > ``after`` exists (or (after, None) on timeout/close)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._seq <= after and not self.closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return after, None
                self._cond.wait(remaining)
            if self._seq <= after:
                return after, None
            self._taken = self._seq
            self.taken_at = time.monotonic()
            self._cond.notify_all()  # for wait_taken
            return self._seq, self._value

    def wait_taken(self, timeout: float) -> bool:
        """Wait until the newest value has been taken by a get (True), or ``timeout`` / close (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._seq > self._taken and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self._seq <= self._taken

    def peek(self) -> T | None:
        with self._cond:
            return self._value

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
