"""The sound beside a recording: a WAV written while the video is, then muxed into the video file by ffmpeg.

The audio service hands every block it analyses to :meth:`AudioTrack.write` (its own thread). Blocks are
placed by wall-clock time from the moment the video's first frame was written, so a gap in the sound (a device
that vanished and came back) becomes silence of the same length and picture and sound stay in step. On close
ffmpeg copies the video stream and encodes the sound (AAC; PCM in .avi) into a temporary file that then
replaces the video; without ffmpeg the WAV stays beside the video and the log says so.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time

import numpy as np

log = logging.getLogger(__name__)
MAX_GAP_S = 0.1  # a shortfall beyond this (against the wall clock) is filled with silence
MUX_TIMEOUT_S = 600.0


class AudioTrack:
    def __init__(self, video_path: str, rate: int) -> None:
        self.video_path = video_path
        self.wav_path = os.path.splitext(video_path)[0] + ".audio.wav"
        self.rate = int(rate)
        self.samples = 0
        self.muxed = False
        self._file = None
        self._t0 = 0.0
        self._lock = threading.Lock()

    def start(self) -> None:
        """Called when the video's first frame is written: sound from now on belongs to the recording."""
        import soundfile

        with self._lock:
            self._file = soundfile.SoundFile(self.wav_path, "w", self.rate, 1, "PCM_16")
            self._t0 = time.monotonic()

    def write(self, block: np.ndarray) -> None:
        """One mono block at ``rate`` (the audio thread): silence first where sound is missing."""
        with self._lock:
            if self._file is None:
                return
            due = int((time.monotonic() - self._t0) * self.rate) - len(block)
            if due - self.samples > MAX_GAP_S * self.rate:
                gap = due - self.samples
                self._file.write(np.zeros(gap, np.float32))
                self.samples += gap
            self._file.write(np.asarray(block, np.float32))
            self.samples += len(block)

    def finish(self) -> None:
        """Close the WAV and mux it into the video (the sink thread, after the video file is complete)."""
        with self._lock:
            if self._file is None:
                return
            self._file.close()
            self._file = None
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            log.warning("recording: ffmpeg not found, so the sound stays beside the video in %s", self.wav_path)
            return
        root, ext = os.path.splitext(self.video_path)
        muxed = f"{root}.muxing{ext}"
        codec = ["-c:a", "pcm_s16le"] if ext.lower() == ".avi" else ["-c:a", "aac", "-b:a", "192k"]
        cmd = [ffmpeg, "-y", "-loglevel", "error", "-i", self.video_path, "-i", self.wav_path, "-map", "0:v:0",
               "-map", "1:a:0", "-c:v", "copy", *codec, "-shortest", muxed]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=MUX_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            done = None
        if done is None or done.returncode != 0:
            detail = "timed out" if done is None else (done.stderr.strip().splitlines() or ["failed"])[-1]
            log.warning("recording: muxing the sound failed (%s); it stays beside the video in %s", detail,
                        self.wav_path)
            if os.path.exists(muxed):
                os.remove(muxed)
            return
        os.replace(muxed, self.video_path)
        os.remove(self.wav_path)
        self.muxed = True
        log.info("recording: sound muxed into %s (%.1f s)", self.video_path, self.samples / self.rate)
