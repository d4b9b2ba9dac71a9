"""A tank pressure sensor over six days, scripted, read every 30 s: two days at zero pressure, a day with a
spell of over-pressure, two days mostly below the band, and a normal day.

Fed to the pressure watch with alarms after two warning days (so that the story stays short) and hourly
interval records, it raises and clears every `tank_pressure_*` alarm kind.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from agent.contract.records import RecordIntent, parse_ts
from agent.station.alarms import AlarmBook
from agent.station.pressure import PressureWatch
from agent.station.pressure_settings import PressureSettings
from drivers.readings import PressureReading

DAY_MS = 86_400_000
STEP_MS = 30_000
FIRST_DAY = datetime.date(2026, 3, 1)
START_MS = parse_ts("2026-03-01T00:00:00.000Z")
QUICK = PressureSettings(zero_alarm_days=2, band_alarm_days=2, record_interval_s=3_600)


def day_shape(day: int, offset_ms: int) -> int:
    """The pressure, Pa, at `offset_ms` into story day `day` (0-based)."""
    if day < 2:
        return 10
    if day == 2:
        return 1_200 if 3_600_000 <= offset_ms < 3_600_000 + 360_000 else 300
    if day < 5:
        return -1_500 if offset_ms < 20 * 3_600_000 else 200
    return 300


def pressure_story(
    shape: Callable[[int, int], int] = day_shape, days: int = 6, settings: PressureSettings = QUICK
) -> list[RecordIntent]:
    watch = PressureWatch(settings, AlarmBook({}), [])
    made: list[RecordIntent] = []
    for day in range(days):
        for offset in range(0, DAY_MS, STEP_MS):
            made += watch.on_reading("ps1", PressureReading(shape(day, offset)), START_MS + day * DAY_MS + offset)
        made += watch.close_day(FIRST_DAY + datetime.timedelta(days=day), START_MS + (day + 1) * DAY_MS)
    return made
