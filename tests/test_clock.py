"""Accelerated station time for simulated stations."""

from __future__ import annotations

from agent.clock import ScaledClock


class SteppedClock:
    def __init__(self) -> None:
        self.wall = 1_700_000_000_000
        self.mono = 500.0

    def wall_ms(self) -> int:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def real_s(self, seconds: float) -> float:
        return seconds


def test_scaled_time_runs_faster_from_the_present_and_ignores_wall_steps() -> None:
    base = SteppedClock()
    scaled = ScaledClock(120.0, base)
    assert scaled.wall_ms() == base.wall and scaled.monotonic() == 500.0
    base.mono += 30.0
    base.wall -= 3_600_000  # the real wall clock steps back an hour: station time goes on
    assert scaled.wall_ms() == 1_700_000_000_000 + 3_600_000
    assert scaled.monotonic() == 500.0 + 3600.0
    assert scaled.real_s(60.0) == 0.5  # a minute of station time is half a real second
