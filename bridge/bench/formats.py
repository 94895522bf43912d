"""``vrbridge bench formats``: load time and peak memory of a full-size StyleGAN2 in each file format.

A config-f generator (NVIDIA's full-size StyleGAN2: channel_base 32768, channel_max 512, 8 mapping layers;
seeded random weights) at 1024 px (``--quick``: 256 px; ``VRBRIDGE_BENCH_RESOLUTIONS`` overrides) is written
as a TensorFlow-era pickle ``(G, D, Gs)``, a rosinality train.py checkpoint (zip: g, g_ema, args; our file
has no Adam states and a stub discriminator, so real ones are about 3x bigger on disk but load the same
g_ema), a rosinality convert_weight.py file (legacy non-zip torch.save: g_ema, latent_avg) and our
safetensors + JSON. Each file is then loaded with ``load_network`` in a fresh process, so the process's
peak resident memory (VmHWM) belongs to that load alone; the row gives it and the growth over the
process's memory after importing torch. ``same_output``: the loaded generator renders one seeded latent
as the written one did.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

FORMATS = ("tensorflow-pickle", "rosinality-train", "rosinality-convert", "safetensors")


def _rss_mb() -> float:
    """This process's peak resident memory. VmHWM (Linux) starts afresh in a spawned process, whereas
    ru_maxrss can carry the parent's high-water mark across fork + exec."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0 if sys.platform != "darwin" else 2**20)


def _output_sum(generator) -> float:
    """A fingerprint of the generator's output for one seeded z at psi 1 (equal across lossless formats)."""
    import torch

    z = torch.randn([1, generator.z_dim], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return float(generator(z).double().sum())


def _write_all(resolution: int, folder: Path) -> tuple[dict[str, Path], float]:
    from bridge.bench.generator import full_config
    from bridge.stylegan.foreign_writers import write_rosinality, write_tf_pickle
    from bridge.stylegan.generator import Generator
    from bridge.stylegan.loader import save_network

    generator = Generator.from_config(full_config("stylegan2", resolution), seed=0)
    paths = {
        "tensorflow-pickle": write_tf_pickle(folder / "tf.pkl", generator),
        "rosinality-train": write_rosinality(folder / "ros_train.pt", generator, layout="train", zipped=True),
        "rosinality-convert": write_rosinality(folder / "ros_convert.pt", generator, layout="convert", zipped=False),
        "safetensors": save_network(generator, folder / "model.safetensors")[0],
    }
    return paths, _output_sum(generator)


def measure_load(path: str) -> dict:
    """In a fresh process: import torch, then time load_network(path) and read the peak memory."""
    import torch

    from bridge.stylegan.loader import load_network

    threads = os.environ.get("VRBRIDGE_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    rss0 = _rss_mb()
    start = time.perf_counter()
    generator = load_network(path, progress=False)
    load_s = time.perf_counter() - start
    rss1 = _rss_mb()
    return {"load_s": round(load_s, 2), "peak_MB": round(rss1, 1), "over_import_MB": round(rss1 - rss0, 1),
            "params_M": round(sum(p.numel() for p in generator.parameters()) / 1e6, 2),
            "output_sum": _output_sum(generator)}


def _in_fresh_process(path: Path) -> dict:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure_load, str(path)).result()


def run(args) -> dict:
    from bridge.bench.generator import _env_list

    quick = bool(getattr(args, "quick", False))
    resolutions = _env_list("VRBRIDGE_BENCH_RESOLUTIONS", int) or ((256,) if quick else (1024,))
    rows, notes = [], []
    for res in resolutions:
        with tempfile.TemporaryDirectory(prefix="vrb-formats-") as tmp:
            folder = Path(tmp)
            print(f"writing a {res}px config-f generator in {len(FORMATS)} formats ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            paths, expected = _write_all(res, folder)
            notes.append(f"{res}px: wrote all formats in {time.perf_counter() - start:.1f} s")
            for fmt in FORMATS:
                print(f"loading {fmt} ({res}px) in a fresh process ...", file=sys.stderr, flush=True)
                try:
                    row = _in_fresh_process(paths[fmt])
                except Exception as exc:  # report and go on (e.g. out of memory on a small machine)
                    notes.append(f"{fmt} {res}px: failed ({type(exc).__name__}: {str(exc)[:120]})")
                    continue
                same = abs(row.pop("output_sum") - expected) <= 1e-6 * max(1.0, abs(expected))
                rows.append({"format": fmt, "res": res, "file_MB": round(paths[fmt].stat().st_size / 2**20, 1),
                             **row, "same_output": same})
    notes.append("load_s = load_network(path) wall time (read + convert + build); peak_MB = the loading "
                 "process's maximum resident memory, over_import_MB = its growth after `import torch`.")
    return {"suite": "formats", "rows": rows, "notes": notes}
