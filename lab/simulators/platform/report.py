"""What the platform can say about each station, and the one rule that decides whether that is good.

`ok` for a station is true iff everything the platform received from it was valid and is complete:

- no fork (no seq ever arrived with two different records),
- no chain break (every stored record whose predecessor is stored links to it, and seq 1 links to 64 zeros),
- no gap (`upto == highest_seq`: every seq from 1 to the highest seen is stored and linked, or declared lost by
  a chain_reset of contract v1.1: a declared loss is reported in `resets` and `lost`, and is not a gap),
- no rejection of any kind (bad signature, unknown kid, malformed message, contract violation).

Duplicates, unknown record types and the station's status do not affect `ok`: a re-sent record is harmless,
the type list is open, and being offline is reported, not judged. The platform report is `ok` iff every
configured station is; traffic for stations the platform has no key for is counted but does not affect it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from simulators.platform.contract import KNOWN_TYPES
from simulators.platform.verify import Reason

MALFORMED: Final = frozenset({Reason.NOT_JSON, Reason.MESSAGE_SHAPE})
"""Rejections of messages that are not a records message at all, reported as `malformed`."""
SEPARATELY_REPORTED: Final = MALFORMED | {Reason.UNKNOWN_KID, Reason.BAD_SIGNATURE}


@dataclass(frozen=True, slots=True)
class StationReport:
    """The platform's view of one station. Counts are since the database was created."""

    station: str
    accepted: int
    upto: int
    highest_seq: int
    gaps: tuple[tuple[int, int], ...]
    duplicates: int
    forks: tuple[int, ...]
    chain_breaks: tuple[int, ...]
    rejections: Mapping[str, int]
    by_type: Mapping[str, int]
    status: Mapping[str, object] | None
    resets: tuple[tuple[int, str, int, int], ...] = ()
    """v1.1: each chain_reset stored, as (seq, reason, lost_first, lost_last)."""
    lost: tuple[tuple[int, int], ...] = ()
    """v1.1: the ranges declared lost by a chain_reset that are not stored: explained, so not gaps."""

    def _rejected(self, reasons: frozenset[Reason]) -> int:
        return sum(count for reason, count in self.rejections.items() if reason in reasons)

    @property
    def bad_signatures(self) -> int:
        return self._rejected(frozenset({Reason.BAD_SIGNATURE}))

    @property
    def unknown_kid(self) -> int:
        return self._rejected(frozenset({Reason.UNKNOWN_KID}))

    @property
    def malformed(self) -> int:
        return self._rejected(MALFORMED)

    @property
    def contract_violations(self) -> dict[str, int]:
        return {
            reason: count
            for reason, count in sorted(self.rejections.items())
            if reason not in SEPARATELY_REPORTED and count
        }

    @property
    def unknown_types(self) -> int:
        return sum(count for record_type, count in self.by_type.items() if record_type not in KNOWN_TYPES)

    @property
    def ok(self) -> bool:
        return (
            not self.forks
            and not self.chain_breaks
            and self.upto == self.highest_seq
            and not any(self.rejections.values())
        )

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "accepted": self.accepted,
            "upto": self.upto,
            "highest_seq": self.highest_seq,
            "gaps": [list(gap) for gap in self.gaps],
            "resets": [
                {"seq": seq, "reason": reason, "lost_first": first, "lost_last": last}
                for seq, reason, first, last in self.resets
            ],
            "lost": [list(lost) for lost in self.lost],
            "duplicates": self.duplicates,
            "forks": list(self.forks),
            "chain_breaks": list(self.chain_breaks),
            "bad_signatures": self.bad_signatures,
            "unknown_kid": self.unknown_kid,
            "malformed": self.malformed,
            "contract_violations": self.contract_violations,
            "by_type": dict(sorted(self.by_type.items())),
            "unknown_types": self.unknown_types,
            "status": dict(self.status) if self.status is not None else None,
        }


@dataclass(frozen=True, slots=True)
class PlatformReport:
    """Every configured station, plus counts of messages for stations the platform has no key for."""

    stations: tuple[StationReport, ...]
    unknown_stations: Mapping[str, int]

    @property
    def ok(self) -> bool:
        return all(station.ok for station in self.stations)

    def station(self, station: str) -> StationReport:
        for report in self.stations:
            if report.station == station:
                return report
        raise LookupError(f"station {station!r} is not configured; configured: {[s.station for s in self.stations]}")

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "stations": {report.station: report.to_json() for report in self.stations},
            "unknown_stations": dict(sorted(self.unknown_stations.items())),
        }
