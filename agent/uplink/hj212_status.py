"""The HJ 212 uplink's status snapshot, on its own so that the status and health modules can name the type
without importing the uplink (and with it the HJ 212 codec and SM4) into a station that has no HJ 212 link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Hj212Status:
    """A snapshot for `station-agent status`: `done_seq` is the outbox position every earlier record has
    passed (answered, or not mapped), `backlog` the records after it."""

    state: Literal["connecting", "online", "offline", "stopped"]
    since_ms: int
    platform: str
    sent_seq: int
    done_seq: int
    head_seq: int
    backlog: int
    frames_sent: int
    frames_acked: int
    resends: int
    skipped: int
    connects: int
    last_error: str | None
    bad_answers: int = 0
    """Frames from the platform that were not HJ 212, or answered another QN."""
    internal_errors: int = 0
    failing: bool = False
    heartbeats: int = 0
    requests_answered: int = 0
    """Platform requests answered (time, extract, the refused time set)."""
    requests_dropped: int = 0
    """Platform requests dropped unanswered because `MAX_QUEUED_REQUESTS` were already waiting."""
    requests_refused: int = 0
    """Platform requests refused (malformed, another PW or MN, a bad period, a CN this logger does not take)."""
    encrypted: bool = False
    """Whether the data area goes out SM4-encrypted on the current connection."""
