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
