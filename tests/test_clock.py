"""Accelerated station time for simulated stations."""

from __future__ import annotations

from support.clock import FakeClock

from agent.clock import ScaledClock


def test_scaled_time_runs_faster_from_the_present_and_ignores_wall_steps() -> None:
    base = FakeClock(wall_ms=1_700_000_000_000, monotonic_s=500.0)
    scaled = ScaledClock(120.0, base)
    assert scaled.wall_ms() == base.wall_ms() and scaled.monotonic() == 500.0
    base.advance(30.0)
    base.step_wall(-3_600_000)  # the real wall clock steps back an hour: station time goes on
    assert scaled.wall_ms() == 1_700_000_000_000 + 3_600_000
    assert scaled.monotonic() == 500.0 + 3600.0
    assert scaled.real_s(60.0) == 0.5  # a minute of station time is half a real second
