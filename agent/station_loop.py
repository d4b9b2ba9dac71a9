"""The thread that owns the station model: it takes field events, keeps the timers, and submits intents.

Only this thread touches the station's state, so the station logic needs no locks. It wakes for an event, a
heartbeat, or a clock check, never on a fixed fast tick, and it hands every intent to the recorder without
waiting for the disk. The recorder hands back what it has committed (`committed`), through the same queue as the
field events: whoever made a record, the day's books count it here, once it is in the outbox, as a restart
would read it back.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from agent.clock import Clock
from agent.containment import Boundary
from agent.contract.records import AgentStopBody, ClockJumpBody, HeartbeatBody, RecordIntent
from agent.fault_hook import hold_if_asked
from agent.field.events import DeviceReading, FieldEvent
from agent.history import as_intent
from agent.ledger.chain import SealedRecord
from agent.lifecycle import ClockWatch
from agent.logs import get_logger
from agent.pulse import Pulse
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


@dataclass(frozen=True, slots=True)
class _Committed:
    """Records just committed, of the types the day's books read: their canonical bytes, as the outbox holds them."""

    canonical: tuple[bytes, ...]


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
        nozzles: LiveNozzles | None = None,
    ) -> None:
        """`nozzles`: where the nozzles' phases are published for the status, after each controller reading.
        `boundary`: the wall around each event, note and step (agent/containment.py)."""
        self._station = station
        self._boundary = boundary
        self._nozzles = nozzles
        self._submit = submit
        self._clock = clock
        self._interval_s = heartbeat_interval_s
        self._facts = facts
        self._started = clock.monotonic()
        self._watch = ClockWatch(jump_threshold_ms, clock.wall_ms(), self._started)
        self._events: queue.SimpleQueue[FieldEvent | _Committed | None] = queue.SimpleQueue()
        self._stop_reason = "stopped"
        self.pulse = Pulse()
        self._tick_s = max(TICK_S, MIN_TICK_REAL_S / clock.real_s(1.0))
        self._thread = threading.Thread(target=self._run, name="station", daemon=True)

    def resume(self, records: Iterable[RecordIntent], starting: list[RecordIntent]) -> None:
        """Before `start`: the station brought up to date with its records since its first open day (`replay_from_ms`)
        and this start's own records, which are submitted, then what follows from them (the closes of days that
        ended while the agent was down)."""
        self._submit_all(self._station.resume(records, starting, self._clock.wall_ms()))

    def replay_from_ms(self) -> int:
        return self._station.replay_from_ms(self._clock.wall_ms())

    def start(self) -> None:
        self._thread.start()

    def post(self, event: FieldEvent) -> None:
        """Called by the pollers; never blocks."""
        self._events.put(event)

    def committed(self, records: Sequence[SealedRecord]) -> None:
        """Called by the recorder after each commit; never blocks. Only what the day's books read is passed on."""
        read = tuple(record.canonical for record in records if record.type in READ_TYPES)
        if read:
            self._events.put(_Committed(read))

    def alive(self) -> bool:
        return self._thread.is_alive()

    def uptime_s(self) -> int:
        return int(self._clock.monotonic() - self._started)

    def stop(self, reason: str, timeout_s: float = 5.0) -> bool:
        """Handle the events already posted, then record the stop; returns whether the thread ended."""
        self._stop_reason = reason
        self._events.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        next_heartbeat = self._started + self._interval_s
        next_clock_check = self._started + CLOCK_CHECK_S
        next_tick = self._started + self._tick_s
        while True:
            hold_if_asked("station")
            now = self._clock.monotonic()
            try:
                wait_s = self._clock.real_s(max(0.0, min(next_heartbeat, next_clock_check, next_tick) - now))
                self.pulse.beat(wait_s)
                event = self._events.get(timeout=wait_s)
            except queue.Empty:
                pass
            else:
                if event is None:
                    break
                if isinstance(event, _Committed):
                    self._note(event)
                else:
                    self._handle(event)
            now = self._clock.monotonic()
            if now >= next_tick:
                self._tick()
                next_tick = now + self._tick_s
            if now >= next_clock_check:
                self._check_clock(now)
                next_clock_check = now + CLOCK_CHECK_S
            if now >= next_heartbeat:
                self._check_clock(now)
                self._heartbeat()
                next_heartbeat += self._interval_s * max(1, int((now - next_heartbeat) // self._interval_s) + 1)
        self._check_clock(self._clock.monotonic())
        self._tick()  # what time has completed by now (a sale's wait, a pressure interval) is recorded before the stop
        body = AgentStopBody(reason=self._stop_reason, uptime_s=self.uptime_s())
        self._submit(body.intent(self._clock.wall_ms()))

    def _note(self, committed: _Committed) -> None:
        for canonical in committed.canonical:
            with self._boundary.contain("note"):
                self._station.note(as_intent(canonical))

    def _handle(self, event: FieldEvent) -> None:
        with self._boundary.contain(f"event {type(event).__name__}"):
            self._submit_all(self._station.on_event(event))
            if self._nozzles is not None and isinstance(event, DeviceReading):
                reading = event.reading
                if isinstance(reading, PumpControllerReading):
                    self._nozzles.on_controller(event.device, reading, self._station.phase_of)

    def _tick(self) -> None:
        """The station's time-driven rules, then the day's summaries, each on its own: one failing (a bug)
        must not take the other's records with it."""
        for name, step in (("tick", self._station.tick), ("close_days", self._station.close_days)):
            with self._boundary.contain(name):
                self._submit_all(step(self._clock.wall_ms()))

    def _submit_all(self, intents: list[RecordIntent]) -> None:
        for intent in intents:
            self._submit(intent)

    def _check_clock(self, monotonic_s: float) -> None:
        jump = self._watch.check(self._clock.wall_ms(), monotonic_s)
        if jump is not None:
            if isinstance(jump.body, ClockJumpBody):
                log.warning("clock_jump", jump_ms=jump.body.jump_ms)
            self._submit(jump)

    def _heartbeat(self) -> None:
        facts = self._facts()
        body = HeartbeatBody(
            interval_s=self._interval_s,
            uptime_s=self.uptime_s(),
            uplink="online" if facts.uplink_online else "offline",
            unacked=facts.unacked,
            devices_online=facts.devices_online,
            devices_total=facts.devices_total,
        )
        self._submit(body.intent(self._clock.wall_ms()))
