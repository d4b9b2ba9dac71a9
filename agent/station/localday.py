"""The station's day: from the configured boundary (local time, midnight by default) on one date to the boundary
on the next, in the station's zone. The tanks' day books, the vapour verdicts, the pressure rules and the daily
summary all close on these same boundaries, so that a day means the same span in every record of it. Across a
daylight saving change a day lasts 23 or 25 hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ONE_DAY = timedelta(days=1)


class LocalDays:
    def __init__(self, zone: ZoneInfo, boundary: time = time(0, 0)) -> None:
        self.zone = zone
        self.boundary = boundary

    def start_ms(self, day: date) -> int:
        """The boundary on that date. A wall time that happens twice (the clocks go back) is its first occurrence;
        one that never happens (they go forward) is read with the offset before the change."""
        return int(datetime.combine(day, self.boundary, tzinfo=self.zone).timestamp()) * 1000

    def bounds(self, day: date) -> tuple[int, int]:
        return self.start_ms(day), self.start_ms(day + ONE_DAY)

    def day_of(self, ts_ms: int) -> date:
        """The day whose span holds the instant."""
        day = datetime.fromtimestamp(ts_ms // 1000, UTC).astimezone(self.zone).date()
        if ts_ms < self.start_ms(day):
            return day - ONE_DAY
        if ts_ms >= self.start_ms(day + ONE_DAY):
            return day + ONE_DAY
        return day
