"""One poller per line: devices served in turn, one request in flight, each device at its own rate.

Theory of operation: a line is a half-duplex bus, so its poller is one thread that keeps a schedule (a heap
of due times) and serves whichever device is due next; a slow or dead device costs only its own timeouts.
A failed request is retried within a small budget; a device that fails `OFFLINE_AFTER` polls in a row is
declared offline (an event for the station) and then polled less and less often, up to `MAX_BACKOFF_S`,
so that it cannot starve the healthy devices on the same line. The first good poll brings it back online.
Every `health_every_s` it also reports the line's own health (attempts and failures on devices that answer)
so the station can tell a noisy line from a dead device. The poller never waits on the station, the disk or
the network: it hands its events to a non-blocking sink, all those of a turn at once (a dispenser's controller and
pulse counter, due together, are one hand-over and one wake-up of the station thread).

A device that answers with values that cannot be true (drivers.errors.DeviceValueFault: NaN, infinity, out of
range) is answering: it stays online and its line healthy, but the values never reach the station as a
reading; the poller says which values are at fault (`DeviceValueFaults`) whenever that changes, and an empty
list once the device reads sane again. Each poll runs inside the line's containment boundary, so whatever
else a device's answer may cause is counted as an `internal_error` and the line goes on with the next device.

The thread starts in `start()`; its `run()` only waits for the next device due and serves it with those due at
the same instant, and `step(now)` serves the one due first. The same line can also be served by a thread that
serves many lines and waits on all their sockets at once (agent/field/tcp_lines.py): that thread sends a poll's
reads itself and tells the poller how each try ended (`begin_poll`, `poll_answered`, `poll_failed`,
`poll_contained`), so that the schedule, the retries, the health and the events are this module's either way.
A poll there is a plain object taken up again at each answer, not a generator resumed through the poll's layers:
the poll is on the path of every device, many times a second (docs/design.md, "The cost of a poll").
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from agent.clock import Clock, Instant, now_of
from agent.containment import Boundary
from agent.field.events import (
    DeviceOffline,
    DeviceOnline,
    DeviceReading,
    DeviceValueFaults,
    FieldEvent,
    LineHealth,
)
from agent.logs import get_logger, repeat_limited
from agent.pulse import Pulse
from drivers.device import RegisterRead
from drivers.errors import DeviceValueFault, FieldError
from drivers.readings import Reading, ValueFault
from drivers.transport.statistics import LinkCounters, LinkStatistics

log = get_logger("agent.poller")
repeats = repeat_limited("agent.poller")
"""For what a loop may say over and over: once a minute per event and subject, with the count left out."""

OFFLINE_AFTER = 3
RETRIES_PER_POLL = 1
MAX_BACKOFF_S = 30.0


class Link(Protocol):
    """The line's port or connection, shared by its devices: a Modbus master or a tank-gauge client."""

    def close(self) -> None: ...

    def statistics(self) -> LinkStatistics:
        """The link's counters, shown as they are in the status."""
        ...


@dataclass(frozen=True, slots=True)
class PolledDevice:
    """A device on the line: `read` does one poll (all its requests) and returns the typed reading, or raises
    a FieldError of the kind that went wrong."""

    name: str
    unit: int | None
    interval_s: float
    read: Callable[[], Reading]
    reads: tuple[RegisterRead, ...] = ()
    """The same poll's reads, in order, for a line served without blocking (agent/field/tcp_lines.py), whose
    answers `reading_of` makes into the reading; none where the device is only ever read by waiting (a serial
    line, a tank gauge)."""
    reading_of: Callable[[tuple[tuple[int, ...], ...]], Reading] | None = None


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    name: str
    unit: int | None
    state: Literal["unknown", "online", "offline"]
    since_ms: int
    polls: int
    failed_polls: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class LineStatus:
    name: str
    devices: tuple[DeviceStatus, ...]
    bus: LinkStatistics
    """The requests on the line and how each ended, counted by its master or gauge client."""


@dataclass(slots=True)
class _Health:
    state: Literal["unknown", "online", "offline"] = "unknown"
    since_ms: int = 0
    failures_in_row: int = 0
    held: LinkCounters = field(default_factory=LinkCounters)
    """Failed poll attempts not yet known to be the line's or the device's (see `LinePoller._live`); only an
    answering device's are held, so it is empty while the device is offline."""
    polls: int = 0
    failed_polls: int = 0
    last_error: str | None = None
    faults: tuple[ValueFault, ...] | None = None
    """The value faults last said to the station; None until the first answer."""


class Poll:
    """A device's poll under way: the device, its health, when it was due and the tries it has left. Made once per
    device and taken up again at each of its polls."""

    __slots__ = ("answering", "device", "due", "health", "index", "tries_left")

    def __init__(self, index: int, device: PolledDevice, health: _Health) -> None:
        self.index = index
        self.device = device
        self.health = health
        self.due = 0.0
        self.answering = True
        """Whether the device was not offline as the poll began: only then is a failed try tried again, and its
        failures held for the line."""
        self.tries_left = 0


class LinePoller:
    def __init__(
        self,
        line: str,
        devices: list[PolledDevice],
        master: Link,
        clock: Clock,
        sink: Callable[[Sequence[FieldEvent]], None],
        *,
        boundary: Boundary,
        health_every_s: float = 10.0,
        answer_timeout_s: float = 0.0,
    ) -> None:
        """`sink` takes a turn's events, in order, once a turn that has any. `boundary` contains each poll (named
        `poll <device>`): an unexpected error costs that poll only. `answer_timeout_s` is the line's: a poll of a
        silent device waits it out in each try, and the hold after a timeout once more, so before each poll the
        loop promises the watchdog that long (a poll that takes longer than that is stuck, not slow)."""
        self.line = line
        self._poll_budget_s = (1 + RETRIES_PER_POLL) * 2 * answer_timeout_s
        self._boundary = boundary
        self._health_every_s = health_every_s
        self._devices = devices
        self._master = master
        self._clock = clock
        self._sink = sink
        self._events: list[FieldEvent] = []
        """The events of this turn, handed to the sink at its end."""
        self._health = {device.name: _Health(since_ms=clock.wall_ms()) for device in devices}
        self._poll_names = tuple(f"poll {device.name}" for device in devices)
        """What each device's poll is called in its containment boundary, by device index."""
        self._polls = tuple(Poll(index, device, self._health[device.name]) for index, device in enumerate(devices))
        # Poll attempts that speak of the line itself, one exchange per attempt. A device's failures are held
        # until it answers again: if it does, they were the line's trouble (noise, a bad termination, a device
        # that disturbs the bus); if it goes offline instead, they were the device's, and that is a
        # device_silent matter, not a line_errors one.
        self._live = LinkCounters()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.pulse = Pulse()
        self._schedule: list[tuple[float, int]] = []
        """(due, device index) as a heap: the device due first is served next."""
        self._next_health = 0.0
        self.begin(clock.monotonic())
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        """Its thread's name, and its loop's for the watchdog."""
        return f"poller-{self.line}"

    @property
    def devices(self) -> Sequence[PolledDevice]:
        """The line's devices in the config's order: a `Poll`'s `index` is its device's place here."""
        return self._devices

    def begin(self, now_s: float) -> None:
        """Every device due at monotonic `now_s`, the line's health `health_every_s` later. While the polls keep
        up, each device stays on this grid at its own interval, so devices of one interval (a controller and its
        pulse counter) are polled in the config's order, one right after the other."""
        self._schedule = [(now_s, index) for index in range(len(self._devices))]
        heapq.heapify(self._schedule)
        self._next_health = now_s + self._health_every_s

    def start(self) -> None:
        """Begin the schedule now (the time since the poller was built is no backlog) and start the thread."""
        self.begin(self._clock.monotonic())
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def ask_stop(self) -> None:
        """Tell the thread to end after its current poll, without waiting for it (`stop` waits)."""
        self._stop.set()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """End the thread and close the line; returns whether the thread ended. A device that hangs a read
        longer than `timeout_s` keeps the thread, and the line, which its read holds, is left to the process's
        exit rather than waited for."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout_s)
        ended = not self.alive()
        if ended:
            self._master.close()
        return ended

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> LineStatus:
        with self._lock:
            devices = tuple(
                DeviceStatus(
                    device.name,
                    device.unit,
                    health.state,
                    health.since_ms,
                    health.polls,
                    health.failed_polls,
                    health.last_error,
                )
                for device in self._devices
                for health in (self._health[device.name],)
            )
        return LineStatus(self.line, devices, self._master.statistics())

    def run(self) -> None:
        """The thread: wait until the next device is due, then serve it and every other device due at the same
        instant (on a line that keeps up, a controller and its pulse counter), until the stop."""
        while self._schedule and not self._stop.is_set():
            due = self._schedule[0][0]
            delay = self._clock.real_s(max(0.0, due - self._clock.monotonic()))
            self.pulse.beat(delay)
            if delay > 0 and self._stop.wait(delay):
                return
            now = now_of(self._clock)
            for _ in self._devices:
                if self._stop.is_set() or self._schedule[0][0] > due or not self._serve(now):
                    break
            self.hand_over()

    def step(self, now: Instant) -> None:
        """Poll the device due first, if it is due by `now`, and schedule its next poll (at its interval, or
        later while it fails); then report the line's health if that is due."""
        self._serve(now)
        self.hand_over()

    def hand_over(self) -> None:
        """Give the sink this turn's events, if any."""
        if self._events:
            events, self._events = self._events, []
            self._sink(events)

    def next_due_s(self) -> float:
        """When, on the monotonic clock, the device due first is due."""
        return self._schedule[0][0]

    def _serve(self, now: Instant) -> bool:
        """`step` without the hand-over; whether a device was due."""
        self.pulse.beat(self._poll_budget_s)
        poll = self.begin_poll(now.monotonic_s)
        if poll is None:
            return False
        ok = False
        with self._boundary.contain(self._poll_names[poll.index]):
            ok = self._poll(poll)
        self._end(poll, ok)
        return True

    def begin_poll(self, now_s: float) -> Poll | None:
        """The poll of the device due first, if it is due by monotonic `now_s`, taken off the schedule until it
        ends; None if no device is due."""
        schedule = self._schedule
        if not schedule or schedule[0][0] > now_s:
            return None
        due, index = heapq.heappop(schedule)
        poll = self._polls[index]
        poll.due = due
        poll.answering = answering = poll.health.state != "offline"
        poll.tries_left = 1 + (RETRIES_PER_POLL if answering else 0)
        return poll

    def poll_answered(self, poll: Poll, answers: tuple[tuple[int, ...], ...]) -> float | None:
        """Every read of `poll`'s try answered, in order (a line served without blocking): the poll ends with its
        reading, handed over, and this is when the line's next device is due. Answers the driver finds no reading
        in (a `FieldError`) are a failed try, as when `read` raises it: see `poll_failed`. An unexpected error is
        contained, as in `step`."""
        device = poll.device
        assert device.reading_of is not None
        reading: Reading | None
        faults: tuple[ValueFault, ...]
        try:
            try:
                reading, faults = device.reading_of(answers), ()
            except DeviceValueFault as fault:
                reading, faults = fault.partial, fault.faults
            except FieldError as error:
                return self.poll_failed(poll, error)
            self._answered(poll, reading, faults)
        except Exception as error:  # the boundary's: see `poll_contained`
            return self.poll_contained(poll, error)
        self._boundary.item_passed()
        return self._end(poll, True, hand_over=True)

    def poll_failed(self, poll: Poll, error: FieldError) -> float | None:
        """A try of `poll` ended in `error` (a line served without blocking): None if the device is to be tried
        again (its reads from the first); else the poll ended, its events handed over, and this is when the line's
        next device is due."""
        try:
            if self._try_failed(poll, error):
                return None
        except Exception as unexpected:  # the boundary's: see `poll_contained`
            return self.poll_contained(poll, unexpected)
        self._boundary.item_passed()
        return self._end(poll, False, hand_over=True)

    def poll_contained(self, poll: Poll, error: Exception) -> float:
        """An unexpected `error` ended `poll` (a line served without blocking): contained by the line's boundary
        as `step` contains it, the poll's events handed over; when the line's next device is due."""
        self._boundary.item_failed(self._poll_names[poll.index], error)
        return self._end(poll, False, hand_over=True)

    def _end(self, poll: Poll, ok: bool, *, hand_over: bool = False) -> float:
        """Put the polled device back on the schedule (at its interval, or later while it fails) and report the
        line's health if that is due, then hand the events over if asked; when the line's next device is due."""
        device = poll.device
        interval = device.interval_s if ok else max(self._backoff(device), self._boundary.pause_s())
        after = self._clock.monotonic()
        heapq.heappush(self._schedule, (max(poll.due + interval, after), poll.index))
        if after >= self._next_health:
            self._next_health = after + self._health_every_s
            live = self._live
            now_ms = self._clock.wall_ms()
            attempts, failures = live.requests, live.requests - live.ok
            self._events.append(LineHealth(self.line, now_ms, attempts, failures, live.crc_errors, live.timeouts))
        if hand_over and self._events:
            self.hand_over()
        return self._schedule[0][0]

    def _backoff(self, device: PolledDevice) -> float:
        health = self._health[device.name]
        if health.state != "offline":
            return device.interval_s
        exponent = min(health.failures_in_row - OFFLINE_AFTER, 10)
        return float(min(MAX_BACKOFF_S, device.interval_s * (2**exponent)))

    def _poll(self, poll: Poll) -> bool:
        """`poll` read by waiting, each try in turn; whether it was answered."""
        read = poll.device.read
        while True:
            faults: tuple[ValueFault, ...] = ()
            reading: Reading | None
            try:
                reading = read()
            except FieldError as error:
                if self._try_failed(poll, error):
                    continue
                return False
            except DeviceValueFault as fault:
                reading, faults = fault.partial, fault.faults
            self._answered(poll, reading, faults)
            return True

    def _try_failed(self, poll: Poll, error: FieldError) -> bool:
        """A try of `poll` ended in `error`: whether to try again; if not, the poll failed (said)."""
        health = poll.health
        if poll.answering:
            health.held.failed(error)
        poll.tries_left -= 1
        if poll.tries_left > 0:
            return True
        self._failed(poll.device, health, error)
        return False

    def _answered(self, poll: Poll, reading: Reading | None, faults: tuple[ValueFault, ...]) -> None:
        """A try of `poll` was answered: the failures held before it were the line's."""
        health = poll.health
        if health.held.requests:
            self._live.add(health.held)
            health.held = LinkCounters()
        if poll.answering:
            self._live.answered()
        self._succeeded(poll.device, health, reading, faults)

    def _succeeded(
        self, device: PolledDevice, health: _Health, reading: Reading | None, faults: tuple[ValueFault, ...]
    ) -> None:
        """The device (whose `health` it is) answered; `reading` is what of it can be true (None: nothing),
        `faults` the rest."""
        now_ms = self._clock.wall_ms()
        with self._lock:
            came_back = health.state != "online"
            health.polls += 1
            health.failures_in_row = 0
            if came_back:
                health.state, health.since_ms = "online", now_ms
        if came_back:
            log.info("device_online", line=self.line, device=device.name)
            self._events.append(DeviceOnline(device.name, self.line, now_ms))
        if faults != health.faults:
            health.faults = faults
            if faults:
                log.warning("device_value_fault", line=self.line, device=device.name, fault=str(faults[0]))
            self._events.append(DeviceValueFaults(device.name, self.line, now_ms, faults))
        if reading is not None:
            self._events.append(DeviceReading(device.name, self.line, now_ms, reading))

    def _failed(self, device: PolledDevice, health: _Health, error: FieldError) -> None:
        now_ms = self._clock.wall_ms()
        with self._lock:
            health.polls += 1
            health.failed_polls += 1
            health.failures_in_row += 1
            health.last_error = str(error)
            went_away = health.state != "offline" and health.failures_in_row >= OFFLINE_AFTER
            if went_away:
                health.state, health.since_ms = "offline", now_ms
                health.held = LinkCounters()
        if went_away:
            repeats.warning("device_offline", key=device.name, line=self.line, device=device.name, error=str(error))
            self._events.append(DeviceOffline(device.name, self.line, now_ms, f"{type(error).__name__}: {error}"))


class Stoppable(Protocol):
    @property
    def name(self) -> str: ...

    def ask_stop(self) -> None: ...

    def stop(self, timeout_s: float) -> bool: ...


def stop_all(pollers: Sequence[Stoppable], timeout_s: float) -> dict[str, bool]:
    """Stop every poller thread within `timeout_s` in all: each is told at once, so reads hung on dead lines end
    side by side rather than one after another; says per thread (`poller-<line>`) whether it ended."""
    for poller in pollers:
        poller.ask_stop()
    deadline = time.monotonic() + timeout_s
    return {poller.name: poller.stop(max(0.0, deadline - time.monotonic())) for poller in pollers}
