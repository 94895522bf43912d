"""Sinks: where rendered frames go. ``make_sink("kind:arg")`` picks one by name.

Each kind lives in its own module, imported only when asked for, so a missing optional package
(SpoutGL, syphon-python, cyndilib) only matters to the user who names that sink.
"""
from __future__ import annotations

from bridge.registry import factory_for
from bridge.sinks.base import Sink, SinkUnavailable

# kind -> "module:factory"; the factory takes the text after "kind:" (may be empty) and keyword options.
SINK_KINDS: dict[str, str] = {
    "preview": "bridge.sinks.preview:make",
    "record": "bridge.sinks.recorder:make",
    "png": "bridge.sinks.pngseq:make",
    "ndi": "bridge.sinks.ndi:make",
    "spout": "bridge.sinks.spout:make",
    "syphon": "bridge.sinks.syphon:make",
}


def make_sink(spec: str, **options) -> Sink:
    """Build a sink from ``kind[:arg]``; raise ValueError for an unknown kind, SinkUnavailable where it cannot run."""
    factory, arg = factory_for(SINK_KINDS, spec, "sink")
    return factory(arg, **options)


__all__ = ["Sink", "SinkUnavailable", "SINK_KINDS", "make_sink"]
