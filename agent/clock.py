"""Time, from one place, so that tests can step it and the station logic never reads a clock itself."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch by the agent's wall clock (what records carry as `ts`)."""
        ...

    def monotonic(self) -> float:
        """Seconds from a clock that never steps, for intervals and timeouts."""
        ...

    def real_s(self, seconds: float) -> float:
        """How long `seconds` of this clock take in real time: what to hand to a blocking wait."""
        ...


@dataclass(frozen=True, slots=True)
class Instant:
    """One reading of a clock, both its times at once: what a loop's `step(now)` is handed, so that everything one
    step decides (which timer is due, which `ts` a record carries) follows from one instant a test can choose."""

    monotonic_s: float
    wall_ms: int


def now_of(clock: Clock) -> Instant:
    return Instant(clock.monotonic(), clock.wall_ms())


class SystemClock:
    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    def real_s(self, seconds: float) -> float:
        return seconds


class ScaledClock:
    """Station time that runs `scale` times as fast as `base`, starting from `base`'s present.

    A simulated station compresses a day into minutes; the station logic (polls, books that close every hour,
    days) must then run on the same accelerated time, while the uplink and the ledger keep real time for
    their timeouts. Wall steps of `base` after the start are not followed: the scaled wall clock is derived
    from the monotonic one, so it never steps."""

    def __init__(self, scale: float, base: Clock) -> None:
        self._scale = scale
        self._base = base
        self._wall0_ms = base.wall_ms()
        self._monotonic0 = base.monotonic()

    def wall_ms(self) -> int:
        return self._wall0_ms + int((self._base.monotonic() - self._monotonic0) * self._scale * 1000)

    def monotonic(self) -> float:
        return self._monotonic0 + (self._base.monotonic() - self._monotonic0) * self._scale

    def real_s(self, seconds: float) -> float:
        return self._base.real_s(seconds / self._scale)
