"""Bit-rot in an unsent record, end to end: the agent as a process over a real outbox file, a real broker and
the reference platform. The damaged record cannot be sent as it was sealed; the alarm that declares it lets the
platform take it as lost and acknowledge everything, so delivery goes on and nothing is sent over and over."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from station_rig import StationRig
from support.waiting import wait_until
from test_end_to_end import prefill

from agent.ledger.outbox import OutboxReader
from simulators.broker import MosquittoBroker

pytestmark = pytest.mark.slow

BACKLOG = 300
DAMAGED = 200


@pytest.fixture
def rig(tmp_path: Path, private_broker: MosquittoBroker) -> Iterator[StationRig]:
    station = StationRig(tmp_path, private_broker, agent={"uplink": {"max_records_per_message": 20}})
    try:
        yield station
    finally:
        station.close()


def _flip_ts_bit(outbox: Path, seq: int) -> None:
    """One bit of record `seq`'s `ts` changes on the medium, as the hostile test did."""
    with closing(sqlite3.connect(outbox)) as db, db:
        (stored,) = db.execute("SELECT canonical FROM record WHERE seq = ?", (seq,)).fetchone()
        damaged = bytearray(stored)
        damaged[bytes(stored).index(b'"ts":"') + 10] ^= 0x01
        db.execute("UPDATE record SET canonical = ? WHERE seq = ?", (bytes(damaged), seq))


def _alarms(outbox: Path, kind: str) -> list[dict[str, object]]:
    reader = OutboxReader(outbox)
    try:
        records = [json.loads(record.canonical) for record in reader.read(reader.first_seq() or 1, 10**9)]
    finally:
        reader.close()
    return [r for r in records if r["type"] == "alarm" and r["body"]["kind"] == kind]


def test_a_damaged_unsent_record_is_declared_lost_and_delivery_goes_on(rig: StationRig) -> None:
    """One flipped bit in an unsent record: the platform reaches the head with that seq lost (not a gap), the
    outbox_corrupt alarm is made once and shown in the status, and re-sends stay below twice the records."""
    prefill(rig, count=BACKLOG)
    outbox = rig.workdir / rig.agent_settings["outbox"]["path"]
    _flip_ts_bit(outbox, DAMAGED)
    rig.simulated.start()
    rig.platform.start()
    rig.start_agent()
    wait_until(
        lambda: any(p.get("kind") == "outbox_corrupt" for p in rig.status().get("problems", [])),
        30,
        "the status to show outbox_corrupt",
    )
    rig.wait_platform_caught_up(timeout_s=60)
    rig.stop_agent()
    rig.wait_platform_caught_up()
    report = rig.platform_report()
    assert report.upto == report.highest_seq == rig.head_seq() > BACKLOG
    assert (report.gaps, report.lost, report.chain_breaks, report.forks) == ((), ((DAMAGED, DAMAGED),), (), ())
    assert report.duplicates < 2 * report.accepted
    alarms = _alarms(outbox, "outbox_corrupt")
    assert [alarm["body"]["evidence"]["first_seq"] for alarm in alarms] == [DAMAGED]  # type: ignore[index]
