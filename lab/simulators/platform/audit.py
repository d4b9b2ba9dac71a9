"""Re-verify a platform database from its evidence alone: the stored bytes, signatures and keys.

The audit trusts nothing the database derived (digests, types, `upto`, chain breaks): it replays every stored
record and kept-aside fork, in seq order, through the same checks and the same chain logic as the live receiver,
into a fresh in-memory store. What cannot be re-derived because it was never stored (duplicates, rejected
messages, the last status) is carried over from the database as it was counted, and the audit's own findings
(a stored record that no longer verifies) are added to it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import structlog

from simulators.platform.keys import Keyring, StationPublicKey
from simulators.platform.report import PlatformReport, StationReport
from simulators.platform.rotation import announced_key
from simulators.platform.store import Store
from simulators.platform.verify import Rejection, Verdict, verify_stored

log = structlog.get_logger(__name__)


def _carried_over(received: StationReport, replayed: StationReport) -> StationReport:
    """The replayed view of the records, with the counts only the receiver could have made."""
    return dataclasses.replace(
        replayed,
        duplicates=received.duplicates,
        rejections=dict(Counter(received.rejections) + Counter(replayed.rejections)),
        status=received.status,
    )


def audit(db_path: Path, keys: Keyring) -> PlatformReport:
    """The report of the database at `db_path`, every signature and link checked again with `keys`."""
    with Store(db_path, read_only=True) as received, Store(":memory:") as replayed:
        unknown = Counter(received.unknown_stations())
        learned: dict[str, dict[str, StationPublicKey]] = {}
        for row in received.rows():
            station_keys = keys.get(row.station)
            if station_keys is None:
                unknown[row.station] += 1
                continue
            station_keys = {**station_keys, **learned.get(row.station, {})}
            outcome = verify_stored(row.canonical, row.sig, row.kid, row.station, station_keys)
            if isinstance(outcome, Rejection):
                log.error(
                    "platform.audit_rejected",
                    station=row.station,
                    seq=outcome.seq,
                    reason=outcome.reason.value,
                    detail=outcome.detail,
                )
                verdict = Verdict(rejections=(outcome,))
            else:
                verdict = Verdict(accepted=(outcome,))
                announced = announced_key(row.canonical, row.kid) if outcome.type == "event" else None
                if announced is not None:
                    learned.setdefault(row.station, {})[announced[0]] = announced[1]
            replayed.ingest(row.station, verdict)
        stations = tuple(
            _carried_over(received.station_report(station), replayed.station_report(station)) for station in keys
        )
    return PlatformReport(stations, dict(unknown))
