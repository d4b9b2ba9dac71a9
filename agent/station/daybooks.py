"""The station's daily books: every record of a local day summed up into one `daily_summary`, once per day.

Theory of operation. A day is the span from the configured boundary (local time, default midnight) on its date
to the boundary on the next date, in the station's zone, so across a daylight saving change it lasts 23 or 25
hours. The books see every record the agent makes (`note`), live and, after a restart, replayed from the outbox
since the start of the first day not yet closed; each record lands in the day its `ts` falls in. A day is
closed (`due`, `close`) `close_after_s` after it ended, when the tanks' own day books, which close at the first
gauge reading past the boundary, are in. Its record carries the cursor `day/closed`, so the close is durable
together with the record: a day closed before a restart is never closed again, and a late restart closes every
day it missed, including days in which no record was made at all (the agent was down all day).

Down time comes from intervals, not from the days: the agent is down from its `agent_stop` (or, after a crash,
from the last record of the run that crashed, which the next run's `unclean_stop` names) to its next
`agent_start`; a device from `device_offline` to `device_online`; the uplink from a heartbeat that finds it
offline to one that finds it online. An interval is added to every open day it overlaps, clipped to each, when
it ends; one still open when a day closes counts to that day's end. A device or the uplink counts as down only
while the agent runs: when a run ends, their open intervals end with it, and the agent's own down time covers
the rest. What was down when the last summary's day ended is carried over from that summary (`last_summary`),
because the records that said so lie before the replay.

After a change of the zone or the boundary, the first day starts where the last summary's day ended, so no
stretch of time falls into two days or none.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from agent.contract.records import (
    AgentStartBody,
    AgentStopBody,
    AlarmBody,
    AlarmState,
    Cursor,
    DailySummaryBody,
    DeviceOfflineBody,
    DeviceOnlineBody,
    DownPeriod,
    Downtime,
    GradeDay,
    HeartbeatBody,
    NozzleDay,
    ReconciliationBody,
    RecordIntent,
    RecordType,
    TankDay,
    TransactionBody,
    format_ts,
    parse_ts,
)
from agent.station.daily_settings import DaySettings
from agent.station.localday import ONE_DAY, LocalDays

CLOSED_CURSOR = "day/closed"
"""The last day closed, as the integer YYYYMMDD."""

AGENT = "agent"
UPLINK = "uplink"

READ_TYPES = frozenset(
    {RecordType.TRANSACTION, RecordType.RECONCILIATION, RecordType.EVENT, RecordType.HEARTBEAT, RecordType.ALARM}
)
"""The record types the books read, live and on replay alike. Any other record (a tank inventory, the bulk of a
day) must not reach them either way: every record noted moves the books' idea of when the agent last ran."""


def placed_before(intent: RecordIntent, instant_ms: int) -> bool:
    """Whether `note` would count `intent` in a day that ends before `instant_ms`, or could: a record of a type the
    books read, dated before it; a tank's day books by their middle, where `note` places them, not by when they
    were made (after the boundary)."""
    if intent.type not in READ_TYPES:
        return False
    body = intent.body
    if isinstance(body, ReconciliationBody) and body.period == "day":
        return _middle_ms(body) < instant_ms
    return intent.ts_ms < instant_ms


def last_closed_of(cursors: dict[str, int]) -> str | None:
    """The last day closed (YYYY-MM-DD) by the cursors the outbox holds, or None before the first close."""
    value = cursors.get(CLOSED_CURSOR)
    if value is None:
        return None
    return date(value // 10_000, value // 100 % 100, value % 100).isoformat()


@dataclass(slots=True)
class _Down:
    """One subject's down time within one day: the total, and the longest periods in a bounded heap."""

    limit: int
    total_ms: int = 0
    count: int = 0
    longest: list[tuple[int, int, int]] = field(default_factory=list)
    """(length, start, end) in ms; the heap's root is the shortest period kept."""
    down_at_end: bool = False

    def add(self, start_ms: int, end_ms: int, day_end_ms: int) -> None:
        self.total_ms += end_ms - start_ms
        self.count += 1
        self.down_at_end = self.down_at_end or end_ms >= day_end_ms
        item = (end_ms - start_ms, start_ms, end_ms)
        if len(self.longest) < self.limit:
            heapq.heappush(self.longest, item)
        else:
            heapq.heappushpop(self.longest, item)

    def copy(self) -> _Down:
        """To add an interval still open at a day's close to, leaving the day's own tally as it is."""
        return _Down(self.limit, self.total_ms, self.count, list(self.longest), self.down_at_end)

    def downtime(self, subject: str) -> Downtime:
        periods = tuple(
            DownPeriod(start=format_ts(start), end=format_ts(end), seconds=length // 1000)
            for length, start, end in sorted(self.longest, key=lambda item: item[1])
        )
        return Downtime(
            subject=subject,
            seconds=self.total_ms // 1000,
            periods=periods,
            periods_left_out=self.count - len(periods),
            down_at_end=self.down_at_end,
        )


@dataclass(slots=True)
class _Sales:
    count: int = 0
    volume_ml: int = 0
    amount_fen: int = 0

    def add(self, volume_ml: int, amount_fen: int) -> None:
        self.count += 1
        self.volume_ml += volume_ml
        self.amount_fen += amount_fen


@dataclass(slots=True)
class _Nozzle:
    """A nozzle's day: its sales, and its totalizers before the first and after the last."""

    grade: str
    volume_opening: int | None
    amount_opening: int | None
    volume_closing: int = 0
    amount_closing: int | None = None
    sales: _Sales = field(default_factory=_Sales)

    def summary(self, nozzle: str) -> NozzleDay:
        sales, amount_opening, amount_closing = self.sales, self.amount_opening, self.amount_closing
        return NozzleDay(
            nozzle=nozzle,
            grade=self.grade,
            sales=sales.count,
            volume_ml=sales.volume_ml,
            amount_fen=sales.amount_fen,
            totalizer_volume_ml_opening=self.volume_opening,
            totalizer_volume_ml_closing=self.volume_closing,
            totalizer_volume_ml_difference=None
            if self.volume_opening is None
            else self.volume_closing - self.volume_opening - sales.volume_ml,
            totalizer_amount_fen_opening=amount_opening,
            totalizer_amount_fen_closing=amount_closing,
            totalizer_amount_fen_difference=None
            if amount_opening is None or amount_closing is None
            else amount_closing - amount_opening - sales.amount_fen,
        )


@dataclass(slots=True)
class _Day:
    """What one open day has gathered so far."""

    start_ms: int
    end_ms: int
    nozzles: dict[str, _Nozzle] = field(default_factory=dict)
    grades: dict[str, _Sales] = field(default_factory=dict)
    tanks: dict[str, TankDay] = field(default_factory=dict)
    alarms: Counter[str] = field(default_factory=Counter)
    down: dict[str, _Down] = field(default_factory=dict)
    """By subject: `agent`, `uplink` or `device/<name>`."""


class DayBooks:
    """The open days' books. Feed it every record in seq order (`note`); ask `due` now and then and `close` each
    day it names, in order, passing the intent on to be recorded."""

    def __init__(
        self,
        settings: DaySettings,
        zone: ZoneInfo,
        last_closed: str | None,
        now_ms: int,
        *,
        last_summary: DailySummaryBody | None = None,
    ) -> None:
        """`last_closed`: the day of the `day/closed` cursor (`last_closed_of`); `last_summary`: the body of the
        newest daily_summary record still in the outbox, if any. With neither, the first day closed is today."""
        self._settings = settings
        self._zone = zone
        self._days_of = LocalDays(zone, settings.boundary_time)
        self._first = self._natural_day(now_ms) if last_closed is None else date.fromisoformat(last_closed) + ONE_DAY
        summary = last_summary if last_summary is not None and last_summary.day == last_closed else None
        self._first_start_ms = self._boundary_ms(self._first) if summary is None else parse_ts(summary.end)
        """The last summary's day ended where the next begins, even if the zone or the boundary changed since."""
        self._first_end_ms = self._span(self._first)[1]
        """Kept, because most records fall in the first open day and the zone's rules are slow to ask."""
        self._days: dict[date, _Day] = {}
        self._open_since = {} if summary is None else _down_at_end(summary, self._first_start_ms)
        """Subjects down now (device and uplink intervals not yet ended), by when they went down."""
        self._agent_up: bool | None = None
        """None until the first record says whether the agent ran when the first open day began."""
        self._agent_down_since = self._first_start_ms
        """While the agent is not up: since when."""
        self._last_ts_ms = self._first_start_ms
        """While it is up: its latest record."""
        self._awaiting_run_start = False
        """After a restart, until this run's agent_start is noted: the agent's down time is not known yet."""
        self._newest_ms = self._first_start_ms
        """The latest `ts` of any record noted."""

    @property
    def replay_from_ms(self) -> int:
        """Where the replay of the outbox at start must begin: the start of the first day not closed yet."""
        return self._first_start_ms

    # -- records in ----------------------------------------------------------------------------------------------

    def note(self, intent: RecordIntent) -> None:
        """One record committed to the outbox, live or replayed, in seq order; records of days already closed,
        and records of a type the books do not read, change nothing."""
        if intent.type not in READ_TYPES:
            return
        body, ts = intent.body, intent.ts_ms
        self._newest_ms = max(self._newest_ms, ts)
        if isinstance(body, AgentStartBody):
            self._awaiting_run_start = False
            self._run_starts(ts)
        elif isinstance(body, AgentStopBody):
            self._run_ends(ts)
        elif self._agent_up is not False:
            self._agent_up, self._last_ts_ms = True, max(self._last_ts_ms, ts)
        match body:
            case TransactionBody():
                self._on_sale(body, ts)
            case ReconciliationBody(period="day"):
                self._on_tank_day(body)
            case AlarmBody(state=AlarmState.RAISED):
                day = self._open_day_of(ts)
                if day is not None:
                    day.alarms[body.kind] += 1
            case HeartbeatBody():
                self._turn(UPLINK, body.uplink == "offline", ts)
            case DeviceOfflineBody() | DeviceOnlineBody():
                self._turn(f"device/{body.device}", isinstance(body, DeviceOfflineBody), ts)

    def _on_sale(self, body: TransactionBody, ts_ms: int) -> None:
        day = self._open_day_of(ts_ms)
        if day is None:
            return
        grade, volume, amount = body.grade, body.volume_ml, body.amount_fen
        nozzle = day.nozzles.get(body.nozzle)
        if nozzle is None:
            nozzle = day.nozzles[body.nozzle] = _Nozzle(
                grade,
                volume_opening=body.totalizer_volume_ml_before,
                amount_opening=body.totalizer_amount_fen_before,
            )
        nozzle.grade = grade
        nozzle.volume_closing = body.totalizer_volume_ml_after
        nozzle.amount_closing = body.totalizer_amount_fen_after
        nozzle.sales.add(volume, amount)
        day.grades.setdefault(grade, _Sales()).add(volume, amount)

    def _on_tank_day(self, body: ReconciliationBody) -> None:
        """A tank's day books belong to the day that holds most of them. The tanks close on the same boundary
        (agent.station.localday), but their first day after a start, or after a change of zone or boundary,
        need not match ours exactly."""
        day = self._open_day_of(_middle_ms(body))
        if day is None:
            return
        day.tanks[body.tank] = TankDay(
            tank=body.tank,
            product=body.product,
            start=body.start,
            end=body.end,
            opening_volume_20_ml=body.opening_volume_20_ml,
            closing_volume_20_ml=body.closing_volume_20_ml,
            delivered_20_ml=body.delivered_20_ml,
            sold_20_ml=body.sold_20_ml,
            sales=body.sales,
            variance_ml=body.variance_ml,
            cumulative_variance_ml=body.cumulative_variance_ml,
            complete=body.complete,
        )

    def _run_starts(self, ts_ms: int) -> None:
        """A run begins with agent_start; before it the agent was down: since its agent_stop, since the last
        record of a run that never stopped (it crashed; the new run's unclean_stop names that record), or, when
        nothing came before, since the first open day began."""
        since = self._last_ts_ms if self._agent_up else self._agent_down_since
        self._run_ends(since)
        self._down(AGENT, since, ts_ms)
        self._agent_up, self._last_ts_ms = True, ts_ms

    def _run_ends(self, ts_ms: int) -> None:
        """The devices and the uplink stop counting as down when the agent does: its own down time covers it."""
        for subject, since in self._open_since.items():
            self._down(subject, since, ts_ms)
        self._open_since.clear()
        self._agent_up, self._agent_down_since = False, ts_ms

    def _turn(self, subject: str, down: bool, ts_ms: int) -> None:
        since = self._open_since.get(subject)
        if down and since is None:
            self._open_since[subject] = ts_ms
        elif not down and since is not None:
            del self._open_since[subject]
            self._down(subject, since, ts_ms)

    # -- down time -------------------------------------------------------------------------------------------------

    def _down(self, subject: str, start_ms: int, end_ms: int) -> None:
        """A finished interval, added to each open day it overlaps."""
        start_ms = max(start_ms, self._first_start_ms)
        if end_ms <= start_ms:
            return
        day = self._day_at(start_ms)
        while True:
            books = self._books(day)
            if books.start_ms >= end_ms:
                return
            self._tally(books, subject).add(max(start_ms, books.start_ms), min(end_ms, books.end_ms), books.end_ms)
            day += ONE_DAY

    def _tally(self, books: _Day, subject: str) -> _Down:
        return books.down.setdefault(subject, _Down(self._settings.max_periods))

    # -- days ------------------------------------------------------------------------------------------------------

    def await_run_start(self) -> None:
        """A run has started whose agent_start is on its way to the outbox: hold the closes until it is noted, or
        until a record dated past a day's close time says that day's down time is known without it."""
        self._awaiting_run_start = True

    def due(self, now_ms: int) -> list[date]:
        """The days to close now, oldest first: every day not closed yet that ended `close_after_s` ago."""
        wait_ms = self._settings.close_after_s * 1000
        known_ms = self._newest_ms if self._awaiting_run_start else now_ms
        days: list[date] = []
        day = self._first
        while (close_ms := self._span(day)[1] + wait_ms) <= now_ms and close_ms <= known_ms:
            days.append(day)
            day += ONE_DAY
        return days

    def close(self, day: date, now_ms: int) -> list[RecordIntent]:
        """The day's summary, once: a day already closed gives nothing; days close in order, and only once over."""
        if day < self._first:
            return []
        if day > self._first:
            raise ValueError(f"day {day} cannot close before {self._first}: days close in order")
        books = self._books(day)
        if now_ms < books.end_ms:
            raise ValueError(f"day {day} cannot close at {format_ts(now_ms)}: it ends at {format_ts(books.end_ms)}")
        down = dict(books.down)
        for subject, since in self._still_down():
            if since < books.end_ms:
                tally = down[subject] = down.get(subject, _Down(self._settings.max_periods)).copy()
                tally.add(max(since, books.start_ms), books.end_ms, books.end_ms)
        agent = down.get(AGENT, _Down(self._settings.max_periods))
        body = DailySummaryBody(
            day=day.isoformat(),
            zone=self._zone.key,
            start=format_ts(books.start_ms),
            end=format_ts(books.end_ms),
            complete=agent.total_ms == 0,
            nozzles=tuple(books.nozzles[nozzle].summary(nozzle) for nozzle in sorted(books.nozzles)),
            grades=tuple(
                GradeDay(grade=grade, sales=sales.count, volume_ml=sales.volume_ml, amount_fen=sales.amount_fen)
                for grade, sales in sorted(books.grades.items())
            ),
            tanks=tuple(books.tanks[tank] for tank in sorted(books.tanks)),
            agent_down=agent.downtime(AGENT),
            uplink_down=down.get(UPLINK, _Down(self._settings.max_periods)).downtime(UPLINK),
            devices_down=tuple(
                down[subject].downtime(subject.removeprefix("device/"))
                for subject in sorted(down)
                if subject.startswith("device/")
            ),
            alarms_raised=dict(sorted(books.alarms.items())),
        )
        del self._days[day]
        self._first, self._first_start_ms = day + ONE_DAY, books.end_ms
        self._first_end_ms = self._span(self._first)[1]
        return [body.intent(now_ms, Cursor(CLOSED_CURSOR, day.year * 10_000 + day.month * 100 + day.day))]

    def _still_down(self) -> Iterable[tuple[str, int]]:
        """Intervals not ended yet: the agent's own if it is not known to run, and the devices' and uplink's."""
        if not self._agent_up:
            yield AGENT, self._agent_down_since
        yield from self._open_since.items()

    def _books(self, day: date) -> _Day:
        books = self._days.get(day)
        if books is None:
            books = self._days[day] = _Day(*self._span(day))
        return books

    def _open_day_of(self, ts_ms: int) -> _Day | None:
        return None if ts_ms < self._first_start_ms else self._books(self._day_at(ts_ms))

    def _day_at(self, ts_ms: int) -> date:
        """The open day of an instant not before the first open day's start."""
        return self._first if ts_ms < self._first_end_ms else self._natural_day(ts_ms)

    def _span(self, day: date) -> tuple[int, int]:
        start = self._first_start_ms if day == self._first else self._boundary_ms(day)
        return start, max(start, self._boundary_ms(day + ONE_DAY))

    def _boundary_ms(self, day: date) -> int:
        return self._days_of.start_ms(day)

    def _natural_day(self, ts_ms: int) -> date:
        return self._days_of.day_of(ts_ms)


def _middle_ms(books: ReconciliationBody) -> int:
    return (parse_ts(books.start) + parse_ts(books.end)) // 2


def _down_at_end(summary: DailySummaryBody, end_ms: int) -> dict[str, int]:
    """What the last summary found down when its day ended (a device, the uplink), as down since then: the
    records that took it down lie before the replay, which starts there."""
    down: dict[str, int] = {}
    for item in (summary.uplink_down, *summary.devices_down):
        if item.down_at_end:
            down[item.subject if item.subject == UPLINK else f"device/{item.subject}"] = end_ms
    return down
