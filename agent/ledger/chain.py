"""Sealing: a record intent becomes a contract record with its `seq`, its `prev` link and a signature.

Pure code: the caller passes the chain head and gets the new head back, and only adopts it once the records
are durable. That is what keeps `seq` gap-free and fork-free when a commit fails or the process dies.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from agent.contract.canonical import NotCanonicalisable, record_bytes
from agent.contract.records import CONTRACT_VERSION, Cursor, RecordIntent, format_ts
from agent.ledger.keys import DeviceKey
from agent.ledger.suites import record_digest

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
        """SHA-256 or SM3 of the canonical bytes, as the signing key's suite says."""
        return record_digest(self.kid, self.canonical)


def seal(
    intents: Sequence[RecordIntent], head: ChainHead, station: str, key: DeviceKey, signer: Signer | None = None
) -> tuple[list[SealedRecord], ChainHead]:
    """Seal intents in order after `head`; return the records and the head they lead to.

    The chain needs only the canonical bytes (each `prev` is the hash of the previous record's), so the
    records are linked first, one after the other, and signed afterwards, all at once: `signer` may spread a
    burst over several cores. RecordRefused names the first intent the contract cannot carry; nothing is
    sealed then."""
    linked: list[tuple[int, RecordIntent, bytes]] = []
    seq, prev, ts_ms = head.seq, head.digest, head.ts_ms
    for index, intent in enumerate(intents):
        seq += 1
        try:
            ts, record_type = format_ts(intent.ts_ms), str(intent.type)
            canonical = record_bytes(
                intent.body.as_json(),
                version=CONTRACT_VERSION,
                station=station,
                seq=seq,
                ts=ts,
                record_type=record_type,
                prev=prev,
            )
        except NotCanonicalisable as exc:
            raise RecordRefused(index, intent, str(exc)) from exc
        linked.append((seq, intent, canonical))
        prev = key.digest(canonical)
        ts_ms = intent.ts_ms
    signatures = (signer or Signer(key)).sign_all([canonical for _, _, canonical in linked])
    sealed = [
        SealedRecord(seq, intent.ts_ms, str(intent.type), canonical, signature, key.kid, intent.cursors)
        for (seq, intent, canonical), signature in zip(linked, signatures, strict=True)
    ]
    return sealed, ChainHead(seq, prev, ts_ms)


class Signer:
    """Signs a burst of records on up to `workers` threads: signing releases the GIL in either suite (the
    system's OpenSSL does the work, through ctypes), so on a gateway with two or four cores a burst (a drain of
    records made offline, a busy minute) seals that much faster. A handful of records is signed in the calling
    thread; the pool's threads start on first use and then wait idle (no wakeups) until the next burst."""

    PARALLEL_FROM = 32

    def __init__(self, key: DeviceKey, workers: int = 1) -> None:
        self._key = key
        self._workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None

    def sign_all(self, payloads: list[bytes]) -> list[bytes]:
        if self._workers == 1 or len(payloads) < self.PARALLEL_FROM:
            return self._sign_chunk(payloads)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers - 1, thread_name_prefix="signer")
        size = -(-len(payloads) // self._workers)
        chunks = [payloads[i : i + size] for i in range(0, len(payloads), size)]
        futures = [self._pool.submit(self._sign_chunk, chunk) for chunk in chunks[1:]]
        first = self._sign_chunk(chunks[0])
        return first + [signature for future in futures for signature in future.result()]

    def _sign_chunk(self, payloads: list[bytes]) -> list[bytes]:
        return [self._key.sign(payload) for payload in payloads]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
