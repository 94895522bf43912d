"""``vrbridge bench encoder``: milliseconds per frame of the visual encoder by backbone, encode size and tap,
and the embedded demo with each backbone (frame rate and how lively the picture is).

Encoder rows time ``VisualEncoder.encode`` end to end (resize, normalise, backbone up to the tap, reduction,
standardisation, smoothing) on a 640x480 frame, and the backbone alone. Networks are seeded random-init ones:
speed does not depend on the weights' values, and real weights cannot be fetched here. Sizes: 128x96 (the
embedded demo's), 256x256 (the paper's Table 1 input) and 426x320 (its 4:3 encode size); DINOv2 takes the
multiples of 14 inside them (126x84, 252x252, 420x308).

Demo rows run the embedded demo's per-frame work (encode, map + mix, synthesise with the demo generator) over
one cycle of the built-in test pattern (every 10th of its 600 frames), and measure:

* ``demo_fps``: 1000 / (encode + map + synthesis) milliseconds of CPU time per frame on one thread, i.e. the
  frame rate of the paper's sequential loop on one idle core;
* ``z_step_deg``: mean angle between the z of consecutive sampled frames (1/3 s apart) -- StyleGAN's mapping
  normalises z, so its direction is what reaches the picture; ``noise_deg``: the angle ±3 grey levels of pixel
  noise cause (the jitter floor);
* ``picture_step``: mean absolute change of the output picture between those frames, in % of full scale.

The machine the figures in BENCHMARKS.md come from is shared, so CPU time (``cpu_ms``) is the comparable figure:
wall time there includes waiting for the cores.
"""
from __future__ import annotations

import logging
import statistics
import time

import numpy as np
import torch

# backbone -> its usual taps (shallower, default, deepest spatial or vector)
BACKBONE_TAPS = {
    "vgg16": ("conv4_1", "conv5_3", "avgpool"),
    "mobilenet_v3_large": ("block6", "block12", "block16"),
    "efficientnet_b0": ("stage3", "stage5", "stage8"),
    "dinov2_vits14": ("patch6", "patch12", "cls12"),
}
SIZES = ((128, 96), (256, 256), (426, 320))
PATTERN_FRAMES = tuple(range(0, 600, 10))  # one cycle of the test pattern, 1/3 s apart
QUICK_PATTERN_FRAMES = tuple(range(0, 600, 60))


def run(args) -> dict:
    from bridge.encoder import DEMO_ENCODER

    quick = bool(getattr(args, "quick", False))
    device = getattr(args, "device", "cpu") or "cpu"
    repeats = 2 if quick else 3
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    params = {"encoder.standardize": "running", "encoder.layout": "paper", "encoder.smoothing": 0.5}  # the most work
    on_cpu = torch.device(device).type == "cpu"
    before = torch.get_num_threads()
    quiet = logging.getLogger("bridge.encoder.encoder")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # one "random-init demo encoder" warning per configuration is noise here
    rows, demo_rows = [], []
    try:
        if on_cpu:
            torch.set_num_threads(1)
        for backbone, taps in BACKBONE_TAPS.items():
            for size in SIZES[:1] if quick else SIZES:
                for tap in taps:
                    enc = _encoder(backbone, (tap,), size, device)
                    rows.append(_measure(enc, frame, params, repeats, tap, size))
        for backbone in BACKBONE_TAPS:
            demo_rows.append(measure_demo(backbone, device, QUICK_PATTERN_FRAMES if quick else PATTERN_FRAMES))
        runtime_rows = measure_runtimes(frame, params, device, repeats=5 if quick else 20) if on_cpu else []
    finally:
        torch.set_num_threads(before)
        quiet.setLevel(level)
    threads = 1 if on_cpu else torch.get_num_threads()
    notes = [
        f"device {device}; torch {torch.__version__}; {threads} torch thread(s); {repeats} timed frames after 2 warm-up",
        "encode_ms: whole VisualEncoder.encode of a 640x480 uint8 frame (layout paper, running standardisation, "
        "EMA); backbone_ms: the network up to the tap; random-init weights (speed does not depend on values)",
        "cpu_ms: CPU time of the process per encode; on one thread it is the wall time of an idle core, so it "
        "stays comparable when other work shares the machine",
        f"demo encoder chosen: {DEMO_ENCODER.backbone} {'+'.join(DEMO_ENCODER.taps)} at "
        f"{DEMO_ENCODER.size[0]}x{DEMO_ENCODER.size[1]} ({DEMO_ENCODER.why})",
    ]
    return {"rows": rows, "tables": {"embedded demo with each backbone": demo_rows,
                                     "backbone runtime, torch vs onnxruntime": runtime_rows}, "notes": notes}


RUNTIME_CASES = (("efficientnet_b0", "stage6", (128, 96)), ("mobilenet_v3_large", "block12", (128, 96)),
                 ("efficientnet_b0", "stage5", (426, 320)))


def measure_runtimes(frame, params, device: str = "cpu", repeats: int = 20) -> list[dict]:
    """The same encoder with its backbone in torch and in ONNX Runtime (bridge/encoder/ort_runtime.py), timed in
    alternating frames so both see the same machine; ms = wall time of the whole encode, medians."""
    from bridge.encoder import build_encoder

    rows = []
    for backbone, tap, size in RUNTIME_CASES:
        encoders = {runtime: build_encoder(backbone=backbone, taps=(tap,), demo=True, device=device, encode_size=size,
                                           runtime=runtime) for runtime in ("torch", "onnxruntime")}
        times: dict[str, list[float]] = {runtime: [] for runtime in encoders}
        for i in range(repeats + 2):
            for runtime, enc in encoders.items():
                start = time.perf_counter()
                enc.encode(frame, params, t=i / 30)
                if i >= 2:
                    times[runtime].append((time.perf_counter() - start) * 1000.0)
        torch_ms, ort_ms = (statistics.median(times[r]) for r in ("torch", "onnxruntime"))
        rows.append({"backbone": backbone, "tap": tap, "size": f"{size[0]}x{size[1]}",
                     "threads": torch.get_num_threads(), "torch_ms": round(torch_ms, 2),
                     "onnxruntime_ms": round(ort_ms, 2), "speedup": round(torch_ms / ort_ms, 2)})
    return rows


def _encoder(backbone: str, taps: tuple[str, ...], size: tuple[int, int], device: str):
    from bridge.encoder import build_encoder

    return build_encoder(backbone=backbone, taps=taps, demo=True, device=device, encode_size=size)


def _measure(enc, frame, params, repeats, tap, size) -> dict:
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
        "backbone": enc.backbone.name, "size": f"{enc.encode_size[0]}x{enc.encode_size[1]}", "tap": tap,
        "cpu_ms": round(statistics.median(cpu_ms), 1), "encode_ms_median": round(median, 1),
        "encode_ms_p90": round(_p90(encode_ms), 1), "backbone_ms_median": round(statistics.median(backbone_ms), 1),
        "fps": round(1000.0 / median, 1),
    }


def measure_demo(backbone: str, device: str = "cpu", frames: tuple[int, ...] = PATTERN_FRAMES) -> dict:
    """The embedded demo's per-frame work with ``backbone`` (its demo taps and size) over test-pattern frames."""
    from bridge import imageops
    from bridge.encoder import DEMO_ENCODER, build_encoder
    from bridge.latents import LatentMixer
    from bridge.params import ParamStore
    from bridge.sources.pattern import render_pattern
    from bridge.stylegan import Generator, demo_config

    generator = Generator.from_config(demo_config(), seed=0).to(device).eval().requires_grad_(False)
    enc = build_encoder(z_dim=generator.z_dim, backbone=backbone, demo=True, device=device,
                        encode_size=DEMO_ENCODER.size)
    mixer = LatentMixer(generator, device)
    snapshot = ParamStore().snapshot()
    pictures = [render_pattern(i, (640, 480)) for i in frames]
    encode_cpu, render_cpu, zs, outputs = [], [], [], []
    with torch.inference_mode():
        for i, rgb in enumerate([pictures[0]] + pictures):  # the first one warms up
            cpu0 = time.process_time()
            latents = enc.encode(rgb, snapshot, t=i / 3)
            cpu1 = time.process_time()
            out = imageops.tensor_to_rgb(generator.synthesis(mixer.mix(latents, snapshot), noise_mode="const"))
            cpu2 = time.process_time()
            if i:
                encode_cpu.append((cpu1 - cpu0) * 1000.0)
                render_cpu.append((cpu2 - cpu1) * 1000.0)
                zs.append(latents["coarse"].float().cpu().clone())
                outputs.append(out.astype(np.float32))
        noisy = _noisy(pictures[len(pictures) // 2])
        enc.reset()
        z_clean = enc.encode(pictures[len(pictures) // 2], snapshot)["coarse"].float().cpu().clone()
        enc.reset()
        z_noisy = enc.encode(noisy, snapshot)["coarse"].float().cpu()
    encode_ms, render_ms = statistics.median(encode_cpu), statistics.median(render_cpu)
    return {
        "backbone": backbone, "taps": "+".join(t.name for t in enc.taps),
        "size": f"{enc.encode_size[0]}x{enc.encode_size[1]}", "encode_cpu_ms": round(encode_ms, 1),
        "map_synth_cpu_ms": round(render_ms, 1), "demo_fps": round(1000.0 / (encode_ms + render_ms), 1),
        "z_step_deg": round(statistics.fmean(_angle(a, b) for a, b in zip(zs, zs[1:])), 2),
        "noise_deg": round(_angle(z_clean, z_noisy), 2),
        "picture_step": round(statistics.fmean(float(np.abs(a - b).mean()) / 2.55
                                               for a, b in zip(outputs, outputs[1:])), 2),
    }


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    cos = torch.nn.functional.cosine_similarity(a, b, dim=0).clamp(-1.0, 1.0)
    return float(torch.rad2deg(torch.arccos(cos)))


def _noisy(rgb: np.ndarray) -> np.ndarray:
    noise = np.random.default_rng(0).integers(-3, 4, rgb.shape)
    return np.clip(rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
