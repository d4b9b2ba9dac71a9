"""The `[heartbeat]` and `[clock]` sections: the station loop's heartbeat and its clock check
(agent.lifecycle).

A module of its own, so that checking a config (the first stage of `station-agent run`) does not load the
record types the agent's life is told in; agent.config assembles it with the other sections.
"""

from __future__ import annotations

from typing import Annotated

from drivers.schema import Ge, Gt, Le, doc, settings


@settings
class HeartbeatSection:
    interval_s: Annotated[int, Ge(1), Le(86_400)] = doc("seconds between heartbeat records", default=60)


@settings
class ClockSection:
    jump_threshold_s: Annotated[float, Gt(0)] = doc(
        "a wall-clock step larger than this, in seconds, is a clock_jump event", default=5.0
    )
    time_scale: Annotated[float, Ge(1), Le(10_000)] = doc(
        "station seconds per real second: above 1 only against a simulated station whose time runs as fast "
        "(demonstrations, suppliers' CI); records then carry the accelerated time. A real station runs at 1",
        default=1.0,
    )
