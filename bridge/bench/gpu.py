"""``vrbridge bench gpu``: everything that needs a GPU, in one run of under 8 minutes, as one table.

Run it (``bash bench/gpu_check.sh``) whenever a CUDA machine is available and paste the table into
BENCHMARKS.md. ``--dry-run`` lists the steps without touching a GPU (CI checks that list). Every step is
bounded in time and a failing step becomes a row saying so; the run goes on.

Steps (STEPS below, in order):
  engine       ``vrbridge run``'s engine on the demo and the SG2 / SG3-T / SG3-R fixture pickles, 600 frames
               each: health ok, fast path on, fps;
  equality     the CUDA equality tests (``pytest -m gpu``), manipulations active included;
  layout       per layer: the dtype and the memory format the convolutions really see (fast path, batch 1);
  paths        plain vs fast vs compiled vs ONNX Runtime (CUDA, TensorRT providers) at 256/512/1024 px,
               timed with CUDA events, kernels per frame, peak memory;
  overlap      encode and render together vs alone (the engine's overlap schedule);
  fp16_sweep   fast path finite-value sweep over psi 0..1.5 with the const corrupted at full amount.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

STEPS = {
    "engine": "vrbridge run engine, demo + SG2/SG3-T/SG3-R pickles, 600 frames each: health, fast path, fps",
    "equality": "CUDA equality tests: python -m pytest -m gpu (fast == plain, manipulations active)",
    "layout": "per-layer dtype and the memory format the convolutions see (fast path, batch 1)",
    "paths": "plain / fast / compiled / ONNX Runtime (CUDA, TensorRT) at 256/512/1024: ms (CUDA events), "
             "kernels per frame, peak MB",
    "overlap": "encoder and synthesis together vs alone (ms each)",
    "fp16_sweep": "fast path output finite over psi 0..1.5 with const corruption at full amount",
}
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "data" / "stylegan"
ENGINE_FRAMES = 600
STEP_BUDGET_S = 110.0  # each step stops starting new work after this; the whole run stays under 8 minutes


def describe_steps() -> list[str]:
    return [f"{i}. {name}: {text}" for i, (name, text) in enumerate(STEPS.items(), 1)]


def run(args) -> dict:
    if getattr(args, "dry_run", False):
        return {"rows": [{"step": name, "what": text} for name, text in STEPS.items()],
                "notes": ["dry run: nothing executed"]}
    import torch

    device = getattr(args, "device", "cpu") or "cpu"
    if not device.startswith("cuda") or not torch.cuda.is_available():
        from bridge.cli import UserError

        raise UserError("bench gpu needs --device cuda[:N] on a machine with a CUDA device (try --dry-run)")
    quick = bool(getattr(args, "quick", False))
    rows: list[dict] = []
    for name in STEPS:
        start = time.monotonic()
        print(f"gpu check: {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(globals()[f"step_{name}"](device, quick, start + STEP_BUDGET_S))
        except Exception as exc:  # noqa: BLE001 - one broken step must not hide the others
            rows.append(_row(name, "-", "FAILED", f"{type(exc).__name__}: {str(exc)[:200]}"))
        rows.append(_row(name, "step time", f"{time.monotonic() - start:.1f} s", ""))
    notes = [f"GPU: {torch.cuda.get_device_name(torch.device(device))}; torch {torch.__version__}"]
    return {"rows": rows, "notes": notes}


def _row(step: str, case: str, result, detail: str = "") -> dict:
    return {"step": step, "case": case, "result": result, "detail": detail}


def _fixture_settings(device: str) -> list[tuple[str, dict]]:
    base = {"device": device, "preview": "off", "osc_in": "off", "oscquery": "off", "osc_out": [],
            "source": "pattern"}
    cases = [("demo", {**base, "network": ""})]
    for name in ("sg2_tiny", "sg3t_tiny", "sg3r_tiny"):
        cases.append((name, {**base, "network": str(FIXTURES / f"{name}.pkl")}))
    return cases


def step_engine(device: str, quick: bool, deadline: float) -> list[dict]:
    from bridge.startup import build_engine

    rows = []
    frames = 120 if quick else ENGINE_FRAMES
    for name, settings in _fixture_settings(device):
        if time.monotonic() > deadline:
            rows.append(_row("engine", name, "skipped", "step budget spent"))
            continue
        engine = build_engine(settings)
        engine.start()
        try:
            engine.run_forever(duration=60.0, max_frames=frames)
            health = engine.health()
        finally:
            engine.stop()
        fast = bool(getattr(engine.generator, "fast", False))
        ok = health["status"] == "ok" and health["frames"] >= frames and fast
        rows.append(_row("engine", name, "ok" if ok else "PROBLEM",
                         f"frames {health['frames']}, status {health['status']}, fast {fast}, fps {health['fps']}, "
                         f"schedule {health.get('schedule', '?')}, errors {health['errors']}"))
    return rows


def step_equality(device: str, quick: bool, deadline: float) -> list[dict]:
    root = Path(__file__).resolve().parents[2]
    if not (root / "tests").is_dir():
        return [_row("equality", "pytest -m gpu", "skipped", "no tests/ folder beside the package")]
    timeout = max(10.0, deadline - time.monotonic())
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"], cwd=root,
                          capture_output=True, text=True, timeout=timeout)
    last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    return [_row("equality", "pytest -m gpu", "ok" if proc.returncode == 0 else "FAILED", last)]


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


def step_paths(device: str, quick: bool, deadline: float) -> list[dict]:
    import tempfile

    import torch

    from bridge.bench.generator import full_config
    from bridge.stylegan import Generator

    rows = []
    for res in ((256,) if quick else (256, 512, 1024)):
        for kind in ("stylegan2", "stylegan3-t", "stylegan3-r"):
            if time.monotonic() > deadline:
                rows.append(_row("paths", f"{kind} {res}", "skipped", "step budget spent"))
                continue
            generator = Generator.from_config(full_config(kind, res), seed=0).to(device).eval()
            ws = generator.mapping(torch.zeros(1, 512, device=device), None, truncation_psi=0.7)
            with torch.no_grad():
                for path in ("plain", "fast", "compiled"):
                    generator.set_fast(path != "plain")
                    fn = (lambda: generator.synthesis(ws)) if path != "compiled" else _compiled(generator, ws)
                    torch.cuda.reset_peak_memory_stats()
                    ms = _cuda_ms(fn, 5 if res == 1024 else 10)
                    rows.append(_row("paths", f"{kind} {res} {path}", f"{ms:.2f} ms",
                                     f"kernels/frame {_kernels_per_frame(fn)}, peak "
                                     f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MB"))
            if res == 256:
                with tempfile.TemporaryDirectory() as tmp:
                    rows.extend(_onnx_rows(generator.cpu(), ws.cpu(), tmp, kind, res))
            del generator
            torch.cuda.empty_cache()
    return rows


def _compiled(generator, ws):
    import torch

    compiled = torch.compile(generator.synthesis, mode="max-autotune-no-cudagraphs", dynamic=False)
    start = time.monotonic()
    compiled(ws)
    print(f"  compile {time.monotonic() - start:.1f} s", file=sys.stderr)
    return lambda: compiled(ws)


def _onnx_rows(generator, ws, tmp: str, kind: str, res: int) -> list[dict]:
    import numpy as np

    from bridge.onnx_backend import OrtGenerator, export_onnx

    export_onnx(generator, tmp, progress=lambda *_: None)
    rows = []
    for provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
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
