"""The station's day: from the configured boundary (local time, midnight by default) on one date to the boundary
on the next, in the station's zone. The tanks' day books, the vapour verdicts, the pressure rules and the daily
summary all close on these same boundaries, so that a day means the same span in every record of it. Across a
daylight saving change a day lasts 23 or 25 hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ONE_DAY = timedelta(days=1)


KNOWN_DAYS = 8
"""How many days' boundaries are kept: the station asks for the same few (today's, tomorrow's) on every event."""


class LocalDays:
    def __init__(self, zone: ZoneInfo, boundary: time = time(0, 0)) -> None:
        self.zone = zone
        self.boundary = boundary
        self._starts_ms: dict[date, int] = {}

    def start_ms(self, day: date) -> int:
        """The boundary on that date. A wall time that happens twice (the clocks go back) is its first occurrence;
        one that never happens (they go forward) is read with the offset before the change.

        Kept once worked out: a day's start is asked for on every field event and changes once a day, while the
        zone arithmetic behind it costs more than the rest of a reading's handling."""
        known = self._starts_ms.get(day)
        if known is None:
            if len(self._starts_ms) >= KNOWN_DAYS:
                self._starts_ms.clear()
            known = self._starts_ms[day] = (
                int(datetime.combine(day, self.boundary, tzinfo=self.zone).timestamp()) * 1000
            )
        return known

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
