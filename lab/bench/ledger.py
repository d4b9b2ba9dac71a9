"""Figure 1, the ledger: records per second through sealing and the durable outbox commit.

A burst of transaction intents is submitted to the recorder at once, the way a reconnecting bus or a busy
forecourt hands them over, and the clock stops when the last one is committed (the recorder's `on_commit`).
The raw limit is 1 / (bare signing + bare SQLite insert at the batch size the recorder achieved): the two
things the agent cannot avoid doing per record. Canonicalisation is measured and reported beside it, with a
second ratio that counts it as unavoidable too.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agent.contract.records import RecordIntent
from agent.ledger.chain import SealedRecord
from agent.ledger.keys import DeviceKey
from agent.ledger.recorder import RecorderStatus
from agent.ledger.suites import Suite
from bench import parts
from bench.report import Target, per_s, ratio
from bench.rig import Rig
from bench.scale import Scale
from bench.workload import new_key, sealed, transactions

RAW_SAMPLE = 5_000
"""How many of the run's records the bare parts are timed on; enough for a steady figure in well under a second."""


@dataclass(frozen=True, slots=True)
class LedgerRaw:
    sign_us: float
    insert: parts.InsertCost
    canonicalise_us: float
    stdlib_canonical: parts.StdlibCanonical
    limit_records_per_s: float
    """1 / (sign_us + insert.us_per_record): the limit the ratio is taken against."""
    limit_with_canonicalisation_records_per_s: float


@dataclass(frozen=True, slots=True)
class LedgerFigure:
    records: int
    record_bytes_mean: float
    seconds: float
    """The best of REPEATS bursts, each on a fresh outbox; seconds_each shows the spread."""
    seconds_each: tuple[float, ...]
    records_per_s: float
    commits: int
    mean_batch: float
    us_per_record: float
    raw: LedgerRaw
    ratio: float
    ratio_with_canonicalisation: float

    def targets(self) -> tuple[Target, ...]:
        return ()


def run_sm2(scale: Scale, workdir: Path) -> LedgerFigure:
    """The same figure with a station that signs in the SM2 suite (SM2 with SM3, contract v1.2)."""
    return run(scale, workdir, Suite.SM2)


def run(scale: Scale, workdir: Path, suite: Suite = Suite.ED25519) -> LedgerFigure:
    key = new_key(suite)
    intents = transactions(scale.ledger_records, time.time_ns() // 1_000_000)
    bursts = [burst(workdir / f"run-{n}", key, intents, scale.timeout_s) for n in range(parts.REPEATS)]
    seconds, status = min(bursts, key=lambda each: each[0])
    mean_batch = status.committed / status.commits
    print(f"ledger: {len(intents)} records in {seconds:.2f} s, mean batch {mean_batch:.0f}", file=sys.stderr)
    sample = sealed(intents[:RAW_SAMPLE], key)
    raw = measure_raw(workdir, key, sample, batch=round(mean_batch))
    rate = per_s(len(intents), seconds)
    return LedgerFigure(
        records=len(intents),
        record_bytes_mean=sum(len(record.canonical) for record in sample) / len(sample),
        seconds=seconds,
        seconds_each=tuple(each[0] for each in bursts),
        records_per_s=rate,
        commits=status.commits,
        mean_batch=mean_batch,
        us_per_record=seconds * 1e6 / len(intents),
        raw=raw,
        ratio=ratio(rate, raw.limit_records_per_s),
        ratio_with_canonicalisation=ratio(rate, raw.limit_with_canonicalisation_records_per_s),
    )


def burst(workdir: Path, key: DeviceKey, intents: list[RecordIntent], timeout_s: float) -> tuple[float, RecorderStatus]:
    """All intents submitted at once to a fresh recorder; seconds until the last one is committed."""
    workdir.mkdir()
    rig = Rig(workdir, key)
    try:
        recorder = rig.start_recorder()
        started = time.perf_counter()
        for intent in intents:
            recorder.submit(intent)
        finished = rig.committed.wait(len(intents), timeout_s)
        status = recorder.status()
    finally:
        rig.close()
    if finished is None:
        raise TimeoutError(f"the recorder committed {status.committed} of {len(intents)} in {timeout_s:g} s")
    return finished - started, status


def measure_raw(workdir: Path, key: DeviceKey, records: list[SealedRecord], batch: int) -> LedgerRaw:
    """The bare parts on the very records of the run (a sample of them), SQLite at the recorder's batch size."""
    sign = parts.sign_us(key, records)
    canonical = parts.canonicalise_us(records)
    insert = parts.insert_cost(workdir, records, batch)
    per_record = sign + insert.us_per_record
    return LedgerRaw(
        sign_us=sign,
        insert=insert,
        canonicalise_us=canonical,
        stdlib_canonical=parts.stdlib_canonical(records),
        limit_records_per_s=1e6 / per_record if per_record > 0 else math.nan,
        limit_with_canonicalisation_records_per_s=1e6 / (per_record + canonical) if per_record > 0 else math.nan,
    )
