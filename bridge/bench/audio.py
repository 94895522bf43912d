"""``vrbridge bench audio``: ms per analysis block (BLOCK samples = 23.2 ms of sound: the real-time budget),
per tempo re-estimate (every 0.5 s over 8 s), and the engine's fps with ``--audio file:...`` on.

The sound is a synthesised 120 bpm click track over noise with a sustained tone, so every stage (bands, flux,
onsets, percussive median, tempo) has work to do.
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from bridge.bench import timing_row
from bridge.bench.scene import engine_fps


def music(seconds: float) -> np.ndarray:
    from bridge.audio.features import SR

    rng = np.random.RandomState(0)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.05 * rng.randn(len(t)) + 0.2 * np.sin(2 * np.pi * 220 * t)
    for beat in np.arange(0.1, seconds - 0.05, 0.5):
        i = int(beat * SR)
        x[i:i + 200] += 0.8 * np.hanning(200) * rng.randn(200)
    return x.astype(np.float32)


def run(args) -> dict:
    from bridge.audio.beat import OnlineBeat
    from bridge.audio.features import BLOCK, BLOCK_S, SR, BlockFeatures
    from bridge.audio.service import SIGNALS, AudioService
    from bridge.signals import SignalBus

    seconds = 10.0 if args.quick else 60.0
    x = music(seconds)
    blocks = [x[i:i + BLOCK] for i in range(0, len(x) - BLOCK + 1, BLOCK)]
    features = BlockFeatures()
    features.step(blocks[0])  # imports and first allocations outside the timing
    feature_ms = []
    for block in blocks:
        t0 = time.perf_counter()
        features.step(block)
        feature_ms.append((time.perf_counter() - t0) * 1000.0)
    beat, estimate_ms = OnlineBeat(SR / BLOCK), []
    for value in np.random.RandomState(1).rand(len(blocks)):
        t0 = time.perf_counter()
        if beat.step(float(value)):
            estimate_ms.append((time.perf_counter() - t0) * 1000.0)
    service = AudioService(SignalBus(), None)
    service.bus.declare(*SIGNALS)
    process_ms = []
    for block in blocks:
        t0 = time.perf_counter()
        service.process(block)
        process_ms.append((time.perf_counter() - t0) * 1000.0)
    budget = f"budget {BLOCK_S * 1000:.1f} ms per block"
    rows = [timing_row("audio: block features", f"{BLOCK} @ {SR} Hz", feature_ms, note=budget),
            timing_row("audio: tempo re-estimate", "8 s window", estimate_ms, note="every 0.5 s"),
            timing_row("audio: whole block (service)", f"{BLOCK} @ {SR} Hz", process_ms,
                    note=f"features + gain + beat + publish; {budget}")]
    with tempfile.TemporaryDirectory() as folder:
        import soundfile

        path = os.path.join(folder, "music.wav")
        soundfile.write(path, x, SR)
        run_s = 4.0 if args.quick else 10.0
        engine = [engine_fps({}, run_s, args.device), engine_fps({"audio": f"file:{path}"}, run_s, args.device)]
    notes = [f"{seconds:g} s of synthesised music (120 bpm clicks, noise, a 220 Hz tone); latency = one block "
             f"({BLOCK_S * 1000:.1f} ms) + the block's analysis time",
             "engine: embedded demo network and encoder, test pattern 640x480 @ 30 fps, the file looping in real time"]
    notes.append(f"load average while measuring (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return {"rows": rows, "tables": {"engine fps": engine}, "notes": notes}
