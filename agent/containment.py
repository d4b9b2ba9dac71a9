"""The wall around each item a long-lived loop handles: an unexpected exception is counted, said once in a while
as an `internal_error` record, and the loop goes on with the next item.

Theory of operation: a loop's thread must outlive any one message, register, frame or file, because the thread
dying takes the watchdog's pings with it and systemd restarts the whole agent, every healthy line included; and a
retained poison message is delivered again after the restart, which turns one bad input into a restart loop. So
each loop runs each item inside `Boundary.contain`, which catches `Exception` (not `BaseException`: a stop or an
interpreter exit still ends the loop), logs it with its traceback, and reports it as a record at most once per
`report_every_s` per loop, with the count of errors it stood for. A loop whose items fail one after another asks
`pause_s()` for a growing pause before its next try, so a persistent fault costs a bounded amount of CPU and log;
its status shows it as failing. Only a loop that cannot turn at all stops keeping its promise to the watchdog
(agent/pulse.py), and only then does systemd restart the agent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from agent.clock import Clock
from agent.contract.records import InternalErrorBody, RecordIntent
from agent.logs import repeat_limited

log = repeat_limited("agent.containment")

DETAIL_CHARS = 200
"""How much of an exception's message goes into the record: enough to name the value, never a whole payload."""

FIRST_PAUSE_S = 0.1
MAX_PAUSE_S = 30.0
FAILING_AFTER = 3
"""Failures in a row after which the loop shows as failing in its status."""


@dataclass(frozen=True, slots=True)
class BoundaryStatus:
    loop: str
    errors: int
    """Every unexpected exception contained since start."""
    in_a_row: int
    """Failures since the last item that went through; 0 while the loop is healthy."""
    last_error: str | None
    """`ExceptionClass: message`, shortened."""
    last_error_ms: int | None

    @property
    def failing(self) -> bool:
        return self.in_a_row >= FAILING_AFTER


def describe(exc: BaseException) -> str:
    """An exception as one short ASCII line: its class and the start of its message."""
    text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.encode("ascii", "backslashreplace").decode("ascii").split())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 3] + "..."


class _Contained:
    """`Boundary.contain`'s block: a plain context manager rather than a generator one, as a poller and the
    station loop enter one for every poll and every event."""

    __slots__ = ("_boundary", "_item")

    def __init__(self, boundary: Boundary, item: str) -> None:
        self._boundary = boundary
        self._item = item

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: TracebackType | None) -> bool:
        if kind is None:
            self._boundary.item_passed()
            return False
        if isinstance(exc, Exception):  # containing the unexpected is this class's whole job
            self._boundary.item_failed(self._item, exc)
            return True
        return False


class Boundary:
    """One loop's wall. Used by the loop's own thread; `status()` may be read from any thread."""

    def __init__(
        self,
        loop: str,
        report: Callable[[RecordIntent], None],
        clock: Clock,
        *,
        report_every_s: float = 60.0,
    ) -> None:
        self._loop = loop
        self._report = report
        self._clock = clock
        self._report_every_s = report_every_s
        self._lock = threading.Lock()
        self._errors = 0
        self._in_a_row = 0
        self._unreported = 0
        self._last_report_at: float | None = None
        self._last_error: str | None = None
        self._last_error_ms: int | None = None

    def contain(self, item: str) -> _Contained:
        """Run one item; an `Exception` from it is contained here and the block's caller carries on.

        `item` names what was being handled (`ack message`, `poll D01`), for the log and the record."""
        return _Contained(self, item)

    def pause_s(self) -> float:
        """How long the loop should wait before its next try: 0 while healthy, then doubling up to MAX_PAUSE_S."""
        with self._lock:
            in_a_row = self._in_a_row
        if in_a_row == 0:
            return 0.0
        return min(MAX_PAUSE_S, FIRST_PAUSE_S * 2.0 ** min(in_a_row - 1, 16))

    def status(self) -> BoundaryStatus:
        with self._lock:
            return BoundaryStatus(self._loop, self._errors, self._in_a_row, self._last_error, self._last_error_ms)

    def item_passed(self) -> None:
        """An item ended without an exception. With `item_failed`, `contain`'s block for an item handled in parts
        across a loop's turns (a poll whose answer is waited for with other lines'), by a loop that catches
        `Exception` around each part and ends the item at the first."""
        if self._in_a_row:
            with self._lock:
                self._in_a_row = 0

    def item_failed(self, item: str, exc: Exception) -> None:
        """The unexpected `exc` ended `item`: counted, logged and reported as `contain`'s block does."""
        detail = describe(exc)
        now = self._clock.monotonic()
        wall_ms = self._clock.wall_ms()
        with self._lock:
            self._errors += 1
            self._in_a_row += 1
            self._unreported += 1
            self._last_error, self._last_error_ms = detail, wall_ms
            due = self._last_report_at is None or now - self._last_report_at >= self._report_every_s
            count = self._unreported
            if due:
                self._unreported = 0
                self._last_report_at = now
        log.exception(
            "internal_error", key=f"{self._loop}/{type(exc).__name__}", loop=self._loop, item=item, error=detail
        )
        if not due:
            return
        body = InternalErrorBody(
            loop=self._loop, item=item[:DETAIL_CHARS], error=type(exc).__name__, detail=detail, count=count
        )
        try:
            self._report(body.intent(wall_ms))
        except Exception:  # a report that fails must not turn a contained error into a dead loop
            log.exception("internal_error_not_recorded", key=self._loop, loop=self._loop)
