"""Figure 3, the full path: sign, commit durably, publish and be acknowledged, for a burst of N records.

The recorder and the uplink run wired as in the daemon, and the uplink is online before the burst, as it is
at a working station; the clock runs from the first `submit` to the acknowledgement of the N-th record. Two
runs: broker mode (the PUBACK is the acknowledgement) and platform mode, where the reference platform
receiver, as its own process, verifies, stores and acks `{"upto": N}`. The raw limit is 1 / (bare sign + bare
insert at the batch size the run achieved + bare publish), the last from the plain paho script.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.ledger.keys import DeviceKey
from agent.ledger.suites import Suite
from bench import parts
from bench.processes import broker, platform_receiver
from bench.report import Target, per_s, ratio
from bench.rig import Rig
from bench.scale import Scale
from bench.workload import STATION, messages, new_key, sealed, stored, transactions, uplink_settings
from simulators.platform.keys import StationKey, keyring, public_key_from_pem

TARGET_RATIO = 0.5
RAW_SAMPLE = 5_000
AckMode = Literal["broker", "platform"]


@dataclass(frozen=True, slots=True)
class Burst:
    """What one burst did: how long until the last record was acknowledged, and how it was batched and sent."""

    ack_mode: AckMode
    records: int
    seconds: float
    seconds_each: tuple[float, ...]
    records_per_s: float
    commits: int
    mean_batch: float
    messages: int
    rewinds: int


@dataclass(frozen=True, slots=True)
class FullPathRun:
    burst: Burst
    insert_us: float
    """Bare SQLite insert per record at this burst's mean batch size."""
    limit_records_per_s: float
    ratio: float


@dataclass(frozen=True, slots=True)
class FullPathFigure:
    runs: tuple[FullPathRun, ...]
    sign_us: float
    publish: parts.PublishCost
    publish_us: float
    receiver_us: float
    """The reference receiver's own work per record, bare (verify + store); not in the limit, shown for reading."""
    verify_us: float
    """Of `receiver_us`, the signature check alone (bare, one thread): the floor of any platform's cost."""

    def targets(self) -> tuple[Target, ...]:
        return tuple(
            Target(f"full_path.{run.burst.ack_mode}.ratio", run.ratio, TARGET_RATIO, "of raw", at_most=False)
            for run in self.runs
        )


def run_sm2(scale: Scale, workdir: Path) -> FullPathFigure:
    """The same figure with a station that signs in the SM2 suite (SM2 with SM3, contract v1.2)."""
    return run(scale, workdir, Suite.SM2)


def run(scale: Scale, workdir: Path, suite: Suite = Suite.ED25519) -> FullPathFigure:
    key = new_key(suite)
    modes: tuple[AckMode, ...] = ("broker", "platform")
    bursts = [best_burst(workdir / mode, key, mode, scale) for mode in modes]
    sample = sealed(transactions(min(scale.full_path_records, RAW_SAMPLE), time.time_ns() // 1_000_000), key)
    settings = uplink_settings()
    backlog = messages(stored(sample), settings)
    publish = parts.publish_limit(workdir, backlog, settings, scale.timeout_s)
    sign = parts.sign_us(key, sample)
    platform_key = StationKey(STATION, public_key_from_pem(key.public_pem().encode()))
    receiver = parts.receiver_us(workdir, backlog, STATION, keyring([platform_key]))
    runs = []
    for each in bursts:
        insert = parts.insert_cost(workdir, sample, round(each.mean_batch))
        per_record = sign + insert.us_per_record + publish.us_per_record
        limit = 1e6 / per_record if per_record > 0 else math.nan
        runs.append(FullPathRun(each, insert.us_per_record, limit, ratio(each.records_per_s, limit)))
    return FullPathFigure(tuple(runs), sign, publish, publish.us_per_record, receiver, parts.verify_us(key, sample))


def best_burst(workdir: Path, key: DeviceKey, mode: AckMode, scale: Scale) -> Burst:
    """The fastest of REPEATS bursts, each with a fresh outbox, broker and (in platform mode) receiver."""
    runs = [burst(workdir / f"run-{n}", key, mode, scale) for n in range(parts.REPEATS)]
    best = min(runs, key=lambda run: run.seconds)
    return dataclasses.replace(best, seconds_each=tuple(run.seconds for run in runs))


def burst(directory: Path, key: DeviceKey, mode: AckMode, scale: Scale) -> Burst:
    """N transactions submitted at once to an online agent; seconds until the last one is acknowledged."""
    directory.mkdir(parents=True)
    intents = transactions(scale.full_path_records, time.time_ns() // 1_000_000)
    with ExitStack() as stack:
        running = stack.enter_context(broker(directory))
        if mode == "platform":
            stack.enter_context(
                platform_receiver(directory, running.address, STATION, key.public_pem(), scale.timeout_s)
            )
        rig = Rig(directory, key)
        stack.callback(rig.close)
        recorder = rig.start_recorder()
        uplink = rig.attach_uplink(running.address, mode, head_seq=0)
        rig.start_uplink()
        if not rig.wait_online(scale.timeout_s):
            raise TimeoutError(f"the uplink did not get online at {running.address} in {scale.timeout_s:g} s")
        started = time.perf_counter()
        for intent in intents:
            recorder.submit(intent)
        finished = rig.acked.wait(len(intents), scale.timeout_s)
        recorded, sent = recorder.status(), uplink.status()
    if finished is None:
        raise TimeoutError(
            f"{mode} mode: {sent.acked_upto} of {len(intents)} records acked after {scale.timeout_s:g} s"
        )
    seconds = finished - started
    print(f"full path ({mode}): {len(intents)} records in {seconds:.2f} s", file=sys.stderr)
    return Burst(
        ack_mode=mode,
        records=len(intents),
        seconds=seconds,
        seconds_each=(seconds,),
        records_per_s=per_s(len(intents), seconds),
        commits=recorded.commits,
        mean_batch=recorded.committed / recorded.commits,
        messages=sent.messages_published,
        rewinds=sent.rewinds,
    )
