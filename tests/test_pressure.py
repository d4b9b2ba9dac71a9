"""Tank pressure per sensor: interval and day records, the zero, over-pressure and band rules, gaps in the
readings, and a restart that changes nothing."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence

import pytest
from pressure_story import DAY_MS, FIRST_DAY, QUICK, START_MS, STEP_MS, pressure_story

from agent.contract.decode import decode_as
from agent.contract.records import JsonValue, RecordIntent, RecordType, TankPressureBody, format_ts
from agent.station.alarms import AlarmBook
from agent.station.pressure import PressureWatch
from agent.station.pressure_settings import PressureSettings
from drivers.readings import PressureReading

HOUR_MS = 3_600_000


def alarms(made: Sequence[RecordIntent]) -> list[tuple[str, str, str]]:
    """(kind, state, when) of each alarm made."""
    return [(str(i.body.kind), str(i.body.state), format_ts(i.ts_ms)[5:16]) for i in made if i.type is RecordType.ALARM]


def records(made: Sequence[RecordIntent], period: str) -> list[dict[str, JsonValue]]:
    return [i.body.as_json() for i in made if i.type is RecordType.TANK_PRESSURE and i.body.period == period]


def feed(watch: PressureWatch, readings: Sequence[tuple[int, int]], device: str = "ps1") -> list[RecordIntent]:
    """(ms after the story's start, Pa) readings."""
    made: list[RecordIntent] = []
    for offset_ms, pressure in readings:
        made += watch.on_reading(device, PressureReading(pressure), START_MS + offset_ms)
    return made


def steady(pressure: int, from_ms: int, to_ms: int, step_ms: int = STEP_MS) -> list[tuple[int, int]]:
    return [(at, pressure) for at in range(from_ms, to_ms, step_ms)]


def test_the_story_raises_and_clears_every_alarm_once() -> None:
    assert alarms(pressure_story()) == [
        ("tank_pressure_zero_warning", "raised", "03-01T12:00"),
        ("tank_pressure_zero_alarm", "raised", "03-03T00:00"),
        ("tank_pressure_zero_warning", "cleared", "03-03T00:00"),
        ("tank_pressure_over_warning", "raised", "03-03T01:00"),
        ("tank_pressure_over_alarm", "raised", "03-03T01:05"),
        ("tank_pressure_over_alarm", "cleared", "03-03T01:06"),
        ("tank_pressure_over_warning", "cleared", "03-03T01:06"),
        ("tank_pressure_zero_alarm", "cleared", "03-04T00:00"),
        ("tank_pressure_band_warning", "raised", "03-05T00:00"),
        ("tank_pressure_band_alarm", "raised", "03-06T00:00"),
        ("tank_pressure_band_warning", "cleared", "03-07T00:00"),
        ("tank_pressure_band_alarm", "cleared", "03-07T00:00"),
    ]


def test_a_normal_tank_makes_interval_and_day_records_and_no_alarm() -> None:
    made = pressure_story(lambda day, offset: 200 + (offset // STEP_MS) % 3 * 100, days=2, settings=PressureSettings())
    assert alarms(made) == []
    intervals, days = records(made, "interval"), records(made, "day")
    assert len(intervals) == 2 * 288 and len(days) == 2
    first = intervals[0]
    assert (first["start"], first["end"], first["readings"]) == (format_ts(START_MS), format_ts(START_MS + 300_000), 10)
    assert (first["min_pa"], first["max_pa"], first["mean_pa"], first["day"]) == (200, 400, 290, None)
    assert days[0]["readings"] == 2_880 and days[0]["outside_band_permille"] == 0
    assert (days[0]["day"], days[0]["zero_warning_days"], days[0]["band_warning_days"]) == ("2026-03-01", 0, 0)
    assert days[0]["start"] == format_ts(START_MS) and days[0]["end"] == format_ts(START_MS + DAY_MS)


def test_zero_pressure_must_last_longer_than_twelve_hours_by_the_clock() -> None:
    watch = PressureWatch(PressureSettings(), AlarmBook({}), [])
    assert alarms(feed(watch, steady(0, 0, 12 * HOUR_MS + 1, 60_000))) == []
    made = feed(watch, [(12 * HOUR_MS + 60_000, 20)])
    assert alarms(made) == [("tank_pressure_zero_warning", "raised", "03-01T12:01")]
    assert made[-1].body.evidence == {
        "pressure_pa": 20,
        "run_s": 43_260,
        "band_pa": 50,
        "since": format_ts(START_MS),
    }


def test_an_offline_gap_is_not_zero_pressure() -> None:
    """Twelve and a half hours of zero with the sensor silent for ten minutes in between: the run starts anew."""
    watch = PressureWatch(PressureSettings(), AlarmBook({}), [])
    readings = steady(0, 0, 6 * HOUR_MS) + steady(0, 6 * HOUR_MS + 600_000, 12 * HOUR_MS + 1_800_000)
    assert alarms(feed(watch, readings)) == []
    made = feed(watch, steady(0, 12 * HOUR_MS + 1_800_000, 18 * HOUR_MS + 660_000))  # 12 h after the gap
    assert [kind for kind, state, _ in alarms(made)] == ["tank_pressure_zero_warning"]


def test_a_day_without_readings_changes_no_count() -> None:
    rules = PressureSettings(zero_alarm_days=2)
    watch = PressureWatch(rules, AlarmBook({}), [])
    made = feed(watch, steady(0, 0, DAY_MS))
    made += watch.close_day(FIRST_DAY, START_MS + DAY_MS)
    made += watch.close_day(FIRST_DAY + datetime.timedelta(1), START_MS + 2 * DAY_MS)  # offline all day
    made += feed(watch, steady(0, 2 * DAY_MS, 3 * DAY_MS))
    made += watch.close_day(FIRST_DAY + datetime.timedelta(2), START_MS + 3 * DAY_MS)
    days = records(made, "day")
    assert [(d["readings"], d["zero_warning_days"], d["mean_pa"]) for d in days] == [
        (2_880, 1, 0),
        (0, 1, None),
        (2_880, 2, 0),
    ]
    assert alarms(made)[-1][:2] == ("tank_pressure_zero_alarm", "raised")


def test_over_pressure_warns_at_once_and_alarms_only_if_it_lasts_five_minutes() -> None:
    watch = PressureWatch(PressureSettings(valve_opening_pa=800), AlarmBook({}), [])
    assert alarms(feed(watch, [(0, 1_000)])) == []  # 1000 is not above 800 + 200
    short = feed(watch, [*steady(1_001, 5_000, 295_000, 5_000), (295_000, 300)])
    assert [kind_state for *kind_state, _ in alarms(short)] == [
        ["tank_pressure_over_warning", "raised"],
        ["tank_pressure_over_warning", "cleared"],
    ]
    long = feed(watch, steady(1_400, 400_000, 700_001, 5_000))
    assert [kind for kind, _, _ in alarms(long)] == ["tank_pressure_over_warning", "tank_pressure_over_alarm"]
    raised = [i for i in long if i.type is RecordType.ALARM][1]
    assert raised.ts_ms == START_MS + 700_000
    assert raised.body.evidence == {
        "max_pa": 1_400,
        "limit_pa": 1_000,
        "duration_s": 300,
        "since": format_ts(START_MS + 400_000),
    }


def test_a_gap_restarts_the_over_pressure_clock() -> None:
    watch = PressureWatch(PressureSettings(), AlarmBook({}), [])
    readings = steady(2_000, 0, 200_000, 5_000) + steady(2_000, 290_000, 480_000, 5_000)
    assert [kind for kind, _, _ in alarms(feed(watch, readings))] == ["tank_pressure_over_warning"]


@pytest.mark.parametrize(("outside_per_96", "warning"), [(24, False), (25, True)])
def test_band_warning_needs_more_than_a_quarter_of_the_day_outside(outside_per_96: int, warning: bool) -> None:
    watch = PressureWatch(PressureSettings(), AlarmBook({}), [])
    step = DAY_MS // 96
    made = feed(watch, [(i * step, -1_001 if i < outside_per_96 else -1_000) for i in range(96)])
    made += watch.close_day(FIRST_DAY, START_MS + DAY_MS)
    assert [kind for kind, _, _ in alarms(made)] == (["tank_pressure_band_warning"] if warning else [])


def test_band_alarm_after_seven_warning_days_in_a_row() -> None:
    made = pressure_story(lambda day, offset: 700, days=7, settings=PressureSettings())
    found = alarms(made)
    assert found == [
        ("tank_pressure_band_warning", "raised", "03-02T00:00"),
        ("tank_pressure_band_alarm", "raised", "03-08T00:00"),
    ]
    assert records(made, "day")[-1]["band_warning_days"] == 7


def test_a_day_is_closed_once() -> None:
    watch = PressureWatch(QUICK, AlarmBook({}), [])
    feed(watch, steady(300, 0, HOUR_MS))
    assert len(watch.close_day(FIRST_DAY, START_MS + DAY_MS)) == 2  # the last interval and the day
    assert watch.close_day(FIRST_DAY, START_MS + DAY_MS) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"band_low_pa": -40}, "pressure.band_low_pa = -40 .. band_high_pa = 600 must hold the zero band"),
        ({"record_interval_s": 7}, "pressure.record_interval_s = 7 must divide an hour"),
        ({"zero_run_s": 0}, "pressure.zero_run_s = 0: must be at least 1"),
        ({"band_share_permille": 1_500}, "a share is at most 1000"),
    ],
)
def test_settings_that_contradict_each_other_are_refused(change: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("+", r"\+")):
        PressureSettings(**change)  # type: ignore[arg-type]


def story_shape(day: int, offset: int) -> int:
    """Over-pressure, out-of-band and normal spells, changing every few intervals."""
    return (1_200, -1_500, 300, 900)[(offset // 1_200_000 + day) % 4] + (offset // STEP_MS % 5 < 2)


@pytest.mark.parametrize("restart_hours", [(5,), (13, 30), (24, 47, 48)])
def test_a_restart_at_an_interval_boundary_resumes_from_the_records(restart_hours: tuple[int, ...]) -> None:
    """Restarted on an interval boundary and fed its own tank_pressure records from the last day record on, the
    watch makes the records and day alarms an uninterrupted run makes. (Real-time spells start anew: the
    agent being down is a gap.)"""
    shape: Callable[[int, int], int] = story_shape
    expected = pressure_story(shape, days=3, settings=QUICK)
    made: list[RecordIntent] = []
    watch = PressureWatch(QUICK, AlarmBook({}), [])
    for day in range(3):
        for offset in range(0, DAY_MS, STEP_MS):
            at = day * DAY_MS + offset
            if at % HOUR_MS == 0 and at // HOUR_MS in restart_hours:
                made += watch.tick(START_MS + at)  # the clean stop
                bodies = [i.body.as_json() for i in made if i.type is RecordType.TANK_PRESSURE]
                last_day = max((n for n, b in enumerate(bodies) if b["period"] == "day"), default=0)
                cursors = {c.key: c.value for i in made for c in i.cursors}
                history = [decode_as(TankPressureBody, body) for body in bodies[last_day:]]
                watch = PressureWatch(QUICK, AlarmBook(cursors), history)
            made += watch.on_reading("ps1", PressureReading(shape(day, offset)), START_MS + at)
        made += watch.close_day(FIRST_DAY + datetime.timedelta(days=day), START_MS + (day + 1) * DAY_MS)
    assert records(made, "day") == records(expected, "day")
    assert records(made, "interval") == records(expected, "interval")
    day_kinds = ("zero_alarm", "band_warning", "band_alarm")
    assert [a for a in alarms(made) if a[0].endswith(day_kinds)] == [
        a for a in alarms(expected) if a[0].endswith(day_kinds)
    ]
