"""Figure 4, the drain: a backlog made while offline goes out once the platform is reachable, and live records
still go out during it.

The backlog is made by the recorder while no uplink runs (as at a station whose link is down), then the
uplink starts in platform mode against the reference platform receiver (its own process). The clock runs
from `Uplink.start()` to the platform's acknowledgement of the whole backlog. Meanwhile a live record is
submitted every `live_interval_s`, and an independent subscriber (`bench.watcher`, its own process) notes
when each one is seen on the records topic: that is the delay a regulator would see for a fresh record while
the station catches up. The raw limit is the slowest stage of the bare pipeline: the plain paho publisher or
the reference receiver's own verify-and-store, whichever is slower per record.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from agent.contract.framing import Topics
from agent.ledger.chain import SealedRecord
from agent.ledger.keys import DeviceKey
from bench import parts
from bench.processes import Child, broker, platform_receiver, watcher
from bench.report import Target, per_s, ratio
from bench.rig import Rig
from bench.scale import Scale
from bench.workload import STATION, live_marker, messages, new_key, sealed, stored, transactions, uplink_settings
from simulators.platform.keys import StationKey, keyring, public_key_from_pem

TARGET_S = 10.0
RAW_SAMPLE = 5_000
SEEN_GRACE_S = 10.0


@dataclass(frozen=True, slots=True)
class LiveDelays:
    """How long after its submission each live record was seen on the wire, in milliseconds."""

    interval_s: float
    submitted: int
    seen: int
    median_ms: float
    p90_ms: float
    max_ms: float
    slowest: int
    """Which live record (0 = the first, submitted as the uplink came online) took max_ms."""


@dataclass(frozen=True, slots=True)
class DrainRaw:
    publish_us: float
    receiver_us: float
    verify_us: float
    """Bare Ed25519 verification alone: a floor for any platform that checks every signature on one core."""
    limit_records_per_s: float
    limit_seconds: float
    """The backlog at the raw limit."""


@dataclass(frozen=True, slots=True)
class DrainFigure:
    backlog: int
    backlog_build_s: float
    seconds: float
    records_per_s: float
    messages: int
    rewinds: int
    live: LiveDelays
    raw: DrainRaw
    ratio: float

    def targets(self) -> tuple[Target, ...]:
        return (Target("drain.seconds", self.seconds, TARGET_S, "s", at_most=True),)


def run(scale: Scale, workdir: Path) -> DrainFigure:
    key = new_key()
    count = scale.drain_backlog
    settings = uplink_settings()
    topic = Topics.for_station(settings.prefix, STATION).records
    with ExitStack() as stack:
        running = stack.enter_context(broker(workdir))
        stack.enter_context(platform_receiver(workdir, running.address, STATION, key.public_pem(), scale.timeout_s))
        witness = stack.enter_context(watcher(workdir, running.host, running.port, topic, scale.timeout_s))
        rig = Rig(workdir, key)
        stack.callback(rig.close)
        recorder = rig.start_recorder()
        built = time.perf_counter()
        for intent in transactions(count, time.time_ns() // 1_000_000):
            recorder.submit(intent)
        if rig.committed.wait(count, scale.timeout_s) is None:
            raise TimeoutError(f"the backlog of {count} was not committed within {scale.timeout_s:g} s")
        build_s = time.perf_counter() - built
        print(f"drain: backlog of {count} made in {build_s:.1f} s; uplink starting", file=sys.stderr)
        uplink = rig.attach_uplink(running.address, "platform", head_seq=count)
        started = time.perf_counter()
        rig.start_uplink()
        if not rig.wait_online(scale.timeout_s):
            raise TimeoutError(f"the uplink did not get online at {running.address} in {scale.timeout_s:g} s")
        submitted = submit_live_until(rig, count, scale)
        finished = rig.acked.wait(count, 0)
        status = uplink.status()
        if finished is None:
            raise TimeoutError(f"the platform acked {status.acked_upto} of {count} within {scale.timeout_s:g} s")
        seen = wait_seen(witness, submitted)
    seconds = finished - started
    print(f"drain: {count} acknowledged in {seconds:.2f} s; {len(submitted)} live records", file=sys.stderr)
    raw = measure_raw(workdir, key, sealed(transactions(RAW_SAMPLE, time.time_ns() // 1_000_000), key), scale)
    rate = per_s(count, seconds)
    return DrainFigure(
        backlog=count,
        backlog_build_s=build_s,
        seconds=seconds,
        records_per_s=rate,
        messages=status.messages_published,
        rewinds=status.rewinds,
        live=delays(submitted, seen, scale.live_interval_s),
        raw=raw,
        ratio=ratio(rate, raw.limit_records_per_s),
    )


def submit_live_until(rig: Rig, backlog: int, scale: Scale) -> dict[int, int]:
    """Submit a live record every interval until the backlog is acknowledged; marker -> monotonic ns submitted."""
    assert rig.recorder is not None
    submitted: dict[int, int] = {}
    limit = int(scale.timeout_s / scale.live_interval_s)
    next_at = time.monotonic()
    while rig.acked.value < backlog and len(submitted) < limit:
        time.sleep(max(0.0, next_at - time.monotonic()))
        number = len(submitted)
        submitted[number] = time.monotonic_ns()
        rig.recorder.submit(live_marker(number, time.time_ns() // 1_000_000))
        next_at += scale.live_interval_s
    return submitted


def wait_seen(witness: Child, submitted: dict[int, int]) -> dict[int, int]:
    """marker -> monotonic ns first seen on the wire, waiting a bounded while for the last ones to show."""
    deadline = time.monotonic() + SEEN_GRACE_S
    while True:
        seen: dict[int, int] = {}
        for line in witness.output().splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
                seen.setdefault(int(fields[1]), int(fields[0]))
        if all(number in seen for number in submitted) or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


def delays(submitted: dict[int, int], seen: dict[int, int], interval_s: float) -> LiveDelays:
    by_number = {number: (seen[number] - at) / 1e6 for number, at in submitted.items() if number in seen}
    if not by_number:
        return LiveDelays(interval_s, len(submitted), 0, math.nan, math.nan, math.nan, -1)
    found = sorted(by_number.values())
    return LiveDelays(
        interval_s=interval_s,
        submitted=len(submitted),
        seen=len(found),
        median_ms=statistics.median(found),
        p90_ms=found[min(len(found) - 1, math.ceil(0.9 * len(found)) - 1)],
        max_ms=found[-1],
        slowest=max(by_number, key=by_number.__getitem__),
    )


def measure_raw(workdir: Path, key: DeviceKey, records: list[SealedRecord], scale: Scale) -> DrainRaw:
    settings = uplink_settings()
    backlog = messages(stored(records), settings)
    publish = parts.publish_limit(workdir, backlog, settings, scale.timeout_s)
    platform_key = StationKey(STATION, public_key_from_pem(key.public_pem().encode()))
    receiver = parts.receiver_us(workdir, backlog, STATION, keyring([platform_key]))
    slowest = max(publish.us_per_record, receiver)
    return DrainRaw(
        publish_us=publish.us_per_record,
        receiver_us=receiver,
        verify_us=parts.verify_us(key, records),
        limit_records_per_s=1e6 / slowest,
        limit_seconds=scale.drain_backlog * slowest / 1e6,
    )
