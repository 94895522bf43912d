"""Sources: where frames come from. ``make_source("kind:arg")`` picks one by name.

Each kind lives in its own module, imported only when asked for (rig inputs need optional packages).
"""
from __future__ import annotations

import importlib

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
    kind, _, arg = spec.partition(":")
    if kind not in SOURCE_KINDS:
        raise ValueError(f"unknown source {kind!r}: choose one of {', '.join(SOURCE_KINDS)}")
    module_name, factory = SOURCE_KINDS[kind].split(":")
    module = importlib.import_module(module_name)
    return getattr(module, factory)(arg, **options)


__all__ = ["Source", "SourceUnavailable", "SOURCE_KINDS", "make_source"]
