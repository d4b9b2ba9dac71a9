"""The agent's clock (agent/clock.py) as a test sets it, so that time-driven logic runs without real waits."""

from __future__ import annotations

DEFAULT_WALL_MS = 1_800_000_000_000
"""2027-01-15T08:00:00Z: any fixed moment will do; tests that care about the date pass their own."""


class FakeClock:
    """Time that stands still until the test moves it.

    `advance` is time passing: wall and monotonic time move together. `step_wall` is someone setting the
    clock (an operator, NTP after a long outage): only the wall clock moves, possibly backwards, as the agent
    must expect. `real_s` is the identity, so a wait the code under test hands to a blocking call is real."""

    def __init__(self, wall_ms: int = DEFAULT_WALL_MS, monotonic_s: float | None = None) -> None:
        self._wall_ms = wall_ms
        self._monotonic_s = wall_ms / 1000 if monotonic_s is None else monotonic_s

    def wall_ms(self) -> int:
        return self._wall_ms

    def monotonic(self) -> float:
        return self._monotonic_s

    def real_s(self, seconds: float) -> float:
        return seconds

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass on both clocks."""
        if seconds < 0:
            raise ValueError(f"time passes forwards only, not by {seconds} s; use step_wall for a clock set back")
        self._monotonic_s += seconds
        self._wall_ms += round(seconds * 1000)

    def advance_to(self, wall_ms: int) -> None:
        """Let time pass until the wall clock reads `wall_ms`."""
        if wall_ms < self._wall_ms:
            raise ValueError(f"time passes forwards only, not back to {wall_ms}; use step_wall for a clock set back")
        self._monotonic_s += (wall_ms - self._wall_ms) / 1000
        self._wall_ms = wall_ms

    def step_wall(self, by_ms: int) -> None:
        """Set the wall clock `by_ms` forwards (or backwards, if negative); monotonic time does not notice."""
        self._wall_ms += by_ms
