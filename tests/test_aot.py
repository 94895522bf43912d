"""The synthesis compiled ahead of time in the background (bridge.aot): a real AOTInductor build of the sg2_tiny
fixture in a child process (about 40 s here), the package checked against the eager network, the frames it
covers and the ones it leaves to the eager network, failures that leave the show eager, and the engine
switching to it while it runs."""
from __future__ import annotations

import shutil
import sys
import threading
import time

import pytest
import torch

from bridge import aot
from bridge.aot import AotSynthesis, psnr_db
from bridge.commands.run import format_status
from bridge.device import DeviceUnavailable, plan_run
from bridge.params import PARAMS_BY_NAME
from bridge.startup import build_engine
from bridge.stylegan import load_network
from conftest import STYLEGAN_FIXTURES, wait_for

BUILD_LIMIT_S = 600.0  # a loaded 2-core CI machine; the build took 34-40 s on a quiet one
QUIET = {"osc_in": "off", "osc_out": [], "oscquery": "off", "preview": "off", "demo_encoder": True,
         "encoder_size": "64x48", "device": "cpu"}


def tiny():
    return load_network(str(STYLEGAN_FIXTURES / "sg2_tiny.pkl")).eval().requires_grad_(False).set_fast(True)


def ws_of(generator, seed: int) -> torch.Tensor:
    z = torch.randn(1, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    return generator.mapping(z, None, truncation_psi=0.7)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache folder of this module's own, with the sg2_tiny package built once (really, in the child)."""
    folder = tmp_path_factory.mktemp("aot-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VRBRIDGE_CACHE", str(folder))
        compiled = AotSynthesis(tiny())
        compiled.start()
        assert compiled.wait(BUILD_LIMIT_S), compiled.status
        assert compiled.build_s is not None and compiled.path.is_file() and aot.probe_path(compiled.path).is_file()
        compiled.close()
    return folder


@pytest.fixture
def in_cache(cache, monkeypatch):
    monkeypatch.setenv("VRBRIDGE_CACHE", str(cache))
    return cache


def ready(generator) -> AotSynthesis:
    compiled = AotSynthesis(generator)
    compiled.start()
    assert compiled.wait(60), compiled.status
    return compiled


def test_the_plan_compiles_in_the_background_on_the_cpu_and_as_a_cuda_graph_on_cuda(monkeypatch):
    assert plan_run("cpu", "stylegan2", compile="auto").compile == "off"  # conftest: VRBRIDGE_COMPILE=off
    monkeypatch.delenv("VRBRIDGE_COMPILE")
    assert plan_run("cpu", "stylegan2", compile="auto").compile == "background"
    assert plan_run("cpu", "stylegan2", compile="auto", backend="onnxruntime").compile == "off"
    assert plan_run("cuda", "stylegan2", compile="auto").compile == "cudagraph"
    assert plan_run("mps", "stylegan3", compile="auto").compile == "off"  # never measured there: asked for only
    assert plan_run("cuda", "stylegan2", compile="startup").compile == "startup"
    with pytest.raises(DeviceUnavailable, match="cudagraph needs a CUDA device, not cpu"):
        plan_run("cpu", "stylegan2", compile="cudagraph")
    startup = plan_run("cpu", "stylegan2", compile="startup")
    assert not startup.fast and "compiled (startup)" in startup.describe()  # Inductor compiles the plain path
    assert plan_run("cpu", "stylegan2", compile="background").fast  # the eager frames meanwhile: fast path
    with pytest.raises(DeviceUnavailable, match="compile 'soon'"):
        plan_run("cpu", "stylegan2", compile="soon")
    assert PARAMS_BY_NAME["compile"].choices == ("auto", "background", "cudagraph", "startup", "off")


def test_a_cached_package_loads_without_building_and_matches_the_eager_network(in_cache):
    generator = tiny()
    compiled = ready(generator)
    try:
        assert compiled.build_s is None  # found in the cache: loaded, not built
        with torch.inference_mode():
            for seed in (1, 2):
                ws = ws_of(generator, seed)
                assert psnr_db(compiled(ws, "const"), generator.synthesis(ws)) >= 60.0
        assert compiled.frames == 2 and compiled.stats()["status"] == "ready"
    finally:
        compiled.close()


def slowed(fn, seconds: float):
    """fn, made slower by a sleep: the race's two sides with a known winner (the real package and network)."""
    def run(*args, **kwargs):
        time.sleep(seconds)
        return fn(*args, **kwargs)
    return run


def racing(generator) -> AotSynthesis:
    compiled = AotSynthesis(generator, race=True)
    compiled.start()
    assert compiled.wait(60), compiled.status
    return compiled


def test_the_race_keeps_the_package_when_it_beats_the_eager_network(in_cache, monkeypatch):
    generator = tiny()
    compiled = racing(generator)
    monkeypatch.setattr(generator.synthesis, "forward", slowed(generator.synthesis.forward, 0.1))
    try:
        with torch.inference_mode():
            ws = ws_of(generator, 5)
            want = generator.synthesis(ws)
            for _ in range(4):  # eager and compiled warm up, then one timed frame each: decisive
                assert not compiled.race_ms
                assert psnr_db(compiled(ws, "const"), want) >= 60.0
            assert compiled.status == "ready" and compiled.race_ms["eager"] > 2 * compiled.race_ms["compiled"]
            used = compiled.frames
            assert psnr_db(compiled(ws, "const"), want) >= 60.0 and compiled.frames == used + 1
        assert compiled.stats()["race_ms"] == compiled.race_ms
    finally:
        compiled.close()


def test_the_race_drops_the_package_when_the_eager_network_is_faster(in_cache):
    """Wide networks on the CPU: the eager fast path beats Inductor's plain graph (BENCHMARKS.md, issue 16)."""
    generator = tiny()
    compiled = racing(generator)
    compiled._model = slowed(compiled._model, 0.2)
    try:
        with torch.inference_mode():
            ws = ws_of(generator, 6)
            want = generator.synthesis(ws)
            for _ in range(4):  # each side warms up, then one timed frame each: the race is decided
                assert psnr_db(compiled(ws, "const"), want) >= 60.0
            assert compiled.status.startswith("eager: faster than the compiled graph (") and "\n" not in compiled.status
            assert compiled(ws, "const") is None  # from now on the engine renders eagerly
        health = {"fps": 1.0, "frames": 3, "status": "ok", "services": {"AotSynthesis": compiled.stats()}}
        assert "| synthesis eager" in format_status(health)
    finally:
        compiled.close()


def ticks_inside_calls(run, calls: int = 50) -> int:
    """Ticks a 0.2 ms-sleeping thread records strictly inside ``calls`` calls of ``run`` on this thread.

    A tick stamps its time holding the GIL, so a call that holds the GIL throughout lets at most the odd tick in
    (torch's loader lets one through per call at most, measured), while a call that releases it lets the ticker
    run all along. The long switch interval keeps the interpreter from taking the GIL off this thread."""
    ticks, stop, spans = [], threading.Event(), []

    def ticker() -> None:
        while not stop.is_set():
            time.sleep(0.0002)
            ticks.append(time.perf_counter())

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        for _ in range(calls):
            start = time.perf_counter()
            run()
            spans.append((start, time.perf_counter()))
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    return sum(1 for t in ticks for start, end in spans if start < t < end)


def test_the_package_runs_without_holding_the_gil(in_cache):
    """torch's loader keeps the GIL for a whole call (it froze the engine's other threads for a frame at a
    time); the engine runs the package through its C entry point instead (bridge.aot_runner)."""
    generator = tiny()
    compiled = ready(generator)
    try:
        assert compiled.runner == "gil-free" and compiled.stats()["runner"] == "gil-free"
        from bridge import aot_runner

        assert aot_runner.load(compiled.path, num_inputs=3) is None  # counts checked before any run writes
        loader = torch._inductor.aoti_load_package(str(compiled.path))
        with torch.inference_mode():
            ws = ws_of(generator, 7)
            lever = generator.synthesis.b4.const.detach()
            torch.testing.assert_close(compiled(ws, "const"), loader(ws, lever), rtol=0, atol=0)
            held = ticks_inside_calls(lambda: loader.loader.boxed_run([ws, lever]))  # the loader's C call
            free = ticks_inside_calls(lambda: compiled(ws, "const"))
            print(f"ticks inside 50 calls: torch's loader {held}, the engine's runner {free}")
            assert free > 3 * held + 20, (held, free)
    finally:
        compiled.close()


def test_without_the_gil_free_runner_torchs_loader_runs_the_package(in_cache, monkeypatch):
    from bridge import aot_runner

    monkeypatch.setattr(aot_runner, "load", lambda package, num_inputs: None)  # e.g. a torch without the C helpers
    generator = tiny()
    compiled = ready(generator)
    try:
        assert compiled.runner == "torch loader"
        with torch.inference_mode():
            ws = ws_of(generator, 8)
            assert psnr_db(compiled(ws, "const"), generator.synthesis(ws)) >= 60.0
    finally:
        compiled.close()


def test_the_const_lever_reaches_the_compiled_picture(in_cache):
    generator = tiny()
    compiled = ready(generator)
    const = generator.synthesis.b4.const
    original = const.detach().clone()
    try:
        with torch.inference_mode():
            ws = ws_of(generator, 3)
            before = compiled(ws, "const")
            with torch.no_grad():
                const.mul_(-1.0)  # what const corruption does: an in-place edit of the live tensor
            after = compiled(ws, "const")
            assert after is not None and psnr_db(after, before) < 40.0  # it moved
            assert psnr_db(after, generator.synthesis(ws)) >= 60.0  # exactly as the eager network moved
    finally:
        with torch.no_grad():
            const.copy_(original)
        compiled.close()


def test_frames_the_graph_does_not_cover_are_left_to_the_eager_network(in_cache):
    generator = tiny()
    compiled = ready(generator)
    try:
        with torch.inference_mode():
            ws = ws_of(generator, 4)
            assert compiled(ws, "random") is None  # noise is baked in as const
            assert compiled(torch.cat([ws, ws]), "const") is None  # batch 1 only
            generator.synthesis.b8.bend = lambda x: x.flip(3)  # a network bend is on
            assert compiled(ws, "const") is None
            generator.synthesis.b8.bend = None
            assert compiled(ws, "const") is not None
            with torch.no_grad():  # a lever that edits the weights (model mixing copies into them)
                generator.synthesis.b8.conv1.weight.mul_(1.0)
            assert compiled(ws, "const") is None
    finally:
        compiled.close()


def test_a_package_that_disagrees_with_its_probe_is_deleted_and_the_show_stays_eager(in_cache, tmp_path,
                                                                                    monkeypatch):
    generator = tiny()
    monkeypatch.setenv("VRBRIDGE_CACHE", str(tmp_path))
    package = aot.package_path(generator)
    package.parent.mkdir(parents=True)
    source = next((in_cache / "aot").glob("*.pt2"))
    shutil.copy(source, package)
    probe = torch.load(aot.probe_path(source), weights_only=True)
    probe["img"] = probe["img"] + 0.5
    torch.save(probe, aot.probe_path(package))
    compiled = AotSynthesis(generator)
    compiled.start()
    assert wait_for(lambda: compiled.status.startswith("failed"), timeout=60)
    assert "differs from the eager network" in compiled.status and "\n" not in compiled.status
    assert not package.exists() and not list(package.parent.glob("*.so"))  # the next start rebuilds it
    with torch.inference_mode():
        assert compiled(ws_of(generator, 5), "const") is None


def test_a_corrupt_package_fails_in_one_line(tmp_path, monkeypatch, in_cache):
    generator = tiny()
    monkeypatch.setenv("VRBRIDGE_CACHE", str(tmp_path))
    package = aot.package_path(generator)
    package.parent.mkdir(parents=True)
    package.write_bytes(b"PK\x03\x04 not a package")
    source = next((in_cache / "aot").glob("*.pt2"))
    shutil.copy(aot.probe_path(source), aot.probe_path(package))
    compiled = AotSynthesis(generator)
    compiled.start()
    assert wait_for(lambda: compiled.status.startswith("failed"), timeout=60)
    assert "\n" not in compiled.status
    with torch.inference_mode():
        assert compiled(ws_of(generator, 6), "const") is None


def test_a_build_that_takes_too_long_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("VRBRIDGE_CACHE", str(tmp_path))
    monkeypatch.setattr(aot, "BUILD_TIMEOUT_S", 1.0)
    compiled = AotSynthesis(tiny())
    compiled.start()
    assert wait_for(lambda: compiled.status.startswith("failed"), timeout=30)
    assert "took over 1 s" in compiled.status
    assert compiled._child.poll() is not None  # killed, not left running
    assert not compiled.path.exists()


def test_closing_the_engine_stops_the_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("VRBRIDGE_CACHE", str(tmp_path))
    compiled = AotSynthesis(tiny())
    compiled.start()
    assert wait_for(lambda: compiled._child is not None, timeout=30)
    compiled.close()
    assert compiled._child.poll() is not None
    time.sleep(0.2)
    assert compiled.status == "compiling" and not compiled.path.exists()  # never loaded after close


def test_the_engine_switches_to_the_compiled_synthesis_while_it_runs(in_cache):
    engine = build_engine({**QUIET, "network": str(STYLEGAN_FIXTURES / "sg2_tiny.pkl"), "compile": "background"})
    try:
        assert isinstance(engine.compiled_synthesis, AotSynthesis)
        assert "synthesis compiled (background)" in engine.plan_description
        engine.start()
        compiled = engine.compiled_synthesis
        assert wait_for(lambda: compiled.frames >= 5, timeout=60), compiled.stats()
        health = engine.health()
        assert health["services"]["AotSynthesis"]["status"] == "ready"
        assert health["status"] == "ok" and "| synthesis compiled" in format_status(health)
        engine.params.set("noise_mode", "random")  # not covered: eager frames, the picture goes on
        rendered, used = engine.frames_rendered, compiled.frames
        assert wait_for(lambda: engine.frames_rendered >= rendered + 5, timeout=30)
        assert compiled.frames <= used + 1 and engine.health()["status"] == "ok"
    finally:
        engine.stop()


def test_compile_off_keeps_the_engine_eager():
    engine = build_engine({**QUIET, "network": str(STYLEGAN_FIXTURES / "sg2_tiny.pkl"), "compile": "off"})
    try:
        assert engine.compiled_synthesis is None and "compiled" not in engine.plan_description
    finally:
        engine.stop()
