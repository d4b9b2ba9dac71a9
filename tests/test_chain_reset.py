"""A box that loses its outbox but keeps its key: the chain goes on above every seq it may have used, with a
signed chain_reset the reference platform accepts as an explained discontinuity; bit-rot raises an alarm; an
outbox the agent refuses stops it with exit 2 and the way out, `station-agent recover`."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from station_rig import STATION, StationRig
from support.waiting import wait_until

from agent.clock import SystemClock
from agent.contract.records import ChainResetReason, HeartbeatBody
from agent.ledger.anchor import RESERVE, AnchorKeeper, ChainAnchor, anchor_path, load_anchor
from agent.ledger.chain import ChainHead
from agent.ledger.continuity import Continue, OutboxState, Refuse, Reset, judge
from agent.ledger.integrity import Damage
from agent.ledger.keys import DeviceKey
from agent.ledger.opening import OutboxRefused, open_outbox
from agent.ledger.outbox import OutboxReader
from agent.ledger.recorder import Recorder
from agent.ledger.settings import OutboxSection
from simulators.platform.keys import public_key_from_raw
from simulators.platform.report import StationReport
from simulators.platform.store import Store
from simulators.platform.verify import verify_message

DIGEST_A, DIGEST_B = "a" * 64, "b" * 64


def _anchor(seq: int, digest: str = DIGEST_A, reserved: int | None = None) -> ChainAnchor:
    return ChainAnchor(STATION, seq, digest, 1_000, 0, seq + RESERVE if reserved is None else reserved, "k")


def _state(head_seq: int, digest_at_anchor: str | None = DIGEST_A, *, existed: bool = True) -> OutboxState:
    return OutboxState(existed, ChainHead(head_seq, DIGEST_A, 1_000), 0, digest_at_anchor)


class TestVerdict:
    def test_an_outbox_at_or_ahead_of_its_anchor_continues(self) -> None:
        """What a kill -9 leaves (the outbox ahead of the anchor it wrote last) is no reason to reset."""
        assert judge(_anchor(10), _state(10)) == Continue()
        assert judge(_anchor(10), _state(12)) == Continue()
        assert judge(_anchor(10, reserved=20), _state(25)) == Continue(anchor_behind=True)
        assert judge(None, _state(0, None, existed=False)) == Continue()
        assert judge(_anchor(0), _state(0, None)) == Continue()

    def test_a_missing_empty_or_rolled_back_outbox_resets(self) -> None:
        """No file, an empty one, one that ends before the anchor or holds another record there: a reset."""
        missing = judge(_anchor(10), _state(0, None, existed=False))
        assert isinstance(missing, Reset) and missing.reason is ChainResetReason.OUTBOX_MISSING
        assert not missing.set_aside
        empty = judge(_anchor(10), _state(0, None))
        assert isinstance(empty, Reset) and empty.reason is ChainResetReason.OUTBOX_MISSING
        behind = judge(_anchor(10), _state(9, None))
        assert isinstance(behind, Reset) and behind.reason is ChainResetReason.OUTBOX_ROLLED_BACK and behind.set_aside
        other = judge(_anchor(10), _state(15, DIGEST_B))
        assert isinstance(other, Reset) and other.reason is ChainResetReason.OUTBOX_ROLLED_BACK

    def test_a_damaged_head_resets_and_a_foreign_one_is_refused(self) -> None:
        """A head that fails its own signature resets (set aside); one signed by another key is refused."""
        damaged = OutboxState(True, ChainHead(5, DIGEST_A, 1), 0, None, head_problem="bad signature")
        assert judge(None, damaged) == Reset(ChainResetReason.OUTBOX_CORRUPT, "record 5: bad signature", True)
        foreign = OutboxState(True, ChainHead(5, DIGEST_A, 1), 0, None, head_signer="0011223344556677")
        assert isinstance(judge(_anchor(5), foreign), Refuse)


def _stored(path: Path) -> dict[int, tuple[str, bytes, bytes]]:
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT seq, kid, canonical, sig FROM record ORDER BY seq").fetchall()
    return {int(seq): (str(kid), bytes(canonical), bytes(sig)) for seq, kid, canonical, sig in rows}


class _Box:
    """A recorder with its anchor over a real outbox file, run for a few records at a time as the agent runs;
    everything any of its outboxes ever held is what it sent."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = DeviceKey.from_private(Ed25519PrivateKey.generate())
        self.key_path = folder / "keys" / "device.key"
        self.key_path.parent.mkdir()
        self.outbox_path = folder / "outbox.sqlite"
        self.sent: dict[int, tuple[str, bytes, bytes]] = {}

    def run(self, records: int, now_ms: int = 1_795_000_000_000, *, killed: bool = False) -> None:
        """`killed`: the run ends as a kill -9 ends it, with the anchor as the last write before the stop left it."""
        opened = open_outbox(
            self.outbox_path,
            64 * 1024**2,
            self.key,
            station=STATION,
            anchor_file=anchor_path(self.key_path),
            now_ms=now_ms,
            config=None,
        )
        keeper = AnchorKeeper(anchor_path(self.key_path), opened.anchor)
        settings = OutboxSection(path=self.outbox_path)
        recorder = Recorder(opened.outbox, STATION, self.key, settings, SystemClock(), anchor=keeper)
        start = recorder.head.seq
        recorder.start()
        beat = HeartbeatBody(interval_s=60, uptime_s=0, uplink="online", unacked=0, devices_online=0, devices_total=0)
        for index in range(records):
            recorder.submit(beat.intent(now_ms + index))
        wait_until(lambda: recorder.head.seq == start + records, 10, "the records to be committed")
        anchor_before_stop = anchor_path(self.key_path).read_bytes()
        recorder.stop()
        if killed:
            anchor_path(self.key_path).write_bytes(anchor_before_stop)
        opened.outbox.close()
        for seq, stored in _stored(self.outbox_path).items():
            self.sent.setdefault(seq, stored)

    def platform(self) -> tuple[StationReport, list[dict[str, Any]]]:
        """What the reference store makes of everything sent, one record a message, in seq order."""
        keys = {self.key.kid: public_key_from_raw(self.key.public_raw)}
        with Store(self.folder / "platform.sqlite") as store:
            for kid, canonical, sig in (self.sent[seq] for seq in sorted(self.sent)):
                item = {"record": json.loads(canonical), "sig": base64.b64encode(sig).decode()}
                store.ingest(
                    STATION, verify_message(json.dumps({"kid": kid, "records": [item]}).encode(), STATION, keys)
                )
            report = store.station_report(STATION)
            records = [json.loads(canonical) for canonical in store.accepted(STATION)]
        return report, records


def _damage(path: Path, seq: int) -> None:
    """One byte of record `seq` changes on the medium ("online" becomes "onlinf")."""
    damaged = "CAST(replace(canonical, 'online', 'onlinf') AS BLOB)"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(f"UPDATE record SET canonical = {damaged} WHERE seq = ?", (seq,))


def _digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class TestLostOutbox:
    def test_a_deleted_outbox_after_a_kill_goes_on_after_the_reservation_with_a_chain_reset(
        self, tmp_path: Path
    ) -> None:
        """Delete the outbox after a killed run: the next records follow a chain_reset above the reservation, whose
        prev is the anchor's record; the platform reports the reset and the lost range, no fork, no break."""
        box = _Box(tmp_path)
        box.run(5)
        box.run(5, killed=True)
        box.outbox_path.unlink()
        box.run(3)
        report, records = box.platform()
        reset_seq = 5 + RESERVE + 1  # the killed run's start anchored record 5 and reserved up to 5 + RESERVE
        assert report.ok, report
        assert report.forks == () and report.chain_breaks == () and report.gaps == ()
        assert report.resets == ((reset_seq, "outbox_missing", 1, reset_seq - 1),)
        assert report.lost == ((11, reset_seq - 1),)
        assert report.upto == report.highest_seq == reset_seq + 3
        reset = next(record for record in records if record["type"] == "chain_reset")
        assert reset["seq"] == reset_seq and reset["prev"] == _digest(records[4]) == reset["body"]["known_digest"]
        assert reset["body"]["known_seq"] == 5
        assert [record["seq"] for record in records] == [*range(1, 11), *range(reset_seq, reset_seq + 4)]

    def test_after_a_clean_stop_the_reset_follows_the_last_record_and_declares_no_unused_seq(
        self, tmp_path: Path
    ) -> None:
        """A clean stop hands the unused reservation back: after the outbox is deleted the chain_reset is the next
        seq after the old head, its lost range ends at that head, and the platform sees no gap and no loss."""
        box = _Box(tmp_path)
        box.run(5)
        anchor = load_anchor(anchor_path(box.key_path))
        assert anchor is not None and (anchor.seq, anchor.reserved_upto) == (5, 5)
        box.outbox_path.unlink()
        box.run(3)
        report, records = box.platform()
        assert report.ok and report.forks == () and report.chain_breaks == () and report.gaps == (), report
        assert report.resets == ((6, "outbox_missing", 1, 5),)
        assert report.lost == ()
        reset = next(record for record in records if record["type"] == "chain_reset")
        assert reset["prev"] == _digest(records[4]) and reset["body"]["known_seq"] == 5
        assert [record["seq"] for record in records] == list(range(1, 10))

    def test_an_older_copy_put_back_is_set_aside_and_the_chain_resets(self, tmp_path: Path) -> None:
        """Roll the outbox back to an older copy: it is set aside, and a chain_reset above everything the anchor
        reserved follows (after a clean stop, right after the anchor's record); the platform sees no fork."""
        box = _Box(tmp_path)
        box.run(5)
        old = tmp_path / "old.sqlite"
        shutil.copy(box.outbox_path, old)
        box.run(5)
        for side in ("-wal", "-shm"):
            box.outbox_path.with_name(box.outbox_path.name + side).unlink(missing_ok=True)
        shutil.copy(old, box.outbox_path)
        box.run(2)
        report, records = box.platform()
        reset_seq = 11  # the clean stop anchored record 10 and reserved nothing above it
        assert report.ok, report
        assert report.forks == () and report.chain_breaks == ()
        assert report.resets == ((reset_seq, "outbox_rolled_back", 1, reset_seq - 1),)
        assert report.lost == ()
        reset = next(record for record in records if record["type"] == "chain_reset")
        assert reset["prev"] == _digest(records[9]) and reset["body"]["set_aside"].startswith("outbox.sqlite.")
        assert (tmp_path / reset["body"]["set_aside"]).exists()

    def test_a_clean_or_killed_run_never_resets(self, tmp_path: Path) -> None:
        """Runs one after another on an intact outbox (and one whose anchor lags it) make no chain_reset."""
        box = _Box(tmp_path)
        box.run(3)
        anchor = load_anchor(anchor_path(box.key_path))
        assert anchor is not None and anchor.seq == 3
        box.run(3)
        _, records = box.platform()
        assert [record["seq"] for record in records] == list(range(1, 7))
        assert all(record["type"] != "chain_reset" for record in records)


class TestBitRot:
    def test_a_changed_record_is_reported_when_read_for_sending(self, tmp_path: Path) -> None:
        """Flip one byte of a stored record: reading it for sending reports the damaged link once, and the
        records are still handed out as stored."""
        box = _Box(tmp_path)
        box.run(4)
        with sqlite3.connect(box.outbox_path) as db:
            db.execute(
                "UPDATE record SET canonical = CAST(replace(canonical, 'online', 'onlinf') AS BLOB) WHERE seq = 2"
            )
        found: list[Damage] = []
        reader = OutboxReader(box.outbox_path, found.append)
        assert [record.seq for record in reader.read(1, 4)] == [1, 2, 3, 4]
        assert [record.seq for record in reader.read(3, 4)] == [3, 4]
        assert [record.seq for record in reader.read(1, 4)] == [1, 2, 3, 4]
        assert found == [Damage(2, 2, "link", json.loads(_stored(box.outbox_path)[3][1])["prev"])]

    def test_a_changed_head_resets_at_the_next_start(self, tmp_path: Path) -> None:
        """The newest record's bytes changed: its signature fails at start, the outbox is set aside and a
        chain_reset (outbox_corrupt) follows the anchor's record."""
        box = _Box(tmp_path)
        box.run(4)
        with sqlite3.connect(box.outbox_path) as db:
            db.execute(
                "UPDATE record SET canonical = CAST(replace(canonical, 'online', 'onlinf') AS BLOB) WHERE seq = 4"
            )
        box.sent.pop(4)
        box.run(1)
        report, _ = box.platform()
        assert [reset[1] for reset in report.resets] == ["outbox_corrupt"]
        assert report.forks == () and report.chain_breaks == ()


class TestRefusedOutbox:
    def test_a_corrupt_header_is_refused_naming_the_recover_command(self, tmp_path: Path) -> None:
        """An outbox whose first page is garbage is refused with the way out, and nothing is written to it."""
        box = _Box(tmp_path)
        box.run(2)
        with box.outbox_path.open("r+b") as handle:
            handle.write(b"\xff" * 100)
        damaged = box.outbox_path.read_bytes()
        with pytest.raises(OutboxRefused, match="station-agent recover"):
            box.run(1)
        assert box.outbox_path.read_bytes() == damaged


@pytest.mark.slow
class TestAgentProcess:
    def test_refused_outbox_exits_2_then_recover_and_a_deleted_outbox_reset_visibly(self, rig: StationRig) -> None:
        """The agent as a process: a corrupt header exits 2 naming `station-agent recover`; recover, start, and
        the platform gets a chain_reset (outbox_refused); delete the outbox, start again, another reset; the
        platform's report stays ok, with no fork and no chain break."""
        outbox = rig.workdir / "outbox.sqlite"
        rig.start_agent()
        rig.wait_platform_caught_up()
        assert rig.stop_agent() == 0
        with outbox.open("r+b") as handle:
            handle.write(b"\xff" * 100)
        rig.start_agent()
        assert rig.process is not None
        assert rig.process.wait(30) == 2
        assert "station-agent recover --config" in rig.agent_log()
        recovered = subprocess.run(
            [sys.executable, "-m", "agent.cli", "recover", "--config", str(rig.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert recovered.returncode == 0, recovered.stderr
        rig.start_agent()
        rig.wait_platform_caught_up()
        assert rig.stop_agent() == 0
        for side in ("", "-wal", "-shm"):
            outbox.with_name(outbox.name + side).unlink(missing_ok=True)
        rig.start_agent()
        rig.wait_platform_caught_up()
        assert rig.stop_agent() == 0
        report = rig.platform_report()
        assert report.ok, report
        assert report.forks == () and report.chain_breaks == () and report.gaps == ()
        assert [reason for _, reason, _, _ in report.resets] == ["outbox_refused", "outbox_missing"]
        anchor = load_anchor(anchor_path(rig.workdir / "keys" / "device.key"))
        assert anchor is not None and anchor.seq == rig.head_seq() == report.highest_seq
