"""What `status` is made of: the station's view of alarms and sales, the health verdict, and the snapshot's
JSON read back typed."""

from __future__ import annotations

import json
import threading

import pytest
from status_sample import NOW_MS, fault_status, offline_status, sample_status

from agent.records import (
    AlarmBody,
    AlarmState,
    ClockJumpBody,
    HeartbeatBody,
    RecordIntent,
    TransactionBody,
    format_ts,
)
from agent.station_view import ActiveAlarm, ClockStep, StationView
from agent.status import AgentStatus, Backlog, StatusFormatError, assess, read_status, status_json
from agent.status_text import render


def sale(nozzle: str, txn_no: int, volume_ml: int, end_ms: int) -> RecordIntent:
    body = TransactionBody(
        nozzle=nozzle,
        dispenser=nozzle.partition("-")[0],
        grade="92",
        tank="T1",
        controller="pc1",
        txn_no=txn_no,
        start=format_ts(end_ms - 60_000),
        end=format_ts(end_ms),
        volume_ml=volume_ml,
        amount_fen=volume_ml * 77 // 100,
        price_fen_per_l=770,
        totalizer_volume_ml_before=None,
        totalizer_volume_ml_after=volume_ml,
        totalizer_amount_fen_before=None,
        totalizer_amount_fen_after=None,
        pulse_volume_ml=None,
        deviation_ppm=None,
        vapour_ml=None,
        al_permille=None,
    )
    return body.intent(end_ms)


def alarm(state: AlarmState, subject: str, ts_ms: int) -> RecordIntent:
    body = AlarmBody(kind="metering_deviation", state=state, subject=subject, evidence={"deviation_ppm": 9000})
    return body.intent(ts_ms)


class TestStationView:
    def test_alarms_raised_and_cleared_and_the_last_sale_per_nozzle(self) -> None:
        """The view keeps what is active now and each nozzle's latest sale, and passes every intent on."""
        submitted: list[RecordIntent] = []
        view = StationView({})
        submit = view.watching(submitted.append)
        intents = [
            alarm(AlarmState.RAISED, "D01-N1", NOW_MS),
            alarm(AlarmState.RAISED, "D01-N2", NOW_MS + 1),
            sale("D01-N1", 7, 10_000, NOW_MS + 2),
            sale("D01-N1", 8, 20_000, NOW_MS + 3),
            sale("D02-N1", 3, 5_000, NOW_MS + 4),
            alarm(AlarmState.CLEARED, "D01-N1", NOW_MS + 5),
            HeartbeatBody(60, 1, "online", 0, 4, 4).intent(NOW_MS + 6),
        ]
        for intent in intents:
            submit(intent)
        facts = view.facts()
        assert submitted == intents
        assert facts.alarms == (
            ActiveAlarm("metering_deviation", "D01-N2", format_ts(NOW_MS + 1), {"deviation_ppm": 9000}),
        )
        assert [(s.nozzle, s.volume_ml, s.end) for s in facts.last_sales] == [
            ("D01-N1", 20_000, format_ts(NOW_MS + 3)),
            ("D02-N1", 5_000, format_ts(NOW_MS + 4)),
        ]

    def test_alarms_active_from_an_earlier_run_come_from_the_cursors(self) -> None:
        """After a restart the alarm book's cursors say what is still active; when it was raised is unknown."""
        view = StationView({"alarm/device_silent/pcm2": 1, "alarm/line_errors/rs485-1": 0, "nozzle/D01-N1": 5})
        assert view.facts().alarms == (ActiveAlarm("device_silent", "pcm2", None, {}),)
        view.note(AlarmBody(kind="device_silent", state=AlarmState.CLEARED, subject="pcm2", evidence={}).intent(1))
        assert view.facts().alarms == ()

    def test_the_last_clock_step(self) -> None:
        view = StationView({})
        body = ClockJumpBody(from_ts=format_ts(0), to_ts=format_ts(90_000), jump_ms=90_000, across_restart=False)
        view.note(body.intent(90_000))
        assert view.facts().last_clock_step == ClockStep(format_ts(0), format_ts(90_000), 90_000)

    def test_read_from_another_thread_while_the_station_writes(self) -> None:
        """The main loop copies the view while the station thread notes sales: every copy is whole."""
        view = StationView({})
        done = threading.Event()

        def station() -> None:
            for number in range(2000):
                view.note(sale(f"D{number % 4:02d}-N1", number, 1000 + number, NOW_MS + number))
            done.set()

        writer = threading.Thread(target=station)
        writer.start()
        copies = 0
        while not done.is_set() and copies < 10_000:
            facts = view.facts()
            assert [s.nozzle for s in facts.last_sales] == sorted(s.nozzle for s in facts.last_sales)
            copies += 1
        writer.join(5)
        assert len(view.facts().last_sales) == 4


class TestHealth:
    def test_an_active_alarm_needs_someone(self) -> None:
        """An alarm turns an otherwise healthy box to fault, and says which one."""
        status = sample_status()
        facts = StationView({"alarm/tank_leak/T1": 1}).facts()
        assert assess(status.recorder, status.uplink, status.lines, facts.alarms) == (
            "fault",
            ("alarm tank_leak on T1",),
        )
        assert assess(status.recorder, status.uplink, status.lines, ()) == ("ok", ())

    def test_records_the_platform_does_not_confirm_are_not_all_well(self) -> None:
        """The broker may take every record while the platform behind it stores none: online is not enough."""
        status = sample_status()
        late = Backlog(records=10, oldest_ts="2026-11-28T01:00:00.000Z", oldest_age_s=61)
        health, problems = assess(
            status.recorder, status.uplink, status.lines, (), unconfirmed=late, confirm_within_s=60.0
        )
        assert health == "degraded" and problems == (
            "the platform has not confirmed records for 61 s; they are kept on the box",
        )
        fresh = Backlog(records=10, oldest_ts="2026-11-28T01:00:00.000Z", oldest_age_s=59)
        assert (
            assess(status.recorder, status.uplink, status.lines, (), unconfirmed=fresh, confirm_within_s=60.0)[0]
            == "ok"
        )


class TestSnapshotJson:
    @pytest.mark.parametrize("status", [sample_status(), offline_status(), fault_status()])
    def test_read_back_typed_and_equal(self, status: AgentStatus) -> None:
        """What the agent writes, `status` reads back into the same typed snapshot."""
        assert read_status(status_json(status)) == status

    def test_unknown_keys_are_ignored_and_missing_ones_refused(self) -> None:
        """A newer agent may say more; an answer missing what this version needs is refused with a reason."""
        document = json.loads(status_json(sample_status()))
        document["something_new"] = {"x": 1}
        assert read_status(json.dumps(document).encode()) == sample_status()
        del document["backlog"]
        with pytest.raises(StatusFormatError, match="backlog"):
            read_status(json.dumps(document).encode())
        with pytest.raises(StatusFormatError):
            read_status(b"not json")


class TestPlainWords:
    def test_all_well(self) -> None:
        """Health first, then 'nothing' to do, then the facts in local time, litres and yuan."""
        text = render(sample_status())
        first, _, rest = text.partition("\n")
        assert first.startswith("ALL WELL")
        assert "What to do:\n  - nothing\n" in rest
        assert "Platform   online since 2026-11-28 08:15:03 (2 h 10 min)" in text
        assert "Waiting    nothing, the platform has every record" in text
        assert "Line       rs485-1: pc1 online, pcm1 online\n" in text
        assert "Alarms     none" in text
        assert "Last sale  D01-N1 (92) 12.34 L, 95.02 yuan at 2026-11-28 10:21:40" in text
        assert "Disk       1.2 GB free of 3.5 GB; records use 12.4 MB" in text
        assert "Clock      2026-11-28 10:25:03 (Asia/Shanghai)" in text

    def test_offline_says_records_are_kept_and_how_long_it_has_lasted(self) -> None:
        text = render(offline_status())
        assert text.startswith("OFFLINE, BUFFERING")
        assert "  - nothing right away: records wait on the box" in text
        assert "Platform   offline since 2026-11-28 09:45:03 (40 min) (connection refused)" in text
        assert "Waiting    300 record(s) not yet confirmed by the platform, the oldest from 2026-11-28 09:45:03" in text

    def test_a_fault_names_each_problem_with_its_next_step(self) -> None:
        text = render(fault_status())
        assert text.startswith("NEEDS SOMEONE")
        steps = text.split("What to do:\n")[1].split("\n\n")[0]
        assert steps == (
            "  - pcm2 on line tcp-1 does not answer (timeout): check that it is powered and its cable to the box;\n"
            "    if it still does not answer, call the maintenance company\n"
            "  - the pump's meter and its pulse encoder disagree on D01-N2: have the dispenser checked by the\n"
            "    metrology service"
        )
        assert "tcp-1: pc2 online, pcm2 NOT ANSWERING since 2026-11-28 08:55:03" in text
        assert "Alarm      metering_deviation on D01-N2, since 2026-11-28 10:03:00" in text
        assert "it was set 5 min forward at 2026-11-28 09:05:00" in text
