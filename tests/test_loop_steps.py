"""The station loop, the recorder and a poller driven by hand: each `step(now)` is one turn at an instant the test
picks, on the test's own thread, with no sleep; the records go through a real recorder into a real SQLite outbox
file."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.clock import FakeClock
from support.station_loop import bare_loop
from test_books_restart import DAILY, DAY, ZONE, local
from test_station import BINDING, COUNTERS, IDLE, RULES, SOLD

from agent.clock import now_of
from agent.containment import Boundary
from agent.contract.records import AgentStartBody, HeartbeatBody, RecordIntent, RecordType, TransactionBody
from agent.field.events import DeviceReading, FieldEvent
from agent.field.poller import LinePoller, PolledDevice
from agent.ledger.chain import SealedRecord
from agent.ledger.keys import DeviceKey
from agent.ledger.outbox import Outbox, OutboxReader
from agent.ledger.recorder import ACK_SAVE_INTERVAL_S, FIRST_BATCH, MAX_BATCH, Recorder
from agent.ledger.recorder_inbox import Stop
from agent.ledger.settings import OutboxSection
from agent.station.station import Station
from agent.station_loop import HeartbeatFacts, StationInbox, StationLoop
from drivers.readings import (
    ChannelCount,
    NozzleReading,
    PulseCounterReading,
    PumpControllerReading,
    TankGaugeReading,
)

STATION = "STEP-0001"
NEXT_DAY = DAY + timedelta(days=1)


def beat(ts_ms: int, n: int) -> RecordIntent:
    body = HeartbeatBody(interval_s=60, uptime_s=n, uplink="online", unacked=0, devices_online=0, devices_total=0)
    return body.intent(ts_ms)


def stored(outbox: Outbox, record_type: RecordType) -> list[dict[str, object]]:
    return [json.loads(canonical) for canonical in outbox.canonical_since(record_type, 0)]


def loop_on(
    station: Station, recorder: Recorder, inbox: StationInbox, clock: FakeClock, heartbeat_interval_s: int
) -> StationLoop:
    """A station loop that hands its records to `recorder`, which hands back its commits and its answers to the
    day's close through `inbox`: as the daemon wires them."""
    return StationLoop(
        station,
        recorder.submit,
        clock,
        heartbeat_interval_s=heartbeat_interval_s,
        jump_threshold_ms=60_000,
        facts=lambda: HeartbeatFacts(True, 0, 1, 1),
        boundary=Boundary("station", recorder.submit, clock),
        inbox=inbox,
        when_written=recorder.inbox.when_written,
    )


class Forecourt:
    """A station loop and a recorder on one outbox file, wired as the daemon wires them, turned by `turn`."""

    def __init__(self, workdir: Path, clock: FakeClock, *, heartbeat_interval_s: int = 3600) -> None:
        self.clock = clock
        self.outbox = Outbox(workdir / "outbox.sqlite", 64 * 1024**2)
        key = DeviceKey.from_private(Ed25519PrivateKey.generate())
        inbox = StationInbox()
        self.recorder = Recorder(self.outbox, STATION, key, OutboxSection(), clock, committed=inbox.committed)
        station = Station([BINDING], {}, RULES, zone=ZONE, daily=DAILY)
        self.loop = loop_on(station, self.recorder, inbox, clock, heartbeat_interval_s)
        start = AgentStartBody(version="t", config_sha256="0" * 64, kid=key.kid).intent(clock.wall_ms())
        self.loop.resume([], [start])

    def turn(self, wall_ms: int) -> None:
        """At `wall_ms`: the station's timers, the recorder's commit, the station's note of what was committed."""
        self.clock.advance_to(wall_ms)
        now = now_of(self.clock)
        self.loop.step(now)
        self.recorder.step(now)
        self.loop.step(now)


def test_the_day_closes_at_the_first_step_after_local_midnight_and_its_wait(tmp_path: Path) -> None:
    """With close_after_s = 60, a step at 00:00:59 local makes no daily_summary; the step at 00:01 makes the
    ended day's, once, and it is in the outbox file; later steps make no second one."""
    clock = FakeClock(local(23, 58))
    court = Forecourt(tmp_path, clock)
    court.turn(local(23, 59))
    court.turn(local(0, 0, day=NEXT_DAY) + 59_000)
    assert stored(court.outbox, RecordType.DAILY_SUMMARY) == []
    court.turn(local(0, 1, day=NEXT_DAY))
    court.turn(local(0, 2, day=NEXT_DAY))
    summaries = stored(court.outbox, RecordType.DAILY_SUMMARY)
    assert [(s["body"]["day"], s["ts"]) for s in summaries] == [("2027-01-15", "2027-01-15T16:01:00.000Z")]  # type: ignore[index]


def test_a_heartbeat_per_interval_and_one_only_after_a_stall(tmp_path: Path) -> None:
    """Heartbeats come on the interval's grid; a loop that turns again only after 3.5 intervals makes one
    heartbeat, not four, and the next one falls on the grid again."""
    clock = FakeClock(local(10))
    court = Forecourt(tmp_path, clock, heartbeat_interval_s=60)
    start = local(10)
    for second in (30, 59, 60, 61, 119, 120, 330, 359, 360):
        court.turn(start + second * 1000)
    beats = stored(court.outbox, RecordType.HEARTBEAT)
    assert [(b["ts"], b["body"]["uptime_s"]) for b in beats] == [  # type: ignore[index]
        ("2027-01-15T02:01:00.000Z", 60),
        ("2027-01-15T02:02:00.000Z", 120),
        ("2027-01-15T02:05:30.000Z", 330),
        ("2027-01-15T02:06:00.000Z", 360),
    ]


def test_the_stop_ticks_then_records_agent_stop_with_its_reason(tmp_path: Path) -> None:
    """A stop asked of a loop that was never started is taken at its next step: that step says the loop is done,
    and the agent_stop record carries the reason and the uptime at that step."""
    clock = FakeClock(local(10))
    court = Forecourt(tmp_path, clock)
    assert court.loop.stop("maintenance")
    clock.advance_to(local(10) + 42_000)
    assert court.loop.step(now_of(clock)) is False
    court.recorder.step(now_of(clock))
    (stop,) = [e["body"] for e in stored(court.outbox, RecordType.EVENT) if e["body"]["kind"] == "agent_stop"]  # type: ignore[index]
    assert stop == {"kind": "agent_stop", "reason": "maintenance", "uptime_s": 42}


def test_a_step_commits_one_batch_and_tells_both_sinks_in_seq_order(tmp_path: Path) -> None:
    """600 intents waiting make steps of FIRST_BATCH records, then twice as many each step up to MAX_BATCH, one
    commit a step; after each, `committed` gets the records and `on_commit` the new head; the file holds a chain
    whose every `prev` is the SHA-256 of the record before (hashlib, not the chain code)."""
    clock = FakeClock(local(10))
    handed: list[SealedRecord] = []
    heads: list[int] = []
    outbox = Outbox(tmp_path / "outbox.sqlite", 64 * 1024**2)
    key = DeviceKey.from_private(Ed25519PrivateKey.generate())
    recorder = Recorder(outbox, STATION, key, OutboxSection(), clock, committed=handed.extend, on_commit=heads.append)
    for n in range(600):
        recorder.submit(beat(clock.wall_ms(), n))
    sizes = [FIRST_BATCH, 2 * FIRST_BATCH, 4 * FIRST_BATCH, MAX_BATCH]
    assert sum(sizes) < 600 and MAX_BATCH == 8 * FIRST_BATCH
    expected = [*itertools.accumulate(sizes), 600]
    for _ in expected:
        assert recorder.step(now_of(clock))
    assert heads == expected
    assert [record.seq for record in handed] == list(range(1, 601))
    assert recorder.status().commits == len(expected)
    reader = OutboxReader(outbox.path)
    records = list(reader.read(1, 600))
    reader.close()
    assert [record.canonical for record in records] == [record.canonical for record in handed]
    previous = "0" * 64
    for record in records:
        assert json.loads(record.canonical)["prev"] == previous
        previous = hashlib.sha256(record.canonical).hexdigest()
    assert recorder.step(now_of(clock)) and heads[-1] == 600, "a step with nothing waiting commits nothing"


def test_an_ack_is_saved_once_its_interval_has_passed_and_at_the_stop(tmp_path: Path) -> None:
    """An acknowledgement counts at the next step (status) but reaches the outbox's meta only when
    ACK_SAVE_INTERVAL_S has passed since the last save; the stop saves it too, with the clean-stop mark."""
    clock = FakeClock(local(10))
    outbox = Outbox(tmp_path / "outbox.sqlite", 64 * 1024**2)
    recorder = Recorder(outbox, STATION, DeviceKey.from_private(Ed25519PrivateKey.generate()), OutboxSection(), clock)
    for n in range(5):
        recorder.submit(beat(clock.wall_ms(), n))
    recorder.step(now_of(clock))
    recorder.note_acked(3)
    clock.advance(ACK_SAVE_INTERVAL_S - 1.0)
    recorder.step(now_of(clock))
    assert recorder.status().acked_upto == 3 and outbox.meta("acked_upto") in (None, "0")
    clock.advance(1.0)
    recorder.step(now_of(clock))
    assert outbox.meta("acked_upto") == "3"
    recorder.note_acked(5)
    recorder.inbox.put(Stop({"running": "0"}))
    assert recorder.step(now_of(clock)) is False
    assert (outbox.meta("acked_upto"), outbox.meta("running")) == ("5", "0")


class _QuietLink:
    """The line's port, for a poller whose devices are read by the test's own functions."""

    def close(self) -> None:
        pass

    def statistics(self) -> None:
        return None


def test_a_poller_step_serves_the_device_due_first_and_none_before_its_time() -> None:
    """Devices every 1 s and every 5 s, both due at the start: each step polls at most one device, the first
    due (the config's order breaks a tie), and a step before any is due polls none; each answer reaches the
    sink as a reading, the device's first answer also saying it is online (with no value faults)."""
    clock = FakeClock(local(10))
    polled: list[str] = []
    events: list[FieldEvent] = []

    def device(name: str, interval_s: float) -> PolledDevice:
        def read() -> TankGaugeReading:
            polled.append(name)
            return TankGaugeReading(())

        return PolledDevice(name, 1, interval_s, read)

    boundary = Boundary("poller rs485-1", lambda _intent: None, clock)
    poller = LinePoller(
        "rs485-1", [device("fast", 1.0), device("slow", 5.0)], _QuietLink(), clock, events.extend, boundary=boundary
    )
    start = clock.wall_ms()
    for offset_ms in (0, 0, 0, 999, 1000, 1000, 2000, 5000, 5000, 5000):
        clock.advance_to(start + offset_ms)
        poller.step(now_of(clock))
        polled.append("|")
    assert "".join(p if p == "|" else p[0] for p in polled) == "f|s|||f||f|f|f|s|"
    assert [(type(e).__name__, e.device) for e in events if not isinstance(e, DeviceReading)] == [
        ("DeviceOnline", "fast"),
        ("DeviceValueFaults", "fast"),
        ("DeviceOnline", "slow"),
        ("DeviceValueFaults", "slow"),
    ]
    assert [e.device for e in events if isinstance(e, DeviceReading)] == [p for p in polled if p != "|"]


def test_a_turn_handles_every_event_taken_before_time_judges_them() -> None:
    """A sale and the counter reading that measures it, handed over together to a loop that comes to them past
    the sale's wait for its pulses: the turn takes both before its tick, so the sale is measured, not recorded
    with its pulses unknown."""
    clock = FakeClock()
    submitted: list[RecordIntent] = []
    loop = bare_loop(StationLoop, Station([BINDING], {}, RULES), submitted, clock)
    liquid = 65_000

    def poll(nozzle: NozzleReading, *, late_s: float = 0.0) -> None:
        ts_ms = clock.wall_ms()
        counts = (ChannelCount(1, liquid), ChannelCount(2, 1000))
        loop.inbox.post_all(
            [
                DeviceReading("pc1", "rs485-1", ts_ms, PumpControllerReading((nozzle,), 10_000, 0x102, COUNTERS)),
                DeviceReading("pcm1", "rs485-1", ts_ms + 100, PulseCounterReading(counts, 65_536)),
            ]
        )
        clock.advance(0.5 + late_s)
        loop.step(now_of(clock))

    for _ in range(3):
        poll(IDLE)
    poll(replace(IDLE, state="fuelling"))
    liquid += 2_000
    poll(SOLD, late_s=RULES.pulse_wait_s + 1)
    (sale,) = (intent.body for intent in submitted if intent.type is RecordType.TRANSACTION)
    assert isinstance(sale, TransactionBody)
    assert (sale.txn_no, sale.pulse_volume_ml) == (IDLE.txn_no + 1, 20_000)
