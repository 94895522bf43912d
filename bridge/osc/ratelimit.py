"""A per-key rate limiter for error answers and log lines: a flood of bad input must not become a flood out."""
from __future__ import annotations

import time


class RateLimiter:
    """Allow ``burst`` events per key at once, refilled at ``per_second``; counts what it suppressed."""

    def __init__(self, per_second: float = 5.0, burst: int = 10, clock=time.monotonic):
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self._tokens: dict[str, tuple[float, float]] = {}
        self.suppressed: dict[str, int] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        tokens, last = self._tokens.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.per_second)
        if tokens >= 1.0:
            self._tokens[key] = (tokens - 1.0, now)
            return True
        self._tokens[key] = (tokens, now)
        self.suppressed[key] = self.suppressed.get(key, 0) + 1
        return False

    def take_suppressed(self, key: str) -> int:
        """How many events of ``key`` were held back since the last call (to say "and N more")."""
        return self.suppressed.pop(key, 0)

    def forget(self, key: str) -> None:
        """Drop a key's state (a client that left), so the table stays as small as the live keys."""
        self._tokens.pop(key, None)
        self.suppressed.pop(key, None)
