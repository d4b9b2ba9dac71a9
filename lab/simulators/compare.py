"""What the simulated forecourt did against what the platform received: the check a supplier's CI ends with.

The simulator's report (`[simulation] report`) holds the sales each simulated controller booked; the reference
platform receiver's database holds the transaction records a station delivered. Every sale booked between a
nozzle's first and last recorded transaction must be at the platform, with the controller's volume: a sale
missing there was lost on the way, a volume that differs was misread or altered. Sales before a nozzle's first
recorded one were booked before the gateway started, and after its last one are still on their way, so neither
counts. The nozzle ids of the gateway's records must be the simulator's (`D01-N1`).

The comparison itself (`compare_sales`) is pure; `read_simulated_sales` and `read_platform` read the two files,
treating both as untrusted: size-limited, and any shape that is not the expected one is a `CompareInputError`
that names the file and what was wrong.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeGuard

from simulators.platform.audit import audit
from simulators.platform.keys import Keyring
from simulators.platform.store import Store, StoreError

LISTED_AT_MOST: Final = 20
"""Missing sales and wrong volumes listed by name; beyond this only their counts grow, so that one JSON line
stays readable when a whole nozzle went missing."""
MAX_REPORT_BYTES: Final = 64 * 1024**2
"""A simulator report holds at most 1000 sales a nozzle; a file far larger than that is not one."""

Transactions = Mapping[str, Mapping[int, int]]
"""nozzle -> {controller txn_no: volume_ml}."""


class CompareInputError(ValueError):
    """A report or database that cannot be compared; the message names the file, what is wrong and the fix."""


@dataclass(frozen=True, slots=True)
class SalesComparison:
    """The outcome: sales matched, missing at the platform, or there with another volume (each listed up to
    LISTED_AT_MOST, counted in full), and the nozzles that sold but have no transaction at the platform."""

    matched: int = 0
    missing: tuple[str, ...] = ()
    missing_count: int = 0
    wrong_volume: tuple[str, ...] = ()
    wrong_volume_count: int = 0
    nozzles_without_records: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every comparable sale is there with its volume, and there was at least one to compare."""
        return self.matched > 0 and self.missing_count == 0 and self.wrong_volume_count == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "missing": list(self.missing),
            "missing_count": self.missing_count,
            "wrong_volume": list(self.wrong_volume),
            "wrong_volume_count": self.wrong_volume_count,
            "nozzles_without_records": list(self.nozzles_without_records),
        }


def compare_sales(simulated: Transactions, recorded: Transactions) -> SalesComparison:
    """Each simulated sale within its nozzle's recorded window, looked up among the recorded transactions."""
    missing: list[str] = []
    wrong: list[str] = []
    matched = 0
    silent: list[str] = []
    for nozzle, sales in sorted(simulated.items()):
        seen = recorded.get(nozzle, {})
        if not seen:
            if sales:
                silent.append(nozzle)
            continue
        first, last = min(seen), max(seen)
        for txn_no, volume_ml in sorted(sales.items()):
            if not first <= txn_no <= last:
                continue
            if txn_no not in seen:
                missing.append(f"{nozzle}#{txn_no}")
            elif seen[txn_no] != volume_ml:
                wrong.append(f"{nozzle}#{txn_no}: platform {seen[txn_no]} mL, controller {volume_ml} mL")
            else:
                matched += 1
    return SalesComparison(
        matched=matched,
        missing=tuple(missing[:LISTED_AT_MOST]),
        missing_count=len(missing),
        wrong_volume=tuple(wrong[:LISTED_AT_MOST]),
        wrong_volume_count=len(wrong),
        nozzles_without_records=tuple(silent),
    )


@dataclass(frozen=True, slots=True)
class PlatformHoldings:
    """What the platform database holds of one station: its transactions and its records counted by type."""

    transactions: Transactions
    by_type: Mapping[str, int]
    audit: Mapping[str, Any] | None = field(default=None)
    """The station's audit report when keys were given (`station-sim platform-audit`'s)."""

    @property
    def audit_ok(self) -> bool:
        return self.audit is None or bool(self.audit.get("ok"))


def read_simulated_sales(path: Path) -> Transactions:
    """nozzle -> {txn_no: controller volume_ml} from a `station-sim run` report."""
    report = _json_object(path)
    nozzles = report.get("nozzles")
    if not isinstance(nozzles, dict):
        raise CompareInputError(f"{path}: no `nozzles` object; give the report `station-sim run` writes")
    sales: dict[str, dict[int, int]] = {}
    for nozzle, entry in nozzles.items():
        rows = entry.get("sales") if isinstance(entry, dict) else None
        if not isinstance(rows, list):
            raise CompareInputError(f"{path}: nozzles.{nozzle}.sales is not a list; give a `station-sim run` report")
        booked: dict[int, int] = {}
        for index, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) >= 2 and all(_is_int(value) for value in row[:2])):
                raise CompareInputError(
                    f"{path}: nozzles.{nozzle}.sales[{index}] is {row!r:.60}, not [txn_no, volume_ml, ...]"
                )
            booked[row[0]] = row[1]
        sales[nozzle] = booked
    return sales


def read_platform(db: Path, station: str, keys: Keyring | None = None) -> PlatformHoldings:
    """The station's accepted transactions and record counts; with `keys`, the audit of the whole database
    too (every stored signature and link checked again), so that a CI trusts no derived column."""
    if keys is not None and station not in keys:
        raise CompareInputError(
            f"no --key for station {station!r} (keys for: {', '.join(sorted(keys))}); give --key {station}=PUB.pem"
        )
    transactions: dict[str, dict[int, int]] = {}
    by_type: Counter[str] = Counter()
    try:
        with Store(db, read_only=True) as store:
            for canonical in store.accepted(station):
                record = _stored_record(canonical)
                by_type[str(record.get("type"))] += 1
                if record.get("type") == "transaction":
                    _take_transaction(record.get("body"), transactions)
        audited = None if keys is None else audit(db, keys).station(station).to_json()
    except StoreError as error:
        raise CompareInputError(str(error)) from error
    return PlatformHoldings(transactions, dict(by_type), audited)


def _stored_record(canonical: bytes) -> dict[str, Any]:
    """A stored record as an object; bytes someone rewrote into something else count as type `None` (and
    `--key`'s audit says which)."""
    try:
        record = json.loads(canonical)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _take_transaction(body: object, transactions: dict[str, dict[int, int]]) -> None:
    """File a transaction body under its nozzle; a body without an integer txn_no and volume cannot match any
    sale, so it is left out (the sale it should have been then shows as missing or wrong)."""
    if not isinstance(body, dict):
        return
    txn_no, volume_ml = body.get("txn_no"), body.get("volume_ml")
    if _is_int(txn_no) and _is_int(volume_ml):
        transactions.setdefault(str(body.get("nozzle")), {})[txn_no] = volume_ml


def compare_files(sim_report: Path, db: Path, station: str) -> SalesComparison:
    """`compare_sales` of a simulator report and a platform database, for one station; CompareInputError if
    either cannot be read."""
    return compare_sales(read_simulated_sales(sim_report), read_platform(db, station).transactions)


def simulated_counts(simulated: Transactions) -> dict[str, int]:
    return {"nozzles": len(simulated), "sales": sum(len(sales) for sales in simulated.values())}


def _is_int(value: object) -> TypeGuard[int]:
    """An integer, and not a bool (which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _json_object(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_REPORT_BYTES + 1)
    except OSError as error:
        raise CompareInputError(f"{path}: cannot be read: {error.strerror}; give the simulator's report") from error
    if len(data) > MAX_REPORT_BYTES:
        raise CompareInputError(f"{path}: larger than {MAX_REPORT_BYTES} bytes; not a simulator report")
    try:
        document = json.loads(data)
    except ValueError as error:
        raise CompareInputError(f"{path}: not JSON ({error}); give the report `station-sim run` writes") from error
    if not isinstance(document, dict):
        raise CompareInputError(f"{path}: not a JSON object; give the report `station-sim run` writes")
    return document
