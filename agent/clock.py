"""Time, from one place, so that tests can step it and the station logic never reads a clock itself."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch by the agent's wall clock (what records carry as `ts`)."""
        ...

    def monotonic(self) -> float:
        """Seconds from a clock that never steps, for intervals and timeouts."""
        ...


class SystemClock:
    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()
