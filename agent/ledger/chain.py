"""Sealing: a record intent becomes a contract record with its `seq`, its `prev` link and a signature.

Pure code: the caller passes the chain head and gets the new head back, and only adopts it once the records
are durable. That is what keeps `seq` gap-free and fork-free when a commit fails or the process dies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from agent.ledger.canonical import NotCanonicalisable, canonical_bytes
from agent.ledger.keys import DeviceKey
from agent.records import CONTRACT_VERSION, Cursor, JsonValue, RecordIntent, format_ts

GENESIS_PREV = "0" * 64


class RecordRefused(ValueError):
    """An intent whose body the contract cannot carry (a float, a huge integer): a bug, never sealed."""

    def __init__(self, index: int, intent: RecordIntent, reason: str) -> None:
        super().__init__(f"{intent.type} record refused: {reason}")
        self.index = index
        self.intent = intent


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last record of the chain: the next record gets `seq + 1` and `prev = digest`."""

    seq: int
    digest: str
    ts_ms: int | None

    @classmethod
    def genesis(cls) -> ChainHead:
        return cls(0, GENESIS_PREV, None)


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """A record ready for the outbox: its canonical bytes are what is signed, stored and sent, unchanged."""

    seq: int
    ts_ms: int
    type: str
    canonical: bytes
    sig: bytes
    kid: str
    cursors: tuple[Cursor, ...] = ()

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical).hexdigest()


def seal(
    intents: Sequence[RecordIntent], head: ChainHead, station: str, key: DeviceKey
) -> tuple[list[SealedRecord], ChainHead]:
    """Seal intents in order after `head`; return the records and the head they lead to.

    RecordRefused names the first intent the contract cannot carry; nothing is sealed then."""
    sealed: list[SealedRecord] = []
    seq, prev, ts_ms = head.seq, head.digest, head.ts_ms
    for index, intent in enumerate(intents):
        seq += 1
        record: dict[str, JsonValue] = {
            "v": CONTRACT_VERSION,
            "station": station,
            "seq": seq,
            "ts": format_ts(intent.ts_ms),
            "type": str(intent.type),
            "body": intent.body,
            "prev": prev,
        }
        try:
            canonical = canonical_bytes(record)
        except NotCanonicalisable as exc:
            raise RecordRefused(index, intent, str(exc)) from exc
        sealed.append(
            SealedRecord(seq, intent.ts_ms, str(intent.type), canonical, key.sign(canonical), key.kid, intent.cursors)
        )
        prev = hashlib.sha256(canonical).hexdigest()
        ts_ms = intent.ts_ms
    return sealed, ChainHead(seq, prev, ts_ms)
