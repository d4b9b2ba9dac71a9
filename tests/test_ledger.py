"""The ledger: sealing, the outbox's durability rules and the recorder's behaviour when the disk fills."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from raw_body import RawBody
from support.waiting import wait_until

from agent.clock import SystemClock, now_of
from agent.contract.records import AlarmBody, AlarmState, Cursor, HeartbeatBody, RecordIntent, RecordType
from agent.ledger.chain import GENESIS_PREV, ChainHead, Signer, seal
from agent.ledger.keys import DeviceKey, KeyFileError, generate_key_file, load_key_file
from agent.ledger.outbox import Outbox, OutboxFull, OutboxReader
from agent.ledger.recorder import FIRST_BATCH, MAX_BATCH, Recorder, RecorderStatus, next_batch_limit
from agent.ledger.settings import OutboxSection
from agent.ledger.suites import Suite, kid_of

STATION = "TEST-0001"


FIXED_SECRET_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
"""`cryptography`'s key, the outside check of the signatures the agent's own binding makes with the same seed."""


def fixed_key() -> DeviceKey:
    return DeviceKey.from_private(FIXED_SECRET_KEY)


def heartbeat(ts_ms: int, n: int = 0) -> RecordIntent:
    return HeartbeatBody(
        interval_s=60, uptime_s=n, uplink="offline", unacked=n, devices_online=0, devices_total=0
    ).intent(ts_ms)


class TestSealing:
    def test_first_record_links_to_genesis_and_each_next_to_the_previous_bytes(self) -> None:
        """seq starts at 1 with 64 zeros as prev; every later prev is SHA-256 of the previous canonical bytes."""
        records, head = seal([heartbeat(1000 + i) for i in range(3)], ChainHead.genesis(), STATION, fixed_key())
        assert [r.seq for r in records] == [1, 2, 3]
        parsed = [json.loads(r.canonical) for r in records]
        assert parsed[0]["prev"] == GENESIS_PREV
        assert parsed[1]["prev"] == hashlib.sha256(records[0].canonical).hexdigest()
        assert parsed[2]["prev"] == hashlib.sha256(records[1].canonical).hexdigest()
        assert head == ChainHead(3, hashlib.sha256(records[2].canonical).hexdigest(), 1002)

    def test_record_has_exactly_the_contract_keys_and_a_verifiable_signature(self) -> None:
        """The record is v/station/seq/ts/type/body/prev and the signature verifies with the raw public key."""
        key = fixed_key()
        (record,), _ = seal([heartbeat(1_764_231_302_113)], ChainHead.genesis(), STATION, key)
        parsed = json.loads(record.canonical)
        assert sorted(parsed) == ["body", "prev", "seq", "station", "ts", "type", "v"]
        assert parsed["ts"] == "2025-11-27T08:15:02.113Z"
        assert parsed["v"] == 1 and parsed["type"] == "heartbeat" and parsed["station"] == STATION
        FIXED_SECRET_KEY.public_key().verify(record.sig, record.canonical)
        assert len(base64.b64encode(record.sig)) == 88

    def test_canonical_bytes_are_sorted_and_compact(self) -> None:
        """Canonical bytes follow RFC 8785: sorted keys, no spaces, UTF-8 as is."""
        intent = RecordIntent(RecordType.EVENT, 0, RawBody({"z": 1, "a": "油", "m": [True, None]}))
        (record,), _ = seal([intent], ChainHead.genesis(), "S", fixed_key())
        assert (
            record.canonical
            == (
                '{"body":{"a":"油","m":[true,null],"z":1},"prev":"' + GENESIS_PREV + '","seq":1,"station":"S",'
                '"ts":"1970-01-01T00:00:00.000Z","type":"event","v":1}'
            ).encode()
        )

    def test_kid_is_first_eight_bytes_of_sha256_of_raw_public_key(self) -> None:
        """kid = lowercase hex of SHA-256(raw public key)[:8]."""
        key = fixed_key()
        raw = FIXED_SECRET_KEY.public_key().public_bytes_raw()
        assert key.kid == kid_of(Suite.ED25519, raw) == hashlib.sha256(raw).hexdigest()[:16]

    def test_a_burst_signed_on_several_threads_is_the_same_as_signed_on_one(self) -> None:
        """Spreading a burst's signatures over threads changes nothing in the records, order included."""
        intents = [heartbeat(i, n=i) for i in range(100)]
        one, head_one = seal(intents, ChainHead.genesis(), STATION, fixed_key())
        signer = Signer(fixed_key(), workers=3)
        many, head_many = seal(intents, ChainHead.genesis(), STATION, fixed_key(), signer)
        signer.close()
        assert head_one == head_many
        assert [(r.canonical, r.sig) for r in one] == [(r.canonical, r.sig) for r in many]


class TestKeyFiles:
    def test_keygen_writes_mode_0600_and_refuses_to_overwrite(self, tmp_path: Path) -> None:
        """A new key file is 0600; a second keygen on the same path fails and leaves the first key."""
        path = tmp_path / "keys" / "device.key"
        key = generate_key_file(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        before = path.read_bytes()
        with pytest.raises(KeyFileError, match="never overwritten"):
            generate_key_file(path)
        assert path.read_bytes() == before
        assert load_key_file(path).kid == key.kid

    def test_missing_key_says_how_to_make_one(self, tmp_path: Path) -> None:
        """A missing key names the keygen command."""
        with pytest.raises(KeyFileError, match="station-agent keygen"):
            load_key_file(tmp_path / "nope.key")

    def test_key_readable_by_others_is_refused(self, tmp_path: Path) -> None:
        """A key with group/other permissions is refused with the chmod that fixes it."""
        path = tmp_path / "device.key"
        generate_key_file(path)
        path.chmod(0o644)
        with pytest.raises(KeyFileError, match="chmod 600"):
            load_key_file(path)

    def test_garbage_key_file_is_refused(self, tmp_path: Path) -> None:
        """A file that is not a PEM private key is named as such."""
        path = tmp_path / "device.key"
        path.write_bytes(b"not a key")
        path.chmod(0o600)
        with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
            load_key_file(path)

    @pytest.mark.skipif(os.getuid() == 0, reason="root reads any file")
    def test_unreadable_key_is_refused(self, tmp_path: Path) -> None:
        """A key the user cannot read is named with the user's uid."""
        path = tmp_path / "device.key"
        generate_key_file(path)
        path.chmod(0o000)
        with pytest.raises(KeyFileError, match="cannot be read"):
            load_key_file(path)


class TestOutbox:
    def test_records_and_head_survive_reopening(self, tmp_path: Path) -> None:
        """After close and reopen, head is the last record and the records read back byte for byte."""
        path = tmp_path / "outbox.sqlite"
        outbox = Outbox(path, 64 * 1024**2)
        records, head = seal([heartbeat(i) for i in range(5)], outbox.head(), STATION, fixed_key())
        outbox.append(records)
        outbox.close()
        reopened = Outbox(path, 64 * 1024**2)
        assert reopened.head() == head
        stored = list(OutboxReader(path).read(1, 5))
        assert [(s.seq, s.canonical, s.sig) for s in stored] == [(r.seq, r.canonical, r.sig) for r in records]

    def test_outbox_uses_wal_and_full_synchronous(self, tmp_path: Path) -> None:
        """The file is in WAL mode and commits fsync (synchronous=FULL)."""
        outbox = Outbox(tmp_path / "o.sqlite", 64 * 1024**2)
        assert outbox._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2

    def test_cursors_commit_with_their_record(self, tmp_path: Path) -> None:
        """A cursor carried by an intent is stored in the same commit as the record."""
        outbox = Outbox(tmp_path / "o.sqlite", 64 * 1024**2)
        intent = RecordIntent(RecordType.TRANSACTION, 1, RawBody({"n": 1}), (Cursor("nozzle:N1:txn", 41),))
        records, _ = seal([intent], outbox.head(), STATION, fixed_key())
        outbox.append(records)
        assert outbox.cursors() == {"nozzle:N1:txn": 41}

    def test_a_cursor_moved_by_several_records_of_one_commit_keeps_the_last_ones_value(self, tmp_path: Path) -> None:
        """Within one commit, each cursor holds the value of the last record that carries it, whatever the order of
        keys, and a cursor already stored is moved to it; a key carried by no record is left as it was."""
        outbox = Outbox(tmp_path / "o.sqlite", 64 * 1024**2)
        first, head = seal(
            [RecordIntent(RecordType.TRANSACTION, 1, RawBody({"n": 0}), (Cursor("still", 5), Cursor("txn:N1", 1)))],
            outbox.head(),
            STATION,
            fixed_key(),
        )
        outbox.append(first)
        carried = [
            (Cursor("txn:N1", 2), Cursor("txn:N2", 70)),
            (Cursor("txn:N2", 71),),
            (Cursor("txn:N1", 3), Cursor("txn:N2", 72)),
            (Cursor("txn:N1", 4),),
        ]
        intents = [RecordIntent(RecordType.TRANSACTION, 2 + n, RawBody({"n": n}), c) for n, c in enumerate(carried)]
        records, _ = seal(intents, head, STATION, fixed_key())
        outbox.append(records)
        one_by_one: dict[str, int] = {}
        for record in [*first, *records]:
            for cursor in record.cursors:
                one_by_one[cursor.key] = cursor.value
        assert outbox.cursors() == one_by_one == {"still": 5, "txn:N1": 4, "txn:N2": 72}

    def test_full_outbox_raises_and_keeps_everything_stored(self, tmp_path: Path) -> None:
        """At the size cap, append raises OutboxFull and the records already stored are intact."""
        outbox = Outbox(tmp_path / "o.sqlite", 1024**2)
        outbox.set_max_bytes(300 * 1024)
        head = outbox.head()
        stored = 0
        with pytest.raises(OutboxFull):
            for _ in range(1000):
                records, next_head = seal(
                    [RecordIntent(RecordType.EVENT, 0, RawBody({"pad": "x" * 2000}))] * 20, head, STATION, fixed_key()
                )
                outbox.append(records)
                head, stored = next_head, stored + len(records)
        assert stored > 0
        assert outbox.head() == head
        assert len(list(OutboxReader(outbox.path).read(1, 10**9))) == stored

    def test_prune_keeps_unacked_records(self, tmp_path: Path) -> None:
        """Pruning deletes only acknowledged records beyond retention, never one above acked_upto."""
        outbox = Outbox(tmp_path / "o.sqlite", 64 * 1024**2)
        records, head = seal([heartbeat(i * 1000) for i in range(10)], outbox.head(), STATION, fixed_key())
        outbox.append(records)
        assert outbox.prune(acked_upto=6, keep_after_ts_ms=4000, keep_bytes=None) == 4
        assert outbox.prune(acked_upto=6, keep_after_ts_ms=None, keep_bytes=None) == 2
        assert [r.seq for r in OutboxReader(outbox.path).read(1, 100)] == [7, 8, 9, 10]
        assert outbox.head() == head

    def test_head_survives_pruning_everything(self, tmp_path: Path) -> None:
        """If every record is acked and pruned, the chain continues where it was, even after reopening."""
        path = tmp_path / "o.sqlite"
        outbox = Outbox(path, 64 * 1024**2)
        records, head = seal([heartbeat(i) for i in range(3)], outbox.head(), STATION, fixed_key())
        outbox.append(records)
        outbox.prune(acked_upto=3, keep_after_ts_ms=None, keep_bytes=None)
        outbox.close()
        assert Outbox(path, 64 * 1024**2).head() == head


class TestRecorder:
    def _recorder(self, tmp_path: Path, max_bytes: int = 64 * 1024**2, **settings: object) -> tuple[Recorder, Outbox]:
        outbox = Outbox(tmp_path / "outbox.sqlite", max_bytes)
        recorder = Recorder(
            outbox, STATION, fixed_key(), OutboxSection(path=outbox.path, retry_s=0.05, **settings), SystemClock()
        )
        return recorder, outbox

    def test_a_burst_is_group_committed(self, tmp_path: Path) -> None:
        """Thousands of intents queued together take far fewer commits than records: one per MAX_BATCH, and the
        few smaller ones a burst starts with (FIRST_BATCH, doubling)."""
        recorder, _ = self._recorder(tmp_path)
        for i in range(3000):
            recorder.submit(heartbeat(i))
        recorder.start()
        recorder.stop()
        status = recorder.status()
        assert status.head_seq == status.committed == 3000
        ramp_commits = (MAX_BATCH // FIRST_BATCH).bit_length() - 1
        assert status.commits <= -(-3000 // MAX_BATCH) + ramp_commits

    def test_a_burst_starts_with_a_small_commit_and_each_next_is_at_most_twice_the_one_before(
        self, tmp_path: Path
    ) -> None:
        """After a quiet spell, a burst's first commit holds FIRST_BATCH records (so the uplink has something to
        send at once), each later one twice the one before up to MAX_BATCH; the next burst starts small again."""
        recorder, _ = self._recorder(tmp_path)
        heads: list[int] = []

        def steps(count: int) -> list[int]:
            for i in range(count):
                recorder.submit(heartbeat(i))
            before = recorder.status().head_seq
            while recorder.status().head_seq < before + count:
                assert recorder.step(now_of(SystemClock()))
                heads.append(recorder.status().head_seq)
            sizes = [b - a for a, b in itertools.pairwise([before, *heads])]
            heads.clear()
            return sizes

        assert steps(1) == [1]
        assert steps(1000) == [FIRST_BATCH, 2 * FIRST_BATCH, 4 * FIRST_BATCH, MAX_BATCH, MAX_BATCH, MAX_BATCH, 8]
        assert steps(100) == [FIRST_BATCH, 2 * FIRST_BATCH, 4]

    @pytest.mark.parametrize(
        ("committed", "limit"),
        [(0, FIRST_BATCH), (1, FIRST_BATCH), (FIRST_BATCH, 2 * FIRST_BATCH), (100, 200), (200, MAX_BATCH)],
    )
    def test_the_next_commit_may_hold_twice_the_last_within_the_bounds(self, committed: int, limit: int) -> None:
        """A steady flow keeps its batch size (a commit of 100 lets the next hold 200); a trickle's commits of one
        leave room for FIRST_BATCH; nothing goes above MAX_BATCH."""
        assert next_batch_limit(committed) == limit

    def test_a_body_the_contract_cannot_carry_is_replaced_by_an_alarm_and_the_rest_goes_on(
        self, tmp_path: Path
    ) -> None:
        """An intent with a float in its body is never sealed: a record_unsealable alarm takes its place, naming
        its type, and the intents around it are sealed without a gap."""
        recorder, outbox = self._recorder(tmp_path)
        recorder.submit(heartbeat(1, n=1))
        recorder.submit(RecordIntent(RecordType.EVENT, 2, RawBody({"volume_l": 41.23})))  # type: ignore[dict-item]
        recorder.submit(heartbeat(3, n=3))
        recorder.start()
        recorder.stop()
        stored = [json.loads(r.canonical) for r in OutboxReader(outbox.path).read(1, 10)]
        assert [(r["seq"], r["type"]) for r in stored] == [(1, "heartbeat"), (2, "alarm"), (3, "heartbeat")]
        alarm = stored[1]["body"]
        assert (alarm["kind"], alarm["state"], alarm["subject"]) == ("record_unsealable", "raised", "event")
        assert alarm["evidence"]["record_type"] == "event" and alarm["evidence"]["count"] == 1
        assert "float" in alarm["evidence"]["reason"]

    def test_unsealable_records_are_counted_and_the_alarm_clears_when_their_type_seals_again(
        self, tmp_path: Path
    ) -> None:
        """Three heartbeats with a count beyond 2^53 make one raised alarm; the next sane heartbeat is sealed and
        the alarm is cleared with the count of 3."""
        recorder, outbox = self._recorder(tmp_path)
        for n in range(3):
            recorder.submit(RecordIntent(RecordType.HEARTBEAT, n, RawBody({"uptime_s": 2**53 + n})))
        recorder.submit(heartbeat(5, n=5))
        recorder.start()
        recorder.stop()
        stored = [json.loads(r.canonical) for r in OutboxReader(outbox.path).read(1, 10)]
        assert [(r["type"], r["body"].get("state")) for r in stored] == [
            ("alarm", "raised"),
            ("heartbeat", None),
            ("alarm", "cleared"),
        ]
        assert stored[2]["body"]["evidence"] == {"record_type": "heartbeat", "count": 3}

    def test_stop_writes_everything_submitted(self, tmp_path: Path) -> None:
        """Every intent submitted before stop is a record after it, in order."""
        recorder, outbox = self._recorder(tmp_path)
        recorder.start()
        for i in range(50):
            recorder.submit(heartbeat(i, n=i))
        recorder.stop()
        seqs = [json.loads(r.canonical)["body"]["uptime_s"] for r in OutboxReader(outbox.path).read(1, 100)]
        assert seqs == list(range(50))

    def test_the_first_retry_that_finds_room_writes_every_waiting_record_so_none_after_it_is_dropped(
        self, tmp_path: Path
    ) -> None:
        """Once a full outbox has room again, its first retry writes all that waited (in the burst's growing
        commits) and leaves the trouble: what arrives after it is not dropped for a pending list still full."""
        recorder, outbox = self._recorder(tmp_path, pending_limit=100)
        outbox.set_max_bytes(256 * 1024)
        big = RecordIntent(RecordType.EVENT, 0, RawBody({"pad": "x" * 3000}))
        for _ in range(170):
            recorder.submit(big)
        for _ in range(20):
            recorder.step(now_of(SystemClock()))
            if recorder.status().state == "full":
                break
        waiting = recorder.status().pending
        assert recorder.status().state == "full" and waiting > FIRST_BATCH + 1
        outbox.set_max_bytes(64 * 1024**2)
        recorder.note_acked(recorder.status().head_seq)
        recorder.step(now_of(SystemClock()))
        assert (recorder.status().state, recorder.status().pending) == ("ok", 0)
        for i in range(100):
            recorder.submit(heartbeat(i, n=i))
        recorder.start()
        recorder.stop()
        stored = [json.loads(r.canonical) for r in OutboxReader(outbox.path).read(1, 10**6)]
        assert [r["seq"] for r in stored] == list(range(1, 170 + 2 + 100 + 1))
        assert [r["body"]["uptime_s"] for r in stored if r["type"] == "heartbeat"] == list(range(100))
        cleared = [r["body"] for r in stored if r["type"] == "alarm"][-1]
        assert (cleared["state"], cleared["evidence"]["dropped"]) == ("cleared", 0)

    def test_full_disk_raises_alarm_then_recovers_when_acks_free_space(self, tmp_path: Path) -> None:
        """When the outbox is full, status turns red and intents wait (up to pending_limit, the rest counted);
        as acks let it prune, the waiting records go in, bracketed by one raised and one cleared alarm."""
        recorder, outbox = self._recorder(tmp_path, max_bytes=1024**2, pending_limit=100)
        outbox.set_max_bytes(256 * 1024)
        recorder.start()
        big = RecordIntent(RecordType.EVENT, 0, RawBody({"pad": "x" * 3000}))
        for _ in range(200):
            recorder.submit(big)

        def when_full() -> RecorderStatus | None:
            status = recorder.status()
            return status if status.state == "full" else None

        full = wait_until(when_full, 10.0, "the outbox to be full")
        stored_before, waiting_before = full.head_seq, full.pending
        assert 0 < stored_before < 200
        assert waiting_before == 200 - stored_before + 1
        for _ in range(300):
            recorder.submit(big)
        wait_until(lambda: recorder.status().dropped == 300, 10.0, "300 records dropped")
        # A retry (every retry_s) may find room for one more record meanwhile, so a record that waited may
        # now be stored: none of the 300 got in, and every record that waited is stored or still waits.
        after = recorder.status()
        assert after.pending <= waiting_before
        assert after.head_seq + after.pending == stored_before + waiting_before
        reader, delivered = OutboxReader(outbox.path), []
        for _ in range(20):
            head = recorder.status().head_seq
            delivered += [json.loads(r.canonical) for r in reader.read(len(delivered) + 1, head)]
            recorder.note_acked(head)
            wait_until(
                lambda acked=head: (status := recorder.status()).state == "ok" or status.head_seq > acked,
                10.0,
                "the acked records to make room for the waiting ones",
            )
            if recorder.status().state == "ok":
                break
        wait_until(
            lambda: recorder.status().state == "ok" and recorder.status().pending == 0,
            10.0,
            "the outbox to drain and the alarm to clear",
        )
        recorder.stop()
        stored = delivered + [json.loads(r.canonical) for r in reader.read(len(delivered) + 1, 10**6)]
        seqs = [r["seq"] for r in stored]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        alarms = [r for r in stored if r["type"] == "alarm"]
        assert [(a["body"]["kind"], a["body"]["state"]) for a in alarms] == [
            ("outbox_full", "raised"),
            ("outbox_full", "cleared"),
        ]
        assert alarms[1]["body"]["evidence"]["dropped"] == 300
        assert alarms[1]["body"]["evidence"]["dropped_event"] == 300
        assert len(stored) == 200 + 2
        assert alarms[0]["seq"] == stored_before + 1
        assert isinstance(AlarmState(alarms[0]["body"]["state"]), AlarmState)
        assert AlarmBody.record_type == RecordType.ALARM
