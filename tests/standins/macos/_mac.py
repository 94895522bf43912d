"""Shared state of the macOS stand-ins: a call log (with threads) and the Syphon servers this 'machine' has.

Only what syphon-python 0.2.0's real package code touches is modelled (objc, Foundation, Cocoa, AppKit,
Metal). The native Syphon classes behave as Syphon.framework documents: a Metal server copies the
published texture into its own BGRA8 surface; clients discover servers through the shared directory and
get that BGRA8 texture from ``newFrameImage``.
"""
from __future__ import annotations

import itertools
import threading

LOCK = threading.Lock()
CALLS: list[tuple[str, tuple, int]] = []  # (what, args, thread id)
SERVERS: dict[str, "object"] = {}  # uuid -> native server
LOADED_BUNDLES: list[str] = []
_uuids = itertools.count(1)


def log(what: str, *args) -> None:
    with LOCK:
        CALLS.append((what, args, threading.get_ident()))


def new_uuid() -> str:
    return f"stand-in-uuid-{next(_uuids)}"


def reset() -> None:
    with LOCK:
        CALLS.clear()
        SERVERS.clear()
