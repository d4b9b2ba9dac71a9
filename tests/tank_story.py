"""A tank's hourly books over ten days, scripted: a leak, a clean spell, unrecorded sales, a clean spell again.

Fed to the leak watch (as the station does with the books its tank trackers close), it raises and clears
`tank_leak` and then `unrecorded_sales`, and makes a `tank_test` event at each local day's close. The
detector is set to judge quickly (a two-day window) so that the story stays short.
"""

from __future__ import annotations

import dataclasses

from agent.contract.records import ReconciliationBody, RecordIntent, format_ts, parse_ts
from agent.station.alarms import AlarmBook
from agent.station.leak_settings import LeakSettings
from agent.station.leak_watch import LeakWatch

HOUR_MS = 3_600_000
START_MS = parse_ts("2026-03-01T00:00:00.000Z")
QUICK = LeakSettings(window_h=48, min_hours=12, run_h=12, settle_h=0, level_noise_ml=100, temperature_noise_cC=0)


def missing_ml(hour: int, sold_ml: int) -> int:
    """What leaves the tank unbooked in each hour of the story."""
    if hour < 36:
        return 3_000  # a leak of 3 L/h
    if 100 <= hour < 148:
        return sold_ml * 3 // 100  # 3 % of the sales off the books
    return 0


def hourly_books(hours: int = 220) -> list[RecordIntent]:
    books: list[RecordIntent] = []
    volume = 25_000_000
    for hour in range(hours):
        start = START_MS + hour * HOUR_MS
        sold = 200_000 if hour % 2 else 0
        closing = volume - sold - missing_ml(hour, sold)
        body = ReconciliationBody(
            tank="T1",
            product="gasoline",
            period="hour",
            start=format_ts(start),
            end=format_ts(start + HOUR_MS),
            opening_ts=format_ts(start),
            closing_ts=format_ts(start + HOUR_MS),
            opening_volume_20_ml=volume,
            closing_volume_20_ml=closing,
            delivered_20_ml=0,
            sold_20_ml=sold,
            sales=sold // 40_000,
            temperature_cC=1500,
            variance_ml=volume - closing - sold,
            cumulative_variance_ml=0,
            complete=True,
        )
        books.append(body.intent(start + HOUR_MS))
        if (hour + 1) % 24 == 0:
            day = dataclasses.replace(body, period="day")
            books.append(day.intent(start + HOUR_MS))
        volume = closing
    return books


def tank_story(cursors: dict[str, int] | None = None) -> list[RecordIntent]:
    watch = LeakWatch(["T1"], QUICK, AlarmBook(cursors or {}))
    made: list[RecordIntent] = []
    for intent in hourly_books():
        made += watch.on_books([intent])
    return made
