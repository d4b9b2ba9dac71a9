"""The station loop's own thread while events keep coming: a turn per `PACE_S` with what is there, every event
handled in the order handed over, and the stop still taken."""

from __future__ import annotations

import time

from test_station import BINDING, RULES

from agent.clock import Instant, SystemClock
from agent.containment import Boundary
from agent.contract.records import AgentStopBody, DeviceOnlineBody, RecordIntent
from agent.field.events import DeviceOnline
from agent.station.station import Station
from agent.station_loop import PACE_S, HeartbeatFacts, StationLoop

HAND_OVERS = 60
HAND_OVER_EVERY_S = 0.01


class CountingLoop(StationLoop):
    """The station loop, counting its turns that had items."""

    turns_with_items = 0

    def _turn(self, items: list, now: Instant) -> bool:  # type: ignore[type-arg]
        if items:
            self.turns_with_items += 1
        return super()._turn(items, now)


def test_hand_overs_every_10_ms_are_taken_a_turn_per_pace_each_event_in_order() -> None:
    """Hand-overs every 10 ms for 0.6 s wake the thread for a turn at most once per `PACE_S` (not once each), and
    every event is handled, in the order handed over, before the stop's record."""
    clock = SystemClock()
    submitted: list[RecordIntent] = []
    loop = CountingLoop(
        Station([BINDING], {}, RULES),
        submitted.append,
        clock,
        heartbeat_interval_s=3600,
        jump_threshold_ms=60_000,
        facts=lambda: HeartbeatFacts(True, 0, 1, 1),
        boundary=Boundary("station", submitted.append, clock),
    )
    loop.start()
    began_s = time.monotonic()
    for number in range(HAND_OVERS):
        loop.inbox.post_all([DeviceOnline(f"d{number}", "rs485-1", clock.wall_ms())])
        time.sleep(HAND_OVER_EVERY_S)
    elapsed_s = time.monotonic() - began_s
    assert loop.stop("test", timeout_s=5.0)
    online = [i.body.device for i in submitted if isinstance(i.body, DeviceOnlineBody)]
    assert online == [f"d{number}" for number in range(HAND_OVERS)]
    assert isinstance(submitted[-1].body, AgentStopBody)
    assert loop.turns_with_items <= elapsed_s / PACE_S + 2
