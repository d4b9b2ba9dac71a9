"""The station's days: vapour verdicts at the boundary, the daily summary after it, each day closed once, and a
restart that picks up the open day from the records (the agent's only memory), however late it comes."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from test_station import BINDING, RULES, Forecourt, started

from agent.contract.decode import decode_as
from agent.contract.records import AgentStartBody, JsonValue, RecordIntent, RecordType, VapourBody
from agent.station.daily_settings import DaySettings
from agent.station.localday import LocalDays
from agent.station.station import Station, StationHistory
from agent.station.vapour_settings import VapourSettings

ZONE = ZoneInfo("Asia/Shanghai")
DAYS = LocalDays(ZONE)
VAPOUR = VapourSettings(min_fuellings_per_day=2, alarm_warning_days=2)
DAILY = DaySettings(close_after_s=60)
FIRST = date(2027, 1, 15)
"""The forecourt's clock starts at 2027-01-15T08:00Z, 16:00 in Shanghai."""


def station(cursors: dict[str, int] | None = None, history: StationHistory | None = None) -> Station:
    return Station([BINDING], cursors or {}, RULES, zone=ZONE, vapour=VAPOUR, daily=DAILY, history=history)


def cursors_of(intents: list[RecordIntent]) -> dict[str, int]:
    return {cursor.key: cursor.value for intent in intents for cursor in intent.cursors}


def bodies(intents: list[RecordIntent], kind: RecordType) -> list[dict[str, JsonValue]]:
    return [intent.body.as_json() for intent in intents if intent.type is kind]


def a_day_of_poor_recovery(court: Forecourt, day: date) -> None:
    """Three sales at A/L 0.6, then the clock past the day's end and its summary's wait."""
    for _ in range(3):
        court.fuel(20_000, al=0.6)
    court.now = DAYS.start_ms(day.replace(day=day.day + 1)) + 61_000
    court.poll()


def test_vapour_verdicts_at_the_boundary_and_a_summary_a_minute_later() -> None:
    court = started(station())
    a_day_of_poor_recovery(court, FIRST)
    a_day_of_poor_recovery(court, FIRST.replace(day=16))
    vapour = bodies(court.out, RecordType.VAPOUR)
    assert [(v["day"], v["verdict"], v["counted"]) for v in vapour] == [
        ("2027-01-15", "warning", 3),
        ("2027-01-16", "alarm", 3),
    ]
    alarms = [(a["kind"], a["state"]) for a in bodies(court.out, RecordType.ALARM)]
    assert ("vapour_al_warning", "raised") in alarms and ("vapour_al_alarm", "raised") in alarms
    summaries = bodies(court.out, RecordType.DAILY_SUMMARY)
    assert [s["day"] for s in summaries] == ["2027-01-15", "2027-01-16"]
    assert [[(n["nozzle"], n["sales"], n["volume_ml"]) for n in s["nozzles"]] for s in summaries] == [  # type: ignore[union-attr]
        [("D01-N1", 3, 60_000)],
        [("D01-N1", 3, 60_000)],
    ]
    # The vapour records come at the boundary, before the summary that follows close_after_s later.
    order = [i.type for i in court.out if i.type in (RecordType.VAPOUR, RecordType.DAILY_SUMMARY)]
    assert order == [RecordType.VAPOUR, RecordType.DAILY_SUMMARY] * 2


def restarted(before: list[RecordIntent], now_ms: int) -> tuple[Station, list[RecordIntent]]:
    """A new station from what the outbox would hold: the cursors, the history, the records since its open day;
    what the start makes is noted as the recorder hands it back."""
    history = StationHistory(vapour_days=[decode_as(VapourBody, b) for b in bodies(before, RecordType.VAPOUR)])
    again = station(cursors_of(before), history)
    since = again.replay_from_ms(now_ms)
    start = AgentStartBody(version="t", config_sha256="0" * 64, kid="k").intent(now_ms)
    resumed = again.resume([i for i in before if i.ts_ms >= since], [start], now_ms)
    for intent in resumed:
        again.note(intent)
    return again, resumed


def test_a_restart_mid_day_neither_closes_a_day_twice_nor_forgets_the_open_one() -> None:
    court = started(station())
    a_day_of_poor_recovery(court, FIRST)
    for _ in range(3):
        court.fuel(20_000, al=0.6)
    again, resumed = restarted(court.out, court.now)
    assert bodies(resumed, RecordType.VAPOUR) == [] and bodies(resumed, RecordType.DAILY_SUMMARY) == []
    court.station = again
    court.now = DAYS.start_ms(date(2027, 1, 17)) + 61_000
    after = court.poll()
    assert [(v["day"], v["verdict"], v["counted"]) for v in bodies(after, RecordType.VAPOUR)] == [
        ("2027-01-16", "alarm", 3)
    ]
    assert [s["day"] for s in bodies(after, RecordType.DAILY_SUMMARY)] == ["2027-01-16"]


def test_a_late_restart_closes_every_day_it_missed() -> None:
    court = started(station())
    a_day_of_poor_recovery(court, FIRST)
    for _ in range(3):
        court.fuel(20_000, al=0.6)
    late = DAYS.start_ms(date(2027, 1, 19)) + 3_600_000  # off from the 16th until the 19th
    again, resumed = restarted(court.out, late)
    assert [(v["day"], v["verdict"]) for v in bodies(resumed, RecordType.VAPOUR)] == [
        ("2027-01-16", "alarm"),
        ("2027-01-17", "inconclusive"),
        ("2027-01-18", "inconclusive"),
    ]
    summaries = bodies(again.close_days(late), RecordType.DAILY_SUMMARY)
    assert [s["day"] for s in summaries] == ["2027-01-16", "2027-01-17", "2027-01-18"]
    assert [s["complete"] for s in summaries] == [False, False, False]
    assert summaries[1]["agent_down"]["seconds"] == 86_400  # type: ignore[index]


def test_a_sale_dated_before_midnight_counts_in_its_day_though_its_pulses_come_after() -> None:
    """The controller booked it at 23:59:59; its pulses were not read before midnight, so it is recorded once the
    wait for them runs out, after midnight. It is dated, and judged, in the day it was sold."""
    court = started(station())
    court.fuel(20_000, al=0.6)
    court.fuel(20_000, al=0.6)
    midnight = DAYS.start_ms(date(2027, 1, 16))
    court.now = midnight - 2_000  # the fuelling's polls take a second: booked at 23:59:59
    court.fuel(20_000, al=0.6, counted=False)
    court.now = midnight + int(RULES.pulse_wait_s * 1000) + 1
    late = court.station.tick(court.now)
    assert [i.type for i in late] == [RecordType.TRANSACTION] and late[0].ts_ms < midnight
    court.now = midnight + 61_000
    court.poll()
    vapour = bodies(court.out, RecordType.VAPOUR)
    assert [(v["day"], v["fuellings"]) for v in vapour] == [("2027-01-15", 3)]


class _DaysCheckedInFull(Station):
    """The station without its shortcut past the day boundaries: every instant is checked against them in full."""

    def _cross_days(self, ts_ms: int, made_ms: int) -> list[RecordIntent]:
        self._no_close_before_ms = None
        return super()._cross_days(ts_ms, made_ms)


def scripted_days(court: Forecourt, days: LocalDays, first: date) -> list[tuple[object, ...]]:
    """Three days of sales, the last of each booked just before the boundary and measured after it, and polls
    inside the vapour grace, past it and past the summary's wait; every record the station made, as data."""
    court.now = max(court.now, days.start_ms(first) + 3_600_000)
    pulse_wait_ms = int(RULES.pulse_wait_s * 1000)
    for offset in range(3):
        end = days.start_ms(first + timedelta(days=offset + 1))
        court.fuel(20_000, al=0.6)
        court.fuel(30_000, al=1.1)
        court.now = end - 2_000
        court.fuel(20_000, al=0.6, counted=False)
        for after_ms in (pulse_wait_ms // 2, 2 * pulse_wait_ms + 1, 61_000, 3_600_000):
            court.now = end + after_ms
            court.poll()
    return [(i.type, i.ts_ms, i.body.as_json(), i.cursors) for i in court.out]


@pytest.mark.parametrize(("zone", "first"), [(ZONE, FIRST), (ZoneInfo("Europe/Berlin"), date(2027, 3, 27))])
def test_the_days_close_the_same_with_and_without_the_shortcut(zone: ZoneInfo, first: date) -> None:
    """The station answers at once, for an event before the next instant a day can close, what the full check
    would: a scripted three days (a 23-hour one in Berlin) make the very same records either way."""
    made = [
        scripted_days(
            started(kind([BINDING], {}, RULES, zone=zone, vapour=VAPOUR, daily=DAILY)), LocalDays(zone), first
        )
        for kind in (Station, _DaysCheckedInFull)
    ]
    assert made[0] == made[1]
    closed = [body["day"] for kind, _, body, _ in made[0] if kind is RecordType.VAPOUR and body["counted"]]
    assert closed == [str(first + timedelta(days=offset)) for offset in range(3)]
