"""The thread every frame analyser runs on: newest frame wins, its own rate, signals out, never raises.

    capture thread ──submit(frame)──► Latest box ──► analyser thread ──analyse(rgb, t)──► signal bus

The capture thread only drops the frame into a single-slot box (cheap, never blocks), so a slow analysis
(a depth network on a CPU) never holds the camera back and never works through a backlog: it takes the newest
frame each time it is free. ``max_hz`` caps how often it runs, so a cheap analysis does not eat the cores the
encoder and generator need. A failed analysis is counted and reported to the bus; the last values stay.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Mapping

import numpy as np

from bridge.frames import Frame, Latest

log = logging.getLogger(__name__)


class FrameAnalyser:
    """Base of the scene analysers: subclasses give ``source``, ``signal_specs()`` and ``analyse(rgb, t)``."""

    source = "scene"

    def __init__(self, bus, max_hz: float = 30.0) -> None:
        self.bus = bus
        self.max_hz = float(max_hz)
        self.analysed = 0
        self.errors = 0
        self.last_error = ""
        self.ms = 0.0
        self.values: dict[str, float] = {}
        self._box: Latest[Frame] = Latest()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- to implement ---------------------------------------------------------------------------
    def signal_specs(self) -> list:
        """The :class:`bridge.signals.SignalSpec` s this analyser publishes (declared once at start)."""
        raise NotImplementedError

    def analyse(self, rgb: np.ndarray, t: float) -> Mapping[str, float]:
        """Signal values of one (H, W, 3) uint8 RGB frame captured at monotonic time ``t``."""
        raise NotImplementedError

    # -- tracker interface (the engine's capture thread calls submit) -------------------------------
    def start(self) -> None:
        self.bus.declare(*self.signal_specs())
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"analyse-{self.source}", daemon=True)
        self._thread.start()

    def submit(self, frame: Frame) -> None:
        self._box.put(frame)

    def latest(self) -> None:
        """Analysers publish signals, not hand keypoints."""
        return None

    def close(self) -> None:
        self._stop.set()
        self._box.close()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def stats(self) -> dict[str, Any]:
        return {"analysed": self.analysed, "dropped": self._box.dropped, "ms": round(self.ms, 2),
                "errors": self.errors, "last_error": self.last_error}

    def describe(self) -> str:
        return f"{self.source} analyser (at most {self.max_hz:g} Hz)"

    # -- the loop -------------------------------------------------------------------------------
    def _loop(self) -> None:
        seq = 0
        period = 1.0 / self.max_hz if self.max_hz > 0 else 0.0
        while not self._stop.is_set():
            seq, frame = self._box.get(seq, timeout=0.1)
            if frame is None:
                continue
            started = time.monotonic()
            self.step(frame)
            rest = period - (time.monotonic() - started)
            if rest > 0:
                self._stop.wait(rest)

    def step(self, frame: Frame) -> dict[str, float] | None:
        """Analyse one frame and publish; on failure count, report and keep the last values."""
        t0 = time.perf_counter()
        try:
            values = {name: float(v) for name, v in self.analyse(frame.rgb, frame.t_capture).items()}
        except Exception as exc:  # noqa: BLE001 - a bad frame or a model fault must not stop the show
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if self.errors <= 3:
                log.warning("%s analysis failed on frame %d: %s", self.source, frame.index, self.last_error)
            self.bus.report_error(self.source, exc)
            return None
        ms = (time.perf_counter() - t0) * 1000.0
        self.ms = ms if not self.analysed else self.ms * 0.9 + ms * 0.1
        self.analysed += 1
        self.values.update(values)
        self.bus.publish_many(values, source=self.source)
        return values


def parse_size(text: str, default: tuple[int, int]) -> tuple[int, int]:
    """``WxH`` -> (w, h); empty -> ``default``. ValueError with the reason otherwise."""
    text = (text or "").strip().lower()
    if not text:
        return default
    width, sep, height = text.partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not (8 <= int(width) <= 4096) \
            or not (8 <= int(height) <= 4096):
        raise ValueError(f"{text!r} is not WxH with sides 8..4096 (e.g. 160x120)")
    return int(width), int(height)
