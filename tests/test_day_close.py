"""A day's summary counts every record of the day made before it closes, also those still on their way to the
outbox when the close falls due: with `[daily] close_after_s = 0` the day's last sale and the close come in the
same turn of the station loop, and the summary still counts the sale, live and after a kill right after midnight
alike, once.

The station loop and the recorder are wired as the daemon wires them, on a real SQLite outbox file, and turned by
hand at instants the test picks (no sleeps); a restarted run is rebuilt from that file as the daemon rebuilds it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.clock import FakeClock
from test_books_restart import CONFIG_SHA256, DAY, ZONE, local, station_at_start
from test_contract_docs import FlakyOutbox
from test_daybooks import beat, sale, tank_day
from test_loop_steps import loop_on
from test_station import BINDING, COUNTERS, IDLE, RULES, SOLD

from agent.clock import now_of
from agent.config import AgentConfig
from agent.contract.records import RecordType, TankInventoryBody
from agent.field.events import DeviceReading
from agent.history import replay
from agent.ledger.keys import DeviceKey
from agent.ledger.outbox import Outbox, OutboxError
from agent.ledger.recorder import Recorder
from agent.ledger.settings import OutboxSection
from agent.lifecycle import startup_intents
from agent.station.daily_close import DailyClose
from agent.station.daily_settings import DaySettings
from agent.station.settings import StationSection
from agent.station.station import Station
from agent.station_loop import StationInbox
from agent.uplink.settings import UplinkSection
from drivers.readings import ChannelCount, NozzleReading, PulseCounterReading, PumpControllerReading

STATION = "CLOSE-0001"
DAILY = DaySettings(close_after_s=0)
CONFIG = AgentConfig(
    station=StationSection(id=STATION, timezone=ZONE.key), uplink=UplinkSection(broker="127.0.0.1:1883"), daily=DAILY
)
DAY_BEFORE = DAY - timedelta(days=1)
NEXT_DAY = DAY + timedelta(days=1)
LAST_SECOND = local(23, 59) + 59_000
"""23:59:59 local on DAY."""
PAST_MIDNIGHT = local(0, 0, day=NEXT_DAY) + 200
"""The first turn past midnight: one pace (200 ms) after the day's last sale was handed over."""
STARTED = local(23, 58, day=DAY_BEFORE)
HEARTBEAT_S = 120
"""A run started at STARTED has a heartbeat due at every midnight: in the first turn past it, after the day's close
is due, the record that says the agent ran until then."""


class Gateway:
    """One run of the station loop and the recorder over the outbox file in `workdir`, built and started as the
    daemon builds them: the station from the outbox's cursors and history, brought up to date by the replay, this
    start's records submitted (an unclean_stop after a run that never stopped)."""

    def __init__(self, workdir: Path, clock: FakeClock, key: DeviceKey, inbox: StationInbox | None = None) -> None:
        self.clock = clock
        self.outbox = Outbox(workdir / "outbox.sqlite", 64 * 1024**2)
        inbox = inbox or StationInbox()
        self.recorder = Recorder(self.outbox, STATION, key, OutboxSection(), clock, committed=inbox.committed)
        now_ms = clock.wall_ms()
        station, previous = station_at_start(self.outbox, CONFIG, now_ms)
        self.loop = loop_on(station, self.recorder, inbox, clock, HEARTBEAT_S)
        starting = startup_intents(
            previous, now_ms, version="t", config_sha256=CONFIG_SHA256, kid=key.kid, jump_threshold_ms=60_000
        )
        self.loop.resume(replay(self.outbox, self.loop.replay_from_ms()), starting)

    def poll(self, nozzle: NozzleReading, liquid_pulses: int, ts_ms: int) -> None:
        """The controller's answer at `ts_ms` and the pulse counter's 100 ms later, handed over together."""
        self.loop.inbox.post_all([controller(nozzle, ts_ms), counter(liquid_pulses, ts_ms + 100)])

    def turn(self, wall_ms: int, *, halves: int = 4) -> None:
        """At `wall_ms`: a turn of the station loop, then one of the recorder, and again (`halves` turns in all):
        what one thread hands the other within a pace is taken in the same instant."""
        self.clock.advance_to(wall_ms)
        now = now_of(self.clock)
        for half in range(halves):
            if half % 2 == 0:
                self.loop.step(now)
            else:
                self.recorder.step(now)

    def records(self, record_type: RecordType) -> list[dict[str, Any]]:
        return [json.loads(canonical) for canonical in self.outbox.canonical_since(record_type, 0)]


def controller(nozzle: NozzleReading, ts_ms: int) -> DeviceReading:
    return DeviceReading("pc1", "rs485-1", ts_ms, PumpControllerReading((nozzle,), 10_000, 0x102, COUNTERS))


def counter(liquid_pulses: int, ts_ms: int) -> DeviceReading:
    counts = (ChannelCount(1, liquid_pulses), ChannelCount(2, 1000))
    return DeviceReading("pcm1", "rs485-1", ts_ms, PulseCounterReading(counts, 65_536))


class RecorderInBetween(StationInbox):
    """A station inbox whose loop, having taken its items, lets the recorder take a step before it handles them
    (while `recorder` is set): an order the two threads may run in that whole turns by hand never show."""

    recorder: Recorder | None = None
    clock: FakeClock | None = None

    def take_all(self) -> list[Any]:
        items = super().take_all()
        if self.recorder is not None and self.clock is not None:
            self.recorder.step(now_of(self.clock))
        return items


def a_day_ending_in_a_sale(gateway: Gateway) -> None:
    """A run started two minutes before DAY began, through its first midnight (the short day before is
    summarised), then at the end of DAY idle polls, a fuelling, and the sale booked at 23:59:59.6 (its pulses read
    at .7), handed over to a loop whose next turn is past midnight: the sale is recorded in the turn that finds
    DAY's close due."""
    gateway.turn(local(0, 0) + 200)
    liquid = 65_000
    for second in range(50, 55):
        gateway.poll(IDLE, liquid, local(23, 59) + second * 1000)
        gateway.turn(local(23, 59) + second * 1000 + 500)
    gateway.poll(replace(IDLE, state="fuelling"), liquid, local(23, 59) + 56_000)
    gateway.turn(local(23, 59) + 56_500)
    liquid += 2_000
    gateway.poll(SOLD, liquid, LAST_SECOND + 600)


def instant(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def sales_in(records: list[dict[str, Any]], start: str, end: str) -> tuple[int, int]:
    """Counted from the stored transactions themselves: how many fall in [start, end), and their volume."""
    inside = [r["body"]["volume_ml"] for r in records if instant(start) <= instant(r["ts"]) < instant(end)]
    return len(inside), sum(inside)


def test_a_sale_recorded_in_the_turn_that_closes_its_day_is_in_the_day_summary(tmp_path: Path) -> None:
    """close_after_s = 0: the sale of 23:59:59.6, recorded in the first turn past midnight, the turn whose tick
    finds the day due, is in that day's summary (one sale, 20 L), as the stored transactions dated in the
    summary's span say; the day is summarised once."""
    clock = FakeClock(STARTED)
    gateway = Gateway(tmp_path, clock, DeviceKey.from_private(Ed25519PrivateKey.generate()))
    a_day_ending_in_a_sale(gateway)
    gateway.turn(PAST_MIDNIGHT)
    gateway.turn(PAST_MIDNIGHT + 1_000)
    gateway.turn(PAST_MIDNIGHT + 2_000)
    summaries = [s["body"] for s in gateway.records(RecordType.DAILY_SUMMARY)]
    assert [s["day"] for s in summaries] == [DAY_BEFORE.isoformat(), DAY.isoformat()]
    summary = summaries[-1]
    transactions = gateway.records(RecordType.TRANSACTION)
    assert [t["ts"] for t in transactions] == ["2027-01-15T15:59:59.600Z"]
    assert sales_in(transactions, summary["start"], summary["end"]) == (1, 20_000)
    assert [(g["grade"], g["sales"], g["volume_ml"]) for g in summary["grades"]] == [("92", 1, 20_000)]
    assert [(n["nozzle"], n["sales"], n["volume_ml"]) for n in summary["nozzles"]] == [("D01-N1", 1, 20_000)]


def test_a_kill_right_after_midnight_leaves_a_summary_that_counts_the_same_records(tmp_path: Path) -> None:
    """The same day run twice: once through, and once killed in the first turn past midnight, when the day's last
    sale is in the outbox and its summary not yet; the restarted run's summary of the day is the same body as the
    one made live (the sale counted once), and neither that restart nor the next summarises the day again."""
    key = DeviceKey.from_private(Ed25519PrivateKey.generate())
    through = Gateway(tmp_path / "through", FakeClock(STARTED), key)
    a_day_ending_in_a_sale(through)
    for offset_ms in (0, 1_000, 2_000):
        through.turn(PAST_MIDNIGHT + offset_ms)
    *_, live = through.records(RecordType.DAILY_SUMMARY)

    clock = FakeClock(STARTED)
    killed = Gateway(tmp_path / "killed", clock, key)
    a_day_ending_in_a_sale(killed)
    killed.turn(PAST_MIDNIGHT, halves=2)
    assert len(killed.records(RecordType.TRANSACTION)) == 1
    assert [s["body"]["day"] for s in killed.records(RecordType.DAILY_SUMMARY)] == [DAY_BEFORE.isoformat()]
    clock.advance(5.0)
    for _ in range(2):
        restarted = Gateway(tmp_path / "killed", clock, key)
        for _ in range(3):
            restarted.turn(clock.wall_ms() + 1_000)
    before, after_restart = restarted.records(RecordType.DAILY_SUMMARY)
    assert (before["body"]["day"], after_restart["body"]["day"]) == (DAY_BEFORE.isoformat(), DAY.isoformat())
    assert after_restart["body"] == live["body"]
    assert [(g["grade"], g["sales"]) for g in after_restart["body"]["grades"]] == [("92", 1)]


class TestTheCloseWaitsForTheRecorder:
    """`DailyClose`, the loop's side of it, alone: which answer lets the days close."""

    def test_a_close_due_asks_once_and_its_answer_closes_at_the_instant_it_was_due(self) -> None:
        """No day due, no request; a day due makes request 1, and ticks while it is out make none; its answer
        gives the instant the close was found due; a second answer to it closes nothing."""
        close = DailyClose()
        assert close.request(LAST_SECOND, lambda now_ms: False) is None
        assert close.request(PAST_MIDNIGHT, lambda now_ms: True) == 1
        assert close.request(PAST_MIDNIGHT + 1_000, lambda now_ms: True) is None
        assert close.answered(1) == PAST_MIDNIGHT
        assert close.answered(1) is None

    def test_a_record_of_the_day_submitted_after_the_request_makes_its_answer_stale(self) -> None:
        """A sale booked before the instant the close was found due, submitted while request 1 is out: request 1's
        answer closes nothing, the next tick asks anew, and only request 2's answer closes."""
        close = DailyClose()
        assert close.request(PAST_MIDNIGHT, lambda now_ms: True) == 1
        close.submitted(sale(LAST_SECOND + 900, "D01-N1", "92", 20_000, 1_000_000))
        assert close.answered(1) is None
        assert close.request(PAST_MIDNIGHT + 1_000, lambda now_ms: True) == 2
        assert close.answered(2) == PAST_MIDNIGHT

    def test_a_close_waiting_on_a_stalled_recorder_asks_again_only_once_it_answers(self) -> None:
        """While request 1 is unanswered (an outbox failing for hours), records of the day submitted at every tick
        (a clock set back before the instant the close was due) ask nothing more of the recorder, whose pending
        answers would otherwise grow by one a second; its answer, stale, lets the next tick ask request 2."""
        close = DailyClose()
        assert close.request(PAST_MIDNIGHT, lambda now_ms: True) == 1
        for second in range(1, 600):
            close.submitted(beat(LAST_SECOND - 3_600_000 + second * 1000))
            assert close.request(PAST_MIDNIGHT + second * 1000, lambda now_ms: True) is None
        assert close.answered(1) is None
        assert close.request(PAST_MIDNIGHT + 600_000, lambda now_ms: True) == 2
        assert close.answered(2) == PAST_MIDNIGHT

    def test_records_of_later_days_do_not_hold_the_close_up_and_a_tank_day_counts_by_its_middle(self) -> None:
        """Submitted while request 1 is out: a sale and a heartbeat dated at or after the instant the close was
        due, and a tank inventory (a type the books do not read), leave its answer good; a tank's day books of
        the day, made after midnight, make it stale, as the books place them by their middle."""
        close = DailyClose()
        assert close.request(PAST_MIDNIGHT, lambda now_ms: True) == 1
        tank_now = TankInventoryBody(
            "T1", "gasoline", 9_000_000, 9_000_000, 1_000_000, 1_000_000, 0, 1850, False, "gasoline", "20C"
        )
        for intent in (
            sale(PAST_MIDNIGHT, "D01-N1", "92", 20_000, 1_000_000),
            beat(PAST_MIDNIGHT),
            tank_now.intent(LAST_SECOND),
        ):
            close.submitted(intent)
        assert close.answered(1) == PAST_MIDNIGHT
        assert close.request(PAST_MIDNIGHT, lambda now_ms: True) == 2
        close.submitted(tank_day(local(0), local(0, day=NEXT_DAY)))
        assert close.answered(2) is None


def test_the_recorder_answers_once_what_came_before_is_committed_and_waits_out_a_failing_outbox(
    tmp_path: Path,
) -> None:
    """A `when_written` request behind two heartbeats is answered in the step that commits them, after they were
    handed to `committed`; behind a third, while the outbox refuses writes, it is not answered, not even at the
    retry that fails again, and is answered at the retry that writes it, after the outbox_failing alarm, the
    heartbeat and the alarm's clearing."""
    clock = FakeClock(local(10))
    outbox = FlakyOutbox(tmp_path / "outbox.sqlite", 64 * 1024**2)
    told: list[str] = []
    recorder = Recorder(
        outbox,
        STATION,
        DeviceKey.from_private(Ed25519PrivateKey.generate()),
        OutboxSection(retry_s=1.0),
        clock,
        committed=lambda records: told.extend(f"{r.seq} {r.type}" for r in records),
    )
    recorder.submit(beat(clock.wall_ms()))
    recorder.submit(beat(clock.wall_ms()))
    recorder.inbox.when_written(lambda: told.append("answer 1"))
    recorder.step(now_of(clock))
    assert told == ["1 heartbeat", "2 heartbeat", "answer 1"]
    outbox.failure = OutboxError("disk I/O error")
    recorder.submit(beat(clock.wall_ms()))
    recorder.inbox.when_written(lambda: told.append("answer 2"))
    recorder.step(now_of(clock))
    clock.advance(1.0)
    recorder.step(now_of(clock))
    assert told[3:] == [] and recorder.status().state == "failing"
    outbox.failure = None
    clock.advance(1.0)
    recorder.step(now_of(clock))
    assert told[3:] == ["3 alarm", "4 heartbeat", "5 alarm", "answer 2"]


def test_a_sale_of_the_day_recorded_while_its_close_waits_on_the_recorder_holds_the_close_for_it(
    tmp_path: Path,
) -> None:
    """The day's last sale booked at 23:59:59.6 waits for its pulses past the turn that asks for the close; the
    recorder answers that request while the loop, which took the pulses before the answer came, records the sale:
    that answer closes nothing (the sale was handed over after the request, and would be stored before the
    summary), the next tick asks again, and the summary, stored after the sale, counts it."""
    clock = FakeClock(STARTED)
    inbox = RecorderInBetween()
    gateway = Gateway(tmp_path, clock, DeviceKey.from_private(Ed25519PrivateKey.generate()), inbox)
    liquid = 65_000
    gateway.turn(local(0, 0) + 200)
    for second in range(50, 55):
        gateway.poll(IDLE, liquid, local(23, 59) + second * 1000)
        gateway.turn(local(23, 59) + second * 1000 + 500)
    gateway.poll(replace(IDLE, state="fuelling"), liquid, local(23, 59) + 56_000)
    gateway.turn(local(23, 59) + 56_500)
    gateway.loop.inbox.post(controller(SOLD, LAST_SECOND + 600))
    gateway.turn(PAST_MIDNIGHT, halves=1)
    assert gateway.records(RecordType.TRANSACTION) == [], "the sale waits for its pulses"
    gateway.loop.inbox.post(counter(liquid + 2_000, LAST_SECOND + 700))
    inbox.recorder, inbox.clock = gateway.recorder, clock
    gateway.turn(PAST_MIDNIGHT + 100, halves=1)
    inbox.recorder = None
    for offset_ms in (200, 1_200, 2_200):
        gateway.turn(PAST_MIDNIGHT + offset_ms)
    (sale,) = gateway.records(RecordType.TRANSACTION)
    summaries = gateway.records(RecordType.DAILY_SUMMARY)
    assert [s["body"]["day"] for s in summaries] == [DAY_BEFORE.isoformat(), DAY.isoformat()]
    assert sale["seq"] < summaries[-1]["seq"]
    assert [(g["grade"], g["sales"], g["volume_ml"]) for g in summaries[-1]["body"]["grades"]] == [("92", 1, 20_000)]


def test_a_clock_set_back_while_the_close_waits_closes_nothing_before_the_day_ends() -> None:
    """A close found due just past midnight, answered after the clock was set back before midnight: nothing is
    closed then (and nothing fails); once the clock is past midnight again, the day closes."""
    station = Station([BINDING], {}, RULES, zone=ZONE, daily=DAILY)
    station.replay_from_ms(local(12))
    assert station.closes_due(PAST_MIDNIGHT)
    assert station.close_days(LAST_SECOND, due_at_ms=PAST_MIDNIGHT) == []
    (summary,) = station.close_days(PAST_MIDNIGHT + 1_000, due_at_ms=PAST_MIDNIGHT)
    assert summary.type is RecordType.DAILY_SUMMARY and summary.ts_ms == PAST_MIDNIGHT + 1_000
