"""Per-block audio features: level, three bands, spectral flux, onsets, percussive/harmonic balance.

Everything here is online and causal: :meth:`BlockFeatures.step` takes one block of BLOCK new samples and
returns that block's features from the last N_FFT samples, so a feature is out one block after the sound
(BLOCK / SR = 23.2 ms) plus the compute time (about a millisecond, BENCHMARKS.md). Nothing waits for future
samples.

What comes from librosa (kept, widely used, already a dependency of the audio layer) and why:
* the mel filter bank (``librosa.filters.mel``) that the flux is computed on, as librosa's own
  ``onset_strength`` does (log-compressed mel spectrum, positive first difference, mean over bands);
* the soft masks of harmonic/percussive separation (``librosa.util.softmask``, as ``librosa.decompose.hpss``
  uses them). The two medians of Fitzgerald's method are taken for the newest frame only (over the past 0.4 s
  per bin, and across 17 neighbouring bins): ``hpss`` itself filters a whole spectrogram, 30 ms a block here,
  more than the block lasts.
librosa's onset and beat functions themselves work on whole recordings (``beat_track`` needs the entire
onset envelope and looks ahead), so the online parts (onset picking, tempo, beat phase) are our own small
pieces on top of these building blocks: see :mod:`bridge.audio.beat`.
"""
from __future__ import annotations

import collections
import math

import numpy as np

SR = 22050  # analysis rate: everything is resampled to this (bands stop at its Nyquist, 11 kHz)
BLOCK = 512  # samples per analysis step: 23.2 ms, the latency bound
N_FFT = 1024  # window of the spectrum (46 ms, 21.5 Hz bins): the last two blocks
N_MELS = 64
BANDS = {"low": (20.0, 250.0), "mid": (250.0, 4000.0), "high": (4000.0, SR / 2)}
HPSS_FRAMES = 17  # past frames of the harmonic median (0.4 s)
PERCUSSIVE_BINS = 17  # neighbouring bins of the percussive median (365 Hz)
ONSET_HISTORY = 32  # flux frames (0.74 s) the adaptive onset threshold looks at
ONSET_MIN_GAP_S = 0.06  # refractory time after an onset
BLOCK_S = BLOCK / SR


class BlockFeatures:
    """Raw (un-normalised) features of each block. Call :meth:`step` from one thread, block after block."""

    def __init__(self, threshold: float = 6.0) -> None:
        import librosa.filters
        import librosa.util  # imported here: librosa loads submodules lazily, the first use costs seconds

        self._softmask = librosa.util.softmask
        self.threshold = threshold
        self._window = np.hanning(N_FFT).astype(np.float32)
        self._buffer = np.zeros(N_FFT, np.float32)
        freqs = np.fft.rfftfreq(N_FFT, 1.0 / SR)
        self._bands = {name: (freqs >= lo) & (freqs < hi) for name, (lo, hi) in BANDS.items()}
        # a band's power as the amplitude of the one sine that would carry it (Parseval, Hann window)
        self._band_scale = 2.0 / math.sqrt(N_FFT * float((self._window ** 2).sum()))
        self._mel = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS)
        self._prev_mel: np.ndarray | None = None
        self._spec = collections.deque(maxlen=HPSS_FRAMES)
        self._flux_history = collections.deque(maxlen=ONSET_HISTORY)
        self._since_onset = math.inf
        self.blocks = 0

    def step(self, block: np.ndarray) -> dict[str, float]:
        """Features of one block of BLOCK mono float samples in -1..1."""
        block = np.asarray(block, np.float32).reshape(-1)
        self._buffer = np.concatenate([self._buffer[len(block):], block])[-N_FFT:]
        magnitude = np.abs(np.fft.rfft(self._buffer * self._window)).astype(np.float32)
        power = magnitude ** 2
        out = {"rms": float(np.sqrt(np.mean(block ** 2))) if len(block) else 0.0}
        scale = self._band_scale
        for name, mask in self._bands.items():
            out[name] = float(np.sqrt(power[mask].sum())) * scale
        out["flux"] = flux = self._flux(power)
        out["onset"] = 1.0 if self._onset(flux) else 0.0
        out["percussive"] = self._percussive(magnitude)
        self.blocks += 1
        return out

    def _flux(self, power: np.ndarray) -> float:
        mel = np.log1p(1000.0 * (self._mel @ power))  # log compression, as onset_strength on a dB mel does
        prev, self._prev_mel = self._prev_mel, mel
        if prev is None:
            return 0.0
        return float(np.maximum(mel - prev, 0.0).mean())

    def _onset(self, flux: float) -> bool:
        """An onset is flux rising above median + threshold x MAD of the last 0.74 s (and a small floor)."""
        history = np.asarray(self._flux_history) if self._flux_history else np.zeros(1)
        self._flux_history.append(flux)
        self._since_onset += BLOCK_S
        median = float(np.median(history))
        spread = float(np.median(np.abs(history - median)))
        level = median + self.threshold * max(spread, 0.05 * median) + 0.02
        warm = len(history) >= ONSET_HISTORY // 4  # the first blocks after start hold the silence-to-sound step
        if warm and flux > level and self._since_onset >= ONSET_MIN_GAP_S and flux > float(history[-1]):
            self._since_onset = 0.0
            return True
        return False

    def _percussive(self, magnitude: np.ndarray) -> float:
        """Share of percussive energy in this block (0 = all tonal, 1 = all clicks and noise)."""
        self._spec.append(magnitude)
        if len(self._spec) < 3:
            return 0.0
        harmonic = np.median(np.stack(self._spec), axis=0)  # per bin, over the past frames
        padded = np.pad(magnitude, PERCUSSIVE_BINS // 2, mode="reflect")
        percussive = np.median(np.lib.stride_tricks.sliding_window_view(padded, PERCUSSIVE_BINS), axis=1)
        softmask = self._softmask
        p_mask = softmask(percussive, harmonic, power=2.0, split_zeros=False)
        h_mask = softmask(harmonic, percussive, power=2.0, split_zeros=False)
        p, h = float(((p_mask * magnitude) ** 2).sum()), float(((h_mask * magnitude) ** 2).sum())
        return p / (h + p) if h + p > 1e-12 else 0.0
