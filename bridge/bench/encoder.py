"""``vrbridge bench encoder``: milliseconds per frame of the visual encoder, by encode size and tap.

Times ``VisualEncoder.encode`` end to end (resize, normalise, VGG16 up to the tap, reduction, standardisation,
smoothing) on a 640x480 frame, and the backbone alone. The network is the seeded random-init VGG16: speed
does not depend on the weights' values, and real weights cannot be fetched here. Sizes: the paper's Table 1
input (256x256), its 4:3 encode size (426x320), and smaller 4:3 sizes considered for the embedded demo.
"""
from __future__ import annotations

import logging
import statistics
import time

import numpy as np
import torch

TAPS = ("conv4_1", "conv5_3", "avgpool")
SIZES = ((256, 256), (426, 320))
DEMO_SIZES = ((160, 120), (128, 96))


def run(args) -> dict:
    from bridge.encoder import DEMO_ENCODE_SIZE, build_encoder

    quick = bool(getattr(args, "quick", False))
    device = getattr(args, "device", "cpu") or "cpu"
    repeats = 3 if quick else 10
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    params = {"encoder.standardize": "running", "encoder.layout": "paper", "encoder.smoothing": 0.5}  # the most work
    thread_counts = sorted({1, torch.get_num_threads()}) if torch.device(device).type == "cpu" else [torch.get_num_threads()]
    before = torch.get_num_threads()
    rows = []
    quiet = logging.getLogger("bridge.encoder.encoder")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # one "random-init demo encoder" warning per configuration is noise here
    try:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            for size in SIZES + (() if quick else DEMO_SIZES):
                taps = TAPS if size in SIZES else ("conv4_1",)
                for tap in taps:
                    enc = build_encoder(taps=(tap,), demo=True, device=device, encode_size=size)
                    rows.append(_measure(enc, frame, params, repeats, threads, tap, size))
    finally:
        torch.set_num_threads(before)
        quiet.setLevel(level)
    notes = [
        f"device {device}; torch {torch.__version__}; threads = torch intra-op threads; {repeats} timed frames after 2 warm-up",
        "encode_ms: whole VisualEncoder.encode of a 640x480 uint8 frame (layout paper, running standardisation, EMA);"
        " backbone_ms: VGG16 forward up to the tap; random-init weights (speed does not depend on values)",
        "cpu_ms: CPU time of the whole process per encode (all threads); with 1 thread it is close to the wall time"
        " the same frame takes on an idle machine, so it stays comparable when other work shares the cores",
        f"demo encode size chosen: {DEMO_ENCODE_SIZE[0]}x{DEMO_ENCODE_SIZE[1]} (conv4_1)",
    ]
    return {"rows": rows, "notes": notes}


def _measure(enc, frame, params, repeats, threads, tap, size) -> dict:
    for i in range(2):
        enc.encode(frame, params, t=i / 30)
    encode_ms, cpu_ms, backbone_ms = [], [], []
    for i in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        enc.encode(frame, params, t=(i + 2) / 30)
        encode_ms.append((time.perf_counter() - start) * 1000.0)
        cpu_ms.append((time.process_time() - cpu_start) * 1000.0)
        backbone_ms.append(enc.stats()["ms_backbone"])
    median = statistics.median(encode_ms)
    return {
        "device": str(enc.device), "threads": threads, "size": f"{size[0]}x{size[1]}", "tap": tap,
        "encode_ms_median": round(median, 1), "encode_ms_p90": round(_p90(encode_ms), 1),
        "backbone_ms_median": round(statistics.median(backbone_ms), 1), "fps": round(1000.0 / median, 1),
        "cpu_ms_median": round(statistics.median(cpu_ms), 1),
    }


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
