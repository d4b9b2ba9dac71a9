"""The fixed words of the platform contract, version 1: record keys, record types, topics.

Everything here is read off the contract page and nothing else, so that a reader can hold this module next
to the page and see that they say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

CONTRACT_VERSION: Final = 1
DEFAULT_PREFIX: Final = "fsm/v1"
RECORD_KEYS: Final = frozenset({"v", "station", "seq", "ts", "type", "body", "prev"})
GENESIS_PREV: Final = "0" * 64
KNOWN_TYPES: Final = frozenset(
    {
        "transaction",
        "tank_inventory",
        "delivery",
        "reconciliation",
        "vapour",
        "alarm",
        "event",
        "heartbeat",
        "daily_summary",
        "tank_pressure",
        "chain_reset",
    }
)
CHAIN_RESET: Final = "chain_reset"
"""v1.1: the record a station makes when it lost its store but not its key; it links to record
`body.known_seq`, not `seq - 1`, and declares `body.lost_first` .. `seq - 1` as possibly lost."""
STATUS_STATES: Final = frozenset({"online", "offline"})
RECORDS: Final = "records"
STATUS: Final = "status"
ACK: Final = "ack"
_FORBIDDEN_IN_TOPIC_LEVEL: Final = frozenset("/+#\x00")


def station_id_problem(station: str) -> str | None:
    """Why `station` cannot be one level of an MQTT topic, or None when it can."""
    if not station:
        return "it is empty"
    bad = sorted(set(station) & _FORBIDDEN_IN_TOPIC_LEVEL)
    if bad:
        return f"it contains {', '.join(repr(c) for c in bad)}, which MQTT topic levels cannot hold"
    return None


def prefix_problem(prefix: str) -> str | None:
    """Why `prefix` cannot lead a topic name, or None when it can: non-empty levels, no wildcards."""
    for level in prefix.split("/"):
        problem = station_id_problem(level)
        if problem is not None:
            return f"its level {level!r} cannot be used: {problem}"
    return None


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names of one deployment, all under one prefix."""

    prefix: str = DEFAULT_PREFIX

    def subscriptions(self) -> tuple[str, ...]:
        """What the platform subscribes to: every station's records and status."""
        return (f"{self.prefix}/+/{RECORDS}", f"{self.prefix}/+/{STATUS}")

    def ack(self, station: str) -> str:
        return f"{self.prefix}/{station}/{ACK}"

    def parse(self, topic: str) -> tuple[str, str] | None:
        """(station, kind) of a topic under the prefix, or None for anything else."""
        head = f"{self.prefix}/"
        if not topic.startswith(head):
            return None
        levels = topic[len(head) :].split("/")
        if len(levels) != 2 or not levels[0]:
            return None
        return levels[0], levels[1]
