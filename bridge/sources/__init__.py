"""Sources: where frames come from. ``make_source("kind:arg")`` picks one by name.

Each kind lives in its own module, imported only when asked for (rig inputs need optional packages).
"""
from __future__ import annotations

from bridge.registry import factory_for
from bridge.sources.base import Source, SourceUnavailable

SOURCE_KINDS: dict[str, str] = {
    "pattern": "bridge.sources.pattern:make",
    "camera": "bridge.sources.camera:make",
    "video": "bridge.sources.video:make",
    "images": "bridge.sources.images:make",
    "ndi": "bridge.sources.ndi_in:make",
    "spout": "bridge.sources.spout_in:make",
    "syphon": "bridge.sources.syphon_in:make",
}


def make_source(spec: str, **options) -> Source:
    """Build a source from ``kind[:arg]``; raise ValueError for an unknown kind, SourceUnavailable where it cannot run."""
    factory, arg = factory_for(SOURCE_KINDS, spec, "source")
    return factory(arg, **options)


__all__ = ["Source", "SourceUnavailable", "SOURCE_KINDS", "make_source"]
