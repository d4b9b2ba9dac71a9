"""The station loop's own thread while events keep coming: a turn per `PACE_S` with what is there, every event
handled in the order handed over, the stop still taken, and the timers never held by the pace."""

from __future__ import annotations

import time
from typing import Any

from support.station_loop import bare_loop
from test_station import BINDING, RULES

from agent.clock import Instant, ScaledClock, SystemClock
from agent.contract.records import AgentStopBody, DeviceOnlineBody, RecordIntent
from agent.field.events import DeviceOnline
from agent.station.station import Station
from agent.station_loop import MIN_TICK_REAL_S, PACE_S, StationLoop

HAND_OVERS = 60
HAND_OVER_EVERY_S = 0.01


class CountingStation(Station):
    """The station model, counting its ticks."""

    ticks = 0

    def tick(self, now_ms: int) -> list[RecordIntent]:
        self.ticks += 1
        return super().tick(now_ms)


class CountingLoop(StationLoop):
    """The station loop, counting its turns that had items."""

    turns_with_items = 0

    def _turn(self, items: list, now: Instant) -> bool:  # type: ignore[type-arg]
        if items:
            self.turns_with_items += 1
        return super()._turn(items, now)


def _hand_over_for_a_while(loop: StationLoop, clock: SystemClock | ScaledClock) -> float:
    """`HAND_OVERS` hand-overs of a device coming online, one every `HAND_OVER_EVERY_S`; the real seconds taken."""
    began_s = time.monotonic()
    for number in range(HAND_OVERS):
        loop.inbox.post_all([DeviceOnline(f"d{number}", "rs485-1", clock.wall_ms())])
        time.sleep(HAND_OVER_EVERY_S)
    return time.monotonic() - began_s


def test_hand_overs_every_10_ms_are_taken_a_turn_per_pace_each_event_in_order() -> None:
    """Hand-overs every 10 ms for 0.6 s wake the thread for a turn at most once per `PACE_S` (not once each), and
    every event is handled, in the order handed over, before the stop's record."""
    clock = SystemClock()
    submitted: list[RecordIntent] = []
    loop = bare_loop(CountingLoop, Station([BINDING], {}, RULES), submitted, clock)
    loop.start()
    elapsed_s = _hand_over_for_a_while(loop, clock)
    assert loop.stop("test", timeout_s=5.0)
    online = [i.body.device for i in submitted if isinstance(i.body, DeviceOnlineBody)]
    assert online == [f"d{number}" for number in range(HAND_OVERS)]
    assert isinstance(submitted[-1].body, AgentStopBody)
    assert loop.turns_with_items <= elapsed_s / PACE_S + 2


def test_on_accelerated_time_the_ticks_keep_their_rate_while_events_keep_coming() -> None:
    """At 1,200 times real time the station's tick is due every `MIN_TICK_REAL_S` real seconds: with hand-overs
    every 10 ms the thread still turns for each tick due, far more often than once a `PACE_S` (its sleep ends at
    the next timer), and handles every event."""
    clock = ScaledClock(1200.0, SystemClock())
    station = CountingStation([BINDING], {}, RULES)
    submitted: list[RecordIntent] = []
    loop = bare_loop(CountingLoop, station, submitted, clock)
    loop.start()
    elapsed_s = _hand_over_for_a_while(loop, clock)
    assert loop.stop("test", timeout_s=5.0)
    assert len([i for i in submitted if isinstance(i.body, DeviceOnlineBody)]) == HAND_OVERS
    assert elapsed_s / MIN_TICK_REAL_S / 3 > elapsed_s / PACE_S + 2  # the bound below tells the two apart
    assert station.ticks > elapsed_s / MIN_TICK_REAL_S / 3


class TurnTimingLoop(StationLoop):
    """The station loop, noting the real time each of its turns that had items began."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.turns_began_s: list[float] = []

    def _turn(self, items: list, now: Instant) -> bool:  # type: ignore[type-arg]
        if items:
            self.turns_began_s.append(time.monotonic())
        return super()._turn(items, now)


def _paced(loop: TurnTimingLoop, clock: SystemClock) -> float:
    """An event handed over and taken, so the thread sleeps out a pace; returns the real time the pace began.
    Tried again (at most five times) if this thread got the news so late that half the pace had gone."""
    for number in range(5):
        turns = len(loop.turns_began_s)
        loop.inbox.post_all([DeviceOnline(f"d{number}", "rs485-1", clock.wall_ms())])
        deadline_s = time.monotonic() + 5.0
        while len(loop.turns_began_s) == turns and time.monotonic() < deadline_s:
            time.sleep(0.001)
        began_s = loop.turns_began_s[-1]
        if time.monotonic() < began_s + PACE_S / 2:
            return began_s
    raise AssertionError("the thread never took an event early enough in its pace to ask for the stop")


def test_a_stop_asked_while_the_thread_sleeps_out_its_pace_is_taken_at_once() -> None:
    """A stop asked while the thread sleeps out `PACE_S` after a turn with events (the pollers stopped first, as
    SIGTERM and `station-agent stop` stop them) is taken at once, not when the pace ends: the stop waits for no
    more events, and its record still comes after every event handed over."""
    clock = SystemClock()
    submitted: list[RecordIntent] = []
    loop = bare_loop(TurnTimingLoop, Station([BINDING], {}, RULES), submitted, clock)
    loop.start()
    pace_began_s = _paced(loop, clock)
    asked_s = time.monotonic()
    assert loop.stop("test", timeout_s=5.0)
    assert loop.turns_began_s[-1] < pace_began_s + PACE_S
    assert loop.turns_began_s[-1] - asked_s < PACE_S / 2
    online = [i.body.device for i in submitted if isinstance(i.body, DeviceOnlineBody)]
    assert online and online == [f"d{number}" for number in range(len(online))]
    assert isinstance(submitted[-1].body, AgentStopBody)
