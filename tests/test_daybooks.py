"""The daily books: scripted days of records in, one daily_summary per local day out, once, across restarts."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter, ValidationError

from agent.contract.decode import decode_as
from agent.contract.records import (
    AgentStartBody,
    AgentStopBody,
    AlarmBody,
    AlarmState,
    DailySummaryBody,
    DeviceOfflineBody,
    DeviceOnlineBody,
    HeartbeatBody,
    ReconciliationBody,
    RecordIntent,
    TransactionBody,
    UncleanStopBody,
    format_ts,
)
from agent.station.daily_settings import DaySettings
from agent.station.daybooks import CLOSED_CURSOR, DayBooks, last_closed_of

SHANGHAI = ZoneInfo("Asia/Shanghai")
SETTINGS = DaySettings()
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "contract" / "schemas" / "daily_summary.json"


def at(text: str, zone: ZoneInfo = SHANGHAI) -> int:
    """Milliseconds of a local wall time, e.g. `2026-11-27 08:00`."""
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()) * 1000


def sale(
    ts_ms: int,
    nozzle: str,
    grade: str,
    volume_ml: int,
    before_ml: int | None,
    *,
    after_ml: int | None = None,
    amount_before_fen: int | None = None,
    price_fen_per_l: int = 768,
) -> RecordIntent:
    """A transaction whose totalizers add up, unless `after_ml` says otherwise."""
    amount = volume_ml * price_fen_per_l // 1000
    body = TransactionBody(
        nozzle=nozzle,
        dispenser=nozzle.partition("-")[0],
        grade=grade,
        tank="T1",
        controller="pc1",
        txn_no=1,
        start=format_ts(ts_ms - MINUTE_MS),
        end=format_ts(ts_ms),
        volume_ml=volume_ml,
        amount_fen=amount,
        price_fen_per_l=price_fen_per_l,
        totalizer_volume_ml_before=before_ml,
        totalizer_volume_ml_after=after_ml if after_ml is not None else (before_ml or 0) + volume_ml,
        totalizer_amount_fen_before=amount_before_fen,
        totalizer_amount_fen_after=None if amount_before_fen is None else amount_before_fen + amount,
        pulse_volume_ml=None,
        deviation_ppm=None,
        vapour_ml=None,
        al_permille=None,
    )
    return body.intent(ts_ms)


def beat(ts_ms: int, uplink: str = "online") -> RecordIntent:
    body = HeartbeatBody(
        interval_s=60,
        uptime_s=0,
        uplink=uplink,
        unacked=0,
        devices_online=2,
        devices_total=2,  # type: ignore[arg-type]
    )
    return body.intent(ts_ms)


def started(ts_ms: int) -> RecordIntent:
    return AgentStartBody(version="0.1.0", config_sha256="0" * 64, kid="0" * 16).intent(ts_ms)


def crashed(ts_ms: int, last_ms: int) -> list[RecordIntent]:
    """What a run that follows a crash makes first: agent_start, then unclean_stop naming the last record."""
    return [started(ts_ms), UncleanStopBody(last_record_seq=41, last_record_ts=format_ts(last_ms)).intent(ts_ms)]


def offline(device: str, ts_ms: int) -> RecordIntent:
    return DeviceOfflineBody(device=device, line="rs485-1", reason="ModbusTimeout").intent(ts_ms)


def online(device: str, ts_ms: int) -> RecordIntent:
    return DeviceOnlineBody(device=device, line="rs485-1").intent(ts_ms)


def tank_day(start_ms: int, end_ms: int, variance_ml: int = -120) -> RecordIntent:
    body = ReconciliationBody(
        tank="T1",
        product="gasoline",
        period="day",
        start=format_ts(start_ms),
        end=format_ts(end_ms),
        opening_ts=format_ts(start_ms + 20_000),
        closing_ts=format_ts(end_ms + 20_000),
        opening_volume_20_ml=20_000_000,
        closing_volume_20_ml=17_000_120,
        delivered_20_ml=0,
        sold_20_ml=3_000_000,
        sales=120,
        temperature_cC=1850,
        variance_ml=variance_ml,
        cumulative_variance_ml=-4_000,
        complete=True,
    )
    return body.intent(end_ms + 20_000)


def feed(books: DayBooks, records: list[RecordIntent]) -> None:
    for record in records:
        books.note(record)


def close_due(books: DayBooks, now_ms: int) -> list[RecordIntent]:
    made: list[RecordIntent] = []
    for day in books.due(now_ms):
        made += books.close(day, now_ms)
    return made


def summary_of(made: list[RecordIntent]) -> dict[str, Any]:
    (record,) = made
    body: dict[str, Any] = json.loads(json.dumps(record.body.as_json()))
    return body


def periods(downtime: dict[str, Any], zone: ZoneInfo = SHANGHAI) -> list[tuple[str, str]]:
    """The periods as local wall times, for reading."""

    def local(ts: str) -> str:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(zone).strftime("%m-%d %H:%M")

    return [(local(p["start"]), local(p["end"])) for p in downtime["periods"]]


def books_for(last_closed: str | None, now_ms: int, zone: ZoneInfo = SHANGHAI, **settings: Any) -> DayBooks:
    return DayBooks(DaySettings(**settings), zone, last_closed, now_ms)


# -- what a day sums up ------------------------------------------------------------------------------------------


def test_sales_add_up_per_nozzle_and_grade_and_a_tampered_totalizer_shows() -> None:
    """Three nozzles, two grades: sums per nozzle and grade, totalizers opening and closing, a totalizer moved by
    500 mL between two sales shows as a difference of 500 mL; an unknown opening gives no difference."""
    books = books_for("2026-11-26", at("2026-11-27 00:00"))
    feed(
        books,
        [
            beat(at("2026-11-27 00:00:30")),
            sale(at("2026-11-26 23:59"), "D01-N1", "92", 99_000, 1_000),  # yesterday's, closed already
            sale(at("2026-11-27 08:00"), "D01-N1", "92", 30_000, 1_000_000, amount_before_fen=500_000),
            sale(at("2026-11-27 09:00"), "D01-N1", "92", 20_000, 1_030_000, amount_before_fen=523_040),
            sale(at("2026-11-27 10:00"), "D01-N2", "95", 10_000, 2_000_000),
            sale(at("2026-11-27 11:00"), "D01-N2", "95", 10_000, 2_010_500),  # 500 mL moved at rest
            sale(at("2026-11-27 12:00"), "D02-N1", "92", 40_000, None),
        ],
    )
    made = close_due(books, at("2026-11-28 00:15"))
    summary = summary_of(made)
    assert made[0].cursors[0].key == CLOSED_CURSOR and made[0].cursors[0].value == 20261127
    assert (summary["day"], summary["zone"], summary["complete"]) == ("2026-11-27", "Asia/Shanghai", True)
    assert (summary["start"], summary["end"]) == ("2026-11-26T16:00:00.000Z", "2026-11-27T16:00:00.000Z")
    n1, n2, d2 = summary["nozzles"]
    assert n1 == {
        "nozzle": "D01-N1",
        "grade": "92",
        "sales": 2,
        "volume_ml": 50_000,
        "amount_fen": 23_040 + 15_360,
        "totalizer_volume_ml_opening": 1_000_000,
        "totalizer_volume_ml_closing": 1_050_000,
        "totalizer_volume_ml_difference": 0,
        "totalizer_amount_fen_opening": 500_000,
        "totalizer_amount_fen_closing": 538_400,
        "totalizer_amount_fen_difference": 0,
    }
    assert (n2["totalizer_volume_ml_opening"], n2["totalizer_volume_ml_closing"]) == (2_000_000, 2_020_500)
    assert n2["totalizer_volume_ml_difference"] == 500
    assert n2["totalizer_amount_fen_difference"] is None
    assert (d2["totalizer_volume_ml_opening"], d2["totalizer_volume_ml_difference"]) == (None, None)
    assert summary["grades"] == [
        {"grade": "92", "sales": 3, "volume_ml": 90_000, "amount_fen": 23_040 + 15_360 + 30_720},
        {"grade": "95", "sales": 2, "volume_ml": 20_000, "amount_fen": 2 * 7_680},
    ]


def test_the_tanks_day_books_and_the_alarms_raised_are_in_the_summary() -> None:
    """The tank's day reconciliation, made at the first reading past midnight, is in; an hourly one is not;
    alarms count by kind when raised, not when cleared."""
    books = books_for("2026-11-26", at("2026-11-27 00:00"))
    raised = AlarmBody(kind="device_silent", state=AlarmState.RAISED, subject="pc2", evidence={})
    cleared = AlarmBody(kind="device_silent", state=AlarmState.CLEARED, subject="pc2", evidence={})
    feed(
        books,
        [
            beat(at("2026-11-27 00:00:30")),
            raised.intent(at("2026-11-27 03:00")),
            cleared.intent(at("2026-11-27 04:00")),
            raised.intent(at("2026-11-27 05:00")),
            AlarmBody(kind="line_errors", state=AlarmState.RAISED, subject="rs485-1", evidence={}).intent(
                at("2026-11-27 06:00")
            ),
            tank_day(at("2026-11-26 00:00"), at("2026-11-27 00:00"), variance_ml=-999),  # yesterday's books
            tank_day(at("2026-11-27 00:00"), at("2026-11-28 00:00")),
        ],
    )
    summary = summary_of(close_due(books, at("2026-11-28 00:15")))
    (tank,) = summary["tanks"]
    assert (tank["tank"], tank["variance_ml"], tank["sold_20_ml"], tank["complete"]) == ("T1", -120, 3_000_000, True)
    assert tank["start"] == "2026-11-26T16:00:00.000Z"
    assert summary["alarms_raised"] == {"device_silent": 2, "line_errors": 1}


def test_device_offline_agent_crash_and_uplink_give_the_periods() -> None:
    """A device down and back; one down when the agent crashes (its period ends with the run); the agent down
    from its last record to its restart; the uplink by heartbeats; a device still down at the day's end."""
    books = books_for("2026-11-26", at("2026-11-27 00:00"))
    feed(
        books,
        [
            beat(at("2026-11-27 00:00:30")),
            offline("pc2", at("2026-11-27 03:00")),
            online("pc2", at("2026-11-27 04:30")),
            offline("pcm1", at("2026-11-27 09:00")),
            beat(at("2026-11-27 10:00")),
            *crashed(at("2026-11-27 13:00"), at("2026-11-27 10:00")),
            online("pcm1", at("2026-11-27 13:00:05")),
            beat(at("2026-11-27 15:00"), "offline"),
            beat(at("2026-11-27 15:01"), "offline"),
            beat(at("2026-11-27 15:10")),
            offline("pc2", at("2026-11-27 23:00")),
        ],
    )
    summary = summary_of(close_due(books, at("2026-11-28 00:15")))
    agent = summary["agent_down"]
    assert summary["complete"] is False
    assert (agent["subject"], agent["seconds"]) == ("agent", 3 * 3600)
    assert periods(agent) == [("11-27 10:00", "11-27 13:00")]
    assert summary["uplink_down"]["seconds"] == 600
    assert periods(summary["uplink_down"]) == [("11-27 15:00", "11-27 15:10")]
    pc2, pcm1 = summary["devices_down"]
    assert (pc2["subject"], pc2["seconds"], pc2["down_at_end"]) == ("pc2", 5400 + 3600, True)
    assert periods(pc2) == [("11-27 03:00", "11-27 04:30"), ("11-27 23:00", "11-28 00:00")]
    assert (pcm1["subject"], pcm1["seconds"], pcm1["down_at_end"]) == ("pcm1", 3600, False)
    assert periods(pcm1) == [("11-27 09:00", "11-27 10:00")]
    Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8"))).validate(summary)


def test_a_clean_stop_counts_from_agent_stop_to_agent_start() -> None:
    books = books_for("2026-11-26", at("2026-11-27 00:00"))
    stop = AgentStopBody(reason="stopped", uptime_s=3600).intent(at("2026-11-27 06:00"))
    feed(books, [beat(at("2026-11-27 00:01")), offline("pc2", at("2026-11-27 05:00"))])
    feed(books, [stop, started(at("2026-11-27 06:30"))])
    summary = summary_of(close_due(books, at("2026-11-28 00:15")))
    assert periods(summary["agent_down"]) == [("11-27 06:00", "11-27 06:30")]
    assert periods(summary["devices_down"][0]) == [("11-27 05:00", "11-27 06:00")]


def test_down_periods_are_bounded_to_the_longest() -> None:
    """A device that flaps 30 times lists only max_periods periods, the longest, in time order; its total and the
    count left out cover them all."""
    books = books_for("2026-11-26", at("2026-11-27 00:00"), max_periods=3)
    records = [beat(at("2026-11-27 00:00:30"))]
    for index in range(30):
        down = at("2026-11-27 01:00") + index * 20 * MINUTE_MS
        records += [offline("pc2", down), online("pc2", down + (index % 7 + 1) * MINUTE_MS)]
    feed(books, records)
    (pc2,) = summary_of(close_due(books, at("2026-11-28 00:15")))["devices_down"]
    assert [p["seconds"] for p in pc2["periods"]] == [420, 420, 420]
    assert [p["start"] for p in pc2["periods"]] == sorted(p["start"] for p in pc2["periods"])
    assert pc2["periods_left_out"] == 27
    assert pc2["seconds"] == sum((index % 7 + 1) * 60 for index in range(30))


# -- once, across restarts -----------------------------------------------------------------------------------------


def test_a_day_is_closed_once_even_after_a_restart() -> None:
    """A second DayBooks built from the cursor, fed the same records again, closes nothing: the day is done."""
    first = books_for("2026-11-26", at("2026-11-27 00:00"))
    records = [beat(at("2026-11-27 00:00:30")), sale(at("2026-11-27 08:00"), "D01-N1", "92", 30_000, 1_000)]
    feed(first, records)
    made = close_due(first, at("2026-11-28 00:15"))
    assert first.due(at("2026-11-28 00:16")) == [] and first.close(date(2026, 11, 27), at("2026-11-28 00:16")) == []
    cursors = {cursor.key: cursor.value for cursor in made[0].cursors}
    assert last_closed_of(cursors) == "2026-11-27" and last_closed_of({}) is None
    second = DayBooks(SETTINGS, SHANGHAI, last_closed_of(cursors), at("2026-11-28 00:20"), last_summary=made[0].body)
    feed(second, [*records, *made, *crashed(at("2026-11-28 00:20"), at("2026-11-28 00:15"))])
    assert second.replay_from_ms == at("2026-11-28 00:00")
    assert second.due(at("2026-11-28 00:30")) == []
    assert second.close(date(2026, 11, 27), at("2026-11-28 00:30")) == []
    assert second.due(at("2026-11-29 00:15")) == [date(2026, 11, 28)]


def test_a_late_restart_closes_every_missed_day() -> None:
    """The agent crashes at noon and comes back three days later: the day of the crash and the two days with no
    record at all are closed at once, in order, each with its down time; then the day of the restart."""
    crash_day = [beat(at("2026-11-27 00:00:30")), sale(at("2026-11-27 08:00"), "D01-N1", "92", 30_000, 1_000)]
    crash_day.append(beat(at("2026-11-27 12:00")))
    now = at("2026-11-30 10:00")
    books = books_for("2026-11-26", now)
    assert books.replay_from_ms == at("2026-11-27 00:00")
    feed(books, [*crash_day, *crashed(now, at("2026-11-27 12:00"))])
    assert books.due(now + 1) == [date(2026, 11, 27), date(2026, 11, 28), date(2026, 11, 29)]
    made = close_due(books, now + 1)
    assert [record.cursors[0].value for record in made] == [20261127, 20261128, 20261129]
    crash, *dark = [json.loads(json.dumps(record.body.as_json())) for record in made]
    assert crash["agent_down"]["seconds"] == 12 * 3600
    assert periods(crash["agent_down"]) == [("11-27 12:00", "11-28 00:00")]
    assert crash["nozzles"][0]["volume_ml"] == 30_000
    for summary in dark:
        assert (summary["complete"], summary["agent_down"]["seconds"], summary["nozzles"]) == (False, 86_400, [])
        assert summary["agent_down"]["down_at_end"] is True
    assert books.due(at("2026-11-30 23:59")) == []
    restart_day = summary_of(close_due(books, at("2026-12-01 00:15")))
    assert periods(restart_day["agent_down"]) == [("11-30 00:00", "11-30 10:00")]


def test_a_device_down_across_midnight_and_a_restart_stays_down_from_the_summary() -> None:
    """The records that took a device offline lie before the replay; the last summary says it was down at the
    day's end, so after a crash the next day it counts from midnight to the crash, and again after the restart."""
    first = books_for("2026-11-26", at("2026-11-27 00:00"))
    feed(first, [beat(at("2026-11-27 00:00:30")), offline("pc2", at("2026-11-27 22:00"))])
    made = close_due(first, at("2026-11-28 00:15"))
    after = [*made, beat(at("2026-11-28 05:00"))]
    feed(first, after)
    last_summary = json.loads(json.dumps(made[0].body.as_json()))
    second = DayBooks(
        SETTINGS, SHANGHAI, "2026-11-27", at("2026-11-28 07:00"), last_summary=decode_as(DailySummaryBody, last_summary)
    )
    feed(second, after)
    feed(second, [*crashed(at("2026-11-28 07:00"), at("2026-11-28 05:00")), offline("pc2", at("2026-11-28 07:01"))])
    feed(second, [online("pc2", at("2026-11-28 08:00"))])
    summary = summary_of(close_due(second, at("2026-11-29 00:15")))
    assert periods(summary["devices_down"][0]) == [("11-28 00:00", "11-28 05:00"), ("11-28 07:01", "11-28 08:00")]
    assert periods(summary["agent_down"]) == [("11-28 05:00", "11-28 07:00")]


def test_days_close_in_order_and_only_once_over() -> None:
    books = books_for("2026-11-26", at("2026-11-27 00:00"))
    with pytest.raises(ValueError, match="cannot close before 2026-11-27"):
        books.close(date(2026, 11, 28), at("2026-11-29 01:00"))
    with pytest.raises(ValueError, match=r"it ends at 2026-11-27T16:00:00\.000Z"):
        books.close(date(2026, 11, 27), at("2026-11-27 23:00"))


# -- the calendar ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("America/New_York", "2026-03-08", 23),
        ("America/New_York", "2026-11-01", 25),
        ("Europe/Berlin", "2026-03-29", 23),
        ("Europe/Berlin", "2026-10-25", 25),
        ("Asia/Shanghai", "2026-03-29", 24),
    ],
)
def test_a_day_across_a_daylight_saving_change_has_its_hours(zone: str, day: str, hours: int) -> None:
    """Local midnight to local midnight; a whole day down counts every one of its hours."""
    place = ZoneInfo(zone)
    books = books_for(str(date.fromisoformat(day) - date.resolution), at(f"{day} 00:00", place), place)
    summary = summary_of(books.close(date.fromisoformat(day), at(f"{day} 00:00", place) + 26 * HOUR_MS))
    assert summary["agent_down"]["seconds"] == hours * 3600
    start, end = (datetime.fromisoformat(summary[key].replace("Z", "+00:00")) for key in ("start", "end"))
    assert (end - start).total_seconds() == hours * 3600
    assert start.astimezone(place).strftime("%H:%M") == end.astimezone(place).strftime("%H:%M") == "00:00"


def test_a_boundary_at_six_splits_the_day_at_six_local() -> None:
    """With the books closing at 06:00, a sale at 05:59 is the previous day's and one at 06:01 the day's; the
    tanks' own midnight-to-midnight day goes to the day holding most of it; the close is due at 06:15."""
    books = books_for("2026-11-26", at("2026-11-27 06:00"), boundary="06:00")
    feed(
        books,
        [
            beat(at("2026-11-27 06:00:30")),
            sale(at("2026-11-28 05:59"), "D01-N1", "92", 10_000, 1_000),
            sale(at("2026-11-28 06:01"), "D01-N1", "92", 20_000, 11_000),
            tank_day(at("2026-11-27 00:00"), at("2026-11-28 00:00")),
        ],
    )
    assert books.due(at("2026-11-28 06:14")) == []
    assert books.due(at("2026-11-28 06:15")) == [date(2026, 11, 27)]
    summary = summary_of(books.close(date(2026, 11, 27), at("2026-11-28 06:15")))
    assert (summary["start"], summary["end"]) == ("2026-11-26T22:00:00.000Z", "2026-11-27T22:00:00.000Z")
    assert summary["nozzles"][0]["volume_ml"] == 10_000
    assert summary["tanks"][0]["start"] == format_ts(at("2026-11-27 00:00"))
    summary = summary_of(books.close(date(2026, 11, 28), at("2026-11-29 06:15")))
    assert (summary["nozzles"][0]["volume_ml"], summary["tanks"]) == (20_000, [])


def test_a_change_of_zone_between_runs_leaves_no_gap_and_no_overlap() -> None:
    """Closed in Shanghai, restarted in Berlin: the first Berlin day starts where the last Shanghai day ended
    (16:00 UTC) and ends at Berlin's midnight, 31 hours; a sale in between is in it. Without the last summary
    (pruned from the outbox) the day is Berlin's own."""
    berlin = ZoneInfo("Europe/Berlin")
    first = books_for("2026-11-26", at("2026-11-27 00:00"))
    feed(first, [beat(at("2026-11-27 00:00:30"))])
    made = close_due(first, at("2026-11-28 00:15"))
    last = json.loads(json.dumps(made[0].body.as_json()))
    assert last["end"] == "2026-11-27T16:00:00.000Z"
    now = at("2026-11-27 18:00", berlin)
    second = DayBooks(SETTINGS, berlin, "2026-11-27", now, last_summary=decode_as(DailySummaryBody, last))
    assert second.replay_from_ms == at("2026-11-28 00:00")
    feed(second, [*made, started(now), sale(at("2026-11-27 20:00", berlin), "D01-N1", "92", 10_000, 1_000)])
    assert second.due(at("2026-11-29 00:14", berlin)) == []
    summary = summary_of(close_due(second, at("2026-11-29 00:15", berlin)))
    assert (summary["day"], summary["zone"]) == ("2026-11-28", "Europe/Berlin")
    assert (summary["start"], summary["end"]) == ("2026-11-27T16:00:00.000Z", "2026-11-28T23:00:00.000Z")
    assert summary["nozzles"][0]["volume_ml"] == 10_000
    assert periods(summary["agent_down"], berlin) == [("11-27 17:00", "11-27 18:00")]
    following = summary_of(close_due(second, at("2026-11-30 00:15", berlin)))
    assert (following["start"], following["end"]) == ("2026-11-28T23:00:00.000Z", "2026-11-29T23:00:00.000Z")
    pruned = DayBooks(SETTINGS, berlin, "2026-11-27", now)
    assert pruned.replay_from_ms == at("2026-11-28 00:00", berlin)


# -- settings ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"boundary": "6:00"}, "must be a local time of day as HH:MM, 00:00 to 23:59"),
        ({"boundary": "24:00"}, "must be a local time of day as HH:MM, 00:00 to 23:59"),
        ({"close_after_s": -1}, "must be >= 0"),
        ({"max_periods": 0}, "must be >= 1"),
    ],
)
def test_settings_refuse_what_cannot_work(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(DaySettings).validate_python(raw)


def test_settings_defaults() -> None:
    settings = TypeAdapter(DaySettings).validate_python({"boundary": "06:30"})
    assert (settings.boundary_time.hour, settings.boundary_time.minute) == (6, 30)
    assert (settings.close_after_s, settings.max_periods, DaySettings().boundary) == (900, 24, "00:00")
