"""The station logic without I/O: sales from controller readings, and the agent's lifecycle events."""

from __future__ import annotations

from dataclasses import replace

from agent.field.events import DeviceOffline, DeviceOnline, DeviceReading
from agent.lifecycle import ClockWatch, PreviousRun, startup_intents
from agent.records import RecordType, format_ts
from agent.station.station import Station
from agent.station.transactions import NozzleBinding, NozzleTracker
from drivers.pump_controller import NozzleReading, PumpControllerReading

BINDING = NozzleBinding("D01-N1", "D01", "92", "T1", "pc1", 1)
IDLE = NozzleReading(
    nozzle=1,
    state="idle",
    txn_no=57,
    txn_volume_ml=20_000,
    txn_amount_fen=15_400,
    txn_price_fen_per_l=770,
    totalizer_volume_ml=1_000_000,
    totalizer_amount_fen=770_000,
)


def sale(reading: NozzleReading, volume_ml: int) -> NozzleReading:
    amount = (volume_ml * 770 + 500) // 1000
    return replace(
        reading,
        state="finished",
        txn_no=reading.txn_no + 1,
        txn_volume_ml=volume_ml,
        txn_amount_fen=amount,
        totalizer_volume_ml=reading.totalizer_volume_ml + volume_ml,
        totalizer_amount_fen=(reading.totalizer_amount_fen or 0) + amount,
    )


class TestTransactions:
    def test_first_sight_is_a_baseline_not_a_sale(self) -> None:
        """With no cursor, the first reading records where the counters stand, and no transaction."""
        tracker = NozzleTracker(BINDING, {})
        (intent,) = tracker.observe(IDLE, 1000)
        assert intent.type == RecordType.EVENT and intent.body["kind"] == "controller_baseline"
        assert intent.body["txn_no"] == 57
        assert {c.key: c.value for c in intent.cursors}["nozzle/D01-N1/txn_no"] == 57

    def test_a_sale_is_recorded_once_with_its_fuelling_times(self) -> None:
        """A new controller transaction number gives one transaction with start/end from the nozzle's states."""
        tracker = NozzleTracker(BINDING, {})
        tracker.observe(IDLE, 1000)
        assert tracker.observe(replace(IDLE, state="lifted"), 2000) == []
        assert tracker.observe(replace(IDLE, state="fuelling"), 3000) == []
        done = sale(IDLE, 41_230)
        (intent,) = tracker.observe(done, 60_000)
        assert tracker.observe(done, 61_000) == []
        body = intent.body
        assert intent.type == RecordType.TRANSACTION
        assert (body["txn_no"], body["volume_ml"], body["amount_fen"]) == (58, 41_230, 31_747)
        assert (body["start"], body["end"]) == (format_ts(2000), format_ts(60_000))
        assert body["totalizer_volume_ml_before"] == 1_000_000
        assert body["totalizer_volume_ml_after"] == 1_041_230
        assert (body["nozzle"], body["dispenser"], body["grade"], body["tank"]) == ("D01-N1", "D01", "92", "T1")

    def test_restart_resumes_from_the_cursor(self) -> None:
        """A tracker built from the cursors of the last record reports only sales made after it."""
        cursors = {"nozzle/D01-N1/txn_no": 57, "nozzle/D01-N1/totalizer_volume_ml": 1_000_000}
        tracker = NozzleTracker(BINDING, cursors)
        assert tracker.observe(IDLE, 1000) == []
        (intent,) = tracker.observe(sale(IDLE, 5_000), 2000)
        assert intent.body["txn_no"] == 58 and intent.body["totalizer_volume_ml_before"] == 1_000_000


class TestStation:
    def test_readings_reach_the_right_nozzle_and_devices_come_and_go(self) -> None:
        """A reading for controller pc1 nozzle 1 drives D01-N1; online/offline become device events."""
        station = Station([BINDING], {"nozzle/D01-N1/txn_no": 57})
        reading = PumpControllerReading((sale(IDLE, 10_000), replace(IDLE, nozzle=2)))
        (intent,) = station.on_event(DeviceReading("pc1", "rs485-1", 5000, reading))
        assert intent.body["nozzle"] == "D01-N1"
        assert station.on_event(DeviceReading("pc9", "rs485-1", 5000, reading)) == []
        (online,) = station.on_event(DeviceOnline("pc1", "rs485-1", 6000))
        (offline,) = station.on_event(DeviceOffline("pc1", "rs485-1", 7000, "ModbusTimeout: no answer"))
        assert (online.body["kind"], offline.body["kind"]) == ("device_online", "device_offline")
        assert offline.body["reason"] == "ModbusTimeout: no answer"


class TestLifecycle:
    def test_first_start_is_just_a_start(self) -> None:
        """A fresh outbox gives only agent_start."""
        intents = startup_intents(
            PreviousRun(False, 0, None, None), 1000, version="1", config_sha256="a", kid="k", jump_threshold_ms=5000
        )
        assert [i.body["kind"] for i in intents] == ["agent_start"]

    def test_unclean_stop_clock_back_and_config_change(self) -> None:
        """Still marked running, a clock behind the last record, and another config: three findings."""
        previous = PreviousRun(True, 41, 1_000_000, "old")
        intents = startup_intents(previous, 500_000, version="1", config_sha256="new", kid="k", jump_threshold_ms=5000)
        kinds = [i.body["kind"] for i in intents]
        assert kinds == ["agent_start", "unclean_stop", "clock_jump", "config_change"]
        assert intents[1].body["last_record_seq"] == 41
        assert intents[2].body["jump_ms"] == -500_000 and intents[2].body["across_restart"] is True
        assert (intents[3].body["old_sha256"], intents[3].body["new_sha256"]) == ("old", "new")

    def test_clock_watch_ignores_slew_and_reports_a_step(self) -> None:
        """Drift within the threshold is silent; a step beyond it is one clock_jump with its size."""
        watch = ClockWatch(threshold_ms=2000, wall_ms=1_000_000, monotonic_s=100.0)
        assert watch.check(1_010_500, 110.0) is None
        jump = watch.check(1_020_500 + 3_600_000, 120.0)
        assert jump is not None and jump.body["jump_ms"] == 3_600_000
        assert watch.check(1_020_500 + 3_600_000 + 10_000, 130.0) is None
