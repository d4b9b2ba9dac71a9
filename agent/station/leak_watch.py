"""Every tank's leak test, run on the tank's own hourly books: alarms when it fails, a daily verdict record.

Each hourly `reconciliation` the tank trackers close becomes a `TankBalance` for the tank's detector
(agent.station.leak), which is judged again at once. A `fail` raises `tank_leak` (loss while idle) or
`unrecorded_sales` (loss that grows with what is sold: sales off the books, or meters that give more than
they count), with the estimates as evidence; it is cleared when the test passes again (an inconclusive
answer proves nothing either way, so it leaves an alarm as it is). At each local day's close the tank's
current verdict is recorded as a `tank_test` event, pass and inconclusive included: the regulator sees the
test was running and how small a loss it could have found.

The detector's memory is the agent's own records: at start it is fed the hourly reconciliations of the last
`window_h` hours back from the outbox, so a restart does not reset a month of evidence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from agent.contract.decode import decode_record
from agent.contract.evidence import TankTestEvidence
from agent.contract.records import (
    AlarmKind,
    ReconciliationBody,
    RecordIntent,
    TankTestBody,
    parse_ts,
)
from agent.station.alarms import AlarmBook
from agent.station.leak import LeakDetector, LeakVerdict, TankBalance
from agent.station.leak_settings import LeakSettings

_ALARM_OF_CAUSE = {"leak": AlarmKind.TANK_LEAK, "unrecorded_sales": AlarmKind.UNRECORDED_SALES}


def balance_of(body: ReconciliationBody) -> TankBalance:
    """An hourly reconciliation body as the detector takes it: from the opening reading to the closing one,
    so that consecutive hours join exactly; a period the agent did not see whole is not used."""
    opening_ms, closing_ms = parse_ts(body.opening_ts), parse_ts(body.closing_ts)
    return TankBalance(
        start_ms=opening_ms,
        duration_ms=max(1, closing_ms - opening_ms),
        opening_20_ml=body.opening_volume_20_ml,
        closing_20_ml=body.closing_volume_20_ml,
        delivered_20_ml=body.delivered_20_ml,
        sold_20_ml=body.sold_20_ml,
        temperature_cC=body.temperature_cC,
        gauge_invalid=not body.complete,
    )


def hourly_books(canonical_records: Iterable[bytes]) -> dict[str, list[ReconciliationBody]]:
    """The hourly reconciliation bodies among the stored records (canonical JSON), by tank, oldest first."""
    books: dict[str, list[ReconciliationBody]] = {}
    for canonical in canonical_records:
        body = decode_record(canonical).body
        if isinstance(body, ReconciliationBody) and body.period == "hour":
            books.setdefault(body.tank, []).append(body)
    return books


class LeakWatch:
    def __init__(
        self,
        tanks: Iterable[str],
        settings: LeakSettings,
        alarms: AlarmBook,
        history: dict[str, list[ReconciliationBody]] | None = None,
    ) -> None:
        self._alarms = alarms
        self._detectors = {tank: LeakDetector(settings) for tank in tanks}
        self._fed_to_ms = dict.fromkeys(self._detectors, 0)
        for tank, bodies in (history or {}).items():
            for body in bodies if tank in self._detectors else ():
                self._feed(tank, body)

    def on_books(self, intents: list[RecordIntent]) -> list[RecordIntent]:
        """The records that follow from books just closed: alarms after an hour, the test after a day."""
        out: list[RecordIntent] = []
        for intent in intents:
            books = intent.body
            if not isinstance(books, ReconciliationBody):
                continue
            detector = self._detectors.get(books.tank)
            if detector is None:
                continue
            if books.period == "hour":
                self._feed(books.tank, books)
                out += self._judge(books.tank, detector.verdict(), intent.ts_ms)
            else:
                out.append(_test_body(books.tank, detector.verdict()).intent(intent.ts_ms))
        return out

    def _feed(self, tank: str, body: ReconciliationBody) -> None:
        """The detector takes hours in time order only; an hour that overlaps the last one (the wall clock
        stepped back) is left out rather than break the test."""
        balance = balance_of(body)
        if balance.start_ms >= self._fed_to_ms[tank]:
            self._detectors[tank].add(balance)
            self._fed_to_ms[tank] = balance.end_ms

    def _judge(self, tank: str, verdict: LeakVerdict, ts_ms: int) -> list[RecordIntent]:
        if verdict.status == "fail" and verdict.cause is not None:
            return self._alarms.raise_(_ALARM_OF_CAUSE[verdict.cause], tank, ts_ms, _evidence(verdict, "fail"))
        if verdict.status == "pass":
            evidence = _evidence(verdict, "pass")
            return [
                *self._alarms.clear(AlarmKind.TANK_LEAK, tank, ts_ms, evidence),
                *self._alarms.clear(AlarmKind.UNRECORDED_SALES, tank, ts_ms, evidence),
            ]
        return []


def _evidence(verdict: LeakVerdict, status: Literal["fail", "pass"]) -> TankTestEvidence:
    return TankTestEvidence(
        status=status,
        span_h=verdict.span_h,
        hours=verdict.hours,
        quiet_hours=verdict.quiet_hours,
        sold_20_ml=verdict.sold_20_ml,
        leak_ml_per_h=verdict.leak_ml_per_h,
        leak_threshold_ml_per_h=verdict.leak_threshold_ml_per_h,
        unrecorded_ppm=verdict.unrecorded_ppm,
        unrecorded_threshold_ppm=verdict.unrecorded_threshold_ppm,
    )


def _test_body(tank: str, verdict: LeakVerdict) -> TankTestBody:
    return TankTestBody(
        tank=tank,
        status=verdict.status,
        cause=verdict.cause,
        span_h=verdict.span_h,
        hours=verdict.hours,
        quiet_hours=verdict.quiet_hours,
        sold_20_ml=verdict.sold_20_ml,
        leak_ml_per_h=verdict.leak_ml_per_h,
        leak_threshold_ml_per_h=verdict.leak_threshold_ml_per_h,
        min_detectable_leak_ml_per_h=verdict.min_detectable_leak_ml_per_h,
        unrecorded_ppm=verdict.unrecorded_ppm,
        unrecorded_threshold_ppm=verdict.unrecorded_threshold_ppm,
        min_detectable_unrecorded_ppm=verdict.min_detectable_unrecorded_ppm,
    )
