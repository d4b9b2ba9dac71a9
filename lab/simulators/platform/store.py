"""The platform's durable memory: every record that passed its own checks, and what the chain says of them.

Records are kept by (station, seq) whatever order they arrive in, because the agent sends live records ahead
of an old backlog it is still draining. The chain is checked link by link as soon as both ends of a link are
here, so a hole that fills later is checked then. `upto` only moves forward: it is the highest N such that
1..N are all stored and every link among them checks, which is exactly what an ack may promise.

A stored record is never replaced. A different record for a stored seq is a fork and is kept aside, so that
the evidence survives; the same record again is a duplicate and only counted. One message is one
transaction, committed with `synchronous=FULL`, so an ack sent after `ingest` returns is a promise the disk
keeps through a power cut.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from simulators.platform.contract import CHAIN_RESET, GENESIS_PREV
from simulators.platform.report import StationReport
from simulators.platform.verify import (
    DeclaredDamage,
    SignedRecord,
    Verdict,
    declared_damage,
    declared_loss,
    links,
    predecessor,
)

SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE stations (
    station TEXT PRIMARY KEY,
    upto INTEGER NOT NULL DEFAULT 0,
    accepted INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    status TEXT
);
CREATE TABLE records (
    station TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    prev TEXT NOT NULL,
    digest TEXT NOT NULL,
    kid TEXT NOT NULL,
    sig TEXT NOT NULL,
    canonical BLOB NOT NULL,
    PRIMARY KEY (station, seq)
) WITHOUT ROWID;
CREATE TABLE forks (
    station TEXT NOT NULL,
    seq INTEGER NOT NULL,
    digest TEXT NOT NULL,
    kid TEXT NOT NULL,
    sig TEXT NOT NULL,
    canonical BLOB NOT NULL,
    PRIMARY KEY (station, seq, digest)
) WITHOUT ROWID;
CREATE TABLE chain_breaks (
    station TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (station, seq)
) WITHOUT ROWID;
CREATE TABLE rejections (
    station TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (station, reason)
) WITHOUT ROWID;
CREATE TABLE types (
    station TEXT NOT NULL,
    type TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (station, type)
) WITHOUT ROWID;
CREATE TABLE unknown_stations (
    station TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
"""

_GAPS: Final = """
SELECT seq + 1, next - 1 FROM (
    SELECT seq, LEAD(seq) OVER (ORDER BY seq) AS next FROM (
        SELECT ? AS seq UNION ALL SELECT seq FROM records WHERE station = ? AND seq > ?
    )
) WHERE next > seq + 1 ORDER BY seq
"""
"""Missing ranges above `upto` (there are none below it), as (first, last) pairs."""

_INDEXES: Final = f"""
CREATE INDEX IF NOT EXISTS records_chain_resets ON records (station, seq) WHERE type = '{CHAIN_RESET}';
CREATE INDEX IF NOT EXISTS records_alarms ON records (station, seq) WHERE type = 'alarm';
"""
"""The few records every message and report looks for among all of a station's: its chain_resets (each
`ingest` reads them) and its alarms (for declared damage). Partial, so a transaction or heartbeat costs them
nothing to store; and made on every writable open, so a database written before they existed gets them too.
A query names the type as the same literal, not as a parameter, or the index cannot serve it; and it asks for
the station as `+station`, or SQLite, which keeps no statistics here, takes the primary key's walk through
every record of the station instead."""
_RESETS: Final = f"SELECT {{columns}} FROM records WHERE +station = ? AND type = '{CHAIN_RESET}' ORDER BY seq"
"""A station's chain_resets, in seq order."""


_CONNECT: Final[dict[str, Any]] = {"isolation_level": None, "check_same_thread": False}
"""Transactions are explicit (`_transaction`); the owner's lock, not SQLite, keeps threads apart."""


def _outside(gap: tuple[int, int], declared: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of `gap` that no declared loss covers: what is missing there and not explained."""
    parts = [gap]
    for low, high in declared:
        parts = [
            piece
            for first, last in parts
            for piece in ((first, min(last, low - 1)), (max(first, high + 1), last))
            if piece[0] <= piece[1]
        ]
    return parts


def _bridged(upto: int, seq: int, prev: str, damaged: Sequence[DeclaredDamage]) -> bool:
    """Whether declared damage explains every record from `upto + 1` to `seq - 1`, and a declaration ending at
    `seq - 1` names `prev` (the link of record `seq`) as the digest the damaged record had (v1.1)."""
    reached = upto
    for damage in sorted(damaged, key=lambda damage: damage.first_seq):
        if damage.first_seq <= reached + 1 and damage.last_seq < seq:
            reached = max(reached, damage.last_seq)
    return reached == seq - 1 and any(d.last_seq == seq - 1 and d.next_prev == prev for d in damaged)


class StoreError(RuntimeError):
    """The database cannot be opened or is not a platform database; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one message did to the store, for logs: which seqs were new, seen, forked or broke the chain."""

    stored: tuple[int, ...]
    duplicates: tuple[int, ...]
    forks: tuple[int, ...]
    chain_breaks: tuple[int, ...]
    upto: int


@dataclass(frozen=True, slots=True)
class StoredRow:
    """A record or a kept-aside fork as it lies in the database: only `canonical` and `sig` are evidence."""

    station: str
    kid: str
    sig: str
    canonical: bytes


@dataclass(frozen=True, slots=True)
class _Triage:
    """The accepted records of one message sorted out against what is stored, before anything is written."""

    stored: tuple[SignedRecord, ...]
    duplicates: tuple[int, ...]
    forks: tuple[SignedRecord, ...]
    chain_breaks: tuple[int, ...]


def _links_to(record: SignedRecord, before: SignedRecord | None) -> bool | None:
    """Whether `record` links to its predecessor (`before`, the record its prev must name), None if that
    cannot be told yet. Record 1, and a chain_reset that names no record, link to 64 zeros."""
    target = predecessor(record)
    if target == 0:
        return record.prev == GENESIS_PREV
    return None if before is None else links(record.seq, record.prev, before.digest)


def _triage(records: Sequence[SignedRecord], kept: dict[int, SignedRecord]) -> _Triage:
    """New, duplicate or fork, record by record in message order, with the links each new record closes.

    `kept` (the stored neighbourhood, updated here as records are taken) stands in for the table, so that a
    record sees exactly what it would have seen had the records before it in the message been written first:
    the link into a new record is checked when its predecessor is there, the link out of it when its
    successor is, and each link once. A chain_reset's predecessor is the record it names (v1.1), so `kept`
    also holds the stored resets and the records they name.
    """
    stored: list[SignedRecord] = []
    duplicates: list[int] = []
    forks: list[SignedRecord] = []
    breaks: list[int] = []
    resets_naming: dict[int, list[SignedRecord]] = {}
    for reset in (record for record in kept.values() if record.type == CHAIN_RESET):
        resets_naming.setdefault(predecessor(reset), []).append(reset)
    for record in records:
        held = kept.get(record.seq)
        if held is not None:
            if held.canonical == record.canonical:
                duplicates.append(record.seq)
            else:
                forks.append(record)
            continue
        kept[record.seq] = record
        stored.append(record)
        if _links_to(record, kept.get(predecessor(record))) is False:
            breaks.append(record.seq)
        if record.type == CHAIN_RESET:
            resets_naming.setdefault(predecessor(record), []).append(record)
        after, naming = kept.get(record.seq + 1), resets_naming.get(record.seq, ())
        if after is None and not naming:
            continue  # nothing here yet links to this record: the usual case, records arriving in order
        followers = [] if after is None or predecessor(after) != record.seq else [after]
        followers += [reset for reset in naming if reset.seq != record.seq + 1]
        breaks.extend(follower.seq for follower in followers if _links_to(follower, record) is False)
    return _Triage(tuple(stored), tuple(duplicates), tuple(forks), tuple(sorted(set(breaks))))


class Store:
    """One SQLite file (WAL, synchronous=FULL). Not thread-safe: the owner serialises access."""

    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        """Open (and, unless read_only, create) the database; refuse a file that is not one of ours."""
        self.path = str(path)
        if read_only and not Path(path).is_file():
            raise StoreError(f"database {self.path!r} does not exist; give the --db file the receiver wrote")
        try:
            self._db = (
                sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, **_CONNECT)
                if read_only
                else sqlite3.connect(self.path, **_CONNECT)
            )
            version = self._prepare(read_only)
        except sqlite3.Error as error:
            raise StoreError(
                f"cannot use database {self.path!r}: {error}; give a file in a writable directory, "
                "or the file the platform receiver wrote"
            ) from error
        if version != SCHEMA_VERSION:
            self._db.close()
            raise StoreError(
                f"{self.path!r} is not a platform database of schema {SCHEMA_VERSION} (found {version}); "
                "give the --db file the platform receiver wrote, or a new file"
            )

    def _prepare(self, read_only: bool) -> int:
        """The schema version, after creating the schema in a new, empty file."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        empty = self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None
        if read_only or not (version == SCHEMA_VERSION or (version == 0 and empty)):
            return version
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        if empty:
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db.executescript(_INDEXES)
        return SCHEMA_VERSION

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[None]:
        """One transaction; a read-only one (write=False) is a consistent snapshot that takes no write lock."""
        self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")  # a COMMIT that failed (a full disk) may leave it open
            raise

    def _station(self, station: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO stations (station) VALUES (?)", (station,))

    def ingest(self, station: str, verdict: Verdict) -> Ingested:
        """Store what a message brought, count what it did not, move `upto`; all in one transaction."""
        return self.ingest_all(((station, verdict),))[0]

    def ingest_all(self, messages: Sequence[tuple[str, Verdict]]) -> list[Ingested]:
        """Several messages (station, verdict), in arrival order, as one transaction: one commit, one fsync,
        which is what a receiver's acks of them wait for. Each message's `Ingested` (its `upto` included) is
        what it would have been had the message been taken alone."""
        with self._transaction():
            return [self._take(station, verdict) for station, verdict in messages]

    def _take(self, station: str, verdict: Verdict) -> Ingested:
        """One message's part of a transaction.

        The stored neighbourhood of the message is read once and the chain is checked in memory against it,
        then everything new is written in one statement per table: a message costs a handful of statements,
        not a handful per record.
        """
        self._station(station)
        self._db.executemany(
            "INSERT INTO rejections VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET count = count + excluded.count",
            [(station, reason, count) for reason, count in Counter(r.reason.value for r in verdict.rejections).items()],
        )
        triage = _triage(verdict.accepted, self._neighbourhood(station, verdict.accepted))
        self._write(station, triage)
        upto = self._advance(station)
        return Ingested(
            stored=tuple(record.seq for record in triage.stored),
            duplicates=triage.duplicates,
            forks=tuple(record.seq for record in triage.forks),
            chain_breaks=triage.chain_breaks,
            upto=upto,
        )

    def _neighbourhood(self, station: str, records: Sequence[SignedRecord]) -> dict[int, SignedRecord]:
        """The stored records from one below the lowest seq to one above the highest: all `ingest` compares
        with. One range, since the seqs of a message are contiguous; and the station's chain_resets with the
        records they name (v1.1: rare, a handful at most).

        `canonical` is as the database holds it: bytes, or text if someone rewrote it, which then equals
        nothing a station sends and so shows as a fork instead of failing the message.
        """
        if not records:
            return {}
        seqs = [record.seq for record in records]
        columns = "SELECT seq, type, prev, digest, canonical, sig, kid FROM records WHERE station = ?"
        rows = self._db.execute(columns + " AND seq BETWEEN ? AND ?", (station, min(seqs) - 1, max(seqs) + 1))
        kept = {int(row[0]): SignedRecord(*row) for row in rows}
        resets = self._db.execute(_RESETS.format(columns="seq, type, prev, digest, canonical, sig, kid"), (station,))
        kept.update({int(row[0]): SignedRecord(*row) for row in resets})
        named = {predecessor(record) for record in (*records, *kept.values()) if record.type == CHAIN_RESET}
        for seq in named - kept.keys():
            row = self._db.execute(columns + " AND seq = ?", (station, seq)).fetchone()
            if row is not None:
                kept[int(row[0])] = SignedRecord(*row)
        return kept

    def _write(self, station: str, triage: _Triage) -> None:
        self._db.executemany(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(station, r.seq, r.type, r.prev, r.digest, r.kid, r.sig, r.canonical) for r in triage.stored],
        )
        self._db.executemany(
            "INSERT INTO types VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET count = count + excluded.count",
            [(station, record_type, count) for record_type, count in Counter(r.type for r in triage.stored).items()],
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO forks VALUES (?, ?, ?, ?, ?, ?)",
            [(station, r.seq, r.digest, r.kid, r.sig, r.canonical) for r in triage.forks],
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO chain_breaks VALUES (?, ?)", [(station, seq) for seq in triage.chain_breaks]
        )
        self._db.execute(
            "UPDATE stations SET accepted = accepted + ?, duplicates = duplicates + ? WHERE station = ?",
            (len(triage.stored), len(triage.duplicates), station),
        )

    def _advance(self, station: str) -> int:
        """Move `upto` along stored, linked records; over the range a stored chain_reset declares lost, once
        `upto` has reached the record below it; and over a range stored `outbox_corrupt` alarms declare
        damaged, when the record after it links to the digest they name (both v1.1). Only a chain_reset's
        bytes are read back: no other record declares a loss."""
        upto = self.upto(station)
        rows = self._db.execute(
            f"SELECT r.seq, b.seq IS NOT NULL, r.type, CASE WHEN r.type = '{CHAIN_RESET}' THEN r.canonical END, "
            "r.prev FROM records r LEFT JOIN chain_breaks b ON b.station = r.station AND b.seq = r.seq "
            "WHERE r.station = ? AND r.seq > ? ORDER BY r.seq",
            (station, upto),
        )
        start = upto
        damaged: list[DeclaredDamage] | None = None
        for seq, broken, record_type, canonical, prev in rows:
            if broken:
                break
            loss = declared_loss(record_type, canonical) if seq != upto + 1 else None
            if seq != upto + 1 and (loss is None or loss.lost_first > upto + 1):
                damaged = self._declared_damage(station) if damaged is None else damaged
                if not _bridged(upto, seq, str(prev), damaged):
                    break
            upto = seq
        rows.close()
        if upto != start:
            self._db.execute("UPDATE stations SET upto = ? WHERE station = ?", (upto, station))
        return upto

    def _declared_damage(self, station: str) -> list[DeclaredDamage]:
        """The damage the station's stored `outbox_corrupt` alarms declare (v1.1: rare, a handful at most)."""
        rows = self._db.execute(
            "SELECT canonical FROM records WHERE +station = ? AND type = 'alarm' AND instr(canonical, ?) > 0",
            (station, b'"outbox_corrupt"'),
        )
        found = (declared_damage("alarm", bytes(canonical)) for (canonical,) in rows)
        return [damage for damage in found if damage is not None]

    def upto(self, station: str) -> int:
        row = self._db.execute("SELECT upto FROM stations WHERE station = ?", (station,)).fetchone()
        return 0 if row is None else int(row[0])

    def _missing(self, station: str, first: int, last: int) -> list[tuple[int, int]]:
        """The ranges of first..last that are not stored."""
        held = [
            int(seq)
            for (seq,) in self._db.execute(
                "SELECT seq FROM records WHERE station = ? AND seq BETWEEN ? AND ? ORDER BY seq", (station, first, last)
            )
        ]
        missing, expected = [], first
        for seq in [*held, last + 1]:
            if seq > expected:
                missing.append((expected, seq - 1))
            expected = seq + 1
        return missing

    def set_status(self, station: str, status: Mapping[str, object]) -> None:
        with self._transaction():
            self._station(station)
            self._db.execute(
                "UPDATE stations SET status = ? WHERE station = ?", (json.dumps(status, sort_keys=True), station)
            )

    def count_unknown_station(self, station: str) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO unknown_stations VALUES (?, 1) ON CONFLICT DO UPDATE SET count = count + 1", (station,)
            )

    def unknown_stations(self) -> dict[str, int]:
        return {str(station): int(count) for station, count in self._db.execute("SELECT * FROM unknown_stations")}

    def accepted(self, station: str, record_type: str | None = None) -> Iterator[bytes]:
        """The canonical bytes of a station's accepted records in seq order, optionally of one type only:
        what a platform application (billing, metering, ecology) reads."""
        query = "SELECT canonical FROM records WHERE station = ?"
        parameters: tuple[str, ...] = (station,)
        if record_type is not None:
            query += " AND type = ?"
            parameters += (record_type,)
        for (canonical,) in self._db.execute(query + " ORDER BY seq", parameters):
            yield bytes(canonical)

    def rows(self) -> Iterator[StoredRow]:
        """Every stored record in (station, seq) order, then every kept-aside fork: the evidence, for audits.

        Bytes that someone rewrote as text are handed over as their UTF-8, so that the audit reports them
        instead of failing on them.
        """
        for table in ("records", "forks"):
            query = f"SELECT station, kid, sig, canonical FROM {table} ORDER BY station, seq"
            for station, kid, sig, canonical in self._db.execute(query):
                evidence = canonical if isinstance(canonical, bytes) else str(canonical).encode("utf-8")
                yield StoredRow(str(station), str(kid), str(sig), evidence)

    def station_report(self, station: str) -> StationReport:
        """The report of one station, read in one snapshot."""
        with self._transaction(write=False):
            return self._station_report(station)

    def _station_report(self, station: str) -> StationReport:
        def seqs(query: str) -> tuple[int, ...]:
            return tuple(int(seq) for (seq,) in self._db.execute(query, (station,)))

        def counts(query: str) -> dict[str, int]:
            return {str(key): int(count) for key, count in self._db.execute(query, (station,))}

        row = self._db.execute(
            "SELECT upto, accepted, duplicates, status FROM stations WHERE station = ?", (station,)
        ).fetchone()
        upto, accepted, duplicates, status = row if row is not None else (0, 0, 0, None)
        highest = self._db.execute("SELECT MAX(seq) FROM records WHERE station = ?", (station,)).fetchone()[0]
        resets = [
            declared_loss(CHAIN_RESET, bytes(canonical))
            for (canonical,) in self._db.execute(_RESETS.format(columns="canonical"), (station,))
        ]
        declared = [(loss.lost_first, loss.lost_last) for loss in resets if loss is not None]
        declared += [(damage.first_seq, damage.last_seq) for damage in self._declared_damage(station)]
        gaps = [
            gap
            for first, last in self._db.execute(_GAPS, (upto, station, upto)).fetchall()
            for gap in _outside((int(first), int(last)), declared)
        ]
        return StationReport(
            station=station,
            accepted=int(accepted),
            upto=int(upto),
            highest_seq=int(highest or 0),
            gaps=tuple(gaps),
            resets=tuple(
                (loss.seq, loss.reason, loss.lost_first, loss.lost_last) for loss in resets if loss is not None
            ),
            lost=tuple(lost for first, last in declared for lost in self._missing(station, first, last)),
            duplicates=int(duplicates),
            forks=seqs("SELECT DISTINCT seq FROM forks WHERE station = ? ORDER BY seq"),
            chain_breaks=seqs("SELECT seq FROM chain_breaks WHERE station = ? ORDER BY seq"),
            rejections=counts("SELECT reason, count FROM rejections WHERE station = ?"),
            by_type=counts("SELECT type, count FROM types WHERE station = ?"),
            status=json.loads(status) if status is not None else None,
        )
