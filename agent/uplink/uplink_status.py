"""The MQTT uplink's status snapshot, on its own so that the readers of the status (the status and health
modules, `station-agent status`, the web page) can name the type without importing the uplink, and with it
paho."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class UplinkStatus:
    state: Literal["connecting", "online", "offline", "stopped"]
    since_ms: int
    broker: str
    ack_mode: str
    acked_upto: int
    head_seq: int
    messages_published: int
    records_published: int
    rewinds: int
    connects: int
    last_error: str | None
    acks_refused: int = 0
    """Ack messages too large or not `{"upto": N}`, dropped."""
    internal_errors: int = 0
    """Unexpected exceptions contained by the loop's boundary (each an internal_error event, rate-limited)."""
    failing: bool = False
    """The loop's last turns all failed; it keeps trying, paced."""
