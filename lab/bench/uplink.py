"""Figure 2, the uplink: records per second from a full outbox to a local Mosquitto, QoS 1, broker acks.

The outbox is filled with N sealed transactions first; the clock runs from `Uplink.start()` (so it includes
the connect, as the raw script's does) to the moment the uplink reports all N acknowledged by PUBACK. The
raw limit is a plain paho script, in a process of its own, publishing the same payloads (the same message
sizes and count) at QoS 1 with the same in-flight window and waiting for every PUBACK.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agent.ledger.keys import DeviceKey
from agent.ledger.outbox import OutboxReader
from agent.uplink.settings import UplinkSection
from agent.uplink.uplink_status import UplinkStatus
from bench import parts
from bench.processes import broker
from bench.report import Target, per_s, ratio
from bench.rig import Rig
from bench.scale import Scale
from bench.workload import messages, new_key, prefill, transactions, uplink_settings

REPEATS = parts.REPEATS
"""The uplink runs as many times as the raw script and the best counts on both sides: a run of a fraction of a
second is at the mercy of one scheduler hiccup."""


@dataclass(frozen=True, slots=True)
class UplinkFigure:
    records: int
    repeats: int
    messages: int
    message_bytes_mean: float
    seconds: float
    seconds_each: tuple[float, ...]
    records_per_s: float
    rewinds: int
    raw: parts.PublishCost
    raw_records_per_s: float
    ratio: float

    def targets(self) -> tuple[Target, ...]:
        return ()


def run(scale: Scale, workdir: Path) -> UplinkFigure:
    key = new_key()
    count = scale.uplink_records
    prefill(workdir / "outbox.sqlite", transactions(count, time.time_ns() // 1_000_000), key)
    settings = uplink_settings(ack_mode="broker")
    payloads = backlog_messages(workdir / "outbox.sqlite", count, settings)
    with broker(workdir) as running:
        runs = [drain_once(workdir, key, running.address, count, scale.timeout_s) for _ in range(REPEATS)]
    raw = parts.publish_limit(workdir, payloads, settings, scale.timeout_s)
    seconds, status = min(runs, key=lambda run: run[0])
    print(f"uplink: {count} records in {seconds:.3f} s (best of {REPEATS}), raw {raw.seconds:.3f} s", file=sys.stderr)
    rate = per_s(count, seconds)
    return UplinkFigure(
        records=count,
        repeats=REPEATS,
        messages=status.messages_published,
        message_bytes_mean=raw.bytes / raw.messages,
        seconds=seconds,
        seconds_each=tuple(run[0] for run in runs),
        records_per_s=rate,
        rewinds=status.rewinds,
        raw=raw,
        raw_records_per_s=raw.records_per_s,
        ratio=ratio(rate, raw.records_per_s),
    )


def drain_once(workdir: Path, key: DeviceKey, address: str, count: int, timeout_s: float) -> tuple[float, UplinkStatus]:
    """A fresh uplink that has nothing acknowledged: seconds from start() until all `count` records are acked."""
    rig = Rig(workdir, key, with_recorder=False)
    try:
        uplink = rig.attach_uplink(address, "broker", head_seq=count)
        started = time.perf_counter()
        rig.start_uplink()
        finished = rig.acked.wait(count, timeout_s)
        status = uplink.status()
    finally:
        rig.close()
    if finished is None:
        raise TimeoutError(f"the uplink had {status.acked_upto} of {count} records acked after {timeout_s:g} s")
    return finished - started, status


def backlog_messages(path: Path, count: int, settings: UplinkSection) -> list[tuple[int, bytes]]:
    """The messages the uplink makes of records 1..count, read back from the outbox as it reads them."""
    reader = OutboxReader(path)
    try:
        return messages(list(reader.read(1, count)), settings)
    finally:
        reader.close()
