"""The live engine: source -> encoder -> generator -> sinks, each stage on its own thread.

    capture thread ──Frame──► Latest ──► encode thread ──latents──► Latest ──► render thread ──► sinks
         └──► trackers: submit(frame) ──► signals (SignalBus) ──────► routes ──┘      └──► report observers

Why these threads: capture paces itself to the camera, and single-slot ``Latest`` boxes mean a slow stage
only ever sees the newest frame, never a queue of stale ones. Encoding (a CNN forward) and synthesis are the
two heavy stages; how they share the device is the ``schedule`` (decided by :func:`bridge.device.plan_run`):
* ``overlap``: each on its own thread, at once (torch releases the GIL): on a GPU, or with spare CPU cores;
  the encode thread starts each frame just in time for the render thread to take its latents fresh;
* ``serial``: no encode thread; the render thread encodes each fresh camera frame and then synthesises it.
  On a CPU with few cores two stages at once only slow each other down (measured: more latency, no more
  frames), and on MPS torch must not run from two threads at once. Capture still runs on its own, so the
  output never waits for the camera; it waits for one encode at most.
Either way the stage that encodes takes the newest camera frame at once. (Waiting for the next one when the
newest had aged was measured and dropped: on the demo it cost 7-12 % of the frames for 3-10 ms less lag.)

The render thread is the heart of the show and must never stop publishing:
* it takes ONE parameter snapshot per frame (smoothed for the rows that ask for it), lets the render-thread
  signal stages (the hand's features) publish, then evaluates the routes into that snapshot, so a frame never
  mixes two control states and the levers read only the snapshot;
* it renders when something changed (new camera latents, a parameter, new keypoints, random noise) and
  otherwise re-publishes the last frame twice a second, so receivers see a live stream;
* an exception in encode or synthesis is logged with its context, counted, and the last good frame is
  re-published; repeated failures show up in :meth:`Engine.health` (and so in telemetry).

Before the first camera frame the output already runs: with no camera latents the static w (from ``seed``)
is rendered on its own.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from bridge import imageops
from bridge.demo import DEMO_NOTICE
from bridge.frames import Frame, FrameReport, Keypoints, Latest, RenderedFrame
from bridge.latents import LatentMixer
from bridge.params import PARAMS, ParamStore
from bridge.routes import RouteTable
from bridge.signals import SignalBus
from bridge.sources.base import MAX_SOURCE_SIDE

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.5  # re-publish the last frame this often when nothing changed
POLL_S = 0.02  # how often the render thread looks for a parameter / keypoint change
MAX_ENCODE_DELAY_S = 0.5  # the longest the encode thread holds back for the render thread (see _wait_for_render_slot)


class ParamSmoother:
    """One-pole smoothing of the rows with ``smoothing_s`` > 0, so an OSC fader jump glides instead of popping."""

    def __init__(self) -> None:
        self._params = [p for p in PARAMS if p.smoothing_s > 0 and p.kind == "float"]
        self._state: dict[str, float] = {}
        self._t = time.monotonic()
        self.settling = False

    def apply(self, snapshot: Mapping[str, Any], now: float) -> dict[str, Any]:
        out = dict(snapshot)
        dt = max(0.0, now - self._t)
        self._t = now
        self.settling = False
        for p in self._params:
            target = float(snapshot[p.name])
            current = self._state.get(p.name, target)
            alpha = 1.0 - float(np.exp(-dt / p.smoothing_s))
            value = current + (target - current) * alpha
            if abs(value - target) < 1e-4 * max(1.0, abs(target)):
                value = target
            else:
                self.settling = True
            self._state[p.name] = value
            out[p.name] = value
        return out


class StageClock:
    """Moving averages of per-stage milliseconds and a frames-per-second counter (last ~2 s)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._times: collections.deque[float] = collections.deque(maxlen=240)
        self._lock = threading.Lock()

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            old = self.ms.get(stage)
            self.ms[stage] = ms if old is None else old * 0.9 + ms * 0.1

    def tick(self, now: float) -> None:
        with self._lock:
            self._times.append(now)

    def fps(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._times if now - t <= 2.0]
        if len(recent) < 2:
            return 0.0
        span = max(recent[-1] - recent[0], 1e-6)
        return (len(recent) - 1) / span if now - recent[-1] < 1.0 else 0.0

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {k: round(v, 2) for k, v in self.ms.items()}


class StageHealth:
    """Error counts per stage; consecutive failures say whether a stage is currently broken."""

    def __init__(self) -> None:
        self.errors: collections.Counter[str] = collections.Counter()
        self.consecutive: collections.Counter[str] = collections.Counter()
        self.last_error = ""
        self.last_error_time = 0.0

    def ok(self, stage: str) -> None:
        self.consecutive[stage] = 0

    def fail(self, stage: str, exc: BaseException, context: str) -> None:
        self.errors[stage] += 1
        self.consecutive[stage] += 1
        self.last_error = f"{stage}: {type(exc).__name__}: {exc} ({context})"
        self.last_error_time = time.time()
        n = self.errors[stage]
        if n <= 3 or n % 100 == 0:
            log.error("%s failed (%d so far, %d in a row) %s: %s", stage, n, self.consecutive[stage], context,
                      exc, exc_info=n <= 1)

    def status(self) -> str:
        worst = max(self.consecutive.values(), default=0)
        return "ok" if worst == 0 else ("degraded" if worst < 10 else "failing")


# ------------------------------------------------------------------------------------------------
# The engine
# ------------------------------------------------------------------------------------------------
class Engine:
    """Wires the stages and their threads. Other parts plug in through the ``add_*`` methods and ``tracker``."""

    def __init__(self, params: ParamStore, generator, encoder, source, sinks: Iterable = (), *,
                 resolution: tuple[int, int] | None = None, device: str = "cpu", demo: bool = False,
                 model_description: str = "", schedule: str = "auto") -> None:
        self.params = params
        self.generator = generator
        self.encoder = encoder
        self.source = source
        self.sinks: list = []
        self.tracker = None  # the keypoint tracker (hands) whose latest() the render thread reads
        self.trackers: list = []  # every tracker fed frames by the capture thread (the keypoint tracker too)
        self.signals = SignalBus()
        self.routes = RouteTable()
        self._signal_stages: list = []
        self._signals_read = -1  # the bus version the last frame's signals were read at
        self._animated_for = -1  # routes version _animated_reads was computed for
        self._animated_reads = False
        self.resolution = resolution
        self.device = device
        self.schedule = schedule  # "auto" is resolved by bridge.device.plan_run at start()
        self.plan_description = ""  # build_engine: what bridge.device.plan_run decided, for the report
        self.demo = demo
        self.model_description = model_description or type(generator).__name__
        self.source_opened = False  # build_engine opens it early so a bad path fails before the model loads
        self.mixer = LatentMixer(generator, device)
        self.clock = StageClock()
        self.capture_clock = StageClock()
        self.output_clock = StageClock()  # frames handed to the sinks (also while frozen or held)
        self.stage_health = StageHealth()
        self.frames_box: Latest[Frame] = Latest()
        self.latents_box: Latest[tuple[Frame, dict]] = Latest()
        self.frames_rendered = 0
        self.frames_published = 0
        self.started_at = 0.0
        self._services: list = []
        self._observers: list[Callable[[FrameReport], None]] = []
        self._manipulations: list = []
        self._main_loop_hooks: list[Callable[[], None]] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._running = False
        self._last_rgb: np.ndarray | None = None
        self._last_latents: dict | None = None
        self._last_frame: Frame | None = None
        self._last_np_latents: dict[str, np.ndarray] = {}
        self._np_latents_of: Any = None  # the latents _last_np_latents was converted from
        self._smoother = ParamSmoother()
        self._cpu_threads = 1  # torch's thread count at start(); the two heavy stages split it on CPU
        self.osc_server = None  # bridge.osc.attach sets the control server (other stages add handlers to it)
        self.osc = None  # bridge.osc.attach: the OSC parts it built (telemetry, maps, presets, tempo, OSCQuery)
        self.control_panel = None  # bridge.web.attach: the web control panel on the preview server
        # bridge.aot.AotSynthesis (build_engine, compile background): the compiled image, or None = run eagerly
        self.compiled_synthesis: Callable[[Any, str], Any] | None = None
        for sink in sinks:
            self.add_sink(sink)

    # -- plugging in ----------------------------------------------------------------------------
    def add_service(self, service) -> None:
        """A thing with start(), close(), stats(): started after the engine's threads, closed before them."""
        self._services.append(service)
        if self._running:
            service.start()

    def add_report_observer(self, fn: Callable[[FrameReport], None]) -> None:
        """``fn(FrameReport)`` is called on the render thread after each published frame: keep it cheap."""
        self._observers.append(fn)

    def add_manipulation(self, manipulation) -> None:
        """A lever: ``m.apply(generator, snapshot, now)`` runs before synthesis; ``m.features()`` -> dict."""
        self._manipulations.append(manipulation)

    def add_tracker(self, tracker) -> None:
        """A frame consumer on its own thread (``submit(frame)``, start/close/stats/describe); publishes signals."""
        self.trackers.append(tracker)
        if self._running:
            tracker.start()

    def set_keypoint_tracker(self, tracker) -> None:
        """The tracker whose ``latest()`` keypoints the render thread hands to the signal stages (hands)."""
        self.tracker = tracker
        self.add_tracker(tracker)

    def add_signal_stage(self, stage) -> None:
        """``stage.update(keypoints, snapshot, now)`` publishes signals on the render thread, before the routes."""
        self._signal_stages.append(stage)

    def add_sink(self, sink) -> None:
        """A sink; one with ``main_thread_tick`` (Syphon: macOS run loop) also gets it called by run_forever."""
        self.sinks.append(sink)
        tick = getattr(sink, "main_thread_tick", None)
        if callable(tick):
            self.add_main_loop_hook(tick)
        if self._running:
            sink.start()

    def add_main_loop_hook(self, fn: Callable[[], None]) -> None:
        """``fn()`` runs on the main thread every tick of :meth:`run_forever` (macOS run loops need this)."""
        self._main_loop_hooks.append(fn)

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Open the source, start sinks, tracker, the three stage threads, then the services."""
        if not self.source_opened:
            self.source.open()
            self.source_opened = True
        self.mixer.static_w(int(self.params.get("seed")))  # first mapping call before the show, not in it
        for sink in self.sinks:
            sink.start()
        for tracker in self.trackers:
            tracker.start()
        self._stop.clear()
        self.started_at = time.monotonic()
        self._cpu_threads = _torch_threads()
        self.schedule = _resolve_schedule(self.device, self.generator, self.schedule, self._cpu_threads)
        stages = [("capture", self._capture_loop), ("render", self._render_loop)]
        if self.schedule == "overlap":
            stages.insert(1, ("encode", self._encode_loop))
        for name, target in stages:
            thread = threading.Thread(target=target, name=f"engine-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._running = True
        for service in self._services:
            service.start()

    def request_stop(self) -> None:
        """Ask :meth:`run_forever` to return (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, timeout: float = 0.6) -> None:
        """Close services, stop the stage threads, then tracker, sinks and source. Bounded in time."""
        self._stop.set()
        self._running = False
        for service in reversed(self._services):
            _safely(service.close, "close service")
        self.frames_box.close()
        self.latents_box.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        for tracker in self.trackers:
            _safely(tracker.close, "close tracker")
        for sink in self.sinks:
            _safely(lambda s=sink: s.close(timeout=0.3), "close sink")
        _safely(self.source.close, "close source")

    def run_forever(self, duration: float | None = None, max_frames: int | None = None,
                    on_tick: Callable[[], None] | None = None, tick_s: float = 0.02) -> None:
        """Block until :meth:`request_stop`, ``duration`` seconds or ``max_frames`` rendered frames."""
        end = None if duration is None else time.monotonic() + duration
        while not self._stop.wait(tick_s):
            for hook in self._main_loop_hooks:
                _safely(hook, "main loop hook")
            if on_tick is not None:
                on_tick()
            if end is not None and time.monotonic() >= end:
                break
            if max_frames is not None and self.frames_rendered >= max_frames:
                break

    # -- status ---------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Everything a status line, /status.json or telemetry needs, as plain JSON-able values."""
        sh = self.stage_health
        return {
            "status": sh.status(),
            "demo": self.demo,
            "notice": DEMO_NOTICE if self.demo else "",
            "model": self.model_description,
            "device": self.device,
            "schedule": self.schedule,
            "output_size": list(self.output_size()),
            "input_size": self._input_size(),
            "uptime_s": round(time.monotonic() - self.started_at, 1) if self.started_at else 0.0,
            "fps": round(self.clock.fps(), 2),
            "source_fps": round(self.capture_clock.fps(), 2),
            "output_fps": round(self.output_clock.fps(), 2),
            "frames": self.frames_rendered,
            "published": self.frames_published,
            "dropped": self.dropped(),
            "stage_ms": self.clock.snapshot(),
            "errors": dict(sh.errors),
            "failing_in_a_row": {k: v for k, v in sh.consecutive.items() if v},
            "last_error": sh.last_error,
            "source": {"name": self.source.describe(), **_stats(self.source)},
            "sinks": {sink.describe(): _stats(sink) for sink in self.sinks},
            "encoder": _stats(self.encoder),
            "tracker": _stats(self.tracker) if self.tracker is not None else None,
            "trackers": {_describe(t): _stats(t) for t in self.trackers},
            "signals": self.signals.stats(),
            "routes": self.routes.stats(),
            "services": {type(s).__name__: _stats(s) for s in self._services},
        }

    def dropped(self) -> int:
        return self.frames_box.dropped + self.latents_box.dropped

    def output_size(self) -> tuple[int, int]:
        if self.resolution is not None:
            return self.resolution
        side = int(self.generator.img_resolution)
        return side, side

    def _input_size(self) -> list[int] | None:
        """[width, height] of the newest source frame (None before the first)."""
        frame = self._last_frame
        return None if frame is None else [int(frame.rgb.shape[1]), int(frame.rgb.shape[0])]

    def latest_input(self) -> np.ndarray | None:
        frame = self._last_frame
        return None if frame is None else frame.rgb

    # -- capture thread -------------------------------------------------------------------------
    def _capture_loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self.source.read(timeout=0.1)
                self.stage_health.ok("capture")
            except Exception as exc:  # noqa: BLE001 - a broken source is reported, retried, never fatal
                self.stage_health.fail("capture", exc, f"source {self.source.describe()}")
                self._stop.wait(0.5)
                continue
            if frame is None:
                continue
            if max(frame.rgb.shape[:2]) > MAX_SOURCE_SIDE:  # e.g. an 8K video: shrink once, here, for all
                frame = dataclasses.replace(frame, rgb=imageops.limit_side(frame.rgb, MAX_SOURCE_SIDE))
            self.capture_clock.tick(frame.t_capture)  # read() waits for the device, so count rate, not ms
            self._last_frame = frame
            self.frames_box.put(frame)
            for tracker in self.trackers:
                try:
                    tracker.submit(frame)
                except Exception as exc:  # noqa: BLE001 - trackers are extras; the picture goes on
                    self.stage_health.fail("tracker", exc, f"{_describe(tracker)}: submit frame {frame.index}")

    # -- encode thread --------------------------------------------------------------------------
    def _split_cpu_threads(self, encode: bool = False) -> None:
        """On CPU with overlapping stages, give each of the two heavy stages (encode, render) half of torch's
        threads (serial stages each use them all, one after the other).

        torch.set_num_threads is per thread with the OpenMP backend, and two stages each running a full team
        of OpenMP threads on the same cores thrash (measured: each stage 2-4x slower than alone)."""
        if self.device == "cpu" and self.schedule == "overlap":
            import torch

            half = max(1, self._cpu_threads // 2)
            torch.set_num_threads(half)
            if encode and hasattr(self.encoder, "set_runtime_threads"):
                self.encoder.set_runtime_threads(half)  # ONNX Runtime's pool, when it runs the backbone

    def _encode_loop(self) -> None:
        self._split_cpu_threads(encode=True)
        seq = 0
        while not self._stop.is_set():
            self._wait_for_render_slot()
            seq, frame = self.frames_box.get(seq, timeout=0.1)
            if frame is None:
                continue
            latents = self._encode(frame)
            if latents is not None:
                self.latents_box.put((frame, latents))

    def _encode(self, frame: Frame) -> dict | None:
        """The encoder's latents for one camera frame; None when latents are held or the encoder failed."""
        snapshot = self.params.snapshot()
        if snapshot["latent.hold"]:
            return None
        t0 = time.perf_counter()
        try:
            with _torch_turn(self.device):
                latents = self.encoder.encode(frame.rgb, snapshot)
            self.stage_health.ok("encode")
        except Exception as exc:  # noqa: BLE001 - held latents keep the picture alive
            self.stage_health.fail("encode", exc, f"frame {frame.index} from {frame.source or 'source'} "
                                                  f"{frame.rgb.shape}")
            return None
        self.clock.add("encode", (time.perf_counter() - t0) * 1000.0)
        return latents

    def _wait_for_render_slot(self) -> None:
        """Overlapping stages: start encoding just in time for the latents to be ready when the render thread
        finishes the frame it is synthesising (it took the last latents at ``taken_at``; a synthesis takes the
        stages' average time), not as soon as it can. While the last latents are still in the box, first
        wait for the render thread to take them (half a second at most).

        Why: latents encoded early wait in their box for the render thread, and the camera frame they came
        from ages meanwhile (measured on 2 cores: half a synthesis of lag, ~25 ms, for no extra frame). When
        the render thread is idle or the encoder is the slower stage, this returns at once.
        """
        if not self.latents_box.wait_taken(MAX_ENCODE_DELAY_S):  # the last latents are still waiting for it
            return
        ms = self.clock.snapshot()
        render_done = self.latents_box.taken_at + (ms.get("map", 0.0) + ms.get("synth", 0.0)) / 1000.0
        wait = render_done - ms.get("encode", 0.0) / 1000.0 - time.monotonic()
        if wait > 0:
            self._stop.wait(min(wait, MAX_ENCODE_DELAY_S))

    def _next_latents(self, seq: int) -> tuple[int, tuple[Frame, dict] | None]:
        """The render thread's input: the encode thread's newest latents (overlap), or the newest camera
        frame encoded right here (serial)."""
        if self.schedule == "overlap":
            return self.latents_box.get(seq, timeout=POLL_S)
        seq, frame = self.frames_box.get(seq, timeout=POLL_S)
        latents = self._encode(frame) if frame is not None else None
        return seq, (frame, latents) if latents is not None else None

    # -- render thread --------------------------------------------------------------------------
    def _render_loop(self) -> None:
        import torch

        self._split_cpu_threads()
        seq = 0
        last_version = -1
        last_signals = last_routes = -1
        last_keypoints: Keypoints | None = None
        last_publish = 0.0
        source_frame: Frame | None = None
        with torch.inference_mode():
            while not self._stop.is_set():
                seq, item = self._next_latents(seq)
                fresh = item is not None
                if fresh:
                    source_frame, latents = item
                    if not self.params.get("latent.hold"):
                        self._last_latents = latents
                keypoints = self._latest_keypoints()
                now = time.monotonic()
                changed = (fresh or self.params.version != last_version or keypoints is not last_keypoints
                           or self.signals.version != last_signals or self.routes.version != last_routes
                           or self._smoother.settling or self._animating() or self._last_rgb is None)
                if not changed and now - last_publish < HEARTBEAT_S:
                    continue
                last_version = self.params.version
                last_routes = self.routes.version
                last_keypoints = keypoints
                try:
                    self._render_one(source_frame, keypoints, rerender=changed, fresh=fresh)
                except Exception as exc:  # noqa: BLE001 - the render thread must outlive any bug
                    self.stage_health.fail("render", exc, f"frame {self.frames_published}")
                last_signals = self._signals_read  # what this frame read (its own stages published too)
                last_publish = time.monotonic()

    def _synthesis(self, ws, noise_mode: str):
        """The compiled synthesis where it is ready and covers this frame, else the eager network."""
        img = self.compiled_synthesis(ws, noise_mode) if self.compiled_synthesis is not None else None
        return self.generator.synthesis(ws, noise_mode=noise_mode) if img is None else img

    def _animating(self) -> bool:
        """Render continuously while the picture moves by itself: random noise, a lever that animates (the
        corrupted constant drifts), a signal stage easing in or out, or a smoothed route still gliding."""
        return (self.params.get("noise_mode") == "random" or self.routes.settling
                or any(getattr(x, "settling", False) for x in (*self._manipulations, *self._signal_stages))
                or self._routes_read_animated_signals())

    def _routes_read_animated_signals(self) -> bool:
        """A route reads a signal that moves with time alone (the beat, the LFO): render every frame."""
        if self._animated_for != self.routes.version:
            animated = {name for stage in self._signal_stages for name in getattr(stage, "animated", ())}
            self._animated_reads = bool(animated & self.routes.sources())
            self._animated_for = self.routes.version
        return self._animated_reads

    def _latest_keypoints(self) -> Keypoints | None:
        if self.tracker is None:
            return None
        try:
            return self.tracker.latest()
        except Exception as exc:  # noqa: BLE001
            self.stage_health.fail("tracker", exc, "latest()")
            return None

    def _render_one(self, source_frame: Frame | None, keypoints: Keypoints | None, rerender: bool,
                    fresh: bool = False) -> None:
        """Render (or re-publish) one frame with one parameter snapshot, publish it, report it."""
        t_start = time.perf_counter()
        now = time.monotonic()
        snapshot, signals = self._route(self._smoother.apply(self.params.snapshot(), now), keypoints, now)
        rgb = None
        if snapshot["blackout"]:
            width, height = self.output_size()
            rgb = np.zeros((height, width, 3), np.uint8)
        elif rerender and not snapshot["freeze"]:
            rgb = self._synthesize(snapshot, keypoints, now, source_frame)
        made_new = rgb is not None
        if rgb is None:  # freeze, heartbeat, or a failed synthesis: hold the last good frame
            rgb = self._last_rgb
        if rgb is None:
            return
        if not snapshot["blackout"]:
            self._last_rgb = rgb
        self._publish(rgb, source_frame, snapshot, keypoints, signals, fresh=fresh and made_new)
        self.clock.add("total", (time.perf_counter() - t_start) * 1000.0)

    def _route(self, snapshot: dict[str, Any], keypoints: Keypoints | None,
               now: float) -> tuple[dict[str, Any], dict[str, float]]:
        """This frame's signals (the render-thread stages publish first), read once, evaluated through the routes.

        Returns the routed snapshot and the signals it was routed from (the frame's report sends those, so
        telemetry shows exactly what drove the frame). The bus version is noted before the read: anything
        published after it makes the render loop render again.
        """
        for stage in self._signal_stages:
            try:
                stage.update(keypoints, snapshot, now)
            except Exception as exc:  # noqa: BLE001 - a broken input holds its signals; the picture goes on
                self.stage_health.fail("signals", exc, type(stage).__name__)
        self._signals_read = self.signals.version
        signals = self.signals.values()
        return self.routes.evaluate(snapshot, signals, now), signals

    def _synthesize(self, snapshot: Mapping[str, Any], keypoints, now: float,
                    source_frame: Frame | None) -> np.ndarray | None:
        context = f"frame {self.frames_rendered}" + (f" (source frame {source_frame.index})" if source_frame else "")
        try:
            with _torch_turn(self.device):
                t0 = time.perf_counter()
                self._apply_manipulations(snapshot, now)
                ws = self.mixer.mix(self._last_latents, snapshot)
                t1 = time.perf_counter()
                img = self._synthesis(ws, snapshot["noise_mode"])
                rgb = imageops.tensor_to_rgb(img)  # syncs the device, so synth ms is the real cost
                t2 = time.perf_counter()
            rgb = imageops.fit(rgb, self.resolution, snapshot["fit"])
            t3 = time.perf_counter()
        except Exception as exc:  # noqa: BLE001 - hold the last good frame, count, report
            self.stage_health.fail("synth", exc, context)
            return None
        self.stage_health.ok("synth")
        self.clock.add("map", (t1 - t0) * 1000.0)
        self.clock.add("synth", (t2 - t1) * 1000.0)
        self.clock.add("fit", (t3 - t2) * 1000.0)
        self.frames_rendered += 1
        self.clock.tick(time.monotonic())
        return rgb

    def _apply_manipulations(self, snapshot, now: float) -> None:
        for m in self._manipulations:
            try:
                m.apply(self.generator, snapshot, now)
            except Exception as exc:  # noqa: BLE001 - a broken manipulation must not kill synthesis
                self.stage_health.fail("manipulation", exc, type(m).__name__)

    def _publish(self, rgb: np.ndarray, source_frame: Frame | None, snapshot, keypoints, signals,
                 fresh: bool) -> None:
        t0 = time.perf_counter()
        t_rendered = time.monotonic()
        frame = RenderedFrame(rgb=rgb, index=self.frames_published,
                              source_index=source_frame.index if source_frame else -1,
                              t_capture=source_frame.t_capture if source_frame else t_rendered,
                              t_rendered=t_rendered, input_rgb=source_frame.rgb if source_frame else None)
        for sink in self.sinks:
            try:
                sink.publish(frame)
            except Exception as exc:  # noqa: BLE001
                self.stage_health.fail("publish", exc, sink.describe())
        self.frames_published += 1
        self.output_clock.tick(time.monotonic())
        self.clock.add("publish", (time.perf_counter() - t0) * 1000.0)
        if fresh and source_frame is not None:  # a new camera frame made it out: capture -> publish
            self.clock.add("latency", (t_rendered - source_frame.t_capture) * 1000.0)
        if self._observers:
            self._report(frame, snapshot, keypoints, signals)

    def _report(self, frame: RenderedFrame, snapshot, keypoints, signals) -> None:
        latents = self._last_latents
        if latents is not None and latents is not self._np_latents_of:  # convert each new set once, not per frame
            self._last_np_latents = {k: v.detach().float().cpu().numpy().reshape(-1) for k, v in latents.items()}
            self._np_latents_of = latents
        features: dict[str, float] = {}
        for m in (*self._signal_stages, *self._manipulations):
            if not hasattr(m, "features"):  # a signal stage need not report features (its signals are sent)
                continue
            try:
                features.update(m.features())
            except Exception as exc:  # noqa: BLE001
                self.stage_health.fail("manipulation", exc, f"{type(m).__name__}.features()")
        report = FrameReport(index=frame.index, fps=round(self.clock.fps(), 2), stage_ms=self.clock.snapshot(),
                             dropped=self.dropped(), params=dict(snapshot), latents=self._last_np_latents,
                             keypoints=keypoints, features=features, signals=signals,
                             health={"status": self.stage_health.status(), "errors": dict(self.stage_health.errors),
                                     "last_error": self.stage_health.last_error,
                                     "demo_network": self.demo,
                                     "demo_encoder": bool(getattr(self.encoder, "is_demo", False))})
        for fn in list(self._observers):
            try:
                fn(report)
            except Exception as exc:  # noqa: BLE001
                self.stage_health.fail("observer", exc, getattr(fn, "__qualname__", repr(fn)))

    # -- start-up report ------------------------------------------------------------------------
    def describe(self) -> list[str]:
        """The start-up report: model, device, resolution, source, sinks, services."""
        width, height = self.output_size()
        lines = [f"model:      {self.model_description}",
                 f"device:     {self.device}" + (f" ({self.plan_description})" if self.plan_description else ""),
                 f"output:     {width}x{height} (fit {self.params.get('fit')})",
                 f"source:     {self.source.describe()}"]
        describe = getattr(self.encoder, "describe", None)
        if describe is not None:
            lines.append(f"encoder:    {describe()}")
        for sink in self.sinks:
            lines.append(f"sink:       {sink.describe()}")
        for tracker in self.trackers:
            lines.append(f"tracker:    {_describe(tracker)}")
        for route in self.routes.routes():
            lines.append(f"route:      {route.describe()}")
        for service in self._services:
            lines.append(f"service:    {_describe(service)}")
        if self.demo:
            lines.append("NOTE:       " + DEMO_NOTICE)
        return lines


def _torch_turn(device: str):
    """bridge.device.torch_turn (imported here, not at the top: torch loads only when the engine runs)."""
    from bridge.device import torch_turn

    return torch_turn(device)


def _resolve_schedule(device: str, generator, schedule: str, cpu_threads: int) -> str:
    """``auto`` -> what bridge.device.plan_run chooses for this device and thread count."""
    from bridge.device import plan_run

    return plan_run(device, getattr(generator, "arch", ""), schedule, cpu_threads).schedule


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _describe(obj) -> str:
    describe = getattr(obj, "describe", None)
    return describe() if callable(describe) else type(obj).__name__


def _stats(obj) -> dict:
    try:
        return dict(obj.stats())
    except Exception as exc:  # noqa: BLE001 - a status page must not die on one broken part
        return {"error": str(exc)}


def _safely(fn: Callable[[], Any], what: str) -> None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - shutting down: report and keep closing the rest
        log.warning("%s failed: %s", what, exc)


