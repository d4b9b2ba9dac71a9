"""Every Modbus TCP line served by one thread that waits on all their sockets at once.

Theory of operation: a Modbus TCP endpoint is a line of its own (a dispenser's gateway, a probe's converter), so a
thread per line would spend most of its CPU waking up: once for each device due and once for each answer. Here
one thread keeps every TCP line's poller (agent/field/poller.py: its schedule, retries, health and events, the
same as on a serial line) and sends their polls' reads itself: each line has at most one request in flight, as on a
line of its own, but the lines' requests are in flight together, and one wait (an `epoll` object) covers the
answers of all of them and the next device due. A dead endpoint costs its own line its timeouts and no other line
anything: its host name's lookup (on a thread of its own, drivers/transport/lookup.py), its connect and its answer
are waited for alongside the others, never in turn. When two or more requests went out since it last looked at
the sockets, the thread lets `GATHER_S` pass before it looks again, so that their answers, arriving close together
(the lines' polls fall due at the same instants), are taken in one wake-up; it never waits past the next device
due or a deadline, and a request that went out alone is not held, however many others wait for a slow or dead
endpoint (holding it would cost its line `GATHER_S` on every read, for no answer to gather it with).

The lines whose poll is not under way are kept in order of their next device due, and the reads in flight in
order of their deadlines (two heaps), so a turn looks only at the lines due and the reads overdue, not at every
line; a line's poll is a plain object the thread takes up at each answer (agent/field/poller.py, `Poll`).

The events of all lines are handed to the station together: when no request is in flight any more, or once the
oldest has waited `HAND_OVER_WAIT_S`, so that a slow device does not hold its neighbours' readings back.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent.clock import Clock
from agent.field.events import FieldEvent
from agent.field.poller import LinePoller, Poll, PolledDevice
from agent.pulse import Pulse
from drivers.errors import FieldError
from drivers.modbus.master import PendingRead, TcpMaster
from drivers.modbus.tcp import PreparedRead

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
    index: int
    """Its place in the config's order."""
    poller: LinePoller
    master: TcpMaster
    prepared: tuple[tuple[PreparedRead, ...], ...]
    """Each device's reads as its master sends them, by device index."""
    poll: Poll | None = None
    """The poll under way on this line, if any (it always has a read in flight)."""
    reads: tuple[PreparedRead, ...] = ()
    """Its device's reads."""
    step: int = 0
    """Which of the poll's reads is in flight."""
    answers: list[tuple[int, ...]] = field(default_factory=list)
    """The registers of the reads before it, in this try."""
    pending: PendingRead | None = None
    """Its read in flight, if any."""
    watched: socket.socket | None = None
    """The line's socket as the wait has it (kept between requests while the connection lives)."""
    watched_fd: int = -1
    """Its descriptor as registered: a socket closed since has none of its own."""
    events: int = 0
    """What the wait is for on `watched`: to read, or to write (a connect under way)."""


class TcpLinesPoller:
    """One thread for all Modbus TCP lines. Its lines' pollers are built as for a line of their own, with a sink
    that extends the list this thread hands over (`collected`), and their devices with their `reads`."""

    name = THREAD_NAME

    def __init__(
        self,
        lines: Sequence[tuple[LinePoller, TcpMaster]],
        clock: Clock,
        sink: Callable[[Sequence[FieldEvent]], None],
        collected: list[FieldEvent],
    ) -> None:
        """`collected` is the list the lines' pollers' sinks extend; `sink` takes it, once a turn that has any."""
        self._lines = [
            _Line(index, poller, master, tuple(_prepared(master, device) for device in poller.devices))
            for index, (poller, master) in enumerate(lines)
        ]
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
        self._waiting = select.epoll()
        """The wait on every line's socket at once, and on the wake-up's."""
        self._waiting.register(self._wake_reader.fileno(), select.EPOLLIN)
        self._watched: dict[int, _Line] = {}
        """The line of each socket's descriptor the wait has."""
        self._due: list[tuple[float, int]] = []
        """(next device due, line index) of each line with no poll under way, as a heap."""
        self._deadlines: list[tuple[float, int, _Line, PendingRead]] = []
        """(deadline, order, line, read) of each read in flight as a heap; an entry whose read is no longer the
        line's, or whose deadline has moved on (a connect's next step), is dropped when it comes up."""
        self._order = itertools.count()

    def start(self) -> None:
        now = self._clock.monotonic()
        for line in self._lines:
            line.poller.begin(now)
        self._due = [(line.poller.next_due_s(), line.index) for line in self._lines]
        heapq.heapify(self._due)
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
            self._waiting.close()
            self._wake_reader.close()
            self._wake_writer.close()
        return ended

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        self._serve()

    def _serve(self) -> None:
        """The schedule is the station clock's (`self._clock`, faster than real time in a demo); a read's deadline
        and the hand-over's wait are real time (`time.monotonic`), as a device answers in real time. Each turn
        begins the poll of every line due (in the config's order), and looks at the reads in flight for their
        deadlines only once the first of them has passed. The wait is an `epoll` object's, as
        `selectors.DefaultSelector` would make on Linux (the same system call, the timeout rounded up to the
        millisecond alike), without the selector's Python around each wait and each socket ready."""
        clock, lines, waiting, watched = self._clock, self._lines, self._waiting, self._watched
        due, deadlines = self._due, self._deadlines
        batch_since: float | None = None
        while not self._stop.is_set():
            now = clock.monotonic()
            if due and due[0][0] <= now:
                starting = [heapq.heappop(due)[1]]
                while due and due[0][0] <= now:
                    starting.append(heapq.heappop(due)[1])
                starting.sort()  # the config's order, as the lines were looked at in turn
                for index in starting:
                    line = lines[index]
                    line.poll = poll = line.poller.begin_poll(now)
                    assert poll is not None
                    line.reads = line.prepared[poll.index]
                    self._send(line, 0)
            while deadlines:  # the first read in flight's deadline, once those of reads no longer in flight are out
                deadline, _, line, pending = deadlines[0]
                if line.pending is pending and pending.deadline == deadline:
                    break
                heapq.heappop(deadlines)
            first_deadline = deadlines[0][0] if deadlines else math.inf
            first_due = due[0][0] if due else math.inf
            now, real_now = clock.monotonic(), time.monotonic()
            if self._collected and batch_since is None:
                batch_since = real_now
            if batch_since is not None and (not deadlines or real_now - batch_since >= HAND_OVER_WAIT_S):
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
            for fd, _ in waiting.poll(math.ceil(delay * 1e3) * 1e-3):
                ready = watched.get(fd)
                if ready is not None:  # not the wake-up's
                    self._answered(ready)
            if first_deadline <= (real_now := time.monotonic()):  # a read sent since has a later deadline
                while deadlines and deadlines[0][0] <= real_now:
                    deadline, _, line, pending = heapq.heappop(deadlines)
                    if line.pending is pending and pending.deadline == deadline:
                        line.pending = None
                        self._unwatch(line)
                        self._failed(line, pending.overdue())

    def _answered(self, line: _Line) -> None:
        pending = line.pending
        if pending is None:  # bytes or a hang-up with no request out: the connection is not to be trusted
            self._unwatch(line)
            line.master.close()
            return
        try:
            registers = pending.ready()
        except Exception as error:  # every failure goes back into the poll, whose boundary and retries own it
            line.pending = None
            self._unwatch(line)
            self._failed(line, error)
            return
        if registers is None:
            self._watch(line, pending)
            return
        line.pending = None
        poll = line.poll
        assert poll is not None
        step = line.step + 1
        if step < len(line.reads):
            line.answers.append(registers)
            self._send(line, step)
        else:
            answers = (*line.answers, registers) if step > 1 else (registers,)
            self._next(line, line.poller.poll_answered(poll, answers))

    def _failed(self, line: _Line, error: Exception) -> None:
        """The line's read in flight, or its sending, ended in `error`: a failed try of its poll (tried again from
        its first read, or the poll is over), or an unexpected error its boundary contains (the poll is over)."""
        poll = line.poll
        assert poll is not None
        poller = line.poller
        self._next(
            line,
            poller.poll_failed(poll, error) if isinstance(error, FieldError) else poller.poll_contained(poll, error),
        )

    def _next(self, line: _Line, next_due: float | None) -> None:
        """The line's try ended: its poll tried again from its first read (`next_due` None), or over."""
        if next_due is None:
            self._send(line, 0)
        else:
            self._ended(line, next_due)

    def _ended(self, line: _Line, next_due: float) -> None:
        """The line's poll is over: the line waits for `next_due` with the others."""
        line.poll = None
        heapq.heappush(self._due, (next_due, line.index))

    def _send(self, line: _Line, step: int) -> None:
        """Send read `step` of the line's poll (its first: a new try), to be waited for with the others."""
        if not step:
            line.answers.clear()
        line.step = step
        try:
            pending = line.master.send_read(line.reads[step])
        except Exception as error:  # as in `_answered`
            self._unwatch(line)
            self._failed(line, error)
            return
        line.pending = pending
        self._sent += 1
        self._watch(line, pending)

    def _watch(self, line: _Line, pending: PendingRead) -> None:
        """Have the wait cover the pending read's socket, for what the read now waits for, until its deadline."""
        heapq.heappush(self._deadlines, (pending.deadline, next(self._order), line, pending))
        events = select.EPOLLOUT if pending.writing else select.EPOLLIN
        if line.watched is not pending.socket:
            self._unwatch(line)
            fd = pending.socket.fileno()
            self._waiting.register(fd, events)
            self._watched[fd] = line
            line.watched, line.watched_fd, line.events = pending.socket, fd, events
        elif line.events != events:
            self._waiting.modify(line.watched_fd, events)
            line.events = events

    def _unwatch(self, line: _Line) -> None:
        """Forget the line's socket: at once when its connection ends, before a new socket can take its number."""
        if line.watched is not None:
            del self._watched[line.watched_fd]
            with contextlib.suppress(OSError):  # a socket closed already left the wait by itself
                self._waiting.unregister(line.watched_fd)
            line.watched = None


def _prepared(master: TcpMaster, device: PolledDevice) -> tuple[PreparedRead, ...]:
    return tuple(
        master.prepare(read.unit, read.request.function, read.request.address, read.request.count)
        for read in device.reads
    )
