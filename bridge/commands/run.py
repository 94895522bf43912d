"""``vrbridge run``: the live engine from the command line (flags and show-file keys come from the table)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from bridge import config
from bridge.cli import UserError

HELP = "run the live engine: source -> encoder -> StyleGAN -> preview / recorder / Spout / Syphon / NDI"
EPILOG = """live parameters (psi, seed, mix.amount, noise_mode, ... : every row of `vrbridge params`) are not
flags: set them at start with --set NAME=VALUE (repeatable, e.g. --set psi=0.5 --set mix.coarse=0,4),
in a show file (--config), or while running over OSC (/vrb/psi 0.5) or on the preview page."""
log = logging.getLogger("bridge.run")


def add_arguments(parser) -> None:
    config.add_arguments(parser)
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop by itself after this long")
    parser.add_argument("--frames", type=int, default=None, metavar="N", help="stop by itself after N rendered frames")
    parser.add_argument("--status-every", type=float, default=1.0, metavar="SECONDS",
                        help="status line interval on stderr (0 = none)")
    parser.add_argument("--fast-exit", action=argparse.BooleanOptionalAction, default=True,
                        help="after the clean stop, skip Python's teardown of torch (seconds on a busy machine)")


def main(args) -> int:
    settings = config.resolve(args)
    from bridge.startup import build_engine, startup_errors

    engine = None
    try:
        engine = build_engine(settings, progress=sys.stderr.isatty())
        engine.start()
    except Exception as exc:
        if engine is not None:
            engine.stop()
        if isinstance(exc, startup_errors()):  # checked after the fact: the list depends on what got loaded
            raise UserError(str(exc)) from None
        raise
    print_report(engine)
    _install_signal_handlers(engine)
    status = StatusLine(engine, args.status_every)
    try:
        engine.run_forever(duration=args.duration, max_frames=args.frames, on_tick=status.maybe_print)
    finally:
        t0 = time.monotonic()
        engine.stop()
        print(f"stopped after {engine.frames_rendered} frames ({time.monotonic() - t0:.2f} s to shut down)",
              file=sys.stderr, flush=True)
    if args.fast_exit:
        _exit_now(0)
    return 0


def _exit_now(code: int) -> None:
    """Everything is closed (sinks finalised their files in engine.stop); what is left is the interpreter
    tearing torch down, which takes seconds on a loaded machine. A show control wants the process gone."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def print_report(engine) -> None:
    print("vrbridge running", flush=True)
    for line in engine.describe():
        print("  " + line, flush=True)
    print("  stop with Ctrl-C", flush=True)


def _install_signal_handlers(engine) -> None:
    def stop(signum, _frame):
        log.info("received %s, stopping", signal.Signals(signum).name)
        engine.request_stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


class StatusLine:
    """A once-a-second line: what a VJ needs (output, render and source fps, stage ms, latency, errors)."""

    def __init__(self, engine, every: float) -> None:
        self.engine = engine
        self.every = every
        self._next = time.monotonic() + every

    def maybe_print(self) -> None:
        if self.every <= 0 or time.monotonic() < self._next:
            return
        self._next += self.every
        print(format_status(self.engine.health()), file=sys.stderr, flush=True)


def format_status(health: dict) -> str:
    """``out`` frames the sinks get per second (they keep getting frames while frozen or held), ``render`` new
    pictures per second, ``source`` input frames per second. Source frames the renderer skips because a newer
    one came (normal when the source is faster) are not shown here: they are ``dropped`` in health/telemetry."""
    ms = health.get("stage_ms", {})
    stages = " ".join(f"{k} {ms[k]:.0f}" for k in ("encode", "map", "synth", "fit", "publish") if k in ms)
    errors = sum(health.get("errors", {}).values())
    line = (f"out {health.get('output_fps', 0):4.1f} fps | render {health['fps']:4.1f} | "
            f"source {health.get('source_fps', 0):.0f} | ms {stages or '-'} | latency {ms.get('latency', 0):.0f} ms | "
            f"frames {health['frames']} | errors {errors} | {health['status']}")
    source = health.get("source", {}).get("status", "")
    if source and source not in ("running",) and not source.startswith("showing"):
        line += f" | source {source}"
    costs = [f"{stats.get('name') or key.split()[0]} {stats['track_ms']:.0f}"
             for key, stats in (health.get("trackers") or {}).items() if isinstance(stats, dict) and "track_ms" in stats]
    if costs:  # each tracker's mean ms per frame on its own thread (not part of the render loop's ms)
        line += " | track ms " + " ".join(costs)
    services = health.get("services") or {}
    compiled = services.get("AotSynthesis") or services.get("GraphedSynthesis")
    if isinstance(compiled, dict) and compiled.get("status"):  # compiled synthesis: where it stands
        status = str(compiled["status"])
        line += " | synthesis " + ("compiled" if status == "ready" else status.split(":")[0])
    return line
