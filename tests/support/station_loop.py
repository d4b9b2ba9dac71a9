"""A station loop on its own, its records handed to a list: for tests of the loop rather than of the wiring."""

from __future__ import annotations

from typing import TypeVar

from agent.clock import Clock
from agent.containment import Boundary
from agent.contract.records import RecordIntent
from agent.station.station import Station
from agent.station_loop import HeartbeatFacts, StationLoop

L = TypeVar("L", bound=StationLoop)


def bare_loop(kind: type[L], station: Station, submitted: list[RecordIntent], clock: Clock) -> L:
    """`kind` (a StationLoop or a subclass) around `station`, submitting to `submitted`, with an hourly heartbeat,
    a minute's clock-jump threshold and the heartbeat's facts of one device online."""
    return kind(
        station,
        submitted.append,
        clock,
        heartbeat_interval_s=3600,
        jump_threshold_ms=60_000,
        facts=lambda: HeartbeatFacts(True, 0, 1, 1),
        boundary=Boundary("station", submitted.append, clock),
    )
