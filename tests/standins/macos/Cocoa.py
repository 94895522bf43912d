"""Stand-in for PyObjC's ``Cocoa``: geometry structs, NSDate, and per-thread run loops that log each pump."""
from __future__ import annotations

import threading
from collections import namedtuple

import _mac

NSDefaultRunLoopMode = "kCFRunLoopDefaultMode"
NSSize = namedtuple("NSSize", "width height")


class NSRect(tuple):
    def __new__(cls, origin, size):
        return super().__new__(cls, (tuple(origin), tuple(size)))


class NSImage:
    pass


class NSDate:
    def __init__(self, seconds):
        self.seconds = seconds

    @classmethod
    def dateWithTimeIntervalSinceNow_(cls, seconds):  # noqa: N802
        return cls(seconds)


class NSRunLoop:
    _loops: dict[int, "NSRunLoop"] = {}

    def __init__(self, thread_id):
        self.thread_id = thread_id
        self.is_main = thread_id == threading.main_thread().ident

    @classmethod
    def currentRunLoop(cls):  # noqa: N802
        tid = threading.get_ident()
        return cls._loops.setdefault(tid, cls(tid))

    @classmethod
    def mainRunLoop(cls):  # noqa: N802
        tid = threading.main_thread().ident
        return cls._loops.setdefault(tid, cls(tid))

    def runMode_beforeDate_(self, mode, date):  # noqa: N802
        _mac.log("runMode_beforeDate_", mode, date.seconds, self.is_main)
        return True
