"""The synthesis network compiled ahead of time (AOTInductor), built in the background and swapped in when ready.

Why: on the CPU, Inductor's fused kernels run the embedded demo's synthesis about twice as fast as the eager
fast path (BENCHMARKS.md, issue 16), but compiling takes about a minute per network and torch.compile inside
the engine's own process holds the GIL for seconds at a time (measured: a 5.2 s stall of the eager frames
rendered beside it). So:

1. at start the engine renders eagerly at once, while a child process at low priority exports the synthesis
   network (plain path, float32, batch 1, noise const) and compiles it into one ``.pt2`` package in the cache
   folder, named by a hash of the weights, the config and the torch version (the second start finds it);
2. a thread of this process loads the package and checks it against the eager network's output on a probe the
   child saved (>= 60 dB PSNR, the ONNX export's bar); a package that fails is deleted and never used;
3. in the engine, the package then races the eager network on the first frames it covers (RACE_FRAMES) and is
   kept only if it is faster: Inductor wins on narrow networks, our eager CPU fast path on wide ones;
4. from then on every frame the graph covers runs compiled; any other frame runs eagerly, decided per frame
   at no cost.

What the graph covers: ws [1, num_ws, w_dim] float32 on the CPU, noise_mode const, the network's weights as
they were at start, and the two tensor levers as inputs (StyleGAN2's ``b4.const``, StyleGAN3's
``input.transform``, read every frame). Random noise, network bending, and a lever that edits the weights
(model mixing) run eagerly; after the weights were edited the compiled graph stays off until the next start.

torch's package loader keeps the GIL for a whole call (torch 2.13), which froze the engine's other threads for a
frame at a time (bench/gil_hold.py); the package therefore runs through its C entry point without the GIL
(bridge.aot_runner), checked on the probe, with torch's loader as the fallback.

The package holds native code the child's compiler wrote into the cache folder (as Inductor's own cache does):
that folder must be as trusted as the Python environment. Nothing from a model file is executed.
"""
from __future__ import annotations

import importlib
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

PROBE_MIN_PSNR_DB = 60.0
# Once loaded, the engine's package races the eager network on the render thread: covered frames alternate
# between the two (timed under the same load) until each ran RACE_FRAMES after a first, uncounted one (the
# eager side's may build its caches: Winograd kernels, buffers), and the package is kept only if its median is
# under RACE_MARGIN of the eager one's. Inductor wins on narrow networks (the demo: ~2x) but the eager CPU
# fast path (Winograd, banded filters) beats the compiled plain path on wide ones (SG2 config-f at 256 px:
# ~1.0 s against ~1.7 s). A side more than RACE_DECISIVE times slower loses at once.
RACE_FRAMES = 3
RACE_MARGIN = 0.9
RACE_DECISIVE = 2.0
BUILD_TIMEOUT_S = 1800.0  # a compile that takes longer than this is given up (the show stays eager)
LOG_TAIL_CHARS = 300


class AotSynthesis:
    """The engine's compiled synthesis: ``__call__(ws, noise_mode)`` returns the image, or None when this frame
    must run eagerly (not ready yet, or the frame needs something the graph does not cover). A service of the
    engine (start / close / stats)."""

    def __init__(self, generator, race: bool = False) -> None:
        """race: time the package against the eager network on the first covered frames and keep the faster
        (the engine's use); without it every covered frame runs compiled (benchmarks and tests)."""
        from bridge.stylegan.export_graph import FrameCoverage

        self.generator = generator
        self.path = package_path(generator)
        self.status = "waiting"
        self.frames = 0
        self.build_s: float | None = None
        self.runner = ""  # how the package runs once loaded: "gil-free" (bridge.aot_runner) or "torch loader"
        self._coverage = FrameCoverage(generator, "cpu")
        self._race: dict[str, list[float]] | None = {"eager": [], "compiled": []} if race else None
        self.race_ms: dict[str, float] = {}  # the race's medians, once decided
        self._model = None
        self._child: subprocess.Popen | None = None
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    # -- service --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._prepare, name="aot-synthesis", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.kill()
            child.wait(timeout=5)

    def stats(self) -> dict:
        return {"status": self.status, "package": str(self.path), "compiled_frames": self.frames,
                "build_s": self.build_s, "runner": self.runner, "race_ms": dict(self.race_ms)}

    def wait(self, timeout: float) -> bool:
        """Block until the package is ready or has failed (benchmarks and tests; the engine never waits).
        Returns whether it is ready."""
        deadline = time.monotonic() + timeout
        while self.status != "ready" and not self.status.startswith("failed") and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.status == "ready"

    # -- per frame ------------------------------------------------------------------------------
    def __call__(self, ws: torch.Tensor, noise_mode: str) -> torch.Tensor | None:
        model = self._model
        if model is None or not self.covers(ws, noise_mode):
            return None
        if self._race is not None:
            return self._race_frame(model, ws, noise_mode)
        self.frames += 1
        return model(ws, self._coverage.lever)  # the live lever tensor (const or transform), edited in place

    def _race_frame(self, model, ws: torch.Tensor, noise_mode: str) -> torch.Tensor:
        """One covered frame of the race (see RACE_FRAMES): the side that ran fewer frames renders it, timed."""
        times = self._race
        side = "eager" if len(times["eager"]) <= len(times["compiled"]) else "compiled"
        start = time.perf_counter()
        if side == "eager":
            img = self.generator.synthesis(ws, noise_mode=noise_mode)
        else:
            img = model(ws, self._coverage.lever)
            self.frames += 1
        times[side].append(time.perf_counter() - start)
        counted = {k: v[1:] for k, v in times.items()}  # each side's first frame warms it up
        if counted["compiled"]:
            eager, compiled = (statistics.median(counted[k]) for k in ("eager", "compiled"))
            if len(counted["compiled"]) >= RACE_FRAMES or max(eager / compiled, compiled / eager) > RACE_DECISIVE:
                self._decide(eager, compiled)
        return img

    def _decide(self, eager: float, compiled: float) -> None:
        self._race = None
        self.race_ms = {"eager": round(eager * 1000, 1), "compiled": round(compiled * 1000, 1)}
        if compiled < eager * RACE_MARGIN:
            log.info("compiled synthesis: %.1f ms a frame against %.1f ms eager; compiled from now on",
                     compiled * 1000, eager * 1000)
            return
        self._model = None
        self.status = (f"eager: faster than the compiled graph ({eager * 1000:.0f} ms against "
                       f"{compiled * 1000:.0f} ms a frame)")
        log.info("compiled synthesis not used: %s", self.status)

    def covers(self, ws: torch.Tensor, noise_mode: str = "const") -> bool:
        """Whether the compiled graph computes what the eager network would for this frame."""
        return self._coverage.covers(ws, noise_mode)

    # -- background -----------------------------------------------------------------------------
    def _prepare(self) -> None:
        try:
            if not self.path.is_file():
                self._build()
            if not self._closed.is_set():
                self._load()
        except Exception as exc:  # noqa: BLE001 - the show goes on eagerly
            self.status = f"failed: {exc}"
            log.warning("compiled synthesis unavailable (%s); synthesis stays eager", exc)

    def _build(self) -> None:
        self.status = "compiling"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        spec = self.path.with_suffix(".spec.pt")
        torch.save({"config": self.generator.config, "synthesis": self.generator.synthesis.state_dict()}, spec)
        log.info("compiling the synthesis network in the background (about a minute once; cached in %s)",
                 self.path.parent)
        started = time.monotonic()
        build_log = self.path.with_suffix(".log")
        try:
            with open(build_log, "w") as out:
                self._child = subprocess.Popen(
                    [sys.executable, "-m", "bridge.aot", str(spec), str(self.path)], stdout=out,
                    stderr=subprocess.STDOUT, env=_child_env(), preexec_fn=_lower_priority if os.name == "posix" else None)
                code = self._child.wait(timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait(timeout=5)
            raise RuntimeError(f"compiling took over {BUILD_TIMEOUT_S:.0f} s") from None
        finally:
            spec.unlink(missing_ok=True)
        if self._closed.is_set():
            return
        if code != 0 or not self.path.is_file():
            raise RuntimeError(f"the compiler exited with {code}: {_tail(build_log)} (log: {build_log})")
        self.build_s = round(time.monotonic() - started, 1)

    def _load(self) -> None:
        """The GIL-free runner (bridge.aot_runner) if it agrees with the probe, else torch's loader; a package
        that torch's loader also gets wrong is deleted (the next start rebuilds it)."""
        from bridge import aot_runner

        self.status = "loading"
        probe = torch.load(probe_path(self.path), map_location="cpu", weights_only=True)
        model = aot_runner.load(self.path, num_inputs=2)
        if model is not None and _probe_db(model, probe) < PROBE_MIN_PSNR_DB:
            log.warning("compiled synthesis: the GIL-free runner disagrees with the probe; torch's loader runs it")
            model = None
        if model is None:
            # Inductor's loader modules are imported only here, for the fallback: the GIL-free runner needs none
            # of them (it loads in ~35 ms without stalling the render thread), while importing them costs ~2.7 s
            # of start-up, or ~0.5 s of stalled frames when imported mid-show (measured), this once
            importlib.import_module("torch._inductor.package")  # not ``import torch...``: it would rebind torch here
            model = torch._inductor.aoti_load_package(str(self.path))
            db = _probe_db(model, probe)
            if db < PROBE_MIN_PSNR_DB:
                for stale in (self.path, *aot_runner.library_copies(self.path)):
                    stale.unlink(missing_ok=True)
                raise RuntimeError(f"the compiled package differs from the eager network ({db:.1f} dB < "
                                   f"{PROBE_MIN_PSNR_DB:.0f} dB on the probe); deleted, the next start rebuilds it")
        self._model = model
        self.runner = "gil-free" if isinstance(model, aot_runner.PackageRunner) else "torch loader"
        self.status = "ready"
        log.info("compiled synthesis ready (%s, %s)", self.path.name, self.runner)


def _probe_db(model, probe: dict) -> float:
    """PSNR of the package's output on the probe against the eager network's picture the child saved."""
    with torch.inference_mode():
        return psnr_db(model(probe["ws"], probe["lever"]), probe["img"])


# ---------------------------------------------------------------------------------------------- the cache

def package_path(generator) -> Path:
    """Where the package of this network (weights, config, torch version) is kept."""
    import json

    from bridge.startup import cache_dir, cache_key

    header = json.dumps({"config": generator.config, "torch": torch.__version__, "aot": 1}, sort_keys=True)
    return cache_dir() / "aot" / f"{cache_key(generator.synthesis, header)}.pt2"


def probe_path(package: Path) -> Path:
    return package.with_suffix(".probe.pt")


def psnr_db(out: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR over the nominal [-1, 1] range (peak-to-peak 2)."""
    mse = float((out.float() - ref.float()).square().mean())
    return float("inf") if mse == 0 else 10.0 * float(np.log10(4.0 / mse))


def _child_env() -> dict:
    from bridge.startup import cache_dir

    env = dict(os.environ)
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    env["TORCHINDUCTOR_COMPILE_THREADS"] = "1"  # one compiler: the show keeps the other core
    env["OMP_NUM_THREADS"] = "1"
    return env


def _lower_priority() -> None:
    os.nice(10)


def _tail(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return (lines[-1] if lines else "no output")[-LOG_TAIL_CHARS:]


# ----------------------------------------------------------------------------------------- the child process

def build_package(spec: Path, package: Path) -> None:
    """Export the spec's synthesis network (plain path, float32, batch 1) and compile it into ``package``, with
    the probe beside it; both appear only when complete (written under temporary names, then renamed)."""
    from bridge.stylegan import Generator
    from bridge.stylegan.export_graph import SynthesisGraph, lever_input

    torch.set_num_threads(1)
    data = torch.load(spec, map_location="cpu", weights_only=True)
    config = {k: v for k, v in data["config"].items() if k != "random_init"}
    generator = Generator.from_config(config, seed=0).eval().requires_grad_(False)
    generator.synthesis.load_state_dict(data["synthesis"])
    generator.set_fast(False)  # Inductor fuses the plain ops (measured: faster than our fast path compiled)
    with torch.no_grad():
        ws = generator.mapping(torch.randn(1, generator.z_dim, generator=torch.Generator().manual_seed(0)),
                               torch.zeros(1, generator.c_dim) if generator.c_dim else None, truncation_psi=0.7)
        lever = lever_input(generator)[1].clone()
        graph = SynthesisGraph(generator.synthesis, generator.arch, fused_modconv=True)
        img = graph(ws, lever)
        program = torch.export.export(graph, (ws, lever))
    part = package.with_name(package.stem + ".part.pt2")  # the packager wants the .pt2 suffix
    torch._inductor.aoti_compile_and_package(program, package_path=str(part))
    probe_part = package.with_name(package.name + ".probe.part")
    torch.save({"ws": ws, "lever": lever, "img": img}, probe_part)
    os.replace(probe_part, probe_path(package))
    os.replace(part, package)


if __name__ == "__main__":
    build_package(Path(sys.argv[1]), Path(sys.argv[2]))
