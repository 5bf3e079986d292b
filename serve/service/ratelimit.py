"""Token buckets per key (a user, a user name being signed in, a client address), in process memory.

Limits are per service process; with several processes behind a balancer each enforces its own.
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """``per_minute`` sustained with bursts of ``burst``; ``per_minute == 0`` turns the limit off."""

    def __init__(self, per_minute: int, burst: int, max_keys: int = 100_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def hit(self, key: str) -> float:
        """Take one token; returns 0 if allowed, else the seconds to wait before retrying."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / self.rate
            if len(self._buckets) >= self._max_keys and key not in self._buckets:
                self._buckets.clear()  # bounded memory; forgetting buckets only relaxes limits briefly
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
