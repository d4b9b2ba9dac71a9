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

import json
from collections.abc import Iterable

from agent.contract.records import (
    AlarmKind,
    JsonScalar,
    JsonValue,
    RecordIntent,
    RecordType,
    TankTestBody,
    body_int,
    parse_ts,
)
from agent.station.alarms import AlarmBook
from agent.station.leak import LeakDetector, LeakSettings, LeakVerdict, TankBalance

_ALARM_OF_CAUSE = {"leak": AlarmKind.TANK_LEAK, "unrecorded_sales": AlarmKind.UNRECORDED_SALES}


def balance_of(body: dict[str, JsonValue]) -> TankBalance:
    """An hourly reconciliation body as the detector takes it: from the opening reading to the closing one,
    so that consecutive hours join exactly; a period the agent did not see whole is not used."""
    opening_ms, closing_ms = parse_ts(str(body["opening_ts"])), parse_ts(str(body["closing_ts"]))
    return TankBalance(
        start_ms=opening_ms,
        duration_ms=max(1, closing_ms - opening_ms),
        opening_20_ml=body_int(body["opening_volume_20_ml"]),
        closing_20_ml=body_int(body["closing_volume_20_ml"]),
        delivered_20_ml=body_int(body["delivered_20_ml"]),
        sold_20_ml=body_int(body["sold_20_ml"]),
        temperature_cC=body_int(body["temperature_cC"]),
        gauge_invalid=body["complete"] is not True,
    )


def hourly_books(canonical_records: Iterable[bytes]) -> dict[str, list[dict[str, JsonValue]]]:
    """The hourly reconciliation bodies among the records (canonical JSON), by tank, oldest first."""
    books: dict[str, list[dict[str, JsonValue]]] = {}
    for canonical in canonical_records:
        record = json.loads(canonical)
        body = record["body"]
        if record["type"] == RecordType.RECONCILIATION and body.get("period") == "hour":
            books.setdefault(str(body["tank"]), []).append(body)
    return books


class LeakWatch:
    def __init__(
        self,
        tanks: Iterable[str],
        settings: LeakSettings,
        alarms: AlarmBook,
        history: dict[str, list[dict[str, JsonValue]]] | None = None,
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
            if intent.type is not RecordType.RECONCILIATION:
                continue
            tank = str(intent.body["tank"])
            detector = self._detectors.get(tank)
            if detector is None:
                continue
            if intent.body["period"] == "hour":
                self._feed(tank, intent.body)
                out += self._judge(tank, detector.verdict(), intent.ts_ms)
            else:
                out.append(_test_body(tank, detector.verdict()).intent(intent.ts_ms))
        return out

    def _feed(self, tank: str, body: dict[str, JsonValue]) -> None:
        """The detector takes hours in time order only; an hour that overlaps the last one (the wall clock
        stepped back) is left out rather than break the test."""
        balance = balance_of(body)
        if balance.start_ms >= self._fed_to_ms[tank]:
            self._detectors[tank].add(balance)
            self._fed_to_ms[tank] = balance.end_ms

    def _judge(self, tank: str, verdict: LeakVerdict, ts_ms: int) -> list[RecordIntent]:
        evidence = _evidence(verdict)
        if verdict.status == "fail" and verdict.cause is not None:
            return self._alarms.raise_(_ALARM_OF_CAUSE[verdict.cause], tank, ts_ms, evidence)
        if verdict.status == "pass":
            return [
                *self._alarms.clear(AlarmKind.TANK_LEAK, tank, ts_ms, evidence),
                *self._alarms.clear(AlarmKind.UNRECORDED_SALES, tank, ts_ms, evidence),
            ]
        return []


def _evidence(verdict: LeakVerdict) -> dict[str, JsonScalar]:
    return {
        "status": verdict.status,
        "span_h": verdict.span_h,
        "hours": verdict.hours,
        "quiet_hours": verdict.quiet_hours,
        "sold_20_ml": verdict.sold_20_ml,
        "leak_ml_per_h": verdict.leak_ml_per_h,
        "leak_threshold_ml_per_h": verdict.leak_threshold_ml_per_h,
        "unrecorded_ppm": verdict.unrecorded_ppm,
        "unrecorded_threshold_ppm": verdict.unrecorded_threshold_ppm,
    }


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
