"""The thread that owns the station model: it takes field events, keeps the timers, and submits intents.

Only this thread touches the station's state, so the station logic needs no locks. It wakes for an event, a
heartbeat, or a clock check, never on a fixed fast tick, and it hands every intent to the recorder without
waiting for the disk. While events keep coming, it takes a turn every `PACE_S` with what is there rather than
one for each hand-over: the pollers of a station hand over on grids of their own a few milliseconds apart, and
a wake-up costs the thread more than its work on the events it brings (docs/design.md, "The cost of a poll").
The recorder hands back what it has committed (`StationInbox.committed`), through the same inbox as the field
events: whoever made a record, the day's books count it here, once it is in the outbox, as a restart would
read it back. So a day due to close is closed only when the recorder says that what was submitted before is in
the outbox (`StationInbox.written`, behind the commits it follows; agent/station/daily_close.py).

The inbox is built before the loop, so that the pollers and the recorder, which feed it, can be built before
the station loop, whose heartbeat reads their status. `run()` only waits; `step(now)` does one turn, so a test
drives the loop by hand with a clock of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import get_args

from agent.clock import Clock, Instant, now_of
from agent.containment import Boundary
from agent.contract.records import AgentStopBody, ClockJumpBody, HeartbeatBody, RecordIntent
from agent.fault_hook import hold_if_asked
from agent.field.events import DeviceReading, FieldEvent
from agent.history import as_intent
from agent.ledger.chain import SealedRecord
from agent.lifecycle import ClockWatch
from agent.logs import get_logger
from agent.mailbox import Mailbox
from agent.pulse import Pulse
from agent.station.daily_close import DailyClose
from agent.station.daybooks import READ_TYPES
from agent.station.station import Station
from agent.station_view import LiveNozzles
from drivers.readings import PumpControllerReading

log = get_logger("agent.station")
"""For what a loop may say over and over: once a minute per event and subject, with the count left out."""

CLOCK_CHECK_S = 10.0
TICK_S = 1.0
"""How often the station's time-driven rules run (a sale's wait for its pulses, a device gone silent)."""
MIN_TICK_REAL_S = 0.02
"""On accelerated time the ticks stay at most 50 a real second: a second of station time at 1,200 times real
time would otherwise wake the thread every 0.8 ms for rules whose resolution does not need it."""
PACE_S = 0.2
"""While events keep coming, the least real time from one turn to the next: the thread sleeps through the
hand-overs in between (one wake-up a turn, where each hand-over would wake it), never past a timer due. Every
event keeps its own time (what it records, which day it counts in), the time-driven rules run after the events
taken with them and at the instants they are due, so the pace changes when the station handles an event, never
what it makes of it. 200 ms: a quarter of the wake-ups at 20 Modbus TCP devices polled at 10 Hz (whose events
come in two hand-overs a poll), for records and a status that lag that much more (the status is written once a
second)."""
_CONTAINED: dict[type, str] = {kind: f"event {kind.__name__}" for kind in get_args(FieldEvent)}
"""What the containment of each event says it was handling, written once rather than for every event."""


@dataclass(frozen=True, slots=True)
class _Committed:
    """Records just committed, of the types the day's books read: their canonical bytes, as the outbox holds them."""

    canonical: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class _Written:
    """The recorder's answer to the day close's `request`: what was submitted before it is in the outbox."""

    request: int


@dataclass(frozen=True, slots=True)
class _Stop:
    reason: str
    """The agent_stop record's reason."""


_Item = FieldEvent | _Committed | _Written | _Stop


class StationInbox:
    """What reaches the station loop from other threads: field events (the pollers), committed records and the
    answers to the day's close (the recorder) and the stop. `post`, `committed` and `written` never block."""

    def __init__(self) -> None:
        self._mail: Mailbox[_Item] = Mailbox()
        self._stop_asked = threading.Event()

    def post(self, event: FieldEvent) -> None:
        """One event on its own."""
        self._mail.put(event)

    def post_all(self, events: Sequence[FieldEvent]) -> None:
        """Called by the pollers, once a turn with all its events: the station thread wakes once for them."""
        self._mail.put_all(events)

    def committed(self, records: Sequence[SealedRecord]) -> None:
        """Called by the recorder after each commit. Only what the day's books read is passed on."""
        read = tuple(record.canonical for record in records if record.type in READ_TYPES)
        if read:
            self._mail.put(_Committed(read))

    def written(self, request: int) -> None:
        """Called by the recorder when what was submitted before the day close's `request` is in the outbox."""
        self._mail.put(_Written(request))

    def ask_stop(self, reason: str) -> None:
        """Behind everything posted so far: the loop ends when it takes this. It ends a `pause` too."""
        self._mail.put(_Stop(reason))
        self._stop_asked.set()

    def take_all(self) -> list[_Item]:
        """For the loop's own thread: every item there, oldest first; empty at once if there is none."""
        items = []
        for _ in range(len(self._mail)):  # what is there now, counted rather than taken until it runs out
            item = self._mail.take()
            if item is not None:
                items.append(item)
        return items

    def wait(self, timeout_s: float) -> bool:
        """For the loop's own thread: until an item is there, at most `timeout_s` real seconds; whether one is."""
        return self._mail.wait(timeout_s)

    def pause(self, timeout_s: float) -> None:
        """For the loop's own thread: `timeout_s` real seconds in which the items posted wake no one, cut short by
        a stop. The pollers are stopped before the station (agent/daemon.py), so no more events come to use the
        rest of the pace, while the stop, the recorder's flush and the agent's exit would wait it out."""
        self._stop_asked.wait(timeout_s)


def _at_once(then: Callable[[], None]) -> None:
    then()


@dataclass(frozen=True, slots=True)
class HeartbeatFacts:
    uplink_online: bool
    unacked: int
    devices_online: int
    devices_total: int


class StationLoop:
    def __init__(
        self,
        station: Station,
        submit: Callable[[RecordIntent], None],
        clock: Clock,
        *,
        heartbeat_interval_s: int,
        jump_threshold_ms: int,
        facts: Callable[[], HeartbeatFacts],
        boundary: Boundary,
        inbox: StationInbox | None = None,
        nozzles: LiveNozzles | None = None,
        when_written: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """`inbox`: where its events come from (a fresh one if None, fed through `post`). `nozzles`: where the
        nozzles' phases are published for the status, after each controller reading. `boundary`: the wall around
        each event, note and step (agent/containment.py). `when_written`: the recorder's (`RecorderInbox`), which
        calls back once what was submitted before is in the outbox; None for a loop whose records no recorder
        hands back, which is answered at once."""
        self._station = station
        self._boundary = boundary
        self._nozzles = nozzles
        self._record = submit
        self._when_written = when_written or _at_once
        self._close = DailyClose()
        self._clock = clock
        self._interval_s = heartbeat_interval_s
        self._facts = facts
        self.inbox = inbox or StationInbox()
        self._started = clock.monotonic()
        self._watch = ClockWatch(jump_threshold_ms, clock.wall_ms(), self._started)
        self.pulse = Pulse()
        self._tick_s = max(TICK_S, MIN_TICK_REAL_S / clock.real_s(1.0))
        self._next_heartbeat = self._started + self._interval_s
        self._next_clock_check = self._started + CLOCK_CHECK_S
        self._next_tick = self._started + self._tick_s
        self._thread: threading.Thread | None = None
        self._shown: dict[str, PumpControllerReading] = {}
        """Each controller's reading the nozzles' phases were last published after, the station having taken
        it whole. The very same reading again (an idle dispenser: drivers/device.py gives the same object for
        the same answers) leaves every phase as that reading set it, so there is nothing to publish; an event
        whose handling fails removes its controller from here, and the next reading is published in full."""

    def resume(self, records: Iterable[RecordIntent], starting: list[RecordIntent]) -> None:
        """Before `start`: the station brought up to date with its records since its first open day (`replay_from_ms`)
        and this start's own records, which are submitted, then what follows from them (the closes of days that
        ended while the agent was down)."""
        self._submit_all(self._station.resume(records, starting, self._clock.wall_ms()))

    def replay_from_ms(self) -> int:
        return self._station.replay_from_ms(self._clock.wall_ms())

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="station", daemon=True)
        self._thread.start()

    def post(self, event: FieldEvent) -> None:
        """The inbox's `post`: never blocks."""
        self.inbox.post(event)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def uptime_s(self) -> int:
        return int(self._clock.monotonic() - self._started)

    def stop(self, reason: str, timeout_s: float = 5.0) -> bool:
        """Handle the events already posted, then record the stop; returns whether the thread ended (a loop
        never started makes its stop record at its next `step`)."""
        self.inbox.ask_stop(reason)
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self.alive()

    def run(self) -> None:
        """The thread: a turn with every item there, until the stop. After a turn that had items, more are on
        their way: it sleeps until `PACE_S` after that turn began, the next timer or a stop, whichever is first;
        after one without, it waits for the next item or timer."""
        paced, began_s = False, time.monotonic()
        while True:
            hold_if_asked("station")
            next_due = min(self._next_heartbeat, self._next_clock_check, self._next_tick)
            wait_s = self._clock.real_s(max(0.0, next_due - self._clock.monotonic()))
            if paced:
                wait_s = min(wait_s, max(0.0, began_s + PACE_S - time.monotonic()))
            self.pulse.beat(wait_s)
            if paced:
                self.inbox.pause(wait_s)  # the hand-overs meanwhile wake no one
            else:
                self.inbox.wait(wait_s)
            began_s = time.monotonic()
            items = self.inbox.take_all()
            paced = bool(items)
            if not self._turn(items, now_of(self._clock)):
                return

    def step(self, now: Instant) -> bool:
        """One turn at `now`: every item of the inbox, oldest first, then whichever timers are due (the station's
        tick and day closes, the clock check, the heartbeat), which so judge time with every event taken in.
        False once the stop was taken: what time has completed by then (a sale's wait, a pressure interval) is
        recorded, then the agent_stop record."""
        return self._turn(self.inbox.take_all(), now)

    def _turn(self, items: list[_Item], now: Instant) -> bool:
        """`step` with its items; the thread reads `now` after taking them, so the timers never run at an
        instant before an event they follow."""
        for item in items:
            if isinstance(item, _Stop):
                self._check_clock(now)
                self._tick(now.wall_ms)
                body = AgentStopBody(reason=item.reason, uptime_s=int(now.monotonic_s - self._started))
                self._submit(body.intent(now.wall_ms))
                return False
            if isinstance(item, _Committed):
                self._note(item)
            elif isinstance(item, _Written):
                self._close_days(item.request, now.wall_ms)
            else:
                self._handle(item)
        if now.monotonic_s >= self._next_tick:
            self._tick(now.wall_ms)
            self._next_tick = now.monotonic_s + self._tick_s
        if now.monotonic_s >= self._next_clock_check:
            self._check_clock(now)
            self._next_clock_check = now.monotonic_s + CLOCK_CHECK_S
        if now.monotonic_s >= self._next_heartbeat:
            self._check_clock(now)
            self._heartbeat(now)
            behind = int((now.monotonic_s - self._next_heartbeat) // self._interval_s) + 1
            self._next_heartbeat += self._interval_s * max(1, behind)
        return True

    def _note(self, committed: _Committed) -> None:
        for canonical in committed.canonical:
            with self._boundary.contain("note"):
                self._station.note(as_intent(canonical))

    def _handle(self, event: FieldEvent) -> None:
        with self._boundary.contain(_CONTAINED.get(type(event), "event")):
            if isinstance(event, DeviceReading) and isinstance(event.reading, PumpControllerReading):
                self._controller_reading(event, event.reading)
            else:
                self._submit_all(self._station.on_event(event))

    def _controller_reading(self, event: DeviceReading, reading: PumpControllerReading) -> None:
        """The station takes it, then the nozzles' phases it leaves are published (unless it is `_shown`)."""
        shown = self._shown.pop(event.device, None)
        self._submit_all(self._station.on_event(event))
        if self._nozzles is not None and reading is not shown:
            self._nozzles.on_controller(event.device, reading, self._station.phase_of)
        self._shown[event.device] = reading

    def _tick(self, now_ms: int) -> None:
        """The station's time-driven rules, then the day's close, each on its own: one failing (a bug) must not
        take the other's records with it. A day due to close is closed when the recorder's answer comes back."""
        with self._boundary.contain("tick"):
            self._submit_all(self._station.tick(now_ms))
        with self._boundary.contain("close_days"):
            request = self._close.request(now_ms, self._station.closes_due)
            if request is not None:
                self._when_written(partial(self.inbox.written, request))

    def _close_days(self, request: int, now_ms: int) -> None:
        """The summaries of the days due when the close began, if `request` is the one they wait for."""
        due_at_ms = self._close.answered(request)
        if due_at_ms is not None:
            with self._boundary.contain("close_days"):
                self._submit_all(self._station.close_days(now_ms, due_at_ms=due_at_ms))

    def _submit_all(self, intents: list[RecordIntent]) -> None:
        for intent in intents:
            self._submit(intent)

    def _submit(self, intent: RecordIntent) -> None:
        self._close.submitted(intent)
        self._record(intent)

    def _check_clock(self, now: Instant) -> None:
        jump = self._watch.check(now.wall_ms, now.monotonic_s)
        if jump is not None:
            if isinstance(jump.body, ClockJumpBody):
                log.warning("clock_jump", jump_ms=jump.body.jump_ms)
            self._submit(jump)

    def _heartbeat(self, now: Instant) -> None:
        facts = self._facts()
        body = HeartbeatBody(
            interval_s=self._interval_s,
            uptime_s=int(now.monotonic_s - self._started),
            uplink="online" if facts.uplink_online else "offline",
            unacked=facts.unacked,
            devices_online=facts.devices_online,
            devices_total=facts.devices_total,
        )
        self._submit(body.intent(now.wall_ms))
