"""A token bucket on a millisecond clock: `capacity` at once, then `per_s` a second. Pure code."""

from __future__ import annotations


class TokenBucket:
    def __init__(self, capacity: float, per_s: float, now_ms: int, *, tokens: float | None = None) -> None:
        self.capacity = capacity
        self._per_ms = per_s / 1000
        self.tokens = capacity if tokens is None else min(capacity, tokens)
        self.at_ms = now_ms

    def take(self, now_ms: int) -> bool:
        """Spend a token if there is one at `now_ms`. A clock that steps back refills nothing until it passes
        the step; it never empties the bucket."""
        self.tokens = min(self.capacity, self.tokens + max(0, now_ms - self.at_ms) * self._per_ms)
        self.at_ms = max(self.at_ms, now_ms)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
