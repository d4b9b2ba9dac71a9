"""Bit-rot in stored records, found as they are read for sending: each record must name its own seq, and its
`prev` must be the hash (SHA-256 or SM3, by the signer's suite) of the record before it as stored.

Pure code, without a key: the link check costs a hash and two searches in the bytes per record, a fraction
of what sending costs, where a signature check would cost more than the send. It finds a record whose bytes
changed as soon as the record after it is read (the newest record is checked by its signature at start,
agent/ledger/continuity.py). A damaged signature is not found here; the platform finds it.

Damage is reported with the `prev` of the first intact record after it: the digest the damaged range had when
it was sealed. The alarm carries it, so that a platform can take the range as lost and go on (contract v1.1)
instead of waiting for records the agent can never send again as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.contract.evidence import OutboxCorruptEvidence
from agent.contract.records import AlarmBody, AlarmKind, AlarmState, RecordIntent
from agent.ledger.suites import record_digest

_PREV = b'"prev":"'
_SEQ = b'","seq":'
_HEX_LEN = 64
REPORTED_LIMIT = 1024
"""Ranges remembered as already reported, so that a re-send does not raise the alarm again; bounded."""


@dataclass(frozen=True, slots=True)
class Damage:
    """Records `first_seq`..`last_seq` are not what was sealed; `check` is the test that failed; `next_prev` is
    the `prev` of record `last_seq + 1`, which names the digest record `last_seq` had when it was sealed."""

    first_seq: int
    last_seq: int
    check: Literal["link", "seq"]
    next_prev: str


def chain_fields(canonical: bytes) -> tuple[int, str] | None:
    """(seq, prev) as written in a record's canonical bytes, or None if they cannot be found there.

    The keys of canonical bytes are sorted, so the record's own `prev` is the last `"prev":"` in them (a body's
    keys come before it, and the string values after it cannot hold an unescaped quote), followed by `seq`."""
    at = canonical.rfind(_PREV)
    if at < 0:
        return None
    start = at + len(_PREV)
    prev = canonical[start : start + _HEX_LEN]
    after = start + _HEX_LEN
    if canonical[after : after + len(_SEQ)] != _SEQ:
        return None
    end = canonical.find(b",", after + len(_SEQ))
    digits = canonical[after + len(_SEQ) : end if end >= 0 else None]
    if not digits.isdigit():
        return None
    return int(digits), prev.decode("ascii", "replace")


class LinkCheck:
    """Follows records read in seq order and names the damage it sees once per range."""

    def __init__(self) -> None:
        self._last: tuple[int, str] | None = None
        self._reported: set[tuple[int, int]] = set()
        self._unnamed: tuple[int, int] | None = None
        """Records (first, last) that do not name their own seq, held until a record after them says what
        they linked to."""

    def knows(self, seq: int) -> bool:
        """Whether the digest of record `seq` is at hand (else the caller may `follow` it first)."""
        return self._last is not None and self._last[0] == seq

    def follow(self, seq: int, kid: str, canonical: bytes) -> Damage | None:
        """Take record `seq` as stored (signed by `kid`, whose suite names the hash); the damage it shows that
        was not reported before, if any."""
        fields = chain_fields(canonical)
        before = self._last
        self._last = (seq, record_digest(kid, canonical))
        unnamed = self._unnamed if self._unnamed is not None and self._unnamed[1] == seq - 1 else None
        if fields is None or fields[0] != seq:
            self._unnamed = (seq, seq) if unnamed is None else (unnamed[0], seq)
            return None
        self._unnamed = None
        if unnamed is not None:
            return self._new(Damage(unnamed[0], unnamed[1], "seq", fields[1]))
        if before is not None and before[0] == seq - 1 and before[1] != fields[1]:
            return self._new(Damage(seq - 1, seq - 1, "link", fields[1]))
        return None

    def _new(self, damage: Damage) -> Damage | None:
        key = (damage.first_seq, damage.last_seq)
        if key in self._reported:
            return None
        if len(self._reported) >= REPORTED_LIMIT:
            self._reported.clear()
        self._reported.add(key)
        return damage


def damage_alarm(damage: Damage, now_ms: int) -> RecordIntent:
    """The `outbox_corrupt` alarm for damage found: raised only, it is over at the next start."""
    evidence = OutboxCorruptEvidence(
        first_seq=damage.first_seq, last_seq=damage.last_seq, check=damage.check, next_prev=damage.next_prev
    )
    return AlarmBody(AlarmKind.OUTBOX_CORRUPT, AlarmState.RAISED, "outbox", evidence.as_json()).intent(now_ms)
