"""The raw limits: each part of the agent's work done bare, on this machine, in this run.

Each function times one library doing one thing with the same data the agent handles (the same record bytes,
the same row sizes and batch size, the same MQTT payloads), and nothing else, so that a figure can be read as
"this much of what the machine can do". Costs are in microseconds per record. A limit is the best the
machine can do, so each part runs REPEATS times and the fastest run counts; on a box shared with other work
that keeps one unlucky scheduling slice from passing for the machine's limit.

Signing and checking signatures are timed in short slices spread over SPREAD_S instead: on a virtual machine
the host's own load makes every instruction slower for stretches of a second or so (the guest sees no steal and
no load of its own; Ed25519 signing and a pure-Python loop both take 1.6 to 1.8 times as long, on either
vCPU, with or without the other one busy), and three back-to-back runs of a 50 ms sample fell into one such
stretch in about half the runs, which made `sign_us` 50 µs in some runs and 81 to 86 in others.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785

from agent.contract.framing import Topics
from agent.ledger.chain import SealedRecord
from agent.ledger.keys import DeviceKey
from agent.uplink.settings import UplinkSection
from bench.processes import PACKAGE_ROOT, broker, python_module
from bench.procfs import io_counters
from bench.publisher import write_payloads
from bench.workload import STATION
from simulators.platform.keys import Keyring, public_key_from_pem
from simulators.platform.store import Store
from simulators.platform.verify import verify_message

REPEATS = 3
MIN_COMMITS = 20
SPREAD_S = 2.0
"""How long the sliced parts are sampled: longer than the slow stretches the host imposes, so that the best slice
is taken at the machine's own speed (see the module's docstring)."""
SLICE_RECORDS = 50


def sign_us(key: DeviceKey, records: Sequence[SealedRecord]) -> float:
    """Bare signing of the records' canonical bytes, in the key's suite."""
    sign = key.sign

    def once(part: Sequence[SealedRecord]) -> None:
        for record in part:
            sign(record.canonical)

    return best_slice_us(once, records)


def verify_us(key: DeviceKey, records: Sequence[SealedRecord]) -> float:
    """Bare verification (the platform side's) of the records' signatures, what a platform does once per record."""
    public = public_key_from_pem(key.public_pem().encode())

    def once(part: Sequence[SealedRecord]) -> None:
        for record in part:
            public.verify(record.sig, record.canonical)

    return best_slice_us(once, records)


def canonicalise_us(records: Sequence[SealedRecord]) -> float:
    """Bare RFC 8785 canonicalisation (`rfc8785.dumps`) of the same records, parsed back to objects first."""
    objects = [json.loads(record.canonical) for record in records]

    def once() -> None:
        for value in objects:
            rfc8785.dumps(value)

    return best_us_each(once, len(objects))


@dataclass(frozen=True, slots=True)
class StdlibCanonical:
    """The standard library's sorted, compact JSON on the same records: its cost, and whether the bytes match.

    For records holding only strings, integers below 2**53, booleans and null, with ASCII keys, RFC 8785 and
    `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` agree byte for byte; this checks it
    on every record of the run rather than assuming it.
    """

    us_per_record: float
    identical: bool


def stdlib_canonical(records: Sequence[SealedRecord]) -> StdlibCanonical:
    objects = [json.loads(record.canonical) for record in records]

    def encode(value: Any) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def once() -> None:
        for value in objects:
            encode(value)

    identical = all(encode(value) == record.canonical for value, record in zip(objects, records, strict=True))
    return StdlibCanonical(best_us_each(once, len(objects)), identical)


@dataclass(frozen=True, slots=True)
class InsertCost:
    """Bare SQLite (WAL, synchronous=FULL) inserts of rows the size of the outbox's, `batch` per commit."""

    batch: int
    rows: int
    us_per_record: float
    commit_bytes_per_record: float
    """Bytes sent to the block device per row by the commits (the WAL, and any automatic checkpoints)."""
    checkpoint_bytes_per_record: float
    """Bytes per row of the final checkpoint that folds the rest of the WAL into the database file."""


def insert_cost(directory: Path, records: Sequence[SealedRecord], batch: int) -> InsertCost:
    """Insert `records` (repeated to at least MIN_COMMITS commits) in transactions of `batch` rows; best run."""
    runs = [_insert_once(directory, records, max(1, batch)) for _ in range(REPEATS)]
    return min(runs, key=lambda run: run.us_per_record)


def _insert_once(directory: Path, records: Sequence[SealedRecord], batch: int) -> InsertCost:
    count = max(len(records), MIN_COMMITS * batch)
    rows = [
        (n + 1, record.ts_ms, record.type, record.kid, record.canonical, record.sig)
        for n, record in ((n, records[n % len(records)]) for n in range(count))
    ]
    path = directory / f"bare-insert-{batch}.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute(
            "CREATE TABLE record (seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, type TEXT NOT NULL, "
            "kid TEXT NOT NULL, canonical BLOB NOT NULL, sig BLOB NOT NULL)"
        )
        before = io_counters()
        started = time.perf_counter()
        for first in range(0, len(rows), batch):
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO record VALUES (?, ?, ?, ?, ?, ?)", rows[first : first + batch])
            db.execute("COMMIT")
        seconds = time.perf_counter() - started
        committed = io_counters()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        checkpointed = io_counters().since(committed).write_bytes
    finally:
        db.close()
    _remove_database(path)
    commits = committed.since(before).write_bytes
    return InsertCost(batch, len(rows), seconds * 1e6 / len(rows), commits / len(rows), checkpointed / len(rows))


@dataclass(frozen=True, slots=True)
class PublishCost:
    """Bare paho QoS 1 publishing from a plain script of its own: the given payloads, every PUBACK awaited.

    The script runs REPEATS times and the best run counts (`seconds`); `seconds_each` shows the spread.
    """

    messages: int
    records: int
    bytes: int
    inflight: int
    seconds: float
    seconds_each: tuple[float, ...]

    @property
    def us_per_record(self) -> float:
        return self.seconds * 1e6 / self.records if self.records else math.nan

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else math.nan


def publish_cost(
    directory: Path,
    address: str,
    messages: Sequence[tuple[int, bytes]],
    *,
    topic: str,
    inflight: int,
    timeout_s: float,
) -> PublishCost:
    """Run `bench.publisher` as its own process on these (record count, payload) messages, REPEATS times."""
    payload_path = directory / "payloads.bin"
    write_payloads(payload_path, [payload for _, payload in messages])
    host, port = address.rsplit(":", 1)
    argv = python_module("bench.publisher", str(payload_path), host, port, topic, str(inflight))
    try:
        seconds = tuple(_publish_once(argv, timeout_s) for _ in range(REPEATS))
    finally:
        payload_path.unlink(missing_ok=True)
    return PublishCost(
        messages=len(messages),
        records=sum(count for count, _ in messages),
        bytes=sum(len(payload) for _, payload in messages),
        inflight=inflight,
        seconds=min(seconds),
        seconds_each=seconds,
    )


def publish_limit(
    directory: Path, messages: Sequence[tuple[int, bytes]], settings: UplinkSection, timeout_s: float
) -> PublishCost:
    """publish_cost on a broker of its own, to the station's records topic with the uplink's in-flight window."""
    with broker(directory / "raw-publish") as running:
        return publish_cost(
            directory,
            running.address,
            messages,
            topic=Topics.for_station(settings.prefix, STATION).records,
            inflight=settings.max_inflight_messages,
            timeout_s=timeout_s,
        )


def _publish_once(argv: list[str], timeout_s: float) -> float:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=PACKAGE_ROOT)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"bench.publisher failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    report: dict[str, Any] = json.loads(lines[-1])
    return float(report["seconds"])


def receiver_us(directory: Path, messages: Sequence[tuple[int, bytes]], station: str, keys: Keyring) -> float:
    """The reference platform receiver's own work, bare: verify each message, then store it (one commit each)."""
    station_keys = keys[station]
    path = directory / "bare-receiver.sqlite"

    def once() -> None:
        store = Store(path)
        try:
            for _, payload in messages:
                store.ingest(station, verify_message(payload, station, station_keys))
        finally:
            store.close()
            _remove_database(path)

    return best_us_each(once, sum(count for count, _ in messages))


def best_us_each(once: Callable[[], None], count: int) -> float:
    """The fastest of REPEATS runs of `once`, in microseconds per record."""
    best = math.inf
    for _ in range(REPEATS):
        started = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - started)
    return best * 1e6 / count if count else math.nan


def best_slice_us(once: Callable[[Sequence[SealedRecord]], None], records: Sequence[SealedRecord]) -> float:
    """The fastest SLICE_RECORDS-record slice of `records`, slices taken in turn for SPREAD_S (and every record
    at least once), in microseconds per record."""
    slices = [records[first : first + SLICE_RECORDS] for first in range(0, len(records), SLICE_RECORDS)]
    if not slices:
        return math.nan
    best = math.inf
    taken = 0
    ends = time.perf_counter() + SPREAD_S
    while taken < len(slices) or time.perf_counter() < ends:
        part = slices[taken % len(slices)]
        started = time.perf_counter()
        once(part)
        best = min(best, (time.perf_counter() - started) / len(part))
        taken += 1
    return best * 1e6


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
