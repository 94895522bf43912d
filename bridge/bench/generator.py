"""``vrbridge bench generator``: mapping and synthesis cost of full-size StyleGAN generators, batch 1.

Random weights in NVIDIA's full-size training configs (NVlabs/stylegan3 train.py):
  - stylegan2   (config-f): channel_base 32768, channel_max 512, 8 mapping layers;
  - stylegan3-t:            channel_base 32768, channel_max 512, 2 mapping layers;
  - stylegan3-r:            channel_base 65536, channel_max 1024, conv_kernel 1, radial filters;
at 256, 512 and 1024 px (``--quick``: 256 only). z_dim = w_dim = 512 as in every public model.

Each model runs the plain path and then the fast path (``Generator.set_fast(True)``): on CPU both are
float32 (the fast path still saves work, e.g. SG3's polyphase resampling) and each row is measured in a
fresh process, so the peak resident memory (``ru_maxrss``) belongs to that model alone; on CUDA the fast path
adds fp16 where NVIDIA uses it and channels_last, with ``torch.cuda.max_memory_allocated`` as the peak.
Environment knobs (``vrbridge bench`` has only --quick/--device/--json):
  VRBRIDGE_BENCH_THREADS      torch intra-op threads on CPU (default: torch's own choice);
  VRBRIDGE_BENCH_RESOLUTIONS  e.g. "512" or "256,1024" (default 256,512,1024; --quick 256);
  VRBRIDGE_BENCH_KINDS        e.g. "stylegan2" (default all three).
"""
from __future__ import annotations

import os
import statistics
import sys
import time

KINDS = ("stylegan2", "stylegan3-t", "stylegan3-r")
RESOLUTIONS = (256, 512, 1024)
BUDGET_S = 4.0  # time spent on timed repeats per model (at least MIN_REPEATS of them)
MIN_REPEATS = 2
SLOW_S = 10.0  # see _timed


def full_config(kind: str, resolution: int) -> dict:
    """NVIDIA's full-size config for ``kind`` at ``resolution`` (our config layout, see generator.py)."""
    synthesis = {"channel_base": 32768, "channel_max": 512}
    if kind == "stylegan2":
        arch, mapping_layers = "stylegan2", 8
        synthesis["fused_modconv_default"] = "inference_only"
    elif kind in ("stylegan3-t", "stylegan3-r"):
        arch, mapping_layers = "stylegan3", 2
        synthesis["magnitude_ema_beta"] = 0.5 ** (32 / 20000)  # batch 32, as train.py computes it
        if kind == "stylegan3-r":
            synthesis.update(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True)
    else:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    return {"arch": arch, "z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": int(resolution),
            "img_channels": 3, "mapping_kwargs": {"num_layers": mapping_layers}, "synthesis_kwargs": synthesis}


def _timed(fn, sync, quick: bool) -> tuple[float, int]:
    """Median milliseconds of fn() after one warm-up call; repeats fit the time budget.

    A call slower than SLOW_S is timed once more (1 repeat) and one slower than 4 * SLOW_S not again at
    all: the warm-up itself is reported (repeats 0), so a slow CPU still finishes the suite.
    """
    sync()
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    if first > 4 * SLOW_S:
        return first * 1000.0, 0
    budget = BUDGET_S / (4 if quick else 1)
    repeats = 1 if first > SLOW_S else max(MIN_REPEATS, min(50, int(budget / max(first, 1e-4))))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0, repeats


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def measure(kind: str, resolution: int, device: str = "cpu", fast: bool = False, quick: bool = False,
            seed: int = 0) -> dict:
    """One row: build the model with random weights, then time mapping and synthesis at batch 1."""
    import torch

    from bridge.device import synchronize
    from bridge.latents import seed_z
    from bridge.stylegan.generator import Generator

    threads = os.environ.get("VRBRIDGE_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    cuda = device.startswith("cuda")

    def sync() -> None:
        synchronize(device)

    rss0 = _rss_mb()
    start = time.perf_counter()
    generator = Generator.from_config(full_config(kind, resolution), seed=seed).to(device).eval()
    generator.set_fast(fast)
    build_s = time.perf_counter() - start
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    z = seed_z(seed, 512, device)
    with torch.no_grad():
        ws = generator.mapping(z, None, truncation_psi=0.7)
        mapping_ms, _ = _timed(lambda: generator.mapping(z, None, truncation_psi=0.7), sync, quick)
        synthesis_ms, repeats = _timed(lambda: generator.synthesis(ws, noise_mode="const"), sync, quick)
        img = generator.synthesis(ws, noise_mode="const")
    sync()
    finite = bool(torch.isfinite(img).all())
    row = {
        "model": kind, "res": resolution, "device": device,
        "precision": ("fp16 fast path" if cuda else "fp32 fast path") if fast else "fp32 plain",
        "threads": torch.get_num_threads() if not cuda else "-",
        "num_ws": generator.num_ws,
        "params_M": round(sum(p.numel() for p in generator.parameters()) / 1e6, 2),
        "build_s": round(build_s, 2),
        "mapping_ms": round(mapping_ms, 2),
        "synthesis_ms": round(synthesis_ms, 1),
        "fps": round(1000.0 / synthesis_ms, 2),
        "repeats": repeats,
    }
    if cuda:
        row["peak_MB"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        row["peak_kind"] = "cuda max allocated (inference)"
    else:
        rss1 = _rss_mb()
        row["peak_MB"] = round(rss1, 1)
        row["peak_kind"] = f"process maxrss (+{rss1 - rss0:.0f} MB over torch import)"
    if not finite:
        row["note"] = "non-finite output"
    return row


def _measure_in_fresh_process(kind: str, resolution: int, quick: bool, fast: bool) -> dict:
    """CPU rows run in a spawned process each: ru_maxrss is a high-water mark that never goes down."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure, kind, resolution, "cpu", fast, quick).result()


def _env_list(name: str, cast) -> tuple:
    """Comma-separated override from the environment (e.g. VRBRIDGE_BENCH_RESOLUTIONS=512)."""
    text = os.environ.get(name, "").strip()
    try:
        return tuple(cast(part.strip()) for part in text.split(",") if part.strip())
    except ValueError:
        from bridge.cli import UserError

        raise UserError(f"{name}={text!r} is not a comma-separated list") from None


def run(args) -> dict:
    import torch

    device = getattr(args, "device", "cpu") or "cpu"
    quick = bool(getattr(args, "quick", False))
    resolutions = _env_list("VRBRIDGE_BENCH_RESOLUTIONS", int) or ((256,) if quick else RESOLUTIONS)
    kinds = _env_list("VRBRIDGE_BENCH_KINDS", str) or KINDS
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        from bridge.cli import UserError

        raise UserError(f"VRBRIDGE_BENCH_KINDS: unknown {unknown}; known: {', '.join(KINDS)}")
    cuda = device.startswith("cuda")
    from bridge.device import DeviceUnavailable, resolve_device

    try:
        resolve_device(device)
    except DeviceUnavailable as exc:
        from bridge.cli import UserError

        raise UserError(f"--device: {exc}") from None
    rows, notes = [], []
    for kind in kinds:
        for res in resolutions:
            print(f"measuring {kind} {res}px on {device} ...", file=sys.stderr, flush=True)
            try:
                for fast in (False, True):  # plain reference path, then the fast path
                    if device != "cpu":  # GPUs report their own peak memory: measured in this process
                        rows.append(measure(kind, res, device, fast=fast, quick=quick))
                        if cuda:
                            torch.cuda.empty_cache()
                    else:
                        rows.append(_measure_in_fresh_process(kind, res, quick, fast))
            except Exception as exc:  # e.g. out of memory at 1024 on a small machine: report, go on
                notes.append(f"{kind} {res}px on {device}: failed ({type(exc).__name__}: {str(exc)[:120]})")
    notes.append("batch 1, noise_mode const, truncation psi 0.7; ms are medians after one warm-up call; "
                 "random weights in NVIDIA's full-size configs (see bridge/bench/generator.py)")
    if cuda:
        notes.append(f"GPU: {torch.cuda.get_device_name(0)}")
    else:
        notes.append(f"CPU: {os.cpu_count()} logical cores; torch {torch.__version__}")
    return {"rows": rows, "notes": notes}
