"""``vrbridge bench engine``: the engine's stage schedules against a strictly sequential loop, same model, same run.

Sequential is what the paper's code does: capture -> encode -> synthesise -> publish, one after another.
The engine (:class:`bridge.engine.Engine`) runs capture on its own thread and encode + render either
``overlap`` (each on its own thread, at once) or ``serial`` (the render thread encodes each fresh frame, then
synthesises); ``auto`` picks one per device (bridge.device.plan_run). All modes use the same generator, encoder
and test-pattern source (30 fps, like a camera), built once, in alternating rounds. Where ``vrbridge run`` would
compile the synthesis (bridge.aot on the CPU, bridge.cuda_graph on CUDA), one more row runs the engine's own
schedule with it (on the CPU not with --quick: the build takes minutes).

Figures per mode:
* ``fps``: distinct camera frames that reached the output per second (re-publishes are not counted);
* per-stage ms (moving averages in the engine, plain means in the loop);
* ``latency``: capture -> publish, p50 / p95, from the frames the sink received.
"""
from __future__ import annotations

import statistics
import threading
import time

from bridge.frames import RenderedFrame
from bridge.sinks.base import Sink

WARMUP_S = 1.5
# ... and at least this many frames: on CUDA a new thread's first frames take seconds (cuDNN benchmarks its
# kernels again per thread: its plan cache is thread-local since pytorch PR 103939), and every run here starts
# new threads; measured on an H200, a 1.5 s warm-up left ~4 s of those in a 3 s window
WARMUP_FRAMES = 10
WARMUP_LIMIT_S = 60.0
COMPILE_LIMIT_S = 900.0  # building the demo's compiled synthesis: ~1.5 min on a quiet 2-core machine
SOURCE_FPS = 30.0


class CountingSink(Sink):
    """Receives frames like any sink; keeps (source index, capture time, publish time)."""

    kind = "bench"

    def __init__(self) -> None:
        super().__init__("bench")
        self.records: list[tuple[int, float, float]] = []
        self.recording = False
        self.published = 0  # every frame, recorded or not (the warm-up counts them)
        self._seen: set[int] = set()

    def publish(self, frame: RenderedFrame) -> None:
        """Only the first publication of each camera frame counts (re-publishes are not new pictures)."""
        self.published += 1
        if self.recording and frame.source_index >= 0 and frame.source_index not in self._seen:
            self._seen.add(frame.source_index)
            self.records.append((frame.source_index, frame.t_capture, frame.t_rendered))

    def _send(self, frame: RenderedFrame) -> None:
        pass


def run(args) -> dict:
    import torch

    from bridge.device import plan_run
    from bridge.encoder import build_encoder
    from bridge.stylegan import Generator, demo_config

    rounds, seconds = (2, 3.0) if args.quick else (4, 5.0)
    device = args.device
    generator = Generator.from_config(demo_config(), seed=0).to(device).eval().requires_grad_(False)
    plan = plan_run(device, generator.arch, compile="off" if args.quick and torch.device(device).type == "cpu" else "auto")
    generator.set_fast(plan.fast)
    encoder = build_encoder(z_dim=generator.z_dim, demo=True, device=device)
    compiled = _compiled(generator, plan.compile) if plan.compile in ("background", "cudagraph") else None
    modes = {"engine, serial stages": ("serial", None), "engine, overlapping stages": ("overlap", None),
             "sequential (paper loop)": ("", None)}
    if compiled is not None:  # both schedules with it where both are candidates (the CPU), the plan's first
        schedules = (plan.schedule,) if plan.device.type != "cpu" else (
            plan.schedule, "overlap" if plan.schedule == "serial" else "serial")
        labels = {"serial": "serial stages", "overlap": "overlapping stages"}
        modes = {**{f"engine, {labels[s]}, compiled synthesis ({plan.compile})": (s, compiled) for s in schedules},
                 **modes}
    results: dict[str, list[tuple[list, dict]]] = {mode: [] for mode in modes}
    for _ in range(rounds):  # alternate, so a change in machine load hits every mode alike
        for mode, (schedule, aot) in modes.items():
            if schedule:
                results[mode].append(run_pipelined(generator, encoder, _source(), device, seconds, schedule, aot))
            else:
                results[mode].append(run_sequential(generator, encoder, _source(), device, seconds))
    auto = next(mode for mode, (schedule, _) in modes.items() if schedule == plan.schedule)
    rows = [_latency_row(mode + (" <- auto" if mode == auto else ""), results[mode], rounds * seconds)
            for mode in modes]
    notes = [f"model: embedded demo ({generator.img_resolution}px, {generator.num_ws} ws), {encoder.describe()}; "
             f"device {device}; torch threads {torch.get_num_threads()}; source: test pattern 640x480 @ 30 fps",
             f"auto plan here: {plan.describe()}",
             f"{rounds} alternating rounds of {seconds:g} s per mode, each after a warm-up of >= {WARMUP_S:g} s and "
             f">= {WARMUP_FRAMES} frames",
             "fps = distinct source frames published per second; latency = capture -> publish (p50 / p95)"]
    return {"rows": rows, "notes": notes}


def _source():
    from bridge.sources import make_source

    return make_source("pattern", size=(640, 480), fps=SOURCE_FPS)


def _latency_row(mode: str, rounds: list[tuple[list, dict]], seconds: float) -> dict:
    records = [r for recs, _ in rounds for r in recs]
    fresh = len(records)  # the sink keeps each source frame once
    lat = sorted((r[2] - r[1]) * 1000.0 for r in records)
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan")

    def stage(name: str) -> float:
        values = [ms[name] for _, ms in rounds if name in ms]
        return round(statistics.fmean(values), 2) if values else float("nan")

    return {"mode": mode, "fps": round(fresh / seconds, 2), "frames": fresh, "encode_ms": stage("encode"),
            "map_ms": stage("map"), "synth_ms": stage("synth"), "publish_ms": stage("publish"),
            "latency_p50_ms": round(statistics.median(lat), 1) if lat else float("nan"),
            "latency_p95_ms": round(p95, 1)}


def _compiled(generator, mode: str):
    """The demo's compiled synthesis as ``vrbridge run`` uses it: on CUDA the graph (captured by the first
    engine's render thread); on the CPU the package, built here (minutes, once) or found in the cache. None if
    it cannot be had (the row is left out)."""
    from bridge.startup import compiled_synthesis

    compiled = compiled_synthesis(mode, generator)
    compiled.start()
    if mode == "cudagraph":
        return compiled
    if not compiled.wait(COMPILE_LIMIT_S):
        compiled.close()
        return None
    return compiled


def run_pipelined(generator, encoder, source, device: str, seconds: float,
                  schedule: str = "auto", compiled=None) -> tuple[list, dict]:
    from bridge.engine import Engine
    from bridge.params import ParamStore

    sink = CountingSink()
    engine = Engine(ParamStore(), generator, encoder, source, [sink], device=device, schedule=schedule)
    engine.compiled_synthesis = compiled
    engine.start()
    try:
        _warm_up(sink)
        sink.recording = True
        time.sleep(seconds)
        sink.recording = False
        stage_ms = dict(engine.clock.snapshot())
    finally:
        engine.stop()
    return sink.records, stage_ms


def _warm(start: float, sink: CountingSink) -> bool:
    """Warm once WARMUP_S have passed and WARMUP_FRAMES were published (or WARMUP_LIMIT_S, whatever came)."""
    elapsed = time.monotonic() - start
    return elapsed >= WARMUP_LIMIT_S or (elapsed >= WARMUP_S and sink.published >= WARMUP_FRAMES)


def _warm_up(sink: CountingSink) -> None:
    start = time.monotonic()
    while not _warm(start, sink):
        time.sleep(0.02)


def run_sequential(generator, encoder, source, device: str, seconds: float) -> tuple[list, dict]:
    """The sequential loop, on a worker thread like the engine's stages: measured here, torch ops with two
    OpenMP threads ran several times slower on Python's main thread than on a worker thread of the same
    process, which would flatter the engine."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(_sequential_loop(generator, encoder, source, device,
                                                                            seconds)), name="bench-sequential")
    worker.start()
    worker.join()
    return result[0]


def _sequential_loop(generator, encoder, source, device: str, seconds: float) -> tuple[list, dict]:
    """capture -> encode -> map+mix -> synthesise -> publish, one after another (the paper's loop)."""
    import torch

    from bridge import imageops
    from bridge.latents import LatentMixer
    from bridge.params import ParamStore

    params = ParamStore()
    mixer = LatentMixer(generator, device)
    sink = CountingSink()
    times: dict[str, list[float]] = {"encode": [], "map": [], "synth": [], "publish": []}
    source.open()
    start = time.monotonic()
    recording_since = None
    with torch.inference_mode():
        while recording_since is None or time.monotonic() - recording_since < seconds:
            frame = source.read(timeout=0.1)
            if frame is None:
                continue
            if recording_since is None and _warm(start, sink):
                recording_since = time.monotonic()
            sink.recording = recording_since is not None
            snapshot = params.snapshot()
            t0 = time.perf_counter()
            latents = encoder.encode(frame.rgb, snapshot)
            t1 = time.perf_counter()
            ws = mixer.mix(latents, snapshot)
            t2 = time.perf_counter()
            rgb = imageops.tensor_to_rgb(generator.synthesis(ws, noise_mode=snapshot["noise_mode"]))
            t3 = time.perf_counter()
            out = RenderedFrame(rgb=rgb, index=frame.index, source_index=frame.index, t_capture=frame.t_capture,
                                t_rendered=time.monotonic(), input_rgb=frame.rgb)
            sink.publish(out)
            t4 = time.perf_counter()
            if sink.recording:
                for key, value in (("encode", t1 - t0), ("map", t2 - t1), ("synth", t3 - t2), ("publish", t4 - t3)):
                    times[key].append(value * 1000.0)
    source.close()
    stage_ms = {k: statistics.fmean(v) for k, v in times.items() if v}
    return sink.records, stage_ms
