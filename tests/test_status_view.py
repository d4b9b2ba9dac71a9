"""What `status` is made of: the station's view of alarms and sales, the health verdict, and the snapshot's
JSON read back typed."""

from __future__ import annotations

import ast
import dataclasses
import errno
import functools
import json
import os
import re
import shutil
import string
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from status_sample import (
    COMMON_STATES,
    LINES,
    NOW_MS,
    RECORDER,
    UPLINK,
    fault_status,
    fuelling_status,
    hj212_down_status,
    nozzle_alarm_and_warning_status,
    offline_status,
    outbox_full_status,
    sample_status,
    starting_status,
    unconfirmed_status,
    unplugged_status,
)
from support.waiting import wait_until

from agent.clock import Instant, SystemClock
from agent.containment import Boundary
from agent.contract.records import (
    AlarmBody,
    AlarmState,
    ClockJumpBody,
    Cursor,
    HeartbeatBody,
    JsonScalar,
    RecordIntent,
    RecordType,
    TankInventoryBody,
    TransactionBody,
    format_ts,
)
from agent.field.events import DeviceReading
from agent.field.poller import LinePoller, LineStatus, PolledDevice
from agent.health import Assessment, assess
from agent.history import alarm_history
from agent.ledger.chain import ChainHead, seal
from agent.ledger.keys import KeySpec
from agent.ledger.outbox import Outbox
from agent.locale import compile_po, language_for_zone, plural_key, po_entries, po_path, translations
from agent.station.bindings import NozzleBinding, TankBinding
from agent.station.settings import MeteringSection
from agent.station.station import Station
from agent.station.vcf import Fuel, Product
from agent.station_loop import HeartbeatFacts, StationLoop
from agent.station_view import ActiveAlarm, ClockStep, LiveNozzles, NozzleNow, StationView, TankLevel
from agent.status import (
    Backlog,
    StatusFormatError,
    disk_of,
    no_status_json,
    read_status,
    status_json,
    write_status,
)
from agent.status_text import display_width, render, wrap
from agent.uplink.uplink_status import UplinkStatus
from drivers.modbus.master import SerialRtuMaster
from drivers.readings import NozzleReading, PumpControllerReading, TankGaugeReading, TankReading

PROJECT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((PROJECT / "docs" / "contract" / "status-command.json").read_text(encoding="utf-8"))


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


TANK_T1 = TankBinding("T1", Fuel(Product.GASOLINE, 745.0), 30_000_000, "tg1", gauge_tank=1)
TANK_T2 = TankBinding("T2", Fuel(Product.DIESEL, 835.0), 20_000_000, "tg1", gauge_tank=2)
N1 = NozzleBinding("D01-N1", "D01", "92", "T1", "pc1", 1)
N2 = NozzleBinding("D01-N2", "D01", "0", "T2", "pc1", 2)


def controller(*states: tuple[str, int | None]) -> PumpControllerReading:
    """pc1's answer: nozzle n+1 in states[n], with its fuelling's volume so far."""
    return PumpControllerReading(
        tuple(
            NozzleReading(
                nozzle=number,
                state=state,
                txn_no=41,
                txn_volume_ml=10_000,
                txn_amount_fen=7_700,
                txn_price_fen_per_l=770,
                totalizer_volume_ml=5_000_000,
                current_volume_ml=current_ml,
            )
            for number, (state, current_ml) in enumerate(states, start=1)
        ),
        10_000,
        0x102,
    )


def inventory(tank: str, volume_ml: int, ts_ms: int) -> RecordIntent:
    body = TankInventoryBody(
        tank=tank,
        product="gasoline",
        volume_ml=volume_ml,
        volume_20_ml=volume_ml - 20_000,
        ullage_ml=30_000_000 - volume_ml,
        height_um=volume_ml // 15,
        water_um=8_000,
        temperature_cC=1850,
        delivery_in_progress=False,
        vcf_band="gasoline",
        density_basis="20C",
    )
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

    def test_an_alarm_carried_over_keeps_its_start_and_size_from_its_record(self, tmp_path: Path) -> None:
        """After a restart, an alarm still active shows when it was raised and its evidence (its size), read back
        from its record in a real outbox; one whose record is gone keeps an unknown start, and an outbox with
        no active alarm is not read at all."""
        outbox = Outbox(tmp_path / "outbox.db", 64 * 1024**2)
        evidence: dict[str, JsonScalar] = {"deviation_permille": 19, "sales": 12}
        cursor = "alarm/metering_deviation/D01-N1"
        stories = (
            (NOW_MS, AlarmState.RAISED, {}, 1),
            (NOW_MS + 5, AlarmState.CLEARED, {}, 0),
            (NOW_MS + 9, AlarmState.RAISED, evidence, 1),
        )
        intents = [
            AlarmBody(kind="metering_deviation", state=state, subject="D01-N1", evidence=said).intent(
                ts_ms, Cursor(cursor, active)
            )
            for ts_ms, state, said, active in stories
        ]
        records, _ = seal(intents, ChainHead.genesis(), "RIG-0001", KeySpec().generate())
        try:
            outbox.append(records)
            cursors = {**outbox.cursors(), "alarm/device_silent/pcm2": 1}
            view = StationView(cursors, raised_before=alarm_history(outbox, cursors))
            assert alarm_history(outbox, {cursor: 0}) == []
        finally:
            outbox.close()
        assert sorted(view.facts().alarms, key=lambda a: a.kind) == [
            ActiveAlarm("device_silent", "pcm2", None, {}),
            ActiveAlarm("metering_deviation", "D01-N1", format_ts(NOW_MS + 9), evidence),
        ]

    def test_a_flapping_alarm_is_read_back_as_its_last_raise_alone(self, tmp_path: Path) -> None:
        """At start only the newest raise of each active alarm is read back, not every alarm record the outbox
        holds: an alarm raised and cleared all day long must not fill the memory of a small box at start."""
        outbox = Outbox(tmp_path / "outbox.db", 64 * 1024**2)
        cursor = "alarm/metering_deviation/D01-N1"
        flaps = 40
        intents = [
            AlarmBody(
                kind="metering_deviation",
                state=AlarmState.CLEARED if turn % 2 else AlarmState.RAISED,
                subject="D01-N1",
                evidence={"deviation_permille": turn},
            ).intent(NOW_MS + turn, Cursor(cursor, 0 if turn % 2 else 1))
            for turn in range(2 * flaps + 1)
        ]
        intents.append(AlarmBody(kind="device_silent", state=AlarmState.RAISED, subject="pcm2", evidence={}).intent(1))
        records, _ = seal(intents, ChainHead.genesis(), "RIG-0001", KeySpec().generate())
        try:
            outbox.append(records)
            cursors = {cursor: 1}
            read_back = alarm_history(outbox, cursors)
        finally:
            outbox.close()
        assert [(intent.ts_ms, intent.body) for intent in read_back] == [(NOW_MS + 2 * flaps, intents[-2].body)]

    def test_the_last_clock_step(self) -> None:
        view = StationView({})
        body = ClockJumpBody(from_ts=format_ts(0), to_ts=format_ts(90_000), jump_ms=90_000, across_restart=False)
        view.note(body.intent(90_000))
        assert view.facts().last_clock_step == ClockStep(format_ts(0), format_ts(90_000), 90_000)

    def test_every_configured_tank_with_its_latest_inventory_record(self) -> None:
        """A tank shows what its newest tank_inventory record said, with the config's capacity; a tank without
        a record yet is there with its reading unknown."""
        view = StationView({}, tanks=(TANK_T1, TANK_T2))
        assert view.facts().tanks == (
            TankLevel("T1", "gasoline", 30_000_000),
            TankLevel("T2", "diesel", 20_000_000),
        )
        view.note(inventory("T1", 18_000_000, NOW_MS))
        view.note(inventory("T1", 17_900_000, NOW_MS + 60_000))
        t1, t2 = view.facts().tanks
        assert t1 == TankLevel(
            "T1", "gasoline", 30_000_000, 17_900_000, 17_880_000, 12_100_000, 17_900_000 // 15, 8_000, 1850, False,
            format_ts(NOW_MS + 60_000),
        )  # fmt: skip
        assert t2 == TankLevel("T2", "diesel", 20_000_000)

    def test_a_reading_that_changes_no_phase_publishes_nothing(self) -> None:
        """The station thread replaces the nozzles' tuple only when a phase or a fuelling's volume moved: a
        repeated answer leaves the very same tuple, which is what keeps the hot path cheap."""
        station = Station([N1, N2], {}, MeteringSection())
        live = LiveNozzles([N1, N2])
        assert live.now == (NozzleNow("D01-N1", "D01", None, None), NozzleNow("D01-N2", "D01", None, None))
        for reading in (controller(("idle", None), ("idle", None)), controller(("fuelling", 1200), ("idle", None))):
            station.on_event(DeviceReading("pc1", "rs485-1", NOW_MS, reading))
            live.on_controller("pc1", reading, station.phase_of)
        published = live.now
        assert published == (NozzleNow("D01-N1", "D01", "fuelling", 1200), NozzleNow("D01-N2", "D01", "idle", None))
        live.on_controller("pc1", controller(("fuelling", 1200), ("idle", None)), station.phase_of)
        live.on_controller("pc2", controller(("lifted", None)), station.phase_of)  # no nozzle of the config there
        assert live.now is published

    def test_the_same_reading_again_publishes_nothing_unless_a_failure_came_between(self) -> None:
        """The station loop skips the phases of a controller reading that is the very object it last published
        after; a reading whose handling failed is published in full when it comes again, never left stale."""

        class Brittle(LiveNozzles):
            calls = 0
            failing = False

            def on_controller(self, *args: Any) -> None:
                self.calls += 1
                if self.failing:
                    raise RuntimeError("the view broke")
                super().on_controller(*args)

        live = Brittle([N1, N2])
        contained: list[RecordIntent] = []
        loop = StationLoop(
            Station([N1, N2], {}, MeteringSection()),
            lambda intent: None,
            SystemClock(),
            heartbeat_interval_s=3600,
            jump_threshold_ms=60_000,
            facts=lambda: HeartbeatFacts(True, 0, 2, 2),
            boundary=Boundary("station", contained.append, SystemClock()),
            nozzles=live,
        )
        idle = controller(("idle", None), ("idle", None))
        faulted = controller(("fault", None), ("idle", None))  # a state that leaves the phase as it was
        lifted = controller(("lifted", None), ("idle", None))

        def handle(reading: PumpControllerReading, offset_ms: int) -> None:
            loop.post(DeviceReading("pc1", "rs485-1", NOW_MS + offset_ms, reading))
            loop.step(Instant(0.0, NOW_MS + offset_ms))

        handle(idle, 1)
        handle(faulted, 2)
        handle(faulted, 3)
        assert live.calls == 2 and live.now[0].phase == "idle"
        live.failing = True
        handle(lifted, 4)
        assert live.calls == 3 and live.now[0].phase == "idle"
        assert [i.body.kind for i in contained] == ["internal_error"]  # type: ignore[attr-defined]
        live.failing = False
        handle(faulted, 5)
        assert live.calls == 4 and live.now[0].phase == "lifted"

    def test_a_running_station_shows_its_tank_levels_and_a_fuelling_in_the_status(self) -> None:
        """Fed through the station thread, a gauge reading becomes a tank_inventory record and the tank's level,
        and a lifted then fuelling nozzle its phase with the controller's running volume; the status carrying
        them fits the schema and reads back typed."""
        submitted: list[RecordIntent] = []
        view = StationView({}, tanks=(TANK_T1, TANK_T2), nozzles=(N1, N2))
        loop = StationLoop(
            Station([N1, N2], {}, MeteringSection(), tanks=(TANK_T1, TANK_T2)),
            view.watching(submitted.append),
            SystemClock(),
            heartbeat_interval_s=3600,
            jump_threshold_ms=60_000,
            facts=lambda: HeartbeatFacts(True, 0, 2, 2),
            boundary=Boundary("station", submitted.append, SystemClock()),
            nozzles=view.nozzles,
        )
        gauge = TankGaugeReading(
            (TankReading(tank=1, volume_ml=18_000_000, height_um=1_200_000, water_um=8_000, temperature_cC=1850),)
        )
        loop.start()
        try:
            for event in (
                DeviceReading("tg1", "rs485-2", NOW_MS, gauge),
                DeviceReading("pc1", "rs485-1", NOW_MS + 1, controller(("idle", None), ("idle", None))),
                DeviceReading("pc1", "rs485-1", NOW_MS + 2, controller(("lifted", None), ("idle", None))),
                DeviceReading("pc1", "rs485-1", NOW_MS + 3, controller(("fuelling", 4_310), ("idle", None))),
            ):
                loop.post(event)
            wait_until(lambda: view.facts().nozzles[0].phase == "fuelling", 10, "D01-N1 fuelling in the view")
        finally:
            assert loop.stop("test")
        facts = view.facts()
        (record,) = (i for i in submitted if i.type is RecordType.TANK_INVENTORY)
        t1, t2 = facts.tanks
        assert (t1.volume_ml, t1.height_um, t1.water_um, t1.temperature_cC) == (18_000_000, 1_200_000, 8_000, 1850)
        assert dataclasses.asdict(t1) == {
            **{key: record.body.as_json()[key] for key in dataclasses.asdict(t1) if key in record.body.as_json()},
            "capacity_ml": 30_000_000,
            "ts": format_ts(NOW_MS),
        }
        assert t2 == TankLevel("T2", "diesel", 20_000_000)
        assert facts.nozzles == (
            NozzleNow("D01-N1", "D01", "fuelling", 4_310),
            NozzleNow("D01-N2", "D01", "idle", None),
        )
        status = fuelling_status()
        status = dataclasses.replace(status, tanks=facts.tanks, nozzles=facts.nozzles)
        document = json.loads(status_json(status))
        jsonschema.validate(document, SCHEMA)
        assert document["nozzles"][0] == {
            "nozzle": "D01-N1",
            "dispenser": "D01",
            "phase": "fuelling",
            "volume_ml": 4310,
        }
        assert read_status(status_json(status)) == status

    def test_an_older_agents_status_without_tanks_and_nozzles_still_reads(self) -> None:
        """A document from before these keys reads back with none of either."""
        document = json.loads(status_json(fuelling_status()))
        del document["tanks"], document["nozzles"]
        status = read_status(json.dumps(document).encode())
        assert (status.tanks, status.nozzles) == ((), ())

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


def assessed(
    *,
    uplink: UplinkStatus = UPLINK,
    lines: tuple[LineStatus, ...] = LINES,
    alarms: tuple[ActiveAlarm, ...] = (),
    backlog_records: int = 0,
    oldest_waiting_age_s: int | None = None,
    oldest_waiting_ts: str | None = None,
    confirmed_this_run: bool = True,
    uptime_s: int = 3600,
) -> Assessment:
    """The verdict on the all-well sample's parts, with the ones given changed; the window is 60 s."""
    return assess(
        RECORDER,
        uplink,
        lines,
        alarms,
        backlog_records=backlog_records,
        oldest_waiting_age_s=oldest_waiting_age_s,
        oldest_waiting_ts=oldest_waiting_ts,
        confirmed_this_run=confirmed_this_run,
        uptime_s=uptime_s,
        confirm_within_s=60.0,
    )


class TestHealth:
    def test_an_active_alarm_needs_someone(self) -> None:
        """An alarm turns an otherwise healthy box to fault, as a structured problem with its size."""
        facts = StationView({"alarm/tank_leak/T1": 1}).facts()
        verdict = assessed(alarms=facts.alarms)
        assert verdict.health == "fault"
        assert [(p.kind, p.subject, p.size, p.advice) for p in verdict.problems] == [
            ("tank_leak", "T1", None, "tank_leak")
        ]
        assert assessed() == Assessment("ok", ())

    def test_started_with_the_broker_up_and_nothing_confirmed_is_starting_then_degraded(self) -> None:
        """The first minute after a start is `starting`, not ALL WELL; past the window it is `degraded`."""
        early = assessed(uptime_s=20, oldest_waiting_age_s=20, backlog_records=2, confirmed_this_run=False)
        assert early.health == "starting" and [p.kind for p in early.problems] == ["platform_awaiting"]
        late = assessed(uptime_s=94, oldest_waiting_age_s=94, backlog_records=2, confirmed_this_run=False)
        assert late.health == "degraded" and [p.kind for p in late.problems] == ["platform_unconfirmed"]
        assert assessed(uptime_s=94, backlog_records=0, oldest_waiting_age_s=None).health == "ok"

    def test_a_refused_connection_at_start_is_offline_at_once(self) -> None:
        """Not yet tried is `starting`; a connection that failed is `degraded` without waiting out the window."""
        untried = dataclasses.replace(UPLINK, state="offline", last_error=None)
        refused = dataclasses.replace(UPLINK, state="offline", last_error="connection refused")
        at_start = functools.partial(
            assessed, uptime_s=2, backlog_records=1, oldest_waiting_age_s=2, confirmed_this_run=False
        )
        assert at_start(uplink=untried).health == "starting"
        offline = at_start(uplink=refused)
        assert offline.health == "degraded" and offline.problems[0].detail == "connection refused"

    def test_records_the_platform_does_not_confirm_are_not_all_well(self) -> None:
        """The broker may take every record while the platform behind it stores none: online is not enough."""
        late = assessed(backlog_records=10, oldest_waiting_age_s=61, oldest_waiting_ts="2026-11-28T01:00:00.000Z")
        assert late.health == "degraded"
        (problem,) = late.problems
        assert (problem.kind, problem.size, problem.unit, problem.since) == (
            "platform_unconfirmed",
            10,
            "records",
            "2026-11-28T01:00:00.000Z",
        )
        assert assessed(backlog_records=10, oldest_waiting_age_s=59).health == "ok"

    def test_every_problem_is_listed_not_only_the_alarms(self) -> None:
        """With an alarm active and the uplink offline, both are problems; the worst sets the health."""
        offline = dataclasses.replace(UPLINK, state="offline", last_error="connection refused")
        alarm = ActiveAlarm("tank_leak", "T1", None, {})
        verdict = assessed(uplink=offline, alarms=(alarm,), backlog_records=7)
        assert verdict.health == "fault"
        assert [(p.kind, p.severity, p.size) for p in verdict.problems] == [
            ("tank_leak", "fault", None),
            ("platform_offline", "degraded", 7),
        ]

    def test_an_unplugged_adapter_is_one_problem_for_all_its_devices(self) -> None:
        """Four devices behind a pulled USB adapter, each offline with its device_silent alarm: one line_down."""
        status = unplugged_status()
        assert status.health == "fault"
        (problem,) = status.problems
        assert (problem.kind, problem.subject, problem.advice, problem.size) == (
            "line_down",
            "rs485-1",
            "port_cannot_open",
            4,
        )
        assert problem.members == ("pc1", "pcm1", "pc3", "pcm3")

    def test_a_real_missing_serial_port_is_one_line_down(self, tmp_path: Path) -> None:
        """A real RTU master on a port that is not there, four devices polled on it: the driver's own error makes
        one `port_cannot_open` problem for the line."""
        master = SerialRtuMaster(tmp_path / "ttyUSB9", timeout_s=0.05)
        devices = [
            PolledDevice(name, unit, 0.02, functools.partial(master.read_registers, unit, 0x03, 0, 1))
            for name, unit in (("pc1", 1), ("pcm1", 11), ("pc3", 3), ("pcm3", 13))
        ]
        boundary = Boundary("poller rs485-1", lambda _intent: None, SystemClock())
        poller = LinePoller("rs485-1", devices, master, SystemClock(), lambda _event: None, boundary=boundary)
        poller.start()
        try:
            wait_until(lambda: all(device.state == "offline" for device in poller.status().devices), 15, "all offline")
            line = poller.status()
        finally:
            assert poller.stop()
        (problem,) = assessed(lines=(line, LINES[1])).problems
        assert (problem.kind, problem.advice, problem.members) == (
            "line_down",
            "port_cannot_open",
            ("pc1", "pcm1", "pc3", "pcm3"),
        )
        assert problem.detail is not None and str(tmp_path / "ttyUSB9") in problem.detail

    def test_an_alarm_supersedes_its_warning_and_the_ecology_link_is_a_problem(self) -> None:
        """A vapour A/L alarm hides the warning of the same nozzle; a down HJ 212 link counts, with its backlog."""
        warning = ActiveAlarm("vapour_al_warning", "D01-N1", None, {})
        alarm = ActiveAlarm("vapour_al_alarm", "D01-N1", None, {"pass_share_permille": 400})
        assert [p.kind for p in assessed(alarms=(warning, alarm)).problems] == ["vapour_al_alarm"]
        (problem,) = hj212_down_status().problems
        assert (problem.kind, problem.severity, problem.size) == ("hj212_offline", "degraded", 376)

    def test_the_outbox_full_is_a_fault(self) -> None:
        status = outbox_full_status()
        assert status.health == "fault" and [p.kind for p in status.problems] == ["outbox_full"]


class TestSnapshotJson:
    @pytest.mark.parametrize("state", COMMON_STATES)
    def test_read_back_typed_and_equal(self, state: str) -> None:
        """What the agent writes, `status` reads back into the same typed snapshot."""
        status = COMMON_STATES[state]()
        assert read_status(status_json(status)) == status

    @pytest.mark.parametrize("state", COMMON_STATES)
    def test_the_document_is_the_standard_librarys_asdict_byte_for_byte(self, state: str) -> None:
        """The snapshot's own conversion writes exactly what `json.dumps(dataclasses.asdict(...))` writes."""
        status = COMMON_STATES[state]()
        assert status_json(status) == json.dumps(dataclasses.asdict(status), separators=(",", ":")).encode()

    @pytest.mark.parametrize("state", COMMON_STATES)
    def test_every_snapshot_fits_the_published_schema(self, state: str) -> None:
        """docs/contract/status-command.json describes what `status --json` prints, in every common state."""
        jsonschema.validate(json.loads(status_json(COMMON_STATES[state]())), SCHEMA)

    def test_the_answer_without_an_agent_fits_the_schema_too(self) -> None:
        """With the agent stopped, `status --json` still prints the documented shape."""
        document = json.loads(no_status_json("stopped", "agent_not_running", "/run/x.sock", "No such file"))
        jsonschema.validate(document, SCHEMA)
        assert document["health"] == "stopped" and document["problems"][0]["kind"] == "agent_not_running"
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**document, "health": "fine"}, SCHEMA)

    def test_the_readme_names_every_key_of_a_problem(self) -> None:
        """The README's list of a problem's keys is the schema's, in its order: a script writer reads it there."""
        readme = " ".join((PROJECT / "README.md").read_text(encoding="utf-8").split())
        listed = re.search(r"Each problem is `\{([^}]*)\}`", readme)
        assert listed is not None
        assert re.findall(r'"(\w+)"', listed.group(1)) == list(SCHEMA["$defs"]["problem"]["properties"])

    def test_the_file_is_the_document_and_its_directory_comes_back(self, tmp_path: Path) -> None:
        """The status file holds exactly the document, replaced whole (no temporary left), with the mode an
        ordinary file gets; a directory emptied away under the agent (a tmpfs cleaned) is made again."""
        path = tmp_path / "run" / "status.json"
        reference = tmp_path / "reference"
        reference.write_bytes(b"")
        for document in (status_json(sample_status()), status_json(fault_status()), b"x" * 300_000):
            write_status(path, document)
            assert path.read_bytes() == document
            assert sorted(p.name for p in path.parent.iterdir()) == ["status.json"]
        assert path.stat().st_mode == reference.stat().st_mode
        shutil.rmtree(path.parent)
        write_status(path, b"{}")
        assert path.read_bytes() == b"{}"

    def test_a_link_at_the_temporary_name_is_replaced_never_written_through(self, tmp_path: Path) -> None:
        """Whatever lies at the temporary's name (a symbolic or hard link to another file planted there, or a
        temporary a full disk cut short) is put aside, never written into: the file a link leads to keeps its
        bytes, and the status file is a plain file holding the document."""
        path = tmp_path / "run" / "status.json"
        path.parent.mkdir()
        temporary = path.with_name("status.json.tmp")
        victim = tmp_path / "outbox.db"
        victim.write_bytes(b"records")
        for n, plant in enumerate((os.symlink, os.link, lambda _, at: at.write_bytes(b"x" * 1000))):
            plant(victim, temporary)
            write_status(path, b'{"n":%d}' % n)
            assert victim.read_bytes() == b"records"
            assert path.read_bytes() == b'{"n":%d}' % n and not path.is_symlink() and path.stat().st_nlink == 1
            assert sorted(p.name for p in path.parent.iterdir()) == ["status.json"]

    def test_a_write_the_disk_cuts_short_leaves_the_last_document_whole(self, tmp_path: Path) -> None:
        """The kernel refuses the rest of a write part way (a file-size limit, as a full disk does): the error is
        an OSError for the caller to log, the status file still holds the last whole document, and the next write
        with room replaces it and the cut-short temporary alike."""
        script = """
import os, resource, signal, sys
from pathlib import Path
from agent.status import write_status
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
path = Path(sys.argv[1]) / "status.json"
write_status(path, b'{"n":1}')
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    write_status(path, b"[" + b"0," * 100_000 + b"0]")
except OSError as error:
    print(error.errno)
"""
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
        )
        assert done.stdout.split() == [str(errno.EFBIG)]
        path = tmp_path / "status.json"
        assert path.read_bytes() == b'{"n":1}'
        assert (tmp_path / "status.json.tmp").stat().st_size == 4096
        write_status(path, b'{"n":2}')
        assert path.read_bytes() == b'{"n":2}' and sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]

    def test_the_disk_figures_are_the_standard_librarys(self, tmp_path: Path) -> None:
        """Free and total bytes as `shutil.disk_usage` gives them; None where the path cannot be asked."""
        disk = disk_of(tmp_path)
        usage = shutil.disk_usage(tmp_path)
        assert disk is not None and (disk.path, disk.total_bytes) == (str(tmp_path), usage.total)
        assert abs(disk.free_bytes - usage.free) < 64 * 1024 * 1024  # other tests write beside it meanwhile
        assert disk_of(tmp_path / "missing") is None

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


def columns(text: str) -> int:
    return max(display_width(line) for line in text.split("\n"))


class TestPlainWords:
    @pytest.mark.parametrize("language", ["zh_CN", "en"])
    @pytest.mark.parametrize("state", COMMON_STATES)
    def test_every_common_state_fits_a_small_screen(self, state: str, language: str) -> None:
        """At most 80 columns (a CJK character is two) and 20 lines, in both languages."""
        text = render(COMMON_STATES[state](), language)
        assert columns(text) <= 80, text
        assert len(text.split("\n")) <= 20, text

    def test_all_well(self) -> None:
        """Health first, then 'nothing' to do, then the facts in local time, litres and yuan."""
        text = render(sample_status(), "en")
        first, _, rest = text.partition("\n")
        assert first.startswith("ALL WELL")
        assert "What to do:\n  - nothing\n" in rest
        assert "Platform   online since 08:15:03 (2 h 10 min)" in text
        assert "Waiting    nothing, the platform has every record" in text
        assert "Devices    4 of 4 answering" in text
        assert "Last sale  D01-N1 (92) 12.34 L, 95.02 yuan at 10:21:40" in text
        assert "Storage    1.2 GB free of 3.5 GB; records use 12.4 MB" in text
        assert "Clock      2026-11-28 10:25:03 (Asia/Shanghai)" in text

    def test_all_well_in_chinese_is_the_default_for_a_station_in_china(self) -> None:
        """The snapshot's locale picks the language; the facts are the same."""
        text = render(sample_status())
        assert text.startswith("一切正常：")
        assert "现在要做：\n  - 无\n" in text
        assert "平台      08:15:03 起在线（2 小时 10 分钟）" in text
        assert "最近销售  D01-N1（92）12.34 升，95.02 元，10:21:40" in text
        assert language_for_zone("Asia/Shanghai") == language_for_zone("Asia/Urumqi") == "zh_CN"
        assert language_for_zone("Europe/Berlin") == "en"

    def test_starting_is_not_all_well(self) -> None:
        """Nothing confirmed yet: the headline says so, and nothing needs doing."""
        english, chinese = render(starting_status(), "en"), render(starting_status(), "zh_CN")
        assert english.startswith("STARTING") and "ask again in a minute" in english
        assert chinese.startswith("正在启动") and "请一分钟后再查看" in chinese
        assert render(unconfirmed_status(), "en").startswith("BUFFERING")

    def test_offline_says_records_are_kept_and_how_many(self) -> None:
        text = render(offline_status(), "en")
        assert text.startswith("BUFFERING")
        assert "the platform cannot be reached (300 records waiting): nothing now" in text
        assert "Platform   offline since 09:45:03 (40 min)" in text
        assert "Waiting    300 records waiting, the oldest from 09:45:03 (40 min ago)" in text
        assert "连不上平台（300 条待上传）：暂时不用处理：数据在本机断网缓存" in render(offline_status(), "zh_CN")

    def test_an_unplugged_adapter_is_one_step_naming_its_devices(self) -> None:
        """One step for the line, not one (or two) per device, and no raw error text."""
        english = render(unplugged_status(), "en")
        assert english.count("  - ") == 1
        assert "line rs485-1 (4 devices: pc1, pcm1, pc3, pcm3), serving dispensers" in english
        assert "its adapter cannot be opened" in " ".join(english.split())
        assert "Errno" not in english and "Devices    2 of 6 answering" in english
        chinese = render(unplugged_status(), "zh_CN")
        assert "线路 rs485-1（4 台设备：pc1、pcm1、pc3、pcm3），负责加油机 D01、D03" in chinese
        assert "串口适配器打不开" in chinese.replace("\n    ", "")

    def test_an_unplugged_adapter_names_the_dispensers_it_serves_and_whether_to_keep_selling(self) -> None:
        """Staff sell by dispenser, not by device: the step names the dispensers and nozzles whose controllers
        are behind the adapter, says selling may go on, and that the box records none of those sales meanwhile."""
        english = " ".join(render(unplugged_status(), "en").split())
        assert (
            "serving dispensers D01, D03 (nozzles D01-N1, D01-N2, D03-N1, D03-N2): you may keep selling from them, "
            "but the box records none of their sales until this is fixed; its adapter cannot be opened" in english
        )
        chinese = "".join(render(unplugged_status(), "zh_CN").split())
        assert (
            "负责加油机D01、D03（油枪D01-N1、D01-N2、D03-N1、D03-N2）：可以继续加油，但修好之前这些油枪的销售都不会被记录"
            in (chinese)
        )
        one = sample_status(
            lines=(LineStatus("tcp-1", (dataclasses.replace(LINES[1].devices[0], state="offline"),), {}), LINES[0])
        )
        said = " ".join(render(one, "en").split())
        assert "device pc2, serving nozzle D02-N1: you may keep selling from them" in said, said

    def test_one_of_a_thing_is_said_in_the_singular(self) -> None:
        """1 record, 1 day, 1 sale, 1 device: ngettext picks the form, in English and in Chinese."""
        one_waiting = dataclasses.replace(offline_status(), backlog=Backlog(1, None, None))
        english = render(one_waiting, "en")
        assert "Waiting    1 record waiting" in english and "1 records" not in english
        assert "Waiting    300 records waiting" in render(offline_status(), "en")
        assert "1 条待上传" in render(one_waiting, "zh_CN")
        single = LineStatus("rs485-1", (dataclasses.replace(LINES[0].devices[0], state="offline", last_error=(
            "cannot open (/dev/ttyUSB0: [Errno 2] No such file)")),), {})  # fmt: skip
        said = " ".join(render(sample_status(lines=(single,)), "en").split())
        assert "line rs485-1 (1 device: pc1)" in said, said
        skipped = ActiveAlarm("transaction_skipped", "D01-N1", None, {"missing": 1})
        assert "(1 sale)" in render(sample_status(alarms=(skipped,)), "en")

    def test_an_alarm_and_a_warning_on_one_nozzle_give_one_verdict(self) -> None:
        """The metering alarm says stop selling; the vapour warning's 'keep selling' is not said beside it."""
        english = render(nozzle_alarm_and_warning_status(), "en")
        assert english.count("  - ") == 1
        assert (
            "nozzle D01-N2: STOP selling from it; the pump's meter and its pulse encoder\n    disagree (+1.00 %)"
            in english
        )
        assert "keep selling" not in english and "60.0 % passed" in english
        chinese = render(nozzle_alarm_and_warning_status(), "zh_CN")
        assert "油枪 D01-N2：暂停使用，不要再加油；加油机计量与脉冲编码器不一致（+1.00%）" in chinese
        assert "可以继续加油" not in chinese and "合格率 60.0%" in chinese
        vapour_only = render(sample_status(alarms=nozzle_alarm_and_warning_status().alarms[1:]), "en")
        assert "nozzle D01-N2: you may keep selling from it; vapour recovery is out of range" in vapour_only

    def test_a_biased_meter_and_a_deviating_sale_on_one_nozzle_are_one_stop_selling_step(self) -> None:
        """metering_bias is said in words with its size, beside metering_deviation as one verdict: stop selling."""
        alarms = (
            ActiveAlarm("metering_deviation", "D01-N2", "2026-11-28T02:03:00.000Z", {"deviation_ppm": 15_200}),
            ActiveAlarm("metering_bias", "D01-N2", "2026-11-28T02:03:00.000Z", {"bias_ppm": 14_800}),
        )
        english = render(sample_status(alarms=alarms), "en")
        assert english.count("  - ") == 1 and "metering_bias" not in english
        assert "STOP selling from it" in english and "sale after sale" in english and "+1.48 %" in english
        chinese = render(sample_status(alarms=alarms), "zh_CN")
        assert "metering_bias" not in chinese and "笔笔偏多或偏少" in chinese and "暂停使用" in chinese

    def test_two_problems_with_one_next_step_say_it_once(self) -> None:
        """A biased meter and a deviating sale on one nozzle both mean "call the metrology institute": said once,
        after both problems with their sizes, in either language."""
        alarms = (
            ActiveAlarm("metering_deviation", "D01-N2", "2026-11-28T02:03:00.000Z", {"deviation_ppm": 15_200}),
            ActiveAlarm("metering_bias", "D01-N2", "2026-11-28T02:03:00.000Z", {"bias_ppm": 14_800}),
        )
        english = " ".join(render(sample_status(alarms=alarms), "en").split())
        assert english.count("call the metrology institute") == 1, english
        assert "+1.52 %" in english and "+1.48 %" in english
        chinese = "".join(render(sample_status(alarms=alarms), "zh_CN").split())
        assert chinese.count("请联系计量检定所") == 1, chinese
        assert "+1.52%" in chinese and "+1.48%" in chinese

    def test_a_fault_names_each_problem_with_its_next_step(self) -> None:
        text = render(fault_status(), "en")
        assert text.startswith("NEEDS SOMEONE")
        steps = text.split("What to do:\n")[1].split("\n\n")[0]
        assert steps == (
            "  - device pcm2: does not answer: check its power and its cable to the box; then\n"
            "    call the maintenance company.\n"
            "  - nozzle D01-N2: STOP selling from it; the pump's meter and its pulse encoder\n"
            "    disagree (+1.00 %): call the metrology institute to check the dispenser."
        )
        assert "Devices    3 of 4 answering" in text
        assert "set 5 min forward at 09:05:00" in text

    def test_a_down_ecology_link_shows_in_the_words_with_its_backlog(self) -> None:
        english = render(hj212_down_status(), "en")
        assert "the ecology platform (HJ 212) cannot be reached (376\n    records waiting)" in english
        assert "HJ 212     offline since 09:25:03 (1 h 0 min); 376 records waiting" in english
        assert "环保平台  09:25:03 起离线（1 小时 0 分钟）；376 条待上传" in render(hj212_down_status(), "zh_CN")

    def test_the_outbox_full_says_call_support_now(self) -> None:
        assert "storage: the box's storage is full (12.4 MB): call support now." in render(outbox_full_status(), "en")
        assert "本机存储：本机存储已满（12.4 MB）：请立即联系技术支持。" in render(outbox_full_status(), "zh_CN")

    def test_many_problems_are_cut_short_with_a_pointer_to_the_json(self) -> None:
        """A bad day still fits 20 lines: the rest is counted and found in `status --json`."""
        alarms = tuple(ActiveAlarm("tank_leak", f"T{number}", None, {}) for number in range(12))
        text = render(sample_status(alarms=alarms), "en")
        assert len(text.split("\n")) <= 20
        assert "more: see `station-agent status --json`" in text


class TestWrapping:
    def test_chinese_breaks_between_characters_and_keeps_punctuation_off_a_line_start(self) -> None:
        """Wide characters count two columns; a fullwidth comma stays with the character before it."""
        lines = wrap("一二三四，五六", 10, "- ", "  ")
        assert lines == ["- 一二三", "  四，五六"]
        assert all(display_width(line) <= 10 for line in lines)

    def test_latin_words_stay_whole(self) -> None:
        assert wrap("alpha beta gamma", 11, "- ", "  ") == ["- alpha", "  beta", "  gamma"]

    def test_a_number_keeps_its_unit_on_its_line(self) -> None:
        """A size is never cut between its number and its unit: `(+1.48 %)`, `12.34 L,` and `5.00 L/h` move whole."""
        assert wrap("meter reads high (+1.48 %): call", 25, "- ", "  ") == ["- meter reads high", "  (+1.48 %): call"]
        assert wrap("sold 12.34 L, paid", 10, "", "") == ["sold", "12.34 L,", "paid"]
        assert wrap("a leak of 5.00 L/h now", 14, "", "") == ["a leak of", "5.00 L/h now"]
        assert wrap("at 12 Landing", 9, "", "") == ["at 12", "Landing"]


STAFF_FACING = ("agent/status_text.py", "agent/web/words.py")
"""The modules whose words staff read: the plain status and the web page."""


def staff_msgids() -> set[str]:
    """Every string said through the catalogue in the staff-facing modules: the literal argument of `_` or `N_`."""
    found = set()
    for module in STAFF_FACING:
        found |= _msgids(ast.parse((PROJECT / module).read_text(encoding="utf-8")))
    return found


def _msgids(tree: ast.AST) -> set[str]:
    """`_("…")`, `N_("…")`, and the plural pairs of `ngettext`-like calls (`_n`, `n_`, `N_n`) keyed as a .mo holds
    them."""
    found = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name in ("_", "N_") and isinstance(node.args[0].value, str):
            found.add(node.args[0].value)
        texts = [arg.value for arg in node.args[:2] if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
        if name in ("_n", "n_", "N_n", "ngettext") and len(texts) == 2:
            found.add(plural_key(*texts))
    return found


class TestCatalogues:
    def test_every_staff_facing_string_has_a_chinese_translation(self) -> None:
        """A sentence added to the status without its zh_CN msgstr fails here, named."""
        entries = po_entries(po_path("zh_CN").read_text(encoding="utf-8"))
        ids = staff_msgids()
        assert len(ids) > 100
        assert sorted(msgid for msgid in ids if not entries.get(msgid)) == []

    def test_translations_keep_every_placeholder(self) -> None:
        """A msgstr that drops or renames a {field} would raise at render time; it fails here instead."""
        entries = po_entries(po_path("zh_CN").read_text(encoding="utf-8"))

        def fields(text: str) -> set[str | None]:
            return {field for _, field, _, _ in string.Formatter().parse(text)}

        assert [key for key, value in entries.items() if key and fields(key) != fields(value)] == []

    def test_compiled_catalogue_is_what_gnu_msgfmt_writes(self, tmp_path: Path) -> None:
        """Our compiler against GNU gettext's own: the same bytes as `msgfmt --no-hash`."""
        if shutil.which("msgfmt") is None:
            pytest.skip("needs msgfmt (Debian package gettext)")
        reference = tmp_path / "reference.mo"
        subprocess.run(["msgfmt", "--no-hash", "-o", str(reference), str(po_path("zh_CN"))], check=True, timeout=30)
        assert compile_po(po_path("zh_CN").read_text(encoding="utf-8")) == reference.read_bytes()
        assert translations("zh_CN").gettext("What to do:") == "现在要做："

    def test_the_wheel_carries_the_compiled_catalogue(self, tmp_path: Path) -> None:
        """The build step compiles the .po: a wheel of this checkout holds the .mo the agent loads."""
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
             str(PROJECT)],
            check=True,
            timeout=300,
            capture_output=True,
        )  # fmt: skip
        (wheel,) = tmp_path.glob("station_agent-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            shipped = archive.read("agent/locale/zh_CN/LC_MESSAGES/station-agent.mo")
        assert shipped == compile_po(po_path("zh_CN").read_text(encoding="utf-8"))
