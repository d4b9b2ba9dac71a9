"""Figure 6, disk: bytes sent to the block device per record, in a burst and at a nominal station load.

Flash wears by what is written, so the figure is `write_bytes` of this process (/proc/self/io) while only
the recorder writes: a burst of N records submitted at once (group commit, the case of a backlog or a busy
forecourt), and records arriving one at a time, `nominal_interval_s` apart, each committed alone with its
own fsync (a quiet station). Durability is as the agent ships it (WAL, synchronous=FULL). The bytes of the
commits and of the final checkpoint (which folds the WAL into the database file) are counted apart. The raw
reference is bare SQLite inserting rows of the same size at the same batch size.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agent.contract.records import RecordIntent
from agent.ledger.keys import DeviceKey
from bench import parts
from bench.procfs import io_counters
from bench.report import Target, ratio
from bench.rig import Rig
from bench.scale import Scale
from bench.workload import new_key, sealed, transactions

TARGET_BYTES_PER_RECORD = 2048


@dataclass(frozen=True, slots=True)
class DiskRun:
    records: int
    commits: int
    commit_bytes_per_record: float
    checkpoint_bytes_per_record: float
    bytes_per_record: float
    """Commits and checkpoint together: what each record costs the medium in the end."""
    wal_bytes: int
    """The WAL file's size before the final checkpoint."""
    db_bytes: int
    """The database file's size after it."""
    raw: parts.InsertCost
    ratio: float
    """bytes_per_record over the bare SQLite figure at the same batch size."""


@dataclass(frozen=True, slots=True)
class DiskFigure:
    burst: DiskRun
    nominal: DiskRun
    nominal_interval_s: float

    def targets(self) -> tuple[Target, ...]:
        return (
            Target(
                "disk.burst_bytes_per_record",
                self.burst.bytes_per_record,
                TARGET_BYTES_PER_RECORD,
                "B",
                at_most=True,
            ),
        )


def run(scale: Scale, workdir: Path) -> DiskFigure:
    key = new_key()
    now_ms = time.time_ns() // 1_000_000
    burst_intents = transactions(scale.disk_burst_records, now_ms)
    burst = measure(workdir / "burst", key, burst_intents, interval_s=None, timeout_s=scale.timeout_s)
    print(f"disk: burst {burst.bytes_per_record:.0f} B/record", file=sys.stderr)
    nominal_intents = transactions(scale.nominal_records, now_ms)
    nominal = measure(
        workdir / "nominal", key, nominal_intents, interval_s=scale.nominal_interval_s, timeout_s=scale.timeout_s
    )
    print(f"disk: nominal {nominal.bytes_per_record:.0f} B/record", file=sys.stderr)
    return DiskFigure(burst, nominal, scale.nominal_interval_s)


def measure(
    workdir: Path, key: DeviceKey, intents: list[RecordIntent], interval_s: float | None, timeout_s: float
) -> DiskRun:
    """Write `intents` through the recorder (all at once, or one per interval) and count the bytes written."""
    workdir.mkdir(parents=True)
    rig = Rig(workdir, key)
    outbox = rig.outbox
    assert outbox is not None and rig.recorder is not None
    try:
        recorder = rig.start_recorder()
        before = io_counters()
        for number, intent in enumerate(intents, start=1):
            recorder.submit(intent)
            if interval_s is not None:
                if rig.committed.wait(number, timeout_s) is None:
                    raise TimeoutError(f"record {number} was not committed within {timeout_s:g} s")
                time.sleep(interval_s)
        if rig.committed.wait(len(intents), timeout_s) is None:
            raise TimeoutError(f"{len(intents)} records were not committed within {timeout_s:g} s")
        recorder.stop()
        committed = io_counters()
        wal_bytes = _size(Path(f"{rig.path}-wal"))
        outbox.checkpoint()
        checkpointed = io_counters()
        status = recorder.status()
    finally:
        rig.close()
    records = len(intents)
    commit_bytes = committed.since(before).write_bytes / records
    checkpoint_bytes = checkpointed.since(committed).write_bytes / records
    batch = max(1, round(status.committed / status.commits))
    raw = parts.insert_cost(workdir, sealed(intents, key), batch)
    raw_bytes = raw.commit_bytes_per_record + raw.checkpoint_bytes_per_record
    return DiskRun(
        records=records,
        commits=status.commits,
        commit_bytes_per_record=commit_bytes,
        checkpoint_bytes_per_record=checkpoint_bytes,
        bytes_per_record=commit_bytes + checkpoint_bytes,
        wal_bytes=wal_bytes,
        db_bytes=_size(rig.path),
        raw=raw,
        ratio=ratio(commit_bytes + checkpoint_bytes, raw_bytes),
    )


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
