"""The producing half of the agent (a real outbox and recorder) for tests of the MQTT uplink: heartbeats are
committed on demand, every uplink made here is told of each commit, and what the uplinks record is kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.clock import SystemClock
from agent.containment import Boundary
from agent.contract.records import EventKind, HeartbeatBody, RecordIntent
from agent.ledger.keys import DeviceKey
from agent.ledger.outbox import Outbox, OutboxReader, StoredRecord
from agent.ledger.recorder import Recorder
from agent.ledger.settings import OutboxSection
from agent.uplink.session import Uplink
from agent.uplink.settings import UplinkSection
from support.waiting import wait_until


@dataclass
class UplinkStation:
    station: str
    outbox_path: Path
    recorder: Recorder
    deadline_s: float
    reported: list[RecordIntent] = field(default_factory=list)
    """What the uplinks recorded (their boundary's and their own events), in order."""
    uplinks: list[Uplink] = field(default_factory=list)

    def record(self, count: int) -> int:
        """Commit `count` heartbeats; the new head seq."""
        target = self.recorder.status().head_seq + count
        for n in range(count):
            body = HeartbeatBody(
                interval_s=60, uptime_s=n, uplink="online", unacked=0, devices_online=0, devices_total=0
            )
            self.recorder.submit(body.intent(SystemClock().wall_ms()))
        wait_until(lambda: self.recorder.status().head_seq == target, self.deadline_s, f"{count} records committed")
        return target

    def uplink(self, settings: UplinkSection) -> Uplink:
        """An uplink on this station's outbox, told of later commits, started; stopped when the station ends."""
        status = self.recorder.status()

        def report(intent: RecordIntent) -> None:
            self.reported.append(intent)
            self.recorder.submit(intent)

        uplink = Uplink(
            settings,
            self.station,
            self.outbox_path,
            SystemClock(),
            on_acked=self.recorder.note_acked,
            acked_upto=status.acked_upto,
            head_seq=status.head_seq,
            boundary=Boundary("uplink", report, SystemClock()),
            record=report,
        )
        self.uplinks.append(uplink)
        uplink.start()
        return uplink

    def events(self, kind: EventKind) -> list[dict[str, Any]]:
        """The bodies of the events of `kind` the uplinks made so far."""
        return [intent.body.as_json() for intent in list(self.reported) if getattr(intent.body, "kind", None) == kind]

    def stored_events(self, kind: EventKind) -> list[dict[str, Any]]:
        """The bodies of the events of `kind` in the outbox, read back from the file as the uplink reads it."""
        records = [json.loads(stored.canonical) for stored in self._stored()]
        return [r["body"] for r in records if r["type"] == "event" and r["body"]["kind"] == kind]

    def stored_seqs(self) -> list[int]:
        return [record.seq for record in self._stored()]

    def _stored(self) -> list[StoredRecord]:
        reader = OutboxReader(self.outbox_path)
        try:
            return list(reader.read(1, self.recorder.status().head_seq))
        finally:
            reader.close()


@contextmanager
def uplink_station(directory: Path, station: str, *, outbox_bytes: int, deadline_s: float) -> Iterator[UplinkStation]:
    """A started station in `directory`; its uplinks and its recorder are stopped when the block ends."""
    path = directory / "outbox.sqlite"
    key = DeviceKey.from_private(Ed25519PrivateKey.generate())
    uplinks: list[Uplink] = []

    def notify(head_seq: int) -> None:
        for uplink in uplinks:
            uplink.notify(head_seq)

    recorder = Recorder(
        Outbox(path, outbox_bytes), station, key, OutboxSection(path=path), SystemClock(), on_commit=notify
    )
    running = UplinkStation(station, path, recorder, deadline_s, uplinks=uplinks)
    recorder.start()
    try:
        yield running
    finally:
        for uplink in running.uplinks:
            uplink.stop()
        recorder.stop()
