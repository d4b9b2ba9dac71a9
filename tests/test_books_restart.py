"""The day's books count what the outbox holds, whoever made a record (the station, the recorder's own alarms, the
command desk, a loop's containment), in the same way live and replayed after a restart: a day's summary is the
same bytes whether or not the agent restarted that day.

Records go through a real recorder into a real SQLite outbox file; the books are handed what the recorder
commits, as the station loop hands it on; a restarted station is rebuilt from that file by the agent's own
replay (agent.history), as the daemon rebuilds it. Time is a clock the test steps: no sleeps.
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from raw_body import RawBody
from support.clock import FakeClock
from test_contract_docs import FlakyOutbox
from test_station import BINDING, RULES, Forecourt

from agent.commands.desk import CommandDesk, CommandPorts
from agent.commands.replay import ReplayMemory
from agent.commands.replay_file import load_replay
from agent.commands.settings import CommandsSection
from agent.config import AgentConfig
from agent.containment import Boundary
from agent.contract.canonical import canonical_bytes
from agent.contract.records import (
    AgentStartBody,
    AgentStopBody,
    AlarmKind,
    EventKind,
    HeartbeatBody,
    RecordIntent,
    RecordType,
    UncleanStopBody,
    format_ts,
)
from agent.field.events import DeviceOffline, DeviceOnline
from agent.history import as_intent, replay, station_history
from agent.ledger.chain import SealedRecord
from agent.ledger.keys import generate_key_file, load_key_file
from agent.ledger.outbox import Outbox, OutboxError
from agent.ledger.recorder import KeyRotationFailed, Recorder
from agent.ledger.recorder_inbox import KeyRotated
from agent.ledger.settings import OutboxSection
from agent.ledger.suites import Suite, kid_of
from agent.lifecycle import PreviousRun, startup_intents
from agent.station.daily_settings import DaySettings
from agent.station.daybooks import READ_TYPES, DayBooks
from agent.station.settings import StationSection
from agent.station.station import Station
from agent.uplink.settings import UplinkSection

STATION = "BOOKS-0001"
ZONE = ZoneInfo("Asia/Shanghai")
DAILY = DaySettings(close_after_s=60)
CONFIG = AgentConfig(
    station=StationSection(id=STATION, timezone=ZONE.key), uplink=UplinkSection(broker="127.0.0.1:1883"), daily=DAILY
)
DAY = date(2027, 1, 15)
CONFIG_SHA256 = "c" * 64


def local(hour: int, minute: int = 0, *, day: date = DAY) -> int:
    """An instant of the station's local day, in ms since the epoch."""
    return int(datetime.combine(day, time(hour, minute), ZONE).timestamp() * 1000)


def beat(uplink: Literal["online", "offline"], ts_ms: int) -> RecordIntent:
    """A heartbeat as the station loop makes it, finding the uplink `uplink`."""
    body = HeartbeatBody(interval_s=60, uptime_s=0, uplink=uplink, unacked=0, devices_online=2, devices_total=2)
    return body.intent(ts_ms)


def station_at_start(outbox: Outbox, config: AgentConfig, now_ms: int) -> tuple[Station, PreviousRun]:
    """The station as the daemon builds it at start, from the outbox's cursors and history, and what the outbox
    says of the run before it, which it then marks as running."""
    head = outbox.head()
    previous = PreviousRun(outbox.meta("running") == "1", head.seq, head.ts_ms, CONFIG_SHA256)
    outbox.set_meta({"running": "1"})
    station = Station(
        [BINDING],
        outbox.cursors(),
        RULES,
        zone=ZoneInfo(config.station.timezone),
        daily=config.daily,
        history=station_history(outbox, config, now_ms),
    )
    return station, previous


class Run(Forecourt):
    """One run of the agent over the outbox file in `workdir`, started as the daemon starts it: the station built
    from the outbox's cursors and history, brought up to date by the replay, and this start's records made.
    Whatever the station, the recorder, the command desk or a boundary makes is written by the real recorder;
    what it commits comes back to the day's books as the station loop passes it on."""

    def __init__(self, workdir: Path, clock: FakeClock, *, devices: Forecourt | None = None) -> None:
        """`devices`: the forecourt as an earlier run left it; the pumps do not restart with the agent."""
        self.clock = clock
        key_path = workdir / "keys" / "device.key"
        key = load_key_file(key_path) if key_path.exists() else generate_key_file(key_path)
        self.outbox = FlakyOutbox(workdir / "outbox.sqlite", 64 * 1024**2)
        self._commits: list[SealedRecord] = []
        self.recorder = Recorder(
            self.outbox, STATION, key, OutboxSection(retry_s=1.0), clock, committed=self._commits.extend
        )
        now_ms = clock.wall_ms()
        station, previous = station_at_start(self.outbox, CONFIG, now_ms)
        super().__init__(station)
        self.now = now_ms
        if devices is not None:
            self.nozzle, self.liquid, self.vapour = devices.nozzle, devices.liquid, devices.vapour
        starting = startup_intents(
            previous, now_ms, version="t", config_sha256=CONFIG_SHA256, kid=key.kid, jump_threshold_ms=60_000
        )
        resumed = station.resume(replay(self.outbox, station.replay_from_ms(now_ms)), starting, now_ms)
        self.recorder.start()
        self.committed(resumed)
        platform = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))).public_key()
        settings = CommandsSection(
            enabled=True, platform_key=workdir / "platform.pem", state_path=workdir / "commands.json"
        )
        self.desk = CommandDesk(
            settings,
            STATION,
            platform_keys={kid_of(Suite.ED25519, platform.public_bytes_raw()): platform},
            replay=ReplayMemory(settings.replay_memory, load_replay(settings.state_path)),
            outbox_path=self.outbox.path,
            ports=CommandPorts(
                submit=self.recorder.submit,
                head_seq=lambda: self.recorder.head.seq,
                status=dict,
                resend=lambda first, last: None,
                rotate_key=_not_rotated,
                reply=lambda reply: None,
            ),
            clock=clock,
            boundary=Boundary("commands", self.recorder.submit, clock),
        )
        self.uplink_boundary = Boundary("uplink", self.recorder.submit, clock)

    def committed(self, intents: list[RecordIntent]) -> None:
        """Into the outbox through the recorder, then back to the books: what the station loop does with commits."""
        for intent in intents:
            self.recorder.submit(intent)
        self.settle()

    def settle(self) -> None:
        """Wait for the recorder to write what it was given, then hand the day's books what it committed (the
        station loop's `committed`: the types the books read, read back from the stored bytes)."""
        assert self.recorder.flush(), "the recorder did not write in time"
        commits, self._commits[:] = list(self._commits), []
        for record in commits:
            if record.type in READ_TYPES:
                self.station.note(as_intent(record.canonical))

    def at(self, ts_ms: int) -> None:
        self.clock.advance_to(ts_ms)
        self.now = ts_ms

    def heartbeat(self, uplink: Literal["online", "offline"]) -> None:
        self.committed([beat(uplink, self.now)])

    def outbox_fails_once(self) -> None:
        """The disk refuses one write: the recorder raises outbox_failing, and clears it when the write goes."""
        self.outbox.failure = OutboxError("disk I/O error")
        self.recorder.submit(beat("online", self.now))
        self.settle()
        self.outbox.failure = None
        self.settle()

    def stop(self) -> None:
        """A clean stop, as the daemon makes it: agent_stop recorded, the clean-stop mark, the outbox closed."""
        self.committed([AgentStopBody(reason="stopped", uptime_s=0).intent(self.now)])
        assert self.recorder.stop(mark={"running": "0"})
        self.outbox.close()

    def records(self, record_type: RecordType) -> list[dict[str, Any]]:
        return [json.loads(canonical) for canonical in self.outbox.canonical_since(record_type, 0)]


def _not_rotated(command_id: str | None) -> Future[KeyRotated]:
    done: Future[KeyRotated] = Future()
    done.set_exception(KeyRotationFailed("key not rotated: not in this story"))
    return done


def morning(run: Run) -> None:
    """Sales, one of them off its encoder (a station alarm); the uplink and a device down for a while; the disk
    failing once (the recorder's alarm), a junk command refused (the desk's event), an error contained."""
    run.poll()
    run.poll()
    run.poll()
    run.at(local(7))
    run.fuel(20_000)
    run.fuel(30_000, reported_ml=30_600)
    run.at(local(8))
    run.heartbeat("offline")
    run.at(local(8, 30))
    run.heartbeat("online")
    run.at(local(9))
    run.committed(run.station.on_event(DeviceOffline("pc2", "rs485-2", run.now, "ModbusTimeout: no answer")))
    run.at(local(9, 20))
    run.committed(run.station.on_event(DeviceOnline("pc2", "rs485-2", run.now)))
    run.at(local(10))
    run.outbox_fails_once()
    run.at(local(11))
    run.desk.handle(b"this is not a command")
    run.settle()
    with run.uplink_boundary.contain("ack message"):
        raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")
    run.settle()
    run.fuel(15_000)


def afternoon(run: Run) -> None:
    """More sales and the uplink down again, then the clock past the day's end and its summary's wait."""
    run.at(local(14))
    run.fuel(25_000)
    run.at(local(16))
    run.heartbeat("offline")
    run.at(local(16, 45))
    run.heartbeat("online")
    run.at(local(22))
    run.fuel(10_000)
    run.at(local(0, day=date(2027, 1, 16)) + 61_000)
    run.poll()


def summary_of(run: Run) -> bytes:
    (record,) = run.records(RecordType.DAILY_SUMMARY)
    return canonical_bytes(record["body"])


def test_a_day_restarted_at_noon_has_the_summary_of_a_day_run_through(tmp_path: Path) -> None:
    """Stopped and started again mid-day, the station's books come back from the outbox as they were kept live:
    the summary is byte for byte that of the same day without a restart, the recorder's alarm counted in both."""
    straight = Run(tmp_path / "straight", FakeClock(local(0)))
    morning(straight)
    straight.at(local(12))
    afternoon(straight)

    clock = FakeClock(local(0))
    before = Run(tmp_path / "restarted", clock)
    morning(before)
    before.at(local(12))
    before.stop()
    after = Run(tmp_path / "restarted", clock, devices=before)
    afternoon(after)

    summary, restarted = summary_of(straight), summary_of(after)
    kinds = {record["body"]["kind"] for record in after.records(RecordType.EVENT)}
    straight.stop()
    after.stop()
    assert restarted == summary
    body = json.loads(summary)
    assert body["alarms_raised"] == {
        AlarmKind.METERING_DEVIATION: 1,
        AlarmKind.METERING_BIAS: 1,
        AlarmKind.OUTBOX_FAILING: 1,
    }
    assert [(n["nozzle"], n["sales"]) for n in body["nozzles"]] == [("D01-N1", 5)]
    assert body["uplink_down"]["seconds"] == 75 * 60 and body["devices_down"][0]["seconds"] == 20 * 60
    assert body["complete"] is True and body["agent_down"]["seconds"] == 0
    assert {EventKind.COMMAND_REFUSED, EventKind.INTERNAL_ERROR, EventKind.AGENT_STOP} <= kinds


NEXT = date(2027, 1, 16)
CLOSED_BEFORE = {"day/closed": 20270114}
"""The 14th is closed: the 15th is the first open day."""


def crashed_run(last_ms: int) -> list[RecordIntent]:
    """What a run that started at midnight on the 15th left in the outbox: its last record at `last_ms`."""
    start = AgentStartBody(version="t", config_sha256=CONFIG_SHA256, kid="k").intent(local(0))
    return [start, beat("online", local(12)), beat("online", last_ms)]


def restart(before: list[RecordIntent], now_ms: int) -> tuple[Station, list[RecordIntent]]:
    """The station after a crash, brought up to date with `before`; its start's records not yet back."""
    again = Station([BINDING], dict(CLOSED_BEFORE), RULES, zone=ZONE, daily=DAILY)
    starting = [
        AgentStartBody(version="t", config_sha256=CONFIG_SHA256, kid="k").intent(now_ms),
        UncleanStopBody(last_record_seq=3, last_record_ts=format_ts(before[-1].ts_ms)).intent(now_ms),
    ]
    since = again.replay_from_ms(now_ms)
    return again, again.resume([record for record in before if record.ts_ms >= since], starting, now_ms)


def test_after_a_restart_no_day_closes_before_the_start_record_is_back() -> None:
    """The agent crashed at 22:00 and starts again past the 15th's close time: until its agent_start comes back
    from the outbox the books cannot know it was down, so the 15th waits, then closes with the two hours."""
    now_ms = local(0, 30, day=NEXT)
    again, resumed = restart(crashed_run(local(22)), now_ms)
    assert again.close_days(now_ms) == []
    for intent in resumed:
        again.note(intent)
    (summary,) = again.close_days(now_ms)
    down = summary.body.as_json()["agent_down"]
    assert isinstance(down, dict) and down["seconds"] == 2 * 3600 and summary.body.complete is False


def test_a_record_dated_past_the_close_time_lets_the_day_close_without_the_start() -> None:
    """A run that recorded past the 15th's close time and crashed before closing it has told the books all of the
    15th: the restart closes it at once, with no down time."""
    now_ms = local(0, 30, day=NEXT)
    again, _ = restart(crashed_run(local(0, 5, day=NEXT)), now_ms)
    (summary,) = again.close_days(now_ms)
    assert summary.body.day == "2027-01-15" and summary.body.complete is True


@pytest.mark.parametrize("unread", [RecordType.TANK_INVENTORY, RecordType.VAPOUR, RecordType.DAILY_SUMMARY])
def test_records_the_replay_does_not_read_do_not_move_the_books(unread: RecordType) -> None:
    """A record of a type the replay leaves out, made after the crashed run's last counted record, is ignored live
    as it is on replay: the agent's down time runs from the last record the replay reads, both ways."""
    before = crashed_run(local(22))
    later = RecordIntent(unread, local(23), RawBody({"tank": "T1"}))
    summaries = []
    for fed in ([*before, later], before):
        books = DayBooks(DAILY, ZONE, "2027-01-14", local(0))
        for record in fed:
            books.note(record)
        books.note(AgentStartBody(version="t", config_sha256=CONFIG_SHA256, kid="k").intent(local(1, day=NEXT)))
        (summary,) = books.close(date(2027, 1, 15), local(1, day=NEXT))
        summaries.append(canonical_bytes(summary.body.as_json()))
    assert summaries[0] == summaries[1]
    assert json.loads(summaries[0])["agent_down"]["seconds"] == 2 * 3600
