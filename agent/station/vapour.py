"""Vapour recovery judged nozzle by nozzle: the A/L of each fuelling, a verdict per local day, and alarms.

Theory of operation. A fuelling *counts* when it is at least `min_volume_ml` and its vapour was measured whole;
it *passes* when its A/L lies in the band. Two rule sets judge the counted fuellings of a day:

- `gb20952` (GB 20952-2020 Annex E as Chinese vendors implement it): the day's pass share decides. A day with too
  few counted fuellings is not judged but rolls its counts into the next day, until enough have gathered (or the
  pool's oldest fuelling is more than `max_carry_days` old, when it is dropped as too old to speak for the
  nozzle; days before the pool's first fuelling do not age it). A judged day below the pass share is a warning
  day; `alarm_warning_days` warning days in a row make an alarm; a pass day clears both. An inconclusive day
  leaves the run as it is (unless `thin_day_breaks_run`).
- `carb` (CARB EVR in-station diagnostics, as the certified consoles implement it): the day's mean A/L (the
  daily or "gross" test) and the mean over the last `carb_week_days` days (the weekly or "degradation" test)
  must stay in their bands, each judged only with enough fuellings. A failing test is a warning; the daily test
  failing `carb_daily_failure_days` assessments in a row, or the weekly one `carb_weekly_failure_days` in a
  row, is an alarm (the console's failure). A day is a pass when a test ran and none failed, even if the other
  had too few fuellings; inconclusive when neither ran, and then it leaves both runs as they are.

Why these edges, with their sources, is in docs/detection.md ("Vapour recovery rules: the edges").

Two conditions are judged fuelling by fuelling, in real time: a vacuum-pump fault when `pump_fault_fuellings`
counted fuellings in a row drew less vapour per minute than `pump_fault_vapour_ml_per_min` (a pump that runs
still draws some air, so a low flow, not a zero one, is the sign), and, at the day's judgement, a slow dispenser
when most out-of-band fuellings of a failing day ran below `slow_flow_ml_per_min`: A/L control is tuned at the
nozzle's nominal flow, so failures concentrated at low liquid flow point at the dispenser (a clogged filter, a
worn pump, a half-pulled trigger) rather than at the recovery system, and the service visit differs.

Everything the next day's judgement needs is written into the day's `vapour` record (counts carried, warning
days, the pump-fault run, the day's A/L sum for the weekly mean), so the records of the last week are all a
restarted agent needs; the open day is rebuilt by replaying its transactions, which makes no alarm.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from agent.contract.evidence import SlowDispenserEvidence, VapourDayEvidence, VapourPumpFaultEvidence
from agent.contract.records import (
    AlarmKind,
    RecordIntent,
    TransactionBody,
    VapourBody,
    parse_ts,
)
from agent.station.alarms import AlarmBook
from agent.station.vapour_settings import VapourSettings

Verdict = Literal["pass", "warning", "alarm", "inconclusive"]

_MS_PER_MIN = 60_000


@dataclass(frozen=True, slots=True)
class Fuelling:
    """What the judgement takes from a `transaction` body. `duration_ms` is 0 when the agent did not see the
    fuelling start or end: its flows are then unknown, so it is neither slow nor a sign of a pump fault."""

    nozzle: str
    dispenser: str
    grade: str
    txn_no: int
    volume_ml: int
    vapour_ml: int | None
    al_permille: int | None
    duration_ms: int

    @classmethod
    def of(cls, body: TransactionBody) -> Fuelling:
        return cls(
            nozzle=body.nozzle,
            dispenser=body.dispenser,
            grade=body.grade,
            txn_no=body.txn_no,
            volume_ml=body.volume_ml,
            vapour_ml=body.vapour_ml,
            al_permille=body.al_permille,
            duration_ms=max(0, parse_ts(body.end) - parse_ts(body.start)),
        )

    def counts(self, rules: VapourSettings) -> bool:
        return self.vapour_ml is not None and self.al_permille is not None and self.volume_ml >= rules.min_volume_ml

    def passes(self, rules: VapourSettings) -> bool:
        return self.al_permille is not None and rules.al_low_permille <= self.al_permille <= rules.al_high_permille

    def slow(self, rules: VapourSettings) -> bool:
        return self.duration_ms > 0 and self.volume_ml * _MS_PER_MIN < rules.slow_flow_ml_per_min * self.duration_ms

    def vapour_starved(self, rules: VapourSettings) -> bool:
        vapour_ml = self.vapour_ml or 0
        return vapour_ml * _MS_PER_MIN < rules.pump_fault_vapour_ml_per_min * self.duration_ms


def _mean_out_of_band(al_sum: int, count: int, least: int, low: int, high: int) -> bool | None:
    """Whether a mean A/L lies outside low..high (per mille); None when fewer than `least` fuellings make it."""
    if count < least:
        return None
    return not low * count <= al_sum <= high * count


def al_mean_permille(al_sum: int, count: int) -> int | None:
    """The mean A/L rounded to the nearest per mille (halves to even); None without fuellings."""
    return round(Fraction(al_sum, count)) if count else None


def al_stdev_permille(al_sum: int, al_square_sum: int, count: int) -> int | None:
    """The sample standard deviation rounded to the nearest per mille, computed exactly from integer sums
    (the rounding of the square root is exact too: no float enters); None below two fuellings."""
    if count < 2:
        return None
    variance = Fraction(count * al_square_sum - al_sum * al_sum, count * (count - 1))
    twice_root = math.isqrt(4 * variance.numerator // variance.denominator)
    return (twice_root + 1) // 2


@dataclass(frozen=True, slots=True)
class _Carry:
    """The counts of thin days rolled into the next judgement, and how many days old its oldest fuelling is."""

    fuellings: int = 0
    passed: int = 0
    slow: int = 0
    days: int = 0

    def a_day_older(self) -> _Carry:
        """The pool as the next day receives it. A pool without a fuelling does not age: its age is that of
        the evidence in it, and a nozzle idle for months must not have its first fresh fuellings dropped."""
        return _Carry(self.fuellings, self.passed, self.slow, self.days + 1 if self.fuellings else 0)


def _run(days: int, failed: bool | None, thin_day_breaks_run: bool) -> int:
    """A run of failing assessments after one more day: a failure extends it, a pass ends it, and a day with
    no assessment (None) leaves it unless the settings say it breaks it."""
    if failed is None:
        return 0 if thin_day_breaks_run else days
    return days + 1 if failed else 0


@dataclass(slots=True)
class _Nozzle:
    """One nozzle's open day and what the next judgement starts from."""

    dispenser: str
    grade: str
    fuellings: int = 0
    counted: int = 0
    passed: int = 0
    slow: int = 0
    pump_fault: int = 0
    al_sum: int = 0
    al_square_sum: int = 0
    pump_fault_run: int = 0
    warning_days: int = 0
    daily_fail_days: int = 0
    weekly_fail_days: int = 0
    carry: _Carry = field(default_factory=_Carry)
    week: dict[datetime.date, tuple[int, int]] = field(default_factory=dict)
    """Counted fuellings and A/L sum of each closed day within the weekly window."""

    def open_day_done(self) -> None:
        self.fuellings = self.counted = self.passed = self.slow = self.pump_fault = 0
        self.al_sum = self.al_square_sum = 0


@dataclass(frozen=True, slots=True)
class _Judgement:
    verdict: Verdict
    judged: _Carry
    pass_share_permille: int | None
    week_counted: int
    week_al_mean_permille: int | None
    rolled_over: bool


class VapourWatch:
    """Counts every nozzle's fuellings into its open day and judges the day when the caller closes it.

    The open day is everything since the last `close_day`: the caller closes local days in order at the
    station's day boundary, so this module needs no time zone. A day at or before the last one in the history
    is not closed again."""

    def __init__(self, settings: VapourSettings, alarms: AlarmBook, history: list[VapourBody]) -> None:
        self._rules = settings
        self._alarms = alarms
        self._nozzles: dict[str, _Nozzle] = {}
        self._last_closed: datetime.date | None = None
        for body in history:
            self._resume(body)

    def _resume(self, body: VapourBody) -> None:
        day = datetime.date.fromisoformat(body.day)
        nozzle = self._nozzle(body.nozzle, body.dispenser, body.grade)
        nozzle.week[day] = (body.counted, body.al_sum_permille)
        nozzle.warning_days = body.warning_days
        nozzle.daily_fail_days = body.daily_fail_days
        nozzle.weekly_fail_days = body.weekly_fail_days
        nozzle.pump_fault_run = body.pump_fault_run
        nozzle.carry = (
            _Carry(body.judged_fuellings, body.judged_passed, body.judged_slow, body.carried_days).a_day_older()
            if body.rolled_over
            else _Carry()
        )
        self._last_closed = max(day, self._last_closed or day)

    def _nozzle(self, name: str, dispenser: str, grade: str) -> _Nozzle:
        nozzle = self._nozzles.get(name)
        if nozzle is None:
            nozzle = self._nozzles[name] = _Nozzle(dispenser, grade)
        nozzle.dispenser, nozzle.grade = dispenser, grade
        return nozzle

    def on_transaction(self, body: TransactionBody, ts_ms: int) -> list[RecordIntent]:
        """Count a fuelling; raise or clear the nozzle's `vapour_pump_fault` when it decides that."""
        fuelling = Fuelling.of(body)
        nozzle = self._count(fuelling)
        if not fuelling.counts(self._rules) or fuelling.duration_ms == 0:
            return []
        evidence = self._pump_evidence(fuelling, nozzle.pump_fault_run)
        if nozzle.pump_fault_run >= self._rules.pump_fault_fuellings:
            return self._alarms.raise_(AlarmKind.VAPOUR_PUMP_FAULT, fuelling.nozzle, ts_ms, evidence)
        if nozzle.pump_fault_run == 0:
            return self._alarms.clear(AlarmKind.VAPOUR_PUMP_FAULT, fuelling.nozzle, ts_ms, evidence)
        return []

    def replay_transaction(self, body: TransactionBody) -> None:
        """Count a fuelling of the open day again after a restart. No alarm: the alarm book, restored from the
        alarm records, already holds what the first pass decided."""
        self._count(Fuelling.of(body))

    def _count(self, fuelling: Fuelling) -> _Nozzle:
        nozzle = self._nozzle(fuelling.nozzle, fuelling.dispenser, fuelling.grade)
        nozzle.fuellings += 1
        if not fuelling.counts(self._rules) or fuelling.al_permille is None:
            return nozzle
        nozzle.counted += 1
        nozzle.al_sum += fuelling.al_permille
        nozzle.al_square_sum += fuelling.al_permille**2
        if fuelling.passes(self._rules):
            nozzle.passed += 1
        elif fuelling.slow(self._rules):
            nozzle.slow += 1
        if fuelling.duration_ms > 0:
            starved = fuelling.vapour_starved(self._rules)
            nozzle.pump_fault += starved
            nozzle.pump_fault_run = nozzle.pump_fault_run + 1 if starved else 0
        return nozzle

    def _pump_evidence(self, fuelling: Fuelling, run: int) -> VapourPumpFaultEvidence:
        """Of a counted fuelling, which always has its vapour measured."""
        vapour_ml = fuelling.vapour_ml or 0
        return VapourPumpFaultEvidence(
            txn_no=fuelling.txn_no,
            volume_ml=fuelling.volume_ml,
            vapour_ml=vapour_ml,
            duration_ms=fuelling.duration_ms,
            vapour_ml_per_min=round(Fraction(vapour_ml * _MS_PER_MIN, fuelling.duration_ms)),
            threshold_ml_per_min=self._rules.pump_fault_vapour_ml_per_min,
            consecutive=run,
        )

    @property
    def last_closed(self) -> datetime.date | None:
        """The last day judged, by this run or in the history it resumed from."""
        return self._last_closed

    def close_day(self, day: datetime.date, ts_ms: int) -> list[RecordIntent]:
        """One `vapour` record per nozzle known for the local day `day`, and the alarms its verdict decides."""
        if self._last_closed is not None and day <= self._last_closed:
            return []
        self._last_closed = day
        out: list[RecordIntent] = []
        for name, nozzle in self._nozzles.items():
            judgement = self._judge(day, nozzle)
            body = self._body(day, name, nozzle, judgement)
            out.append(body.intent(ts_ms))
            out += self._day_alarms(name, body, judgement, ts_ms)
            nozzle.week[day] = (nozzle.counted, nozzle.al_sum)
            nozzle.carry = judgement.judged.a_day_older() if judgement.rolled_over else _Carry()
            nozzle.open_day_done()
        return out

    def _judge(self, day: datetime.date, nozzle: _Nozzle) -> _Judgement:
        rules = self._rules
        first = day - datetime.timedelta(days=rules.carb_week_days - 1)
        nozzle.week = {d: sums for d, sums in nozzle.week.items() if first <= d < day}
        week_counted = nozzle.counted + sum(counted for counted, _ in nozzle.week.values())
        week_sum = nozzle.al_sum + sum(al_sum for _, al_sum in nozzle.week.values())
        week_mean = al_mean_permille(week_sum, week_counted)
        if rules.rule_set == "carb":
            daily = _mean_out_of_band(
                nozzle.al_sum,
                nozzle.counted,
                rules.carb_daily_min_fuellings,
                rules.carb_daily_low_permille,
                rules.carb_daily_high_permille,
            )
            weekly = _mean_out_of_band(
                week_sum,
                week_counted,
                rules.carb_weekly_min_fuellings,
                rules.carb_weekly_low_permille,
                rules.carb_weekly_high_permille,
            )
            nozzle.daily_fail_days = _run(nozzle.daily_fail_days, daily, rules.thin_day_breaks_run)
            nozzle.weekly_fail_days = _run(nozzle.weekly_fail_days, weekly, rules.thin_day_breaks_run)
            failure = (daily is True and nozzle.daily_fail_days >= rules.carb_daily_failure_days) or (
                weekly is True and nozzle.weekly_fail_days >= rules.carb_weekly_failure_days
            )
            verdict: Verdict = (
                "alarm"
                if failure
                else "warning"
                if daily or weekly
                else "inconclusive"
                if daily is None and weekly is None
                else "pass"
            )
            today = _Carry(nozzle.counted, nozzle.passed, nozzle.slow, 0)
            return _Judgement(verdict, today, None, week_counted, week_mean, rolled_over=False)
        pool = _Carry(
            nozzle.carry.fuellings + nozzle.counted,
            nozzle.carry.passed + nozzle.passed,
            nozzle.carry.slow + nozzle.slow,
            nozzle.carry.days,
        )
        if pool.fuellings < rules.min_fuellings_per_day:
            nozzle.warning_days = _run(nozzle.warning_days, None, rules.thin_day_breaks_run)
            rolled_over = nozzle.carry.days + 1 < rules.max_carry_days
            return _Judgement("inconclusive", pool, None, week_counted, week_mean, rolled_over)
        share = round(Fraction(pool.passed * 1000, pool.fuellings))
        warning = pool.passed * 1000 < rules.warning_pass_share_permille * pool.fuellings
        nozzle.warning_days = _run(nozzle.warning_days, warning, rules.thin_day_breaks_run)
        verdict = "pass" if not warning else "alarm" if nozzle.warning_days >= rules.alarm_warning_days else "warning"
        return _Judgement(verdict, pool, share, week_counted, week_mean, rolled_over=False)

    def _body(self, day: datetime.date, name: str, nozzle: _Nozzle, judgement: _Judgement) -> VapourBody:
        return VapourBody(
            day=day.isoformat(),
            nozzle=name,
            dispenser=nozzle.dispenser,
            grade=nozzle.grade,
            rule_set=self._rules.rule_set,
            fuellings=nozzle.fuellings,
            counted=nozzle.counted,
            passed=nozzle.passed,
            slow=nozzle.slow,
            pump_fault=nozzle.pump_fault,
            pump_fault_run=nozzle.pump_fault_run,
            al_sum_permille=nozzle.al_sum,
            al_mean_permille=al_mean_permille(nozzle.al_sum, nozzle.counted),
            al_stdev_permille=al_stdev_permille(nozzle.al_sum, nozzle.al_square_sum, nozzle.counted),
            carried_fuellings=nozzle.carry.fuellings,
            carried_passed=nozzle.carry.passed,
            carried_slow=nozzle.carry.slow,
            carried_days=nozzle.carry.days,
            judged_fuellings=judgement.judged.fuellings,
            judged_passed=judgement.judged.passed,
            judged_slow=judgement.judged.slow,
            pass_share_permille=judgement.pass_share_permille,
            week_counted=judgement.week_counted,
            week_al_mean_permille=judgement.week_al_mean_permille,
            verdict=judgement.verdict,
            warning_days=nozzle.warning_days,
            daily_fail_days=nozzle.daily_fail_days,
            weekly_fail_days=nozzle.weekly_fail_days,
            rolled_over=judgement.rolled_over,
        )

    def _day_alarms(self, name: str, body: VapourBody, judgement: _Judgement, ts_ms: int) -> list[RecordIntent]:
        if body.verdict == "inconclusive":
            return []
        evidence = VapourDayEvidence(
            day=body.day,
            rule_set=body.rule_set,
            verdict=body.verdict,
            judged_fuellings=body.judged_fuellings,
            judged_passed=body.judged_passed,
            pass_share_permille=body.pass_share_permille,
            warning_days=body.warning_days,
            daily_fail_days=body.daily_fail_days,
            weekly_fail_days=body.weekly_fail_days,
            al_mean_permille=body.al_mean_permille,
            week_counted=body.week_counted,
            week_al_mean_permille=body.week_al_mean_permille,
        )
        alarms = self._alarms
        failing = body.verdict != "pass"
        out_of_band = judgement.judged.fuellings - judgement.judged.passed
        mostly_slow = failing and 2 * judgement.judged.slow > out_of_band
        slow_evidence = SlowDispenserEvidence(
            day=body.day,
            out_of_band=out_of_band,
            slow=judgement.judged.slow,
            slow_flow_ml_per_min=self._rules.slow_flow_ml_per_min,
        )
        return [
            *alarms.judge(AlarmKind.VAPOUR_AL_WARNING, name, ts_ms, failing, evidence),
            *(
                alarms.judge(AlarmKind.VAPOUR_AL_ALARM, name, ts_ms, body.verdict == "alarm", evidence)
                if body.verdict != "warning"
                else []
            ),
            *alarms.judge(AlarmKind.SLOW_DISPENSER, name, ts_ms, mostly_slow, slow_evidence),
        ]
