"""Realistic records for the benchmarks: fuelling transactions as the station makes them, and live markers.

The transaction bodies use the contract's field names with values of the sizes a forecourt produces (litres
in ml, money in fen, totalizers that have run for years), so a sealed record is as long as a real one. The
generator is seeded: two runs seal the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from agent.contract.framing import build_records_message
from agent.contract.records import Cursor, HeartbeatBody, RecordIntent, TransactionBody, format_ts
from agent.ledger.chain import ChainHead, SealedRecord, seal
from agent.ledger.keys import DeviceKey, KeySpec
from agent.ledger.outbox import Outbox, StoredRecord
from agent.ledger.recorder import MAX_BATCH
from agent.ledger.suites import Suite
from agent.uplink.settings import UplinkSection

STATION = "S1"
OUTBOX_MAX_BYTES = 1024**3
_NOZZLES = (
    ("D01-N1", "D01", "92", "T1", "pc1", 770),
    ("D01-N2", "D01", "95", "T2", "pc1", 820),
    ("D02-N1", "D02", "92", "T1", "pc2", 770),
    ("D02-N2", "D02", "0#", "T3", "pc2", 735),
)


def uplink_settings(
    broker: str = "127.0.0.1:1883", ack_mode: Literal["broker", "platform"] = "platform"
) -> UplinkSection:
    """The uplink as shipped (message size, records per message, in-flight window) towards `broker`."""
    return UplinkSection(broker=broker, ack_mode=ack_mode)


def new_key(suite: Suite = Suite.ED25519) -> DeviceKey:
    return KeySpec(suite).generate()


def transactions(count: int, end_ms: int, seed: int = 7) -> list[RecordIntent]:
    """`count` completed fuellings, one every 40 ms of station time, the last one at `end_ms`.

    Each carries the cursors the station commits with a sale (the nozzle's txn_no and totalizers), as the
    station loop's records do, so a commit touches the same tables as at a real station.
    """
    rng = random.Random(seed)
    txn_no = [41_000 + 1_000 * i for i in range(len(_NOZZLES))]
    volume_total = [4_873_451_231 + 310_000_000 * i for i in range(len(_NOZZLES))]
    amount_total = [37_525_574_478 + 2_400_000_000 * i for i in range(len(_NOZZLES))]
    intents = []
    for n in range(count):
        which = n % len(_NOZZLES)
        nozzle, dispenser, grade, tank, controller, price = _NOZZLES[which]
        ts_ms = end_ms - 40 * (count - 1 - n)
        volume_ml = rng.randint(5_000, 60_000)
        amount_fen = volume_ml * price // 1000
        seconds = volume_ml * 60 // rng.randint(20_000, 50_000)
        txn_no[which] += 1
        body = TransactionBody(
            nozzle=nozzle,
            dispenser=dispenser,
            grade=grade,
            tank=tank,
            controller=controller,
            txn_no=txn_no[which],
            start=format_ts(ts_ms - seconds * 1000 - rng.randint(2_000, 5_000)),
            end=format_ts(ts_ms - rng.randint(0, 2_000)),
            volume_ml=volume_ml,
            amount_fen=amount_fen,
            price_fen_per_l=price,
            totalizer_volume_ml_before=volume_total[which],
            totalizer_volume_ml_after=volume_total[which] + volume_ml,
            totalizer_amount_fen_before=amount_total[which],
            totalizer_amount_fen_after=amount_total[which] + amount_fen,
            pulse_volume_ml=volume_ml - rng.randint(0, 20),
            deviation_ppm=rng.randint(0, 1000),
            vapour_ml=volume_ml * rng.randint(1000, 1200) // 1000,
            al_permille=rng.randint(1000, 1200),
        )
        volume_total[which] += volume_ml
        amount_total[which] += amount_fen
        intents.append(
            body.intent(
                ts_ms,
                Cursor(f"nozzle/{nozzle}/txn_no", txn_no[which]),
                Cursor(f"nozzle/{nozzle}/totalizer_volume_ml", volume_total[which]),
                Cursor(f"nozzle/{nozzle}/totalizer_amount_fen", amount_total[which]),
            )
        )
    return intents


def live_marker(number: int, ts_ms: int) -> RecordIntent:
    """A heartbeat whose `uptime_s` is `number`: the only heartbeats in a run, so a watcher can tell them apart."""
    body = HeartbeatBody(interval_s=60, uptime_s=number, uplink="online", unacked=0, devices_online=4, devices_total=4)
    return body.intent(ts_ms)


def sealed(intents: Sequence[RecordIntent], key: DeviceKey, station: str = STATION) -> list[SealedRecord]:
    records, _ = seal(intents, ChainHead.genesis(), station, key)
    return records


def prefill(path: Path, intents: Sequence[RecordIntent], key: DeviceKey, station: str = STATION) -> ChainHead:
    """An outbox holding `intents` as records 1..N, written in the recorder's batch size; returns the head."""
    outbox = Outbox(path, OUTBOX_MAX_BYTES)
    head = outbox.head()
    try:
        for first in range(0, len(intents), MAX_BATCH):
            records, head = seal(intents[first : first + MAX_BATCH], head, station, key)
            outbox.append(records)
    finally:
        outbox.close()
    return head


def stored(records: Sequence[SealedRecord]) -> list[StoredRecord]:
    return [StoredRecord(record.seq, record.kid, record.canonical, record.sig) for record in records]


def messages(records: Sequence[StoredRecord], settings: UplinkSection) -> list[tuple[int, bytes]]:
    """The records messages the uplink makes of a backlog: (record count, payload) each, full ones in seq order."""
    out: list[tuple[int, bytes]] = []
    first = 0
    while first < len(records):
        window = records[first : first + settings.max_records_per_message]
        message = build_records_message(window, settings.max_message_bytes)
        if message is None:
            break
        count = message.last - message.first + 1
        out.append((count, message.payload))
        first += count
    return out
