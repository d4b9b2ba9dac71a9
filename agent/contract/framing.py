"""Payloads of contract v1 on the wire: records messages, the status topic, and acks from the platform."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from agent.contract.inbound_json import InboundJsonError, JsonLimits, load_json

_OPEN = b'{"kid":"'
_RECORDS = b'","records":['
_ITEM_OPEN = b'{"record":'
_ITEM_SIG = b',"sig":"'
_ITEM_CLOSE = b'"}'
_CLOSE = b"]}"
_SIG_B64_LEN = 88
_ITEM_OVERHEAD = len(_ITEM_OPEN) + len(_ITEM_SIG) + _SIG_B64_LEN + len(_ITEM_CLOSE) + 1


@dataclass(frozen=True, slots=True)
class Topics:
    records: str
    status: str
    ack: str
    cmd: str
    cmd_reply: str

    @classmethod
    def for_station(cls, prefix: str, station: str) -> Topics:
        base = f"{prefix}/{station}"
        return cls(f"{base}/records", f"{base}/status", f"{base}/ack", f"{base}/cmd", f"{base}/cmd/reply")


class SignedRecord(Protocol):
    """A record as the outbox keeps it: the exact bytes that were signed and the signature over them."""

    @property
    def seq(self) -> int: ...
    @property
    def kid(self) -> str: ...
    @property
    def canonical(self) -> bytes: ...
    @property
    def sig(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class RecordsMessage:
    first: int
    last: int
    payload: bytes


def build_records_message(records: Iterable[SignedRecord], max_bytes: int) -> RecordsMessage | None:
    """Pack records (ascending, contiguous, one key) into one message of at most max_bytes.

    The record bytes are the stored canonical bytes, spliced in unchanged, so a re-sent record is the very
    record that was signed. A message always holds at least one record, even one larger than max_bytes.
    Packing stops at a change of key id, because a message carries one `kid`.
    """
    parts: list[bytes] = []
    first = last = 0
    kid = ""
    size = 0
    for record in records:
        if not parts:
            first, kid = record.seq, record.kid
            size = len(_OPEN) + len(kid) + len(_RECORDS) + len(_CLOSE)
        elif record.kid != kid or record.seq != last + 1:
            break
        item_size = len(record.canonical) + _ITEM_OVERHEAD
        if parts and size + item_size > max_bytes:
            break
        parts.append(_ITEM_OPEN + record.canonical + _ITEM_SIG + base64.b64encode(record.sig) + _ITEM_CLOSE)
        size += item_size
        last = record.seq
    if not parts:
        return None
    payload = _OPEN + kid.encode() + _RECORDS + b",".join(parts) + _CLOSE
    return RecordsMessage(first, last, payload)


def status_payload(state: str, **fields: object) -> bytes:
    """The status topic: `{"state": "online" | "offline", ...}`, retained, also the last will."""
    return json.dumps({"state": state, **fields}, separators=(",", ":"), sort_keys=True).encode()


class AckError(ValueError):
    """An ack message that is not `{"upto": N}` with N a non-negative integer, or is larger than allowed."""


ACK_DEPTH = 2
"""`{"upto": N}` is one object deep; one more level still reads a well-meant extension, nothing deeper."""


def parse_ack(payload: bytes, max_bytes: int) -> int:
    """The `upto` of an ack; its size, depth and number length are checked before and while parsing
    (agent.contract.inbound_json), so no payload raises anything but AckError."""
    try:
        message = load_json(payload, JsonLimits(max_bytes, ACK_DEPTH))
    except InboundJsonError as exc:
        raise AckError(f"ack refused: {exc}") from exc
    upto = message.get("upto") if isinstance(message, dict) else None
    if not isinstance(upto, int) or isinstance(upto, bool) or upto < 0:
        raise AckError(f'ack must be {{"upto": N}} with N >= 0, got {payload[:80]!r}')
    return upto
