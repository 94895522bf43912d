"""``vrbridge bench gpu``: everything that needs a GPU, in one run of under 8 minutes, as one table.

Run it (``bash bench/gpu_check.sh``) whenever a CUDA machine is available and paste the table into
BENCHMARKS.md. ``--dry-run`` lists the steps without touching a GPU (CI checks that list). Every step is
bounded in time and a failing step becomes a row saying so; the run goes on.

Steps (STEPS below, in order):
  engine       ``vrbridge run``'s engine on the demo and the SG2 / SG3-T / SG3-R fixture pickles, 600 frames
               each: health ok, the synthesis replayed as a CUDA graph, fps;
  equality     the CUDA equality tests (``pytest -m gpu``), levers and bends active included;
  schedules    ``vrbridge bench engine --quick``: the engine's stage schedules against the paper's loop;
  layout       per layer: the dtype and the memory format the convolutions really see (fast path, batch 1);
  overlap      encode and render together vs alone (the engine's overlap schedule);
  fp16_sweep   fast path finite-value sweep over psi 0..1.5 with the const corrupted at full amount;
  paths        plain vs fast, eager and as a CUDA graph (bridge.cuda_graph), at 256/512/1024 px, then ONNX
               Runtime (CUDA, TensorRT providers) and torch.compile at 256, timed with CUDA events, kernels
               per frame, peak memory.
Each row is printed as it is made (standard error), so a run cut short still shows what it measured.
"""
from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

STEPS = {  # in order of what a short lease must not miss; the heaviest (paths) runs last
    "engine": "vrbridge run engine, demo + SG2/SG3-T/SG3-R pickles, 600 frames each: health, CUDA graph, fps",
    "equality": "CUDA equality tests: pytest -m gpu (fast == plain == CPU, levers and bends active, device moves)",
    "schedules": "vrbridge bench engine --quick on the GPU: engine schedules vs the paper's sequential loop",
    "layout": "per-layer dtype and the memory format the convolutions see (fast path, batch 1)",
    "overlap": "encoder and synthesis together vs alone (ms each)",
    "fp16_sweep": "fast path output finite over psi 0..1.5 with const corruption at full amount",
    "paths": "plain / fast, eager and CUDA graph, at 256/512/1024, then ONNX Runtime (CUDA, TensorRT) and "
             "torch.compile at 256: ms (CUDA events), kernels per frame, peak MB",
}
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "data" / "stylegan"
ENGINE_FRAMES = 600
# seconds after which each step starts no new work; together they keep the run under 8 minutes
STEP_BUDGET_S = {"engine": 80.0, "equality": 80.0, "schedules": 45.0, "layout": 20.0, "overlap": 20.0,
                 "fp16_sweep": 20.0, "paths": 90.0}


def describe_steps() -> list[str]:
    return [f"{i}. {name}: {text}" for i, (name, text) in enumerate(STEPS.items(), 1)]


def run(args) -> dict:
    if getattr(args, "dry_run", False):
        return {"rows": [{"step": name, "what": text} for name, text in STEPS.items()],
                "notes": ["dry run: nothing executed"]}
    from bridge.cli import UserError

    chosen = [name.strip() for name in (getattr(args, "steps", "") or "").split(",") if name.strip()] or list(STEPS)
    unknown = [name for name in chosen if name not in STEPS]
    if unknown:
        raise UserError(f"bench gpu --steps: unknown {', '.join(unknown)}; known: {', '.join(STEPS)}")
    import torch

    device = getattr(args, "device", "cpu") or "cpu"
    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise UserError("bench gpu needs --device cuda[:N] on a machine with a CUDA device (try --dry-run)")
    quick = bool(getattr(args, "quick", False))
    rows: list[dict] = []
    for name in chosen:
        start = time.monotonic()
        print(f"gpu check: {name} ...", file=sys.stderr, flush=True)
        try:
            for row in globals()[f"step_{name}"](device, quick, start + STEP_BUDGET_S[name]):
                rows.append(_shown(row))
        except Exception as exc:  # noqa: BLE001 - one broken step must not hide the others
            rows.append(_shown(_row(name, "-", "FAILED", f"{type(exc).__name__}: {str(exc)[:200]}")))
        rows.append(_shown(_row(name, "step time", f"{time.monotonic() - start:.1f} s", "")))
    notes = [f"GPU: {torch.cuda.get_device_name(torch.device(device))}; torch {torch.__version__}"]
    return {"rows": rows, "notes": notes}


def _row(step: str, case: str, result, detail: str = "") -> dict:
    return {"step": step, "case": case, "result": result, "detail": detail}


def _shown(row: dict) -> dict:
    print(f"  | {row['step']} | {row['case']} | {row['result']} | {row['detail']} |", file=sys.stderr, flush=True)
    return row


def _fixture_settings(device: str) -> list[tuple[str, dict]]:
    # demo_encoder: the pickles run with the random-init encoder too (no VGG16 weights travel to a GPU machine)
    base = {"device": device, "preview": "off", "osc_in": "off", "oscquery": "off", "osc_out": [],
            "source": "pattern", "source_fps": 120.0, "demo_encoder": True}  # 600 frames in ~5 s, if it keeps up
    cases = [("demo", {**base, "network": ""})]
    for name in ("sg2_tiny", "sg3t_tiny", "sg3r_tiny"):
        cases.append((name, {**base, "network": str(FIXTURES / f"{name}.pkl")}))
    return cases


def step_engine(device: str, quick: bool, deadline: float) -> Iterator[dict]:
    from bridge.startup import build_engine

    frames = 120 if quick else ENGINE_FRAMES
    for name, settings in _fixture_settings(device):
        if time.monotonic() > deadline:
            yield _row("engine", name, "skipped", "step budget spent")
            continue
        engine = build_engine(settings)
        engine.start()
        try:
            engine.run_forever(duration=60.0, max_frames=frames)
            health = engine.health()
        finally:
            engine.stop()
        graph = (health.get("services") or {}).get("GraphedSynthesis", {})
        ok = health["status"] == "ok" and health["frames"] >= frames and graph.get("status") == "ready"
        yield _row("engine", name, "ok" if ok else "PROBLEM",
                   f"frames {health['frames']}, status {health['status']}, fps {health['fps']}, plan "
                   f"{engine.plan_description}; CUDA graph {graph.get('status', 'absent')}, "
                   f"{graph.get('compiled_frames', 0)} frames; errors {health['errors']}")


def step_equality(device: str, quick: bool, deadline: float) -> list[dict]:
    """``pytest -m gpu`` over the test files that hold GPU tests (the others may import packages a GPU
    machine's image lacks, and their collection errors would hide these results)."""
    root = Path(__file__).resolve().parents[2]
    files = sorted(str(p.relative_to(root)) for p in (root / "tests").glob("test_*.py")
                   if "pytest.mark.gpu" in p.read_text(encoding="utf-8"))
    if not files:
        return [_row("equality", "pytest -m gpu", "skipped", "no GPU tests beside the package")]
    timeout = max(10.0, deadline - time.monotonic())
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": device.partition(":")[2] or os.environ.get("CUDA_VISIBLE_DEVICES", "0")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rfE", "-p", "no:cacheprovider", *files],
                          cwd=root, capture_output=True, text=True, timeout=timeout, env=env)
    lines = proc.stdout.strip().splitlines() or ["(no output)"]
    rows = [_row("equality", "pytest -m gpu", "ok" if proc.returncode == 0 else "FAILED", lines[-1])]
    rows += [_row("equality", line.split(" - ")[0][:120], "FAILED", line.partition(" - ")[2][:300])
             for line in lines if line.startswith(("FAILED", "ERROR"))]
    return rows


def step_schedules(device: str, quick: bool, deadline: float) -> list[dict]:
    """The engine's schedules against the paper's sequential loop on this GPU (``vrbridge bench engine``)."""
    import argparse

    from bridge.bench import engine as bench_engine

    result = bench_engine.run(argparse.Namespace(quick=True, device=device))
    rows = [_row("schedules", r["mode"], f"{r['fps']} fps, latency p50 {r['latency_p50_ms']} ms",
                 f"p95 {r['latency_p95_ms']} ms; encode {r['encode_ms']} / map {r['map_ms']} / synth "
                 f"{r['synth_ms']} / publish {r['publish_ms']} ms") for r in result["rows"]]
    return rows + [_row("schedules", "note", "-", note) for note in result["notes"][:2]]


def conv_layouts(generator, ws) -> list[tuple[str, str, bool]]:
    """(module name, input dtype, exactly channels_last) for every convolution one synthesis call runs."""
    import torch
    import torch.nn.functional as F

    seen: list[tuple[str, str, bool]] = []
    names = {id(m): n for n, m in generator.named_modules()}
    stack: list[str] = []
    def enter(module, _args) -> None:
        stack.append(names.get(id(module), "?"))

    def leave(*_) -> None:  # a forward hook that returned something would replace the module's output
        stack.pop()

    hooks = [m.register_forward_pre_hook(enter) for m in generator.synthesis.modules()]
    hooks += [m.register_forward_hook(leave) for m in generator.synthesis.modules()]
    originals = {name: getattr(F, name) for name in ("conv2d", "conv_transpose2d")}

    def wrap(name):
        def conv(x, *a, **k):
            exact = x.stride() == x.contiguous(memory_format=torch.channels_last).stride()
            seen.append((stack[-1] if stack else "?", str(x.dtype).replace("torch.", ""), exact))
            return originals[name](x, *a, **k)
        return conv

    try:
        for name in originals:
            setattr(F, name, wrap(name))
        with torch.no_grad():
            generator.synthesis(ws)
    finally:
        for name, fn in originals.items():
            setattr(F, name, fn)
        for h in hooks:
            h.remove()
    return seen


def step_layout(device: str, quick: bool, deadline: float) -> list[dict]:
    import torch

    from bridge.bench.generator import full_config
    from bridge.stylegan import Generator

    rows = []
    for kind in ("stylegan2", "stylegan3-t"):
        generator = Generator.from_config(full_config(kind, 256), seed=0).to(device).eval().set_fast(True)
        ws = generator.mapping(torch.zeros(1, 512, device=device), None)
        per_layer: dict[str, tuple[set, set]] = {}
        for layer, dtype, exact in conv_layouts(generator, ws):
            dtypes, formats = per_layer.setdefault(layer, (set(), set()))
            dtypes.add(dtype)
            formats.add("channels_last" if exact else "NCHW")
        for layer, (dtypes, formats) in per_layer.items():
            rows.append(_row("layout", f"{kind} {layer}", "/".join(sorted(dtypes)), "/".join(sorted(formats))))
    return rows


def _cuda_ms(fn, repeats: int) -> float:
    import torch

    fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / repeats


def _kernels_per_frame(fn) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.device_type.name == "CUDA")


def step_paths(device: str, quick: bool, deadline: float) -> Iterator[dict]:
    """Plain and fast, eager and as a CUDA graph, at every size first (cheap), then what costs a build: ONNX
    Runtime and torch.compile (of the fast path) at 256 px, until the step's budget is spent."""
    import torch

    from bridge.cuda_graph import GraphedSynthesis

    kinds = ("stylegan2", "stylegan3-t", "stylegan3-r")
    for res in ((256,) if quick else (256, 512, 1024)):
        for kind in kinds:
            if time.monotonic() > deadline:
                yield _row("paths", f"{kind} {res}", "skipped", "step budget spent")
                continue
            generator, ws = _full_generator(kind, res, device)
            for path in ("plain", "fast"):
                generator.set_fast(path == "fast")
                repeats = 5 if res == 1024 else 10
                yield _timed_row(f"{kind} {res} {path}", functools.partial(generator.synthesis, ws), repeats)
                graphed = GraphedSynthesis(generator)  # captured by its first call (the timing's warm-up)
                yield _timed_row(f"{kind} {res} {path}, CUDA graph", functools.partial(graphed, ws, "const"),
                                 repeats)
                if graphed.status != "ready":
                    yield _row("paths", f"{kind} {res} {path}, CUDA graph", "FAILED", graphed.status)
                graphed.close()
            del generator
            torch.cuda.empty_cache()
    for kind in kinds:
        if time.monotonic() > deadline:
            yield _row("paths", f"{kind} 256 onnxruntime / compiled", "skipped", "step budget spent")
            continue
        generator, ws = _full_generator(kind, 256, device)
        yield from _onnx_rows(generator, ws, kind, 256)
        generator.set_fast(True)  # torch.compile of the fp16 fast path (the plain path's CUDA graph row is above)
        try:
            compiled = _compiled(generator, ws)
        except Exception as exc:  # noqa: BLE001 - a compiler failure is a finding, not the end of the step
            yield _row("paths", f"{kind} 256 compiled (fast path)", "FAILED", f"{type(exc).__name__}: {str(exc)[:200]}")
        else:
            yield _timed_row(f"{kind} 256 compiled (fast path)", compiled, 10)
        del generator
        torch.cuda.empty_cache()


def _full_generator(kind: str, res: int, device: str):
    import torch

    from bridge.bench.generator import full_config
    from bridge.stylegan import Generator

    generator = Generator.from_config(full_config(kind, res), seed=0).to(device).eval().requires_grad_(False)
    with torch.no_grad():
        ws = generator.mapping(torch.zeros(1, 512, device=device), None, truncation_psi=0.7)
    return generator, ws


def _timed_row(case: str, fn, repeats: int) -> dict:
    import torch

    try:
        with torch.no_grad():
            fn()  # warm-up first: cuDNN's benchmark workspaces would count as the path's memory
            torch.cuda.reset_peak_memory_stats()
            ms = _cuda_ms(fn, repeats)
            kernels = _kernels_per_frame(fn)
    except Exception as exc:  # noqa: BLE001 - one path failing must not hide the others
        return _row("paths", case, "FAILED", f"{type(exc).__name__}: {str(exc)[:200]}")
    return _row("paths", case, f"{ms:.2f} ms",
                f"kernels/frame {kernels}, peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")


def _compiled(generator, ws):
    import torch

    compiled = functools.partial(torch.compile(generator.synthesis, dynamic=False), ws)
    start = time.monotonic()
    with torch.no_grad():
        compiled()
    print(f"  compile {time.monotonic() - start:.1f} s", file=sys.stderr)
    return compiled


def _onnx_rows(generator, ws, kind: str, res: int) -> list[dict]:
    import copy
    import tempfile

    import numpy as np
    import onnxruntime
    import torch

    from bridge.onnx_backend import OrtGenerator, export_onnx

    wanted = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    available = onnxruntime.get_available_providers()
    if not any(p in available for p in wanted):
        return [_row("paths", f"{kind} {res} onnxruntime", "unavailable",
                     f"onnxruntime {onnxruntime.__version__} here has only {', '.join(available)}")]
    rows = []
    generator, ws = copy.deepcopy(generator).cpu().set_fast(False), ws.cpu()  # the caller keeps its own
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(generator, tmp, progress=lambda *_: None)
        for provider in wanted:
            try:
                ortg = OrtGenerator(tmp, providers=[provider, "CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - provider missing in this onnxruntime build
                rows.append(_row("paths", f"{kind} {res} onnxruntime {provider}", "unavailable", str(exc)[:120]))
                continue
            ortg.synthesis(ws)
            start = time.perf_counter()
            for _ in range(10):
                ortg.synthesis(ws)
            ms = (time.perf_counter() - start) * 100.0
            with torch.no_grad():
                ref = generator.synthesis(ws)
            err = float(np.abs(ortg.synthesis(ws).numpy() - ref.numpy()).max())
            rows.append(_row("paths", f"{kind} {res} onnxruntime {provider}", f"{ms:.2f} ms",
                             f"ran on {ortg.active_provider}, max err vs torch {err:.2g}"))
    return rows


def step_overlap(device: str, quick: bool, deadline: float) -> list[dict]:
    import threading

    import numpy as np
    import torch

    from bridge.encoder import build_encoder
    from bridge.stylegan import Generator, demo_config

    generator = Generator.from_config(demo_config(), seed=0).to(device).eval().set_fast(True)
    encoder = build_encoder(z_dim=512, demo=True, device=device)
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    ws = generator.mapping(torch.zeros(1, 512, device=device), None)

    def encode_loop(n, out):
        t = time.perf_counter()
        for _ in range(n):
            encoder.encode(frame)
        out.append((time.perf_counter() - t) * 1000 / n)

    def synth_loop(n, out):
        t = time.perf_counter()
        with torch.no_grad():
            for _ in range(n):
                generator.synthesis(ws)
            torch.cuda.current_stream().synchronize()
        out.append((time.perf_counter() - t) * 1000 / n)

    n = 100
    alone_e, alone_s, both_e, both_s = [], [], [], []
    encode_loop(10, [])
    synth_loop(10, [])
    encode_loop(n, alone_e)
    synth_loop(n, alone_s)
    threads = [threading.Thread(target=encode_loop, args=(n, both_e)),
               threading.Thread(target=synth_loop, args=(n, both_s))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [_row("overlap", "encode alone / together", f"{alone_e[0]:.2f} / {both_e[0]:.2f} ms"),
            _row("overlap", "synthesis alone / together", f"{alone_s[0]:.2f} / {both_s[0]:.2f} ms")]


def step_fp16_sweep(device: str, quick: bool, deadline: float) -> list[dict]:
    import torch

    from bridge.bench.generator import full_config
    from bridge.stylegan import Generator

    rows = []
    for kind in ("stylegan2", "stylegan3-t"):
        generator = Generator.from_config(full_config(kind, 256), seed=0).to(device).eval().set_fast(True)
        bad = []
        with torch.no_grad(), _const_corrupted(generator):
            z = torch.randn(8, 512, generator=torch.Generator().manual_seed(0)).to(device)
            for psi in [i / 10 for i in range(16)]:
                img = generator(z, None, truncation_psi=psi)
                if not bool(torch.isfinite(img).all()):
                    bad.append(psi)
        rows.append(_row("fp16_sweep", kind, "ok" if not bad else "NON-FINITE", f"psi with non-finite output: {bad}"
                         if bad else "psi 0..1.5, 8 seeds, const corrupted at full amount"))
    return rows


@contextlib.contextmanager
def _const_corrupted(generator):
    """StyleGAN2: b4.const replaced by noise at full amount (the lever's extreme); SG3 has no const."""
    import torch

    if generator.arch != "stylegan2":
        yield
        return
    const = generator.synthesis.b4.const
    saved = const.detach().clone()
    with torch.no_grad():
        const.copy_(torch.randn_like(const) * saved.std() * 4)
    try:
        yield
    finally:
        with torch.no_grad():
            const.copy_(saved)


if __name__ == "__main__":  # pragma: no cover - bench/gpu_check.sh calls the CLI
    os.execvp(sys.executable, [sys.executable, "-m", "bridge", "bench", "gpu", *sys.argv[1:]])
