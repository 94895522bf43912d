"""Where sound comes from: a sound card through PortAudio (sounddevice), or a file played in real time.

Both give mono float32 blocks of BLOCK samples at the analysis rate SR from ``read(timeout)`` (None when no
block is due yet). ``open`` raises :class:`AudioInputError` with the one line the user sees (missing device,
unsupported file); ``read`` raises it when a device vanishes mid-show. The service above retries either way,
so the show never stops for sound.

* ``--audio file:PATH``: any format libsndfile reads (WAV, FLAC, OGG, MP3 with libsndfile >= 1.1), decoded
  once into memory (at most MAX_FILE_S seconds), mixed to mono, resampled with soxr, and looped in real time:
  the same blocks a sound card would deliver, for rehearsal and tests.
* ``--audio NAME`` / ``--audio INDEX``: the first input device whose name contains NAME (case-insensitive) or
  PortAudio's device INDEX (``vrbridge devices`` lists them). Opened at SR where the device allows it, else at
  its own rate and resampled.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

import numpy as np

from bridge.audio.features import BLOCK, SR

log = logging.getLogger(__name__)
MAX_FILE_S = 3600.0  # a rehearsal file is decoded into memory: one hour of mono float32 at SR is 317 MB
STALE_S = 2.0  # a running device that delivers nothing for this long is treated as gone
QUEUE_BLOCKS = 64  # callback -> analysis hand-off (1.5 s); when full the oldest block is dropped
CATCH_UP_S = 0.5  # a file player that fell further behind than this restarts its clock instead of bursting


class AudioInputError(RuntimeError):
    """The audio input cannot be opened or has gone away. The message is the one line shown."""


def make_input(spec: str):
    """``file:PATH`` -> FileInput, anything else (a name or an index) -> DeviceInput."""
    spec = spec.strip()
    if spec.startswith("file:"):
        return FileInput(os.path.expanduser(spec[5:]))
    return DeviceInput(spec)


class FileInput:
    kind = "file"

    def __init__(self, path: str) -> None:
        self.path = path
        self.samples: np.ndarray | None = None
        self.loops = 0
        self._pos = 0
        self._next = 0.0

    def open(self) -> None:
        import soundfile

        if not os.path.isfile(self.path):
            raise AudioInputError(f"audio file:{self.path}: no such file")
        try:
            info = soundfile.info(self.path)
            if info.frames / max(info.samplerate, 1) > MAX_FILE_S:
                raise AudioInputError(f"audio file:{self.path}: longer than {MAX_FILE_S:g} s; cut a shorter "
                                      f"rehearsal file")
            data, rate = soundfile.read(self.path, dtype="float32", always_2d=True)
        except AudioInputError:
            raise
        except Exception as exc:  # soundfile.LibsndfileError (unknown format), RuntimeError, OSError
            raise AudioInputError(f"audio file:{self.path}: unsupported or unreadable ({_one_line(exc)}); "
                                  f"use WAV, FLAC, OGG or MP3") from None
        mono = data.mean(axis=1)
        if len(mono) < BLOCK:
            raise AudioInputError(f"audio file:{self.path}: shorter than one analysis block ({BLOCK / SR:.3f} s)")
        self.samples = resample(mono, rate, SR) if rate != SR else mono
        self._pos = 0
        self._next = time.monotonic()

    def read(self, timeout: float = 0.1) -> np.ndarray | None:
        if self.samples is None:
            raise AudioInputError(f"audio file:{self.path}: not open")
        now = time.monotonic()
        if now - self._next > CATCH_UP_S:
            self._next = now  # stalled: play on from here rather than burst through the backlog
        wait = self._next - now
        if wait > timeout:
            time.sleep(timeout)
            return None
        if wait > 0:
            time.sleep(wait)
        self._next += BLOCK / SR
        return self._take(BLOCK)

    def blocks(self):
        """Every whole block of one pass, as fast as the caller takes them (offline analysis: tests, bench)."""
        if self.samples is None:
            raise AudioInputError(f"audio file:{self.path}: not open")
        for start in range(0, len(self.samples) - BLOCK + 1, BLOCK):
            yield self.samples[start:start + BLOCK]

    def _take(self, count: int) -> np.ndarray:
        end = self._pos + count
        if end < len(self.samples):
            block = self.samples[self._pos:end]
            self._pos = end
            return block
        first = self.samples[self._pos:]  # wrap around: the loop is seamless
        self._pos = count - len(first)
        self.loops += 1
        return np.concatenate([first, self.samples[:self._pos]])

    def close(self) -> None:
        self.samples = None

    def describe(self) -> str:
        seconds = f", {len(self.samples) / SR:.1f} s" if self.samples is not None else ""
        return f"file {self.path} (looping in real time{seconds})"


class DeviceInput:
    kind = "device"

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.device_name = ""
        self.rate = SR
        self._stream = None
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._pending = np.zeros(0, np.float32)
        self._resampler = None
        self._finished = threading.Event()
        self._last_data = 0.0
        self.overflows = 0
        self.dropped = 0

    def open(self) -> None:
        sd = sounddevice_module()
        index, info = find_device(sd, self.spec)
        self.device_name = str(info["name"])
        self._finished.clear()
        self._pending = np.zeros(0, np.float32)
        self._queue = queue.Queue(maxsize=QUEUE_BLOCKS)
        try:
            self._stream = self._start(sd, index, SR)
            self.rate, self._resampler = SR, None
        except Exception:  # noqa: BLE001 - the device may not do 22.05 kHz: take its own rate and resample
            rate = int(info.get("default_samplerate") or 48000)
            try:
                self._stream = self._start(sd, index, rate)
            except Exception as exc:  # noqa: BLE001 - PortAudioError and friends: one line for the user
                raise AudioInputError(f"audio {self.device_name!r}: cannot open ({_one_line(exc)})") from None
            import soxr

            self.rate, self._resampler = rate, soxr.ResampleStream(rate, SR, 1, dtype="float32")
        self._last_data = time.monotonic()

    def _start(self, sd, index: int, rate: int):
        stream = sd.InputStream(device=index, channels=1, samplerate=rate, blocksize=BLOCK if rate == SR else 0,
                                dtype="float32", callback=self._callback, finished_callback=self._finished.set)
        stream.start()
        return stream

    def _callback(self, indata, frames, time_info, status) -> None:
        """PortAudio's thread: copy and hand over, nothing else (it must never block)."""
        if status:
            self.overflows += 1
        block = indata[:, 0].copy()
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            self.dropped += 1
            try:
                self._queue.get_nowait()
                self._queue.put_nowait(block)
            except (queue.Empty, queue.Full):
                pass

    def read(self, timeout: float = 0.1) -> np.ndarray | None:
        if self._stream is None:
            raise AudioInputError(f"audio {self.spec!r}: not open")
        deadline = time.monotonic() + timeout
        while len(self._pending) < BLOCK:
            try:
                chunk = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._check_alive()
                return None
            if self._resampler is not None:
                chunk = self._resampler.resample_chunk(chunk)
            self._pending = np.concatenate([self._pending, chunk])
            self._last_data = time.monotonic()
        block, self._pending = self._pending[:BLOCK], self._pending[BLOCK:]
        return block

    def _check_alive(self) -> None:
        if self._finished.is_set() or not getattr(self._stream, "active", True):
            raise AudioInputError(f"audio {self.device_name!r}: the device stopped (unplugged or taken away)")
        if time.monotonic() - self._last_data > STALE_S:
            raise AudioInputError(f"audio {self.device_name!r}: no sound data for {STALE_S:g} s")

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception as exc:  # noqa: BLE001 - a vanished device may refuse to close cleanly
                log.debug("audio: closing %s: %s", self.device_name, exc)

    def stats(self) -> dict[str, Any]:
        return {"device": self.device_name, "rate": self.rate, "overflows": self.overflows, "dropped": self.dropped}

    def describe(self) -> str:
        resample = f", resampled from {self.rate} Hz" if self._resampler is not None else ""
        return f"device {self.device_name or self.spec!r}{resample}"


def sounddevice_module():
    """sounddevice, or AudioInputError when PortAudio itself is missing (a system library)."""
    try:
        import sounddevice
    except OSError as exc:  # "PortAudio library not found"
        raise AudioInputError(f"audio input needs PortAudio ({exc}); Debian/Ubuntu: apt install libportaudio2, "
                              f"macOS: brew install portaudio") from None
    except ImportError:
        raise AudioInputError("audio input needs the sounddevice package: pip install sounddevice") from None
    return sounddevice


def input_devices(sd) -> list[tuple[int, dict]]:
    return [(i, dict(d)) for i, d in enumerate(sd.query_devices()) if int(d.get("max_input_channels", 0)) > 0]


def find_device(sd, spec: str) -> tuple[int, dict]:
    """(index, info) of the input named by ``spec``: an index, or a case-insensitive part of the name."""
    devices = input_devices(sd)
    if spec.isdigit():
        for index, info in devices:
            if index == int(spec):
                return index, info
    else:
        for index, info in devices:
            if spec.lower() in str(info["name"]).lower():
                return index, info
    names = ", ".join(f"{i}: {d['name']}" for i, d in devices) or "none"
    raise AudioInputError(f"audio: no input device {spec!r} (inputs here: {names}; see vrbridge devices)")


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    import soxr

    return soxr.resample(samples, rate, target).astype(np.float32)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
