"""The outbox: every sealed record, durable on the gateway's flash until the platform has it.

SQLite in WAL mode with `synchronous=FULL`: a commit returns only once the WAL is on the medium, so a record
that was ever published can never be lost by a power cut and then made again with other bytes (a fork).
Records are written in batches (one transaction, one fsync for many records) and never updated in place.
Acknowledgement progress is a single number, saved now and then rather than with every batch (in platform
mode it changes between any two commits, and a page write per commit is the dearest thing on flash), because
losing it costs only identical re-sends.

The size cap (`max_page_count`) makes "disk full" a designed state rather than an accident: the writer gets
`OutboxFull`, nothing already stored is touched, and space comes back by pruning acknowledged records. A file
system that something else filled gives the same error; there the prune itself needs room in the WAL, which the
recorder finds with the space reserve (agent/ledger/space_reserve.py), `fold_wal` and `prune_oldest`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.ledger.chain import ChainHead, SealedRecord
from agent.ledger.integrity import Damage, LinkCheck
from agent.ledger.suites import record_digest
from agent.logs import get_logger

log = get_logger("agent.outbox")

SCHEMA_VERSION = 1
PAGE_SIZE = 4096
CACHE_KIB = 256
"""Page cache per connection: records are written once and read once, in order, so a big cache buys
nothing but memory (SQLite's default is 2 MiB a connection)."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS record (
    seq INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    type TEXT NOT NULL,
    kid TEXT NOT NULL,
    canonical BLOB NOT NULL,
    sig BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursor (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""


def _first_seq_since(db: sqlite3.Connection, ts_ms: int, first: int, last: int) -> int:
    """The first seq in first..last made at or after ts_ms (last + 1 if none), by bisection on seq.

    Record times follow seq except across a clock step, so this is a close estimate, found with a few
    primary-key lookups instead of a scan or an index that every insert would have to write.
    """
    low, high = first, last + 1
    while low < high:
        middle = (low + high) // 2
        row = db.execute("SELECT ts_ms FROM record WHERE seq = ?", (middle,)).fetchone()
        if row is not None and row[0] >= ts_ms:
            high = middle
        else:
            low = middle + 1
    return low


def _first_seq(db: sqlite3.Connection) -> int | None:
    row = db.execute("SELECT min(seq) FROM record").fetchone()
    return None if row[0] is None else int(row[0])


CAP_MARGIN_PAGES = 1024
"""4 MiB: more than the pages any one commit or prune adds to the file."""


class OutboxError(Exception):
    """The outbox could not be written or read; nothing was changed by the failed call."""


class OutboxFull(OutboxError):
    """The outbox reached its size cap or the disk is full; nothing was changed by the failed call."""


class OutboxUnusable(OutboxError):
    """The file is not an outbox this agent can use (not SQLite, a damaged header, a schema from a later
    version): trying again will not help, a person decides (`station-agent recover`)."""


_UNUSABLE_CODES = frozenset({sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT})


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as kept: the exact bytes that were signed, so that a re-send is byte-identical."""

    seq: int
    kid: str
    canonical: bytes
    sig: bytes


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    if read_only:
        connection = sqlite3.connect(
            f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA query_only = ON")
    else:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout = 5000")
    connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    return connection


def _raise_for(exc: sqlite3.Error, doing: str) -> OutboxError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return OutboxFull(f"outbox full while {doing}: {exc}")
    if code is not None and code & 0xFF in _UNUSABLE_CODES:
        return OutboxUnusable(f"outbox unusable while {doing}: {exc}")
    return OutboxError(f"outbox failed while {doing}: {exc}")


class Outbox:
    """The single writing connection to the outbox. Only the recorder thread calls it."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = _connect(path, read_only=False)
            self._db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise OutboxError(f"{path}: SQLite refused WAL mode (got {mode!r}); is the file system read-only?")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute(f"PRAGMA max_page_count = {max(max_bytes // PAGE_SIZE, 64)}")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise OutboxUnusable(f"{path} has schema version {version}; this agent knows {SCHEMA_VERSION}")
            if version == 0:  # a new file; an outbox made before opens without a write, on a full disk too
                self._db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        except sqlite3.Error as exc:
            raise _raise_for(exc, f"opening {path}") from exc

    def close(self) -> None:
        self._db.close()

    def set_max_bytes(self, max_bytes: int) -> None:
        self._db.execute(f"PRAGMA max_page_count = {max(max_bytes // PAGE_SIZE, 64)}")

    def head(self) -> ChainHead:
        """The last record in the outbox, or, if all were pruned, the chain position saved with the last prune."""
        row = self._db.execute("SELECT seq, kid, canonical, ts_ms FROM record ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            seq, kid, canonical, ts_ms = row
            return ChainHead(seq, record_digest(kid, canonical), ts_ms)
        saved = self.meta("pruned_head")
        if saved is None:
            return ChainHead.genesis()
        seq_text, digest, ts_text = saved.split(":")
        return ChainHead(int(seq_text), digest, int(ts_text))

    def head_record(self) -> StoredRecord | None:
        """The newest stored record as kept, for the start-up check of its bytes and signature."""
        row = self._db.execute("SELECT seq, kid, canonical, sig FROM record ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else StoredRecord(int(row[0]), str(row[1]), bytes(row[2]), bytes(row[3]))

    def digest_at(self, seq: int) -> str | None:
        """SHA-256 or SM3 (by its signer's suite) of the canonical bytes of record `seq` (from the saved position
        if it was pruned last), or None if the outbox does not know it."""
        row = self._db.execute("SELECT kid, canonical FROM record WHERE seq = ?", (seq,)).fetchone()
        if row is not None:
            return record_digest(row[0], row[1])
        head = self.head()
        return head.digest if head.seq == seq and seq > 0 else None

    def append(self, records: Sequence[SealedRecord]) -> None:
        """Commit records (and the cursors they carry) in one transaction: all durable, or none.

        A cursor keeps the value of the last record in the batch that carries it, so each key is written once
        per commit: a burst of sales moves a nozzle's cursors once per record, and upserting every one of them
        cost nearly as much as the records' own rows (750 upserts of 12 keys for 250 sales, about 4 µs a record)."""
        cursors = {cursor.key: cursor.value for record in records for cursor in record.cursors}
        with self._transaction(f"appending {len(records)} record(s)"):
            self._db.executemany(
                "INSERT INTO record (seq, ts_ms, type, kid, canonical, sig) VALUES (?, ?, ?, ?, ?, ?)",
                [(r.seq, r.ts_ms, r.type, r.kid, r.canonical, r.sig) for r in records],
            )
            if cursors:
                self._db.executemany(
                    "INSERT INTO cursor (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    cursors.items(),
                )

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[None]:
        """One write transaction; on any failure it is rolled back and the error says what was being done."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _raise_for(exc, doing) from exc

    def cursors(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT key, value FROM cursor").fetchall())

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, values: dict[str, str]) -> None:
        with self._transaction(f"saving {', '.join(values)}"):
            self._put_meta(values)

    def _put_meta(self, values: dict[str, str]) -> None:
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def acked_upto(self) -> int:
        saved = self.meta("acked_upto")
        return 0 if saved is None else int(saved)

    def canonical_since(self, record_type: str, since_ts_ms: int) -> list[bytes]:
        """The canonical bytes of the records of one type made since `since_ts_ms`, in seq order: the
        agent's own history, which it reads back at start rather than keeping a second copy of its state."""
        rows = self._db.execute(
            "SELECT canonical FROM record WHERE ts_ms >= ? AND type = ? ORDER BY seq", (since_ts_ms, record_type)
        )
        return [bytes(row[0]) for row in rows]

    def newest_first(self, record_type: str) -> Iterator[bytes]:
        """The canonical bytes of the records of one type, newest first, one at a time: a reader that wants only
        the latest of each kind stops early instead of holding every record of a long history."""
        rows = self._db.execute("SELECT canonical FROM record WHERE type = ? ORDER BY seq DESC", (record_type,))
        for row in rows:
            yield bytes(row[0])

    def iter_since(self, record_types: Collection[str], since_ts_ms: int) -> Iterator[bytes]:
        """Like `canonical_since` for several types at once, in seq order, one record at a time: a day of a busy
        station's records, read back at start, need not be in memory together. The start is found by bisection
        (`first_seq_since`), not by reading the whole outbox."""
        first, last = self._db.execute("SELECT min(seq), max(seq) FROM record").fetchone()
        if first is None:
            return
        start = _first_seq_since(self._db, since_ts_ms, first, last)
        marks = ", ".join("?" * len(record_types))
        rows = self._db.execute(
            f"SELECT canonical FROM record WHERE seq >= ? AND ts_ms >= ? AND type IN ({marks}) ORDER BY seq",
            (start, since_ts_ms, *record_types),
        )
        for row in rows:
            yield bytes(row[0])

    def used_bytes(self) -> int:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        return int(pages - self.free_pages()) * PAGE_SIZE

    def far_below_cap(self) -> bool:
        """More than CAP_MARGIN_PAGES below `max_page_count`: a commit then cannot have hit the outbox's own cap,
        so a "database or disk is full" is the file system's."""
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        cap = self._db.execute("PRAGMA max_page_count").fetchone()[0]
        return bool(pages + CAP_MARGIN_PAGES < cap)

    def free_pages(self) -> int:
        """Pages the database file has and no record uses: room for records that needs no more of the disk."""
        return int(self._db.execute("PRAGMA freelist_count").fetchone()[0])

    def prune(self, acked_upto: int, keep_after_ts_ms: int | None, keep_bytes: int | None) -> int:
        """Delete acknowledged records older than `keep_after_ts_ms` or beyond `keep_bytes`; return how many.

        Never touches a record above `acked_upto`. With both limits None, every acknowledged record goes
        (what the recorder does to make room when the outbox is full).
        """
        upto = acked_upto
        if keep_after_ts_ms is not None:
            row = self._db.execute(
                "SELECT max(seq) FROM record WHERE seq <= ? AND ts_ms < ?", (acked_upto, keep_after_ts_ms)
            ).fetchone()
            age_limit = row[0] or 0
            upto = age_limit if keep_bytes is None else max(age_limit, self._beyond_bytes(acked_upto, keep_bytes))
        elif keep_bytes is not None:
            upto = self._beyond_bytes(acked_upto, keep_bytes)
        if upto <= 0:
            return 0
        head = self.head()
        with self._transaction(f"pruning records up to {upto}"):
            deleted = self._db.execute("DELETE FROM record WHERE seq <= ?", (upto,)).rowcount
            if head.seq <= upto:
                self._put_meta({"pruned_head": f"{head.seq}:{head.digest}:{head.ts_ms or 0}"})
        return int(deleted)

    def prune_oldest(self, acked_upto: int, count: int) -> int:
        """Delete the `count` oldest records, none above `acked_upto`, in one transaction; return how many.

        A delete writes every page it changes to the WAL, about as many bytes as the records it removes: on a full
        file system the WAL has only the room it already takes, so the records go a few at a time, with the WAL
        folded (`fold_wal`) between."""
        first = _first_seq(self._db)
        if first is None or first > acked_upto:
            return 0
        return self.prune(min(acked_upto, first + count - 1), None, None)

    def first_seq(self) -> int | None:
        """The oldest record's seq, None if none is stored."""
        return _first_seq(self._db)

    def _beyond_bytes(self, acked_upto: int, keep_bytes: int) -> int:
        """The highest acked seq whose deletion leaves about `keep_bytes` of acknowledged records.

        Sizes are estimated from the file's average bytes per record: summing every blob would read the
        whole outbox, which on an SD card costs more than the precision is worth.
        """
        first, last, count = self._db.execute("SELECT min(seq), max(seq), count(*) FROM record").fetchone()
        if not count or acked_upto < first:
            return 0
        per_record = self.used_bytes() / count
        acked = min(acked_upto, last) - first + 1
        excess = acked - int(keep_bytes / per_record)
        return first + excess - 1 if excess > 0 else 0

    def checkpoint(self) -> None:
        """Fold the WAL into the database file, e.g. before a clean stop."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise _raise_for(exc, "checkpointing") from exc

    def fold_wal(self) -> bool:
        """Copy the WAL's pages into the database file without waiting for readers and without shrinking the WAL:
        its next transaction then starts again at its beginning, in space the file already has, which is what a
        full file system leaves. True if every page was copied. Growing the database file for pages appended
        since the last fold needs room, so on a full file system this fails until the space reserve is given back."""
        try:
            busy, frames, copied = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            raise _raise_for(exc, "folding the WAL into the database") from exc
        return bool(busy == 0 and frames == copied)


class OutboxReader:
    """A read-only connection for the uplink: WAL lets it read while the recorder writes.

    With `on_damage`, every record read is checked against its neighbour (agent/ledger/integrity.py) and damage
    is reported there once; the record is handed out as stored all the same: the agent cannot know its true
    bytes, and holding it back would stall every record after it."""

    def __init__(self, path: Path, on_damage: Callable[[Damage], None] | None = None) -> None:
        try:
            self._db = _connect(path, read_only=True)
        except sqlite3.Error as exc:
            raise _raise_for(exc, f"opening {path} for reading") from exc
        self._on_damage = on_damage
        self._links = LinkCheck()

    def close(self) -> None:
        self._db.close()

    def read(self, first: int, last: int) -> Iterable[StoredRecord]:
        """Records first..last in seq order, lazily, so a caller can stop at a size limit."""
        if self._on_damage is not None and not self._links.knows(first - 1):
            row = self._db.execute("SELECT kid, canonical FROM record WHERE seq = ?", (first - 1,)).fetchone()
            if row is not None:
                self._check(first - 1, str(row[0]), bytes(row[1]))
        cursor = self._db.execute(
            "SELECT seq, kid, canonical, sig FROM record WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last)
        )
        for seq, kid, canonical, sig in cursor:
            if self._on_damage is not None:
                self._check(seq, kid, canonical)
            yield StoredRecord(seq, kid, canonical, sig)

    def _check(self, seq: int, kid: str, canonical: bytes) -> None:
        assert self._on_damage is not None
        damage = self._links.follow(seq, kid, canonical)
        if damage is not None:
            log.error("outbox_corrupt", first_seq=damage.first_seq, last_seq=damage.last_seq, check=damage.check)
            self._on_damage(damage)

    def first_seq(self) -> int | None:
        return _first_seq(self._db)

    def ts_of(self, seq: int) -> int | None:
        """When record `seq` was made (None if the outbox does not hold it): the age of the backlog."""
        try:
            row = self._db.execute("SELECT ts_ms FROM record WHERE seq = ?", (seq,)).fetchone()
        except sqlite3.Error as exc:
            raise _raise_for(exc, f"reading record {seq}") from exc
        return None if row is None else int(row[0])

    def first_seq_since(self, ts_ms: int, first: int, last: int) -> int:
        return _first_seq_since(self._db, ts_ms, first, last)
