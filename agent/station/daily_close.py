"""When the station loop may close the days due: once every record of theirs it handed over is back from the outbox.

Theory of operation. The day's books count what the outbox holds, handed back by the recorder after each commit
(agent/station_loop.py), so a record submitted but not yet committed when a day closes would be missing from the
day's summary, yet counted by the replay after a restart that came before the summary was committed. So a close
due at an instant is not made at once: the loop asks the recorder to say when everything submitted so far is in
the outbox (`RecorderInbox.when_written`), and closes the days due at that instant when the answer comes back,
behind the commits it follows. A record the loop submits meanwhile that the books could count in a day ending
before that instant (a sale booked before midnight whose pulses came late; `placed_before`) may be committed after
the answer and before the summary, so the answer no longer covers the day: another request is made at the next
tick after that answer, and only the answer to the newest request closes. One request at most is out at a time: a
recorder that cannot write holds its answers until it can, and a request made at every tick while a stale one
waits (a busy station whose clock was set back before the instant) would pile up there, one a second, for as
long. Records the books would count in a later day do not hold the close up, so a busy station's sales do not
keep it waiting.

Pure logic: the loop does the asking and the closing; a test drives it with intents and answers of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.contract.records import RecordIntent
from agent.station.daybooks import placed_before


class DailyClose:
    """The station loop's close in flight: due since an instant, waiting for the answer to one request."""

    __slots__ = ("_due_at_ms", "_out", "_requests", "_waiting_for")

    def __init__(self) -> None:
        self._due_at_ms: int | None = None
        """When the days to close were found due; None while no close is in flight."""
        self._waiting_for: int | None = None
        """The request whose answer lets them close; None when a record submitted since calls for another."""
        self._requests = 0
        self._out = False
        """Whether the newest request is not answered yet: no other is made until it is."""

    def request(self, now_ms: int, due: Callable[[int], bool]) -> int | None:
        """At each tick: the number of a request to make of the recorder, or None for none. A close starts when
        `due(now_ms)` says a day is due; a close already in flight asks again only after `submitted` made its
        request stale, and once that request is answered."""
        if self._due_at_ms is None:
            if not due(now_ms):
                return None
            self._due_at_ms = now_ms
        elif self._waiting_for is not None or self._out:
            return None
        self._requests += 1
        self._waiting_for = self._requests
        self._out = True
        return self._requests

    def submitted(self, intent: RecordIntent) -> None:
        """Every intent the loop submits, in order."""
        due_at_ms = self._due_at_ms
        if self._waiting_for is not None and due_at_ms is not None and placed_before(intent, due_at_ms):
            self._waiting_for = None

    def answered(self, request: int) -> int | None:
        """The recorder's answer to `request`: the instant whose due days may close now, or None for an answer
        that is stale (or for no close in flight). The close then is over, made or not: a close that fails (a
        bug) is tried again from the next tick, as a new one."""
        if request == self._requests:
            self._out = False
        if request != self._waiting_for:
            return None
        due_at_ms, self._due_at_ms, self._waiting_for = self._due_at_ms, None, None
        return due_at_ms
