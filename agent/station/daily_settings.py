"""The `[daily]` section: when the day's books (agent.station.daybooks) close.

A module of its own, so that checking a config (the first stage of `station-agent run`) does not load the books
and the record types they read; agent.config assembles it with the other sections.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated

from drivers.schema import Ge, Le, Matches, doc, settings

LocalTime = Annotated[str, Matches("a local time of day as HH:MM, 00:00 to 23:59", r"([01][0-9]|2[0-3]):[0-5][0-9]")]


@settings
class DaySettings:
    """When the day's books close: the station config's `[daily]` section (the zone is `[station] timezone`)."""

    boundary: LocalTime = doc(
        "the local time of day at which one day's books end and the next day's begin; a time that a daylight "
        "saving change skips is read with the offset before the change (02:30 becomes 03:30)",
        default="00:00",
    )
    close_after_s: Annotated[int, Ge(0), Le(21_600)] = doc(
        "seconds after the boundary at which the day's summary is made, so that the tanks' day books (closed at "
        "the first gauge reading past the boundary) are in it",
        default=900,
    )
    max_periods: Annotated[int, Ge(1), Le(1_000)] = doc(
        "the most down periods listed per subject in a day; the longest are listed, the others only counted",
        default=24,
    )

    @property
    def boundary_time(self) -> time:
        hours, minutes = self.boundary.split(":")
        return time(int(hours), int(minutes))
