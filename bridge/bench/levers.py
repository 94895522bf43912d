"""``vrbridge bench levers``: what the generator's levers cost per frame, and the time of a PCA.

For a StyleGAN2 in NVIDIA's full-size config (random weights, z/w 512) at 256 and 1024 px (``--quick``: 256):
  - base:          one frame's mapping + synthesis, no lever active (the reference);
  - directions:    8 active ``dir.*`` slots added to w (random unit directions; what a PCA gives costs the same);
  - bends:         4 active bends (rotate, dilate, threshold, translate_x; all channels, circle mask on two)
                   on features the size of the four finest blocks' outputs (the worst case): what they add;
  - mix (moving):  ``model.mix`` changing every frame, so every weight is re-interpolated (a fader in motion);
  - mix (held):    ``model.mix`` unchanged: only the check that nothing needs rewriting;
  - swap:          ``model.swap`` taking the fine layers from network B: the one-off write (frames then cost base).
And the time of GANSpace PCA for a 512-d mapping network (8 layers, 10 000 samples; ``--quick`` 2 000) plus
SeFa for the same model. Environment: VRBRIDGE_BENCH_RESOLUTIONS (e.g. "256"), VRBRIDGE_BENCH_THREADS.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

from bridge.bench.generator import _env_list, full_config

RESOLUTIONS = (256, 1024)
BENDS = (("rotate", 0.1, "all"), ("dilate", 0.05, "circle"), ("threshold", 0.5, "all"), ("translate_x", 0.1, "circle"))
BUDGET_S = 3.0  # wall time spent on repeats per measurement (at least 2, at most 50)


def _timed(fn, sync, quick: bool) -> tuple[float, float, int]:
    """(median wall ms, median process-CPU ms, repeats) after one warm-up call.

    The CPU time counts every thread of this process and none of the others', so on a machine shared with
    other work it stays close to what the wall time would be on a quiet one (with one torch thread).
    """
    sync()
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    budget = BUDGET_S / (4 if quick else 1)
    repeats = 1 if first > 5.0 else max(2, min(50, int(budget / max(first, 1e-4))))
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls) * 1000.0, statistics.median(cpus) * 1000.0, repeats


def _snapshot(bend_layers=(), directions: int = 0, mix: float = 0.0, swap=(0, 0)) -> dict:
    from bridge.params import DEFAULTS

    snap = dict(DEFAULTS)
    for i in range(directions):
        snap[f"dir.{i}.amount"] = 1.0 + 0.1 * i
    for i, layer in enumerate(bend_layers):
        kind, amount, mask = BENDS[i]
        snap.update({f"bend.{i}.enable": True, f"bend.{i}.layer": layer, f"bend.{i}.kind": kind,
                     f"bend.{i}.amount": amount, f"bend.{i}.mask": mask})
    snap.update({"model.mix": mix, "model.swap": swap})
    return snap


def measure(resolution: int, quick: bool, device: str = "cpu") -> list[dict]:
    import numpy as np
    import torch

    from bridge.directions import Directions
    from bridge.latents import LatentMixer
    from bridge.model_mix import ModelMixer
    from bridge.stylegan import Generator

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    a = Generator.from_config(full_config("stylegan2", resolution), seed=0).to(device).eval()
    b = Generator.from_config(full_config("stylegan2", resolution), seed=1).to(device).eval()
    latents = LatentMixer(a, device)
    rng = np.random.RandomState(0)
    vectors = rng.randn(8, 512)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    latents.directions.set(Directions(vectors=vectors.astype(np.float32), scales=np.ones(8, np.float32),
                                      ratios=None, method="file", source="bench"))
    mixer = ModelMixer(a, b)
    mixer_params = sum(p.numel() for p in a.parameters())
    layers = [f"b{r}" for r in a.synthesis.block_resolutions[-4:]]  # the worst case: the four finest blocks

    def frame(snap):
        with torch.no_grad():
            return a.synthesis(latents.mix(None, snap), noise_mode="const")

    rows = []

    def row(lever: str, timing: tuple, what: str) -> None:
        wall, cpu, repeats = timing
        rows.append({"lever": lever, "res": resolution, "device": device, "wall_ms": round(wall, 2),
                     "cpu_ms": round(cpu, 2), "repeats": repeats, "what": what})

    base_snap = _snapshot()
    row("base", _timed(lambda: frame(base_snap), sync, quick), "mapping (cached static w) + synthesis, no lever")
    dir_snap = _snapshot(directions=8)
    w = latents.static_w(0).clone()
    row("8 directions", _timed(lambda: latents.directions.apply(w.clone(), dir_snap), sync, quick),
        "dir.* added to w (the lever's own cost)")
    bends = _bend_inputs(a, layers, device)
    row("4 bends", _timed(lambda: [bend(x) for bend, x in bends], sync, quick),
        f"the bends alone on {', '.join(layers)}-sized features (the lever's own cost)")
    mixes = iter(np.linspace(0.2, 0.8, 10_000))

    def moving():  # a new mix value every frame, as while a fader moves
        mixer.apply(a, {**base_snap, "model.mix": float(next(mixes))})

    row("mix (moving)", _timed(moving, sync, quick),
        f"re-interpolate {mixer.tensors} tensors, {mixer_params / 1e6:.1f} M values (the lever's own cost)")
    held = _snapshot(mix=0.5)
    mixer.apply(a, held)
    row("mix (held)", _timed(lambda: mixer.apply(a, held), sync, quick), "check only (the lever's own cost)")
    swap_snap = _snapshot(swap=(8, a.num_ws))
    wall, cpu = time.perf_counter(), time.process_time()
    mixer.apply(a, swap_snap)
    sync()
    row("swap fine from B", ((time.perf_counter() - wall) * 1000.0, (time.process_time() - cpu) * 1000.0, 1),
        "writing the swap once (then a frame costs base)")
    return rows


def _bend_inputs(generator, layers, device):
    """(bend, random features of that block's output shape) for each of the four benchmark bends."""
    import torch

    from bridge.bending import Bend

    out = []
    for (kind, amount, mask), layer in zip(BENDS, layers):
        block = getattr(generator.synthesis, layer)
        x = torch.randn(1, block.out_channels, block.resolution, block.resolution, device=device)
        out.append((Bend(kind, amount, mask=mask), x))
    return out


def pca_rows(quick: bool) -> list[dict]:
    from bridge.directions import pca_directions, sample_w, sefa_directions
    from bridge.stylegan import Generator

    g = Generator.from_config(full_config("stylegan2", 256), seed=0)
    samples = 2000 if quick else 10_000
    wall, cpu = time.perf_counter(), time.process_time()
    w = sample_w(g, samples)
    sampled_cpu = time.process_time()
    pca_directions(w)
    done_wall, done_cpu = time.perf_counter(), time.process_time()
    sefa_directions(g)
    sefa_wall, sefa_cpu = time.perf_counter() - done_wall, time.process_time() - done_cpu
    return [{"lever": f"PCA {samples} samples", "res": "512-d w", "device": "cpu",
             "wall_ms": round((done_wall - wall) * 1000.0, 1), "cpu_ms": round((done_cpu - cpu) * 1000.0, 1),
             "repeats": 1, "what": f"sampling {sampled_cpu - cpu:.2f} s CPU + eigen-decomposition "
                                   f"{done_cpu - sampled_cpu:.2f} s CPU (8-layer mapping, batches of 1000)"},
            {"lever": "SeFa", "res": "512-d w", "device": "cpu", "wall_ms": round(sefa_wall * 1000.0, 1),
             "cpu_ms": round(sefa_cpu * 1000.0, 1), "repeats": 1, "what": "all style affines of a 256 px model"}]


def run(args) -> dict:
    import torch

    device = getattr(args, "device", "cpu") or "cpu"
    quick = bool(getattr(args, "quick", False))
    threads = os.environ.get("VRBRIDGE_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    resolutions = _env_list("VRBRIDGE_BENCH_RESOLUTIONS", int) or ((256,) if quick else RESOLUTIONS)
    if device.startswith("cuda") and not torch.cuda.is_available():
        from bridge.cli import UserError

        raise UserError("--device cuda: no CUDA device is available")
    rows, notes = [], []
    for res in resolutions:
        print(f"measuring levers at {res}px on {device} ...", file=sys.stderr, flush=True)
        try:
            rows += measure(res, quick, device)
        except Exception as exc:  # e.g. out of memory at 1024: report, go on
            notes.append(f"{res}px on {device}: failed ({type(exc).__name__}: {str(exc)[:120]})")
    print("measuring PCA ...", file=sys.stderr, flush=True)
    rows += pca_rows(quick)
    notes.append("StyleGAN2 config-f widths, random weights, batch 1, psi 0.7, noise const; medians after a warm-up "
                 "call; a lever's own cost adds to the base frame; cpu_ms = this process's CPU time (all its threads)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    notes.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} logical cores, "
                 f"load average {load:.1f} at the end")
    return {"rows": rows, "notes": notes}
