"""The agent's memory across a restart is its own records: what the station needs is read back from the outbox.

The leak test needs the tanks' hourly books of its window, the vapour rules the last week's verdicts, the
pressure rules each sensor's last day, and the day's books every record of the days not yet closed. None of it
is kept a second time: the outbox holds what the platform holds, and a restart resumes from exactly that.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from zoneinfo import ZoneInfo

from agent.config import AgentConfig
from agent.contract.decode import bodies_of, decode_record
from agent.contract.records import (
    AlarmBody,
    AlarmState,
    DailySummaryBody,
    RecordIntent,
    RecordType,
    TankPressureBody,
    VapourBody,
)
from agent.ledger.outbox import Outbox
from agent.station.alarms import active_in
from agent.station.daybooks import READ_TYPES, last_closed_of
from agent.station.leak_watch import hourly_books
from agent.station.localday import LocalDays
from agent.station.station import StationHistory

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def station_history(outbox: Outbox, config: AgentConfig, now_ms: int) -> StationHistory:
    """The windows of the day rules are counted back from the first day not closed yet, not from now: after days
    off, the records that say how the last closed day ended are as old as that day."""
    cursors = outbox.cursors()
    last_closed = last_closed_of(cursors)
    days = LocalDays(ZoneInfo(config.station.timezone), config.daily.boundary_time)
    anchor_ms = now_ms if last_closed is None else min(now_ms, days.start_ms(date.fromisoformat(last_closed)))
    tank_hours = hourly_books(
        outbox.canonical_since(RecordType.RECONCILIATION, now_ms - config.leak.window_h * HOUR_MS)
    )
    summaries = outbox.canonical_since(RecordType.DAILY_SUMMARY, anchor_ms - DAY_MS)
    vapour_since_ms = anchor_ms - (config.vapour.carb_week_days + 1) * DAY_MS
    return StationHistory(
        tank_hours=tank_hours,
        vapour_days=bodies_of(VapourBody, outbox.canonical_since(RecordType.VAPOUR, vapour_since_ms)),
        pressure=bodies_of(TankPressureBody, outbox.canonical_since(RecordType.TANK_PRESSURE, anchor_ms - DAY_MS)),
        last_summary=bodies_of(DailySummaryBody, summaries[-1:])[0] if summaries else None,
    )


def alarm_history(outbox: Outbox, cursors: Mapping[str, int]) -> list[RecordIntent]:
    """The newest record still in the outbox of each alarm an earlier run left active, for its status: read
    only when the cursors say one is (most starts have none), newest first and only until each is found, so an
    alarm raised and cleared all day long is not read back record by record (50,000 alarm records: 3.3 s and
    48 MiB when every one was decoded)."""
    wanted = active_in(cursors)
    found: list[RecordIntent] = []
    if not wanted:
        return found
    for canonical in outbox.newest_first(RecordType.ALARM):
        intent = as_intent(canonical)
        body = intent.body
        if isinstance(body, AlarmBody) and (body.kind, body.subject) in wanted:
            wanted.discard((body.kind, body.subject))
            if body.state is AlarmState.RAISED:
                found.append(intent)
            if not wanted:
                break
    return found[::-1]


def replay(outbox: Outbox, since_ms: int) -> Iterator[RecordIntent]:
    """The records the day's books read (and, of them, the vapour rules: transactions), made since `since_ms`,
    as the intents they were made from."""
    for canonical in outbox.iter_since(READ_TYPES, since_ms):
        yield as_intent(canonical)


def as_intent(canonical: bytes) -> RecordIntent:
    """A stored record as the station reads it, replayed at start or handed over by the recorder as it is
    committed: one reading for both, so the day's books cannot tell the two apart."""
    record = decode_record(canonical)
    return RecordIntent(record.type, record.ts_ms, record.body)
