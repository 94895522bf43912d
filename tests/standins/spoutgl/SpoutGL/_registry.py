"""The process-wide sender table the stand-in's senders and receivers share (Spout's shared memory map)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field


class StandInViolation(AssertionError):
    """The adapter used SpoutGL in a way the real library would not work with."""


@dataclass
class SharedSender:
    name: str
    width: int = 0
    height: int = 0
    gl_format: int = 0
    pixels: bytes = b""
    frame: int = 0
    event: threading.Condition = field(default_factory=threading.Condition)
    synced: int = 0  # setFrameSync count


class Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.senders: dict[str, SharedSender] = {}
        self.calls: list[tuple[str, str, tuple, int]] = []  # (class, method, args, thread id): for tests

    def register(self, wanted: str) -> SharedSender:
        """Spout 2.007: a taken name gets _1, _2 ... appended."""
        with self.lock:
            name, n = wanted, 0
            while name in self.senders:
                n += 1
                name = f"{wanted}_{n}"
            sender = self.senders[name] = SharedSender(name)
            return sender

    def unregister(self, name: str) -> None:
        with self.lock:
            self.senders.pop(name, None)

    def get(self, name: str) -> SharedSender | None:
        with self.lock:
            return self.senders.get(name)

    def names(self) -> list[str]:
        with self.lock:
            return list(self.senders)

    def reset(self) -> None:
        with self.lock:
            self.senders.clear()
            self.calls.clear()


REGISTRY = Registry()
