"""The store and the audit, without MQTT: out-of-order arrival, holes, duplicates, forks, breaks, tampering."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_platform_signer import TinySigner, canonical, sha256_hex

from simulators.platform.audit import audit
from simulators.platform.keys import StationKey, keyring
from simulators.platform.store import Store, StoreError
from simulators.platform.verify import verify_message

STATION = "ST-0001"


@pytest.fixture
def signer() -> TinySigner:
    return TinySigner(STATION)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(tmp_path / "platform.sqlite") as opened:
        yield opened


def send(store: Store, signer: TinySigner, records: list[dict[str, Any]]) -> int:
    """Verify and ingest one message; the upto the platform would ack."""
    verdict = verify_message(signer.message(records), STATION, {signer.kid: signer.platform_key()})
    return store.ingest(STATION, verdict).upto


def test_in_order_chain_moves_upto(store: Store, signer: TinySigner) -> None:
    """Each message moves upto to its last seq when everything before it is here."""
    chain = signer.chain(5)
    assert send(store, signer, chain[:2]) == 2
    assert send(store, signer, chain[2:]) == 5
    report = store.station_report(STATION)
    assert (report.accepted, report.upto, report.highest_seq, report.gaps, report.ok) == (5, 5, 5, (), True)


def test_live_records_ahead_of_the_backlog_wait_above_the_hole(store: Store, signer: TinySigner) -> None:
    """Records above a hole are kept, not acked; once the hole fills upto jumps past them."""
    chain = signer.chain(12)
    assert send(store, signer, chain[10:]) == 0
    assert send(store, signer, chain[5:10]) == 0
    assert store.station_report(STATION).gaps == ((1, 5),)
    assert send(store, signer, chain[:5]) == 12
    report = store.station_report(STATION)
    assert (report.upto, report.gaps, report.chain_breaks, report.ok) == (12, (), (), True)


def test_gaps_are_the_missing_ranges_below_the_highest_seq(store: Store, signer: TinySigner) -> None:
    """Missing seqs are reported as inclusive ranges and hold upto below them."""
    chain = signer.chain(10)
    for part in (chain[0:2], chain[3:4], chain[7:10]):
        send(store, signer, part)
    report = store.station_report(STATION)
    assert (report.upto, report.highest_seq, report.gaps, report.ok) == (2, 10, ((3, 3), (5, 7)), False)


def test_identical_resend_is_a_harmless_duplicate(store: Store, signer: TinySigner) -> None:
    """The same records again are counted as duplicates and change nothing else."""
    chain = signer.chain(3)
    send(store, signer, chain)
    assert send(store, signer, chain[1:]) == 3
    report = store.station_report(STATION)
    assert (report.accepted, report.duplicates, report.ok) == (3, 2, True)


def test_fork_is_kept_aside_and_never_replaces_the_stored_record(store: Store, signer: TinySigner) -> None:
    """A different signed record for a stored seq is a fork: reported, and the first one stays."""
    chain = signer.chain(3)
    send(store, signer, chain)
    other = signer.record(2, chain[0]["prev"], body={"n": 999})
    assert send(store, signer, [other]) == 3
    report = store.station_report(STATION)
    assert (report.forks, report.accepted, report.ok) == ((2,), 3, False)
    stored = [row for row in store.rows() if b'"seq":2' in row.canonical]
    assert [b'"n":2' in row.canonical for row in stored] == [True, False]


def test_a_message_of_old_and_new_records_counts_each_and_links_across(store: Store, signer: TinySigner) -> None:
    """Re-sent records are duplicates, the new ones beyond them link to what is stored, upto moves past both."""
    chain = signer.chain(5)
    send(store, signer, chain[:3])
    assert send(store, signer, chain[1:]) == 5
    report = store.station_report(STATION)
    assert (report.accepted, report.duplicates, report.chain_breaks, report.ok) == (5, 2, (), True)


def test_a_record_linking_to_a_fork_breaks_the_chain(store: Store, signer: TinySigner) -> None:
    """Links are to the stored record: a new record whose prev is the fork's hash, in the same message, breaks."""
    chain = signer.chain(2)
    send(store, signer, chain)
    fork = signer.record(2, chain[1]["prev"], body={"n": -2})
    after_fork = signer.record(3, sha256_hex(canonical(fork)))
    assert send(store, signer, [fork, after_fork]) == 2
    report = store.station_report(STATION)
    assert (report.forks, report.chain_breaks, report.accepted) == ((2,), (3,), 3)


def test_stored_bytes_rewritten_as_text_make_a_resend_a_fork(tmp_path: Path, signer: TinySigner) -> None:
    """A row someone rewrote as text equals nothing a station sends: the re-sent record is kept aside as a fork."""
    db = tmp_path / "p.sqlite"
    chain = signer.chain(2)
    with Store(db) as store:
        send(store, signer, chain)
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE records SET canonical = CAST(canonical AS TEXT) WHERE seq = 2")
    with Store(db) as store:
        assert send(store, signer, chain[1:]) == 2
        assert store.station_report(STATION).forks == (2,)


def test_broken_prev_is_a_chain_break_that_stops_upto(store: Store, signer: TinySigner) -> None:
    """A record whose prev is not the hash of the one before breaks the chain at its seq."""
    chain = signer.chain(3)
    chain[2]["prev"] = "ab" * 32
    chain.append(signer.record(4, sha256_hex(canonical(chain[2]))))
    assert send(store, signer, chain) == 2
    report = store.station_report(STATION)
    assert (report.chain_breaks, report.upto, report.accepted, report.gaps, report.ok) == ((3,), 2, 4, (), False)


def test_break_is_found_when_the_hole_below_it_fills(store: Store, signer: TinySigner) -> None:
    """A link is checked as soon as both ends are stored, whichever came first."""
    chain = signer.chain(3)
    chain[2]["prev"] = "cd" * 32
    send(store, signer, chain[2:])
    assert store.station_report(STATION).chain_breaks == ()
    assert send(store, signer, chain[:2]) == 2
    assert store.station_report(STATION).chain_breaks == (3,)


def test_first_record_must_link_to_zeros(store: Store, signer: TinySigner) -> None:
    """Seq 1 with any prev but 64 zeros is a chain break at 1."""
    record = signer.record(1, "ef" * 32)
    assert send(store, signer, [record]) == 0
    assert store.station_report(STATION).chain_breaks == (1,)


def test_state_survives_reopening(tmp_path: Path, signer: TinySigner) -> None:
    """Everything counted is in the file: a new Store on it reports the same."""
    chain = signer.chain(4)
    with Store(tmp_path / "p.sqlite") as first:
        send(first, signer, chain[:2])
        send(first, signer, chain[3:])
        send(first, signer, chain[:1])
        before = first.station_report(STATION)
    with Store(tmp_path / "p.sqlite") as second:
        assert second.station_report(STATION) == before
        assert send(second, signer, chain[2:3]) == 4


def test_audit_reverifies_a_clean_database(tmp_path: Path, signer: TinySigner) -> None:
    """An audit of an untouched database reports what the receiver reported, from the bytes alone."""
    db = tmp_path / "p.sqlite"
    chain = signer.chain(6)
    with Store(db) as store:
        send(store, signer, chain[:3])
        send(store, signer, chain[1:3])
        send(store, signer, chain[4:])
        received = store.station_report(STATION)
    report = audit(db, keyring([StationKey(STATION, signer.platform_key())])).station(STATION)
    assert report == received
    assert (report.upto, report.gaps, report.duplicates) == (3, ((4, 4),), 2)


def test_audit_finds_tampered_bytes_and_forged_chain_state(tmp_path: Path, signer: TinySigner) -> None:
    """Changing a stored record, or the derived upto, is found: the audit trusts only bytes and keys."""
    db = tmp_path / "p.sqlite"
    with Store(db) as store:
        send(store, signer, signer.chain(3))
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE records SET canonical = replace(canonical, '\"n\":2', '\"n\":7') WHERE seq = 2")
        raw.execute("UPDATE stations SET upto = 99")
    report = audit(db, keyring([StationKey(STATION, signer.platform_key())])).station(STATION)
    assert report.bad_signatures == 1
    assert (report.upto, report.gaps, report.ok) == (1, ((2, 2),), False)


def test_audit_counts_rows_of_stations_it_has_no_key_for(tmp_path: Path, signer: TinySigner) -> None:
    """Stored records of a station not given to the audit are counted under unknown_stations."""
    db = tmp_path / "p.sqlite"
    with Store(db) as store:
        send(store, signer, signer.chain(2))
    other = TinySigner("ST-0002")
    report = audit(db, keyring([StationKey("ST-0002", other.platform_key())]))
    assert report.unknown_stations == {STATION: 2}
    assert report.station("ST-0002").accepted == 0


def test_audit_of_a_missing_database_names_the_file(tmp_path: Path) -> None:
    """The error says which file and what to give instead."""
    missing = tmp_path / "nothing.sqlite"
    with pytest.raises(StoreError, match="does not exist; give the --db file the receiver wrote"):
        audit(missing, keyring([]))


def test_a_database_of_something_else_is_refused(tmp_path: Path) -> None:
    """A SQLite file that is not a platform database is not written into."""
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as raw:
        raw.execute("PRAGMA user_version = 7")
    with pytest.raises(StoreError, match="not a platform database of schema 1 \\(found 7\\)"):
        Store(other)


def _corrupt_alarm(signer: TinySigner, chain: list[dict[str, Any]], damaged: int, next_prev: str) -> dict[str, Any]:
    """The station's signed `outbox_corrupt` alarm after `chain`, declaring record `damaged` lost."""
    evidence = {"first_seq": damaged, "last_seq": damaged, "check": "link", "next_prev": next_prev}
    body = {"kind": "outbox_corrupt", "state": "raised", "subject": "outbox", "evidence": evidence}
    return signer.record(len(chain) + 1, sha256_hex(canonical(chain[-1])), body, "alarm")


def test_a_range_declared_damaged_is_lost_and_upto_passes_it(tmp_path: Path, signer: TinySigner) -> None:
    """Record 5 never arrives whole; the alarm declaring it damaged, with the digest record 6 links to, lets
    upto pass it and reports it lost, not as a gap; the audit finds the same from the bytes."""
    db = tmp_path / "p.sqlite"
    chain = signer.chain(10)
    with Store(db) as store:
        assert send(store, signer, chain[:4]) == 4
        assert send(store, signer, chain[5:]) == 4
        assert send(store, signer, [_corrupt_alarm(signer, chain, 5, chain[5]["prev"])]) == 11
        received = store.station_report(STATION)
    assert (received.upto, received.gaps, received.lost, received.chain_breaks) == (11, (), ((5, 5),), ())
    assert audit(db, keyring([StationKey(STATION, signer.platform_key())])).station(STATION) == received


def test_a_declaration_naming_another_digest_does_not_move_upto(store: Store, signer: TinySigner) -> None:
    """A declared range whose digest is not what the next record links to explains nothing: upto stays."""
    chain = signer.chain(10)
    send(store, signer, chain[:4])
    send(store, signer, chain[5:])
    assert send(store, signer, [_corrupt_alarm(signer, chain, 5, "ab" * 32)]) == 4


def _statement_steps(store: Store, action: Callable[[], object]) -> int:
    """How many SQLite virtual machine instructions `action` runs on `store`'s connection: work, not time."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    store._db.set_progress_handler(count, 1)
    try:
        action()
    finally:
        store._db.set_progress_handler(None, 1)
    return steps


def test_taking_a_message_costs_the_same_work_however_long_the_history(tmp_path: Path, signer: TinySigner) -> None:
    """A message is checked against its neighbourhood and the station's chain_resets, not by walking every stored
    record, so SQLite does no more work for it, nor for the report, after 400 records than after 40; a file
    written without the lookups' indexes gets them when it is opened."""
    chain = signer.chain(402)
    steps: dict[object, int] = {}
    for held in (40, 400):
        db = tmp_path / f"held-{held}.sqlite"
        with Store(db) as store:
            send(store, signer, chain[:held])
        with sqlite3.connect(db) as raw:
            raw.executescript("DROP INDEX IF EXISTS records_chain_resets; DROP INDEX IF EXISTS records_alarms;")
        with Store(db) as store:
            verdict = verify_message(signer.message([chain[held]]), STATION, {signer.kid: signer.platform_key()})
            steps[held] = _statement_steps(store, lambda store=store, verdict=verdict: store.ingest(STATION, verdict))
            assert store.upto(STATION) == held + 1
            steps[f"report-{held}"] = _statement_steps(store, lambda store=store: store.station_report(STATION))
    assert steps[400] <= steps[40] * 1.1, steps
    assert steps["report-400"] <= steps["report-40"] * 1.1, steps


def test_a_commit_that_fails_leaves_no_transaction_open(store: Store, signer: TinySigner) -> None:
    """A COMMIT refused part way (interrupted here, as a full disk or a busy reader can refuse one) leaves
    SQLite's transaction open; the store rolls it back, so the message fails alone and the next one is stored."""
    chain = signer.chain(4)
    statement = [""]
    store._db.set_trace_callback(lambda sql: statement.__setitem__(0, sql))
    store._db.set_progress_handler(lambda: 1 if statement[0] == "COMMIT" else 0, 1)
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        send(store, signer, chain[:2])
    store._db.set_progress_handler(None, 1)
    assert send(store, signer, chain[:2]) == 2
    assert send(store, signer, chain[2:]) == 4
