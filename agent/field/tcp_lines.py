"""Every Modbus TCP line served by one thread that waits on all their sockets at once.

Theory of operation: a Modbus TCP endpoint is a line of its own (a dispenser's gateway, a probe's converter), so a
thread per line would spend most of its CPU waking up: once for each device due and once for each answer. Here
one thread keeps every TCP line's poller (agent/field/poller.py: its schedule, retries, health and events, the
same as on a serial line) and drives their polls as steps: each line has at most one request in flight, as on a
line of its own, but the lines' requests are in flight together, and one wait (a `selectors` selector) covers the
answers of all of them and the next device due. A dead endpoint costs its own line its timeouts and no other line
anything: its host name's lookup (on a thread of its own, drivers/transport/lookup.py), its connect and its answer
are waited for alongside the others, never in turn. When two or more requests went out since it last looked at
the sockets, the thread lets `GATHER_S` pass before it looks again, so that their answers, arriving close together
(the lines' polls fall due at the same instants), are taken in one wake-up; it never waits past the next device
due or a deadline, and a request that went out alone is not held, however many others wait for a slow or dead
endpoint (holding it would cost its line `GATHER_S` on every read, for no answer to gather it with).

The events of all lines are handed to the station together: when no request is in flight any more, or once the
oldest has waited `HAND_OVER_WAIT_S`, so that a slow device does not hold its neighbours' readings back.
"""

from __future__ import annotations

import contextlib
import math
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.clock import Clock
from agent.field.events import FieldEvent
from agent.field.poller import LinePoller
from agent.pulse import Pulse
from drivers.device import PollSteps
from drivers.modbus.master import PendingRead, TcpMaster

HAND_OVER_WAIT_S = 0.05
"""The longest a poll's events wait for the polls in flight beside them before they go to the station alone."""
GATHER_S = 0.002
"""When two or more requests went out since the thread last looked at the sockets, how long it lets pass before it
looks again: answers that arrive within it are taken in one wake-up rather than one each (a wake-up costs the
thread about as much CPU as a poll's Python). An answer is taken at most this much later; a request that went out
alone is not held."""
THREAD_NAME = "pollers-modbus-tcp"
IDLE_WAIT_S = 1.0
"""How long the thread waits when nothing is due and nothing in flight (every line polls, so never for long)."""


@dataclass(slots=True)
class _Line:
    poller: LinePoller
    master: TcpMaster
    steps: PollSteps[bool] | None = None
    """The poll under way on this line, if any."""
    pending: PendingRead | None = None
    """Its read in flight, if any."""
    watched: socket.socket | None = None
    """The line's socket as the selector has it (kept between requests while the connection lives)."""
    events: int = 0
    """What the selector waits for on `watched`: to read, or to write (a connect under way)."""


class TcpLinesPoller:
    """One thread for all Modbus TCP lines. Its lines' pollers are built as for a line of their own, with a sink
    that extends the list this thread hands over (`collected`), and their devices with `steps`."""

    name = THREAD_NAME

    def __init__(
        self,
        lines: Sequence[tuple[LinePoller, TcpMaster]],
        clock: Clock,
        sink: Callable[[Sequence[FieldEvent]], None],
        collected: list[FieldEvent],
    ) -> None:
        """`collected` is the list the lines' pollers' sinks extend; `sink` takes it, once a turn that has any."""
        self._lines = [_Line(poller, master) for poller, master in lines]
        self._clock = clock
        self._sink = sink
        self._collected = collected
        self._stop = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self.pulse = Pulse()
        self._thread: threading.Thread | None = None
        self._sent = 0
        """Requests sent since the thread last looked at the sockets: their answers are the ones to gather."""

    def start(self) -> None:
        now = self._clock.monotonic()
        for line in self._lines:
            line.poller.begin(now)
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def ask_stop(self) -> None:
        """Tell the thread to end now (a request in flight is given up), without waiting for it."""
        self._stop.set()
        with contextlib.suppress(OSError):  # the wake-up byte is there already, or the thread has ended
            self._wake_writer.send(b"\0")

    def stop(self, timeout_s: float = 5.0) -> bool:
        """End the thread and close every line; returns whether the thread ended (it never blocks on a device, so
        it ends within one turn)."""
        self.ask_stop()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout_s)
        ended = not self.alive()
        if ended:
            for line in self._lines:
                line.master.close()
            self._wake_reader.close()
            self._wake_writer.close()
        return ended

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_reader, selectors.EVENT_READ)
        try:
            self._serve(selector)
        finally:
            for line in self._lines:
                if line.steps is not None:
                    line.steps.close()
            selector.close()

    def _serve(self, selector: selectors.BaseSelector) -> None:
        """The schedule is the station clock's (`self._clock`, faster than real time in a demo); a read's deadline
        and the hand-over's wait are real time (`time.monotonic`), as a device answers in real time. Each turn
        looks at every line once, to begin its poll if due and to find the next wait, and at the reads in flight
        for their deadlines only once the first of them has passed."""
        clock, lines = self._clock, self._lines
        batch_since: float | None = None
        while not self._stop.is_set():
            now = clock.monotonic()
            first_deadline = first_due = math.inf
            in_flight = 0
            for line in lines:
                if line.steps is None and line.poller.next_due_s() <= now:
                    self._begin(line, selector, now)
                if line.pending is not None:
                    in_flight += 1
                    first_deadline = min(first_deadline, line.pending.deadline)
                if line.steps is None:
                    first_due = min(first_due, line.poller.next_due_s())
            now, real_now = clock.monotonic(), time.monotonic()
            if self._collected and batch_since is None:
                batch_since = real_now
            if batch_since is not None and (not in_flight or real_now - batch_since >= HAND_OVER_WAIT_S):
                events, self._collected[:] = list(self._collected), []
                self._sink(events)
                batch_since = None
            delay = min(
                first_deadline - real_now,
                clock.real_s(first_due - now),
                math.inf if batch_since is None else batch_since + HAND_OVER_WAIT_S - real_now,
            )
            delay = IDLE_WAIT_S if delay == math.inf else max(0.0, delay)
            self.pulse.beat(delay)
            if self._sent > 1 and delay > GATHER_S:
                time.sleep(GATHER_S)
                delay -= GATHER_S
            self._sent = 0
            for key, _ in selector.select(delay):
                if key.fileobj is not self._wake_reader:
                    self._answered(key.data, selector)
            real_now = time.monotonic()
            if first_deadline <= real_now:  # a read sent since has a deadline later than this turn's end
                for line in lines:
                    if line.pending is not None and line.pending.deadline <= real_now:
                        pending, line.pending = line.pending, None
                        self._unwatch(line, selector)
                        self._advance(line, selector, error=pending.overdue())

    def _begin(self, line: _Line, selector: selectors.BaseSelector, now_s: float) -> None:
        line.steps = line.poller.serve_steps(now_s)
        self._advance(line, selector)

    def _answered(self, line: _Line, selector: selectors.BaseSelector) -> None:
        pending = line.pending
        if pending is None:  # bytes or a hang-up with no request out: the connection is not to be trusted
            self._unwatch(line, selector)
            line.master.close()
            return
        try:
            registers = pending.ready()
        except Exception as error:  # every failure goes back into the poll, whose boundary and retries own it
            line.pending = None
            self._unwatch(line, selector)
            self._advance(line, selector, error=error)
            return
        if registers is not None:
            line.pending = None
            self._advance(line, selector, registers=registers)
        else:
            self._watch(line, selector, pending)

    def _watch(self, line: _Line, selector: selectors.BaseSelector, pending: PendingRead) -> None:
        """Have the selector wait for the pending read's socket, for what the read now waits for."""
        events = selectors.EVENT_WRITE if pending.writing else selectors.EVENT_READ
        if line.watched is not pending.socket:
            self._unwatch(line, selector)
            selector.register(pending.socket, events, line)
            line.watched, line.events = pending.socket, events
        elif line.events != events:
            selector.modify(pending.socket, events, line)
            line.events = events

    @staticmethod
    def _unwatch(line: _Line, selector: selectors.BaseSelector) -> None:
        """Forget the line's socket: at once when its connection ends, before a new socket can take its number."""
        if line.watched is not None:
            selector.unregister(line.watched)
            line.watched = None

    def _advance(
        self,
        line: _Line,
        selector: selectors.BaseSelector,
        *,
        registers: tuple[int, ...] | None = None,
        error: Exception | None = None,
    ) -> None:
        """Take the poll on `line` to its next read (sent, waited for by the selector) or to its end."""
        steps = line.steps
        assert steps is not None
        while True:
            try:
                if error is not None:
                    asked = steps.throw(error)
                elif registers is None:
                    asked = next(steps)
                else:
                    asked = steps.send(registers)
            except StopIteration:
                line.steps = None
                line.poller.hand_over()
                return
            error = None
            request = asked.request
            try:
                line.pending = line.master.begin_read(asked.unit, request.function, request.address, request.count)
            except Exception as failed:  # as in `_answered`
                self._unwatch(line, selector)
                error = failed
                continue
            self._sent += 1
            self._watch(line, selector, line.pending)
            return
