"""The thread that owns the station model: it takes field events, keeps the timers, and submits intents.

Only this thread touches the station's state, so the station logic needs no locks. It wakes for an event, a
heartbeat, or a clock check, never on a fixed fast tick, and it hands every intent to the recorder without
waiting for the disk.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent.clock import Clock
from agent.fault_hook import hold_if_asked
from agent.field.events import FieldEvent
from agent.lifecycle import ClockWatch
from agent.logs import get_logger
from agent.pulse import Pulse
from agent.records import AgentStopBody, HeartbeatBody, RecordIntent
from agent.station.station import Station

log = get_logger("agent.station")

CLOCK_CHECK_S = 10.0
TICK_S = 1.0
"""How often the station's time-driven rules run (a sale's wait for its pulses, a device gone silent)."""
MIN_TICK_REAL_S = 0.02
"""On accelerated time the ticks stay at most 50 a real second: a second of station time at 1,200 times real
time would otherwise wake the thread every 0.8 ms for rules whose resolution does not need it."""


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
    ) -> None:
        self._station = station
        self._submit = submit
        self._clock = clock
        self._interval_s = heartbeat_interval_s
        self._facts = facts
        self._started = clock.monotonic()
        self._watch = ClockWatch(jump_threshold_ms, clock.wall_ms(), self._started)
        self._events: queue.SimpleQueue[FieldEvent | None] = queue.SimpleQueue()
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

    def alive(self) -> bool:
        return self._thread.is_alive()

    def uptime_s(self) -> int:
        return int(self._clock.monotonic() - self._started)

    def stop(self, reason: str, timeout_s: float = 5.0) -> None:
        """Handle the events already posted, then record the stop."""
        self._stop_reason = reason
        self._events.put(None)
        self._thread.join(timeout_s)

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
        self._submit_noted(body.intent(self._clock.wall_ms()))

    def _submit_noted(self, intent: RecordIntent) -> None:
        """A record made here rather than by the station, which the station's day books must see too."""
        self._station.note(intent)
        self._submit(intent)

    def _handle(self, event: FieldEvent) -> None:
        try:
            intents = self._station.on_event(event)
        except Exception:
            log.exception("station_event_failed", field_event=type(event).__name__)
            return
        self._submit_all(intents)

    def _tick(self) -> None:
        """The station's time-driven rules, then the day's summaries, each on its own: one failing (a bug)
        must not take the other's records with it."""
        for name, step in (("tick", self._station.tick), ("close_days", self._station.close_days)):
            try:
                intents = step(self._clock.wall_ms())
            except Exception:
                log.exception("station_step_failed", step=name)
                continue
            self._submit_all(intents)

    def _submit_all(self, intents: list[RecordIntent]) -> None:
        for intent in intents:
            self._submit(intent)

    def _check_clock(self, monotonic_s: float) -> None:
        jump = self._watch.check(self._clock.wall_ms(), monotonic_s)
        if jump is not None:
            log.warning("clock_jump", jump_ms=jump.body["jump_ms"])
            self._submit_noted(jump)

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
        self._submit_noted(body.intent(self._clock.wall_ms()))
