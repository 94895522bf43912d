"""Benchmarks behind ``vrbridge bench SUITE``: each suite is a module here with ``run(args) -> dict``.

Targets and figures live in BENCHMARKS.md (with the command that produced them), never in timed tests.
"""
SUITES: dict[str, str] = {
    "generator": "bridge.bench.generator",
    "encoder": "bridge.bench.encoder",
    "engine": "bridge.bench.engine",
    "osc": "bridge.bench.osc",
    "tracking": "bridge.bench.tracking",
    "sinks": "bridge.bench.sinks",
    "routes": "bridge.bench.routes",
    "formats": "bridge.bench.formats",
    "scene": "bridge.bench.scene",
    "audio": "bridge.bench.audio",
    "panel": "bridge.bench.panel",
    "levers": "bridge.bench.levers",
    "gpu": "bridge.bench.gpu",
}


def timing_row(what: str, size: str, samples_ms: list[float], device: str = "cpu", note: str = "") -> dict:
    """One table row of per-step timings: median and p90 in ms, how many samples, where, and a note."""
    import statistics

    ordered = sorted(samples_ms)
    return {"what": what, "size": size, "median_ms": round(statistics.median(ordered), 3),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 3), "n": len(ordered), "device": device,
            "note": note}


def start_demo_engine(device: str, preview: str = "off", frames: int = 2):
    """A running engine on the embedded demo with live OSC control (for the OSC and panel benches): its
    telemetry goes to a loopback port nobody reads. Returns (engine, that port) once ``frames`` are rendered."""
    import os
    import socket
    import tempfile
    import time

    from bridge.startup import build_engine

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = build_engine({"osc_in": "127.0.0.1:0", "osc_out": [f"127.0.0.1:{port}"], "oscquery": "off",
                           "preview": preview, "device": device,
                           "presets": os.path.join(tempfile.gettempdir(), "vrbridge-bench-presets.toml")})
    engine.start()
    deadline = time.monotonic() + 60
    while engine.frames_rendered < frames and time.monotonic() < deadline:  # the render load is running
        time.sleep(0.1)
    return engine, port

