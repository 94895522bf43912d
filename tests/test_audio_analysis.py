"""Audio analysis on real files: synthesised click tracks, noise bursts, a sox sweep, espeak-ng speech.

The files go through the real decoding path (soundfile/libsndfile, mono mix, soxr resampling) and the
analysis runs block by block exactly as live, only faster than real time (FileInput.blocks).
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from conftest import require_tool

soundfile = pytest.importorskip("soundfile")

from bridge.audio.beat import OnlineBeat  # noqa: E402
from bridge.audio.features import BLOCK, BLOCK_S, SR, BlockFeatures  # noqa: E402
from bridge.audio.gain import AutoGain  # noqa: E402
from bridge.audio.inputs import AudioInputError, FileInput  # noqa: E402

FILE_RATE = 44100  # files are written at a common rate so the resampler is exercised


def click_track(bpm: float, seconds: float, start: float = 0.3, seed: int = 0) -> np.ndarray:
    """Stereo clicks (5 ms noise bursts) on every beat over quiet noise."""
    rng = np.random.RandomState(seed)
    x = 0.003 * rng.randn(int(seconds * FILE_RATE))
    click = np.hanning(220) * rng.randn(220) * 0.7
    t = start
    while t < seconds - 0.01:
        i = int(t * FILE_RATE)
        x[i:i + len(click)] += click[: len(x) - i]
        t += 60.0 / bpm
    return np.stack([x, x * 0.8], axis=1).astype(np.float32)


def analyse(path) -> list[dict[str, float]]:
    source = FileInput(str(path))
    source.open()
    features = BlockFeatures()
    return [features.step(block) for block in source.blocks()]


@pytest.mark.parametrize("bpm", [96.0, 128.0])
def test_tempo_of_a_click_track_within_one_percent_and_beat_phase_right(tmp_path, bpm):
    path = tmp_path / f"clicks{bpm:g}.wav"
    soundfile.write(path, click_track(bpm, 12.0), FILE_RATE)
    source = FileInput(str(path))
    source.open()
    features, beat = BlockFeatures(), OnlineBeat(SR / BLOCK)
    for block in source.blocks():
        beat.step(features.step(block)["flux"])
    assert beat.locked, beat.confidence
    assert abs(beat.bpm - bpm) / bpm < 0.01, beat.bpm
    now = beat.frames * BLOCK_S  # end of the last block
    truth = ((now - 0.3) * bpm / 60.0) % 1.0
    error = abs((beat.phase() - truth + 0.5) % 1.0 - 0.5)
    assert error * 60.0 / bpm <= 2 * BLOCK_S, (beat.phase(), truth)  # within two blocks of the true beat


def test_onsets_of_noise_bursts_within_one_block_and_no_extra_ones(tmp_path):
    times = [0.7, 1.9, 2.6, 3.35, 4.8, 5.05]
    rng = np.random.RandomState(1)
    x = 0.002 * rng.randn(int(6.0 * FILE_RATE))
    for t in times:
        i = int(t * FILE_RATE)
        x[i:i + int(0.08 * FILE_RATE)] += 0.5 * rng.randn(int(0.08 * FILE_RATE)) * np.hanning(int(0.08 * FILE_RATE))
    path = tmp_path / "bursts.flac"
    soundfile.write(path, x.astype(np.float32), FILE_RATE)
    found = [i * BLOCK_S for i, f in enumerate(analyse(path)) if f["onset"]]  # start time of the onset block
    assert len(found) == len(times), found
    for truth, seen in zip(times, found):
        assert abs(seen - truth) <= BLOCK_S, (truth, seen)


def test_sox_sweep_lights_the_right_band(tmp_path):
    sox = require_tool("sox")
    path = tmp_path / "sweep.wav"
    subprocess.run([sox, "-n", "-r", str(FILE_RATE), str(path), "synth", "6", "sine", "40/10000", "vol", "0.5"],
                   check=True, capture_output=True)
    blocks = analyse(path)
    checked = {"low": 0, "mid": 0, "high": 0}
    for i, f in enumerate(blocks):
        freq = 40.0 * (10000.0 / 40.0) ** ((i + 0.5) * BLOCK_S / 6.0)  # sox's exponential sweep
        band = "low" if 60 < freq < 200 else "mid" if 400 < freq < 3000 else "high" if 5000 < freq < 9000 else None
        if band is None or i < 2:
            continue
        others = [f[name] for name in ("low", "mid", "high") if name != band]
        assert f[band] > 10 * max(others), (freq, f)
        checked[band] += 1
    assert min(checked.values()) >= 10, checked


def test_percussive_balance_tells_clicks_from_a_tone(tmp_path):
    tone = (0.4 * np.sin(2 * np.pi * 440 * np.arange(3 * FILE_RATE) / FILE_RATE)).astype(np.float32)
    soundfile.write(tmp_path / "tone.ogg", tone, FILE_RATE)
    soundfile.write(tmp_path / "clicks.wav", click_track(120.0, 3.0), FILE_RATE)
    tone_share = np.mean([f["percussive"] for f in analyse(tmp_path / "tone.ogg")[20:]])
    clicks = analyse(tmp_path / "clicks.wav")
    click_share = max(f["percussive"] for f in clicks[20:])
    assert tone_share < 0.1 < 0.6 < click_share, (tone_share, click_share)


def test_speech_from_espeak_ng_sits_in_the_mid_band(tmp_path):
    espeak = require_tool("espeak-ng")
    path = tmp_path / "speech.wav"
    subprocess.run([espeak, "-w", str(path), "the bridge listens to the band tonight"], check=True,
                   capture_output=True)
    blocks = [f for f in analyse(path) if f["rms"] > 0.01]
    assert len(blocks) > 20
    assert np.mean([f["mid"] for f in blocks]) > np.mean([f["high"] for f in blocks])
    onsets = sum(f["onset"] for f in analyse(path))
    assert 2 <= onsets <= 10, onsets  # a handful for seven words, not one per block


def test_auto_gain_fills_the_range_quiet_or_loud_and_freezes():
    for level in (0.02, 1.0):
        gain = AutoGain({"rms": 0.003}, release_s=2.0)
        outs = [gain.apply({"rms": level * (0.5 + 0.5 * np.sin(i / 10))}, BLOCK_S)["rms"] for i in range(400)]
        assert max(outs[200:]) > 0.95 and min(outs[200:]) < 0.1, level
    gain = AutoGain({"rms": 0.003}, release_s=1.0)
    gain.apply({"rms": 1.0}, BLOCK_S)
    gain.frozen = True
    for _ in range(200):  # 4.6 s of quiet: frozen, the gain does not climb back up
        quiet = gain.apply({"rms": 0.1}, BLOCK_S)["rms"]
    assert quiet == pytest.approx(0.1)
    gain.frozen = False
    for _ in range(200):
        quiet = gain.apply({"rms": 0.1}, BLOCK_S)["rms"]
    assert quiet > 0.9


def test_file_input_plays_in_real_time_and_loops(tmp_path):
    import time

    path = tmp_path / "short.wav"
    soundfile.write(path, np.linspace(-0.5, 0.5, 3 * BLOCK + 100, dtype=np.float32), SR)
    source = FileInput(str(path))
    source.open()
    t0 = time.monotonic()
    blocks = []
    while len(blocks) < 12:
        block = source.read(0.1)
        if block is not None:
            blocks.append(block)
    elapsed = time.monotonic() - t0
    assert 11 * BLOCK_S * 0.9 <= elapsed <= 12 * BLOCK_S + 1.0
    assert all(len(b) == BLOCK for b in blocks)
    assert source.loops >= 3
    assert blocks[3][100] == pytest.approx(blocks[0][0])  # the loop is seamless: sample 3*BLOCK+100 is sample 0


@pytest.mark.parametrize("content, message", [(b"this is not audio" * 100, "unsupported or unreadable"),
                                              (None, "no such file")])
def test_bad_audio_file_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "song.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioInputError, match=message) as info:
        FileInput(str(path)).open()
    assert "\n" not in str(info.value) and "song.wav" in str(info.value)
