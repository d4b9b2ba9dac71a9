"""Leak and unrecorded-sales detection from a tank's hourly balances, in the spirit of SIR and CSLD.

Theory of operation. Within a stretch of contiguous usable hours (a *run*), the cumulative variance C (what
left the tank and is not in the books) is modelled as

    C(k) = c + L * t(k) + u * S(k) + noise(k)

with t the hours since the run began, S the metered sales since then, c the run's own intercept, L a leak
(a constant loss per hour, sold or not) and u an unrecorded share of throughput (a loss that scales with
dispensing: sales booked short or off the books, or meters that give more than they count). The gauge's noise
enters each reading once and does not pile up along a run, which is why the model is fitted to the cumulative
variance and not to hourly differences. Quiet hours move t without S: they tell a leak from unrecorded sales.

A fault starts at some moment, so the model is fitted by least squares for every candidate onset in the
window (each run's start, and every `onset_step_h` inside a run, with t and S counted from the onset and the
run's earlier readings pinning its level). The candidate that departs most from "no loss at all" (the largest Wald
statistic, as a change-point test would pick) is the one judged, because a span that mixes hours before and
after the onset explains one cause by the other: time and sales grow together, and a pooled fit of
heterogeneous runs can put a sales-shaped loss on L. The judged span fails when L exceeds both the floor
`leak_threshold_ml_per_h` and `z_alarm` standard errors, or u exceeds the meters' tolerance by `z_alarm`
standard errors. Without a failure, the whole window passes if its minimum detectable leak and share both meet
their targets, and is inconclusive if not, as SIR answers. A failing span names its cause only once one
shape (a constant loss; a loss in proportion to sales; whole sales as steps in hours of trade) is
`cause_odds` times likelier than the other, by the Bayesian information criterion; until then: inconclusive.

Temperature enters three ways: the volumes are at 20 degC already; hours after a delivery or a temperature
jump are left out while the fuel settles (the 20 degC correction is least true then); and the residual error
of the correction is part of the assumed noise of each reading. Memory is bounded: a closed run is a fixed set
of sums, runs last at most `run_h` hours, and runs that began before the window are dropped.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from agent.station.leak_settings import LeakSettings

HOUR_MS = 3_600_000

Status = Literal["pass", "fail", "inconclusive"]
Cause = Literal["leak", "unrecorded_sales"]


@dataclass(frozen=True, slots=True)
class TankBalance:
    """One tank's books over one period (normally an hour), every volume at 20 degC.

    `closing_20_ml` of an hour should be the very reading that is `opening_20_ml` of the next: then the gauge's
    noise cancels along a run of hours, which is where most of the detector's power comes from. An hour whose
    opening differs from the previous closing, or that does not start where the previous one ended, starts a
    new run."""

    start_ms: int
    duration_ms: int
    opening_20_ml: int
    closing_20_ml: int
    delivered_20_ml: int
    sold_20_ml: int
    temperature_cC: int
    """Mean fuel temperature over the period."""
    delivery_in_progress: bool = False
    gauge_invalid: bool = False

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms

    @property
    def variance_ml(self) -> int:
        """What left the tank and is not in the books: positive means fuel is missing."""
        return self.opening_20_ml - self.closing_20_ml + self.delivered_20_ml - self.sold_20_ml


@dataclass(frozen=True, slots=True)
class LeakVerdict:
    """The detector's answer and the numbers behind it, all integers.

    The numbers belong to the span that decided, `span_h` hours back from `end_ms`: the span judged for a
    fault when the answer is fail, else the whole window. A minimum detectable value is None when the data
    cannot tell it at all (no data; no sales, for the share). `leak_ml_per_h` and `unrecorded_ppm` are
    estimates with their noise, negative ones included (a negative share: meters that give less than they
    count)."""

    status: Status
    cause: Cause | None
    end_ms: int
    span_h: int
    leak_ml_per_h: int
    leak_threshold_ml_per_h: int
    min_detectable_leak_ml_per_h: int | None
    unrecorded_ppm: int
    unrecorded_threshold_ppm: int
    min_detectable_unrecorded_ppm: int | None
    hours: int
    """Hours of data used (deliveries, settling and flagged hours left out)."""
    quiet_hours: int
    """Of those, hours without a sale: the strongest evidence for or against a leak."""
    runs: int
    sold_20_ml: int
    noise_ml: int
    """Noise of one reading as assumed: the larger of the data's scatter and the settings' floor."""


@dataclass(frozen=True, slots=True)
class _Moments:
    """Sums over a span's readings about each run's own mean, the loss regressors counted from the candidate
    onset (zero before it): what the fit needs, and additive across runs."""

    tt: float
    ts: float
    ss: float
    tc: float
    sc: float
    cc: float
    points: int
    hours: int
    """Usable hours from the onset on."""
    quiet_hours: int
    sold_l: float
    """Sold from the onset on."""
    volume_l: float
    """Sum of the readings' volumes, for the mean contents that scale the thermal noise."""

    def __add__(self, other: _Moments) -> _Moments:
        return _Moments(
            self.tt + other.tt,
            self.ts + other.ts,
            self.ss + other.ss,
            self.tc + other.tc,
            self.sc + other.sc,
            self.cc + other.cc,
            self.points + other.points,
            self.hours + other.hours,
            self.quiet_hours + other.quiet_hours,
            self.sold_l + other.sold_l,
            self.volume_l + other.volume_l,
        )


_NO_MOMENTS = _Moments(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class _Reading:
    """One reading of a run as the cause test needs it: when (run hours), the cumulative variance, and whether
    fuel was sold in the hour that ended with it (only then can a sale go off the books)."""

    at_h: float
    variance_l: float
    after_sales: bool


@dataclass(frozen=True, slots=True)
class _Onset:
    """A candidate onset inside a run: where it falls (run hours, sales so far) and the run's raw sums up to
    and including the reading it falls on, so that the sums after it are the run's totals minus these."""

    at_h: float
    sold_l: float
    raw: tuple[float, ...]
    points: int
    hours: int
    quiet_hours: int


class _Run:
    """The open run: raw sums of its readings, measured from its first (hours and litres), and a candidate
    onset every `onset_step_h` hours. The hinge fit of a candidate uses the whole run: the readings before the
    onset pin the run's level, which is what makes a loss that starts mid-run show early."""

    def __init__(self, start_ms: int, opening_l: float) -> None:
        self.start_ms = start_ms
        self.t = self.s = self.c = 0.0
        self.points = 1
        self.raw = [0.0] * 9
        """Sums of t, s, c, tt, ts, ss, tc, sc, cc over the readings so far (the first is all zeros)."""
        self.hours = 0
        self.quiet_hours = 0
        self.volume_l = opening_l
        self.onsets = [_Onset(0.0, 0.0, (0.0,) * 9, 1, 0, 0)]
        self.readings: list[_Reading] = [_Reading(0.0, 0.0, False)]

    def add(self, balance: TankBalance, onset_step_h: int) -> None:
        self.t += balance.duration_ms / HOUR_MS
        self.s += balance.sold_20_ml / 1000.0
        self.c += balance.variance_ml / 1000.0
        t, s, c = self.t, self.s, self.c
        for index, value in enumerate((t, s, c, t * t, t * s, s * s, t * c, s * c, c * c)):
            self.raw[index] += value
        self.points += 1
        self.hours += 1
        self.quiet_hours += balance.sold_20_ml == 0
        self.volume_l += balance.closing_20_ml / 1000.0
        self.readings.append(_Reading(t, c, balance.sold_20_ml > 0))
        if self.hours % onset_step_h == 0:
            self.onsets.append(_Onset(t, s, tuple(self.raw), self.points, self.hours, self.quiet_hours))

    def onset_ms(self, onset: _Onset) -> int:
        return self.start_ms + round(onset.at_h * HOUR_MS)

    def candidates(self) -> list[tuple[int, _Moments]]:
        """Each candidate onset with readings after it, and the run's moments for a loss from there on; the
        first is the run's start, whose moments are the whole run's."""
        return [(self.onset_ms(onset), self.moments(onset)) for onset in self.onsets if onset.points < self.points]

    def moments(self, onset: _Onset) -> _Moments:
        """Centred sums of the regressors x = max(t - t0, 0), y = max(S - S0, 0) and the cumulative variance
        over the whole run, from the sums after the onset (reading by reading x = t - t0 there)."""
        n, after = self.points, self.points - onset.points
        t0, s0 = onset.at_h, onset.sold_l
        c, cc = self.raw[2], self.raw[8]
        at, as_, ac, att, ats, ass, atc, asc, _ = (
            total - before for total, before in zip(self.raw, onset.raw, strict=True)
        )
        x = at - after * t0
        y = as_ - after * s0
        xx = att - 2.0 * t0 * at + after * t0 * t0
        xy = ats - t0 * as_ - s0 * at + after * t0 * s0
        yy = ass - 2.0 * s0 * as_ + after * s0 * s0
        xc = atc - t0 * ac
        yc = asc - s0 * ac
        return _Moments(
            xx - x * x / n,
            xy - x * y / n,
            yy - y * y / n,
            xc - x * c / n,
            yc - y * c / n,
            cc - c * c / n,
            n,
            self.hours - onset.hours,
            self.quiet_hours - onset.quiet_hours,
            self.s - s0,
            self.volume_l,
        )


@dataclass(frozen=True, slots=True)
class _Fit:
    """One span's least-squares fit (litres per hour, share as a fraction) and its departure from no loss."""

    onset_ms: int
    span_h: int
    moments: _Moments
    runs: int
    leak_l_per_h: float
    leak_se: float
    share: float
    share_se: float | None
    noise_l: float
    wald: float

    @property
    def loses(self) -> bool:
        return self.leak_l_per_h * self.moments.hours + self.share * self.moments.sold_l > 0.0


@dataclass(frozen=True, slots=True)
class _Closed:
    """A closed run: its start, its candidate onsets (the start first) with the run's moments for each, and
    its readings for the cause test."""

    start_ms: int
    candidates: tuple[tuple[int, _Moments], ...]
    readings: tuple[_Reading, ...]


class LeakDetector:
    """One tank's detector: feed it every hourly balance in order with `add`, ask `verdict` when you like.

    Balances must come in time order: one that starts before the previous one ended is refused, because a
    replayed or reordered hour would be counted twice or break the runs without a trace."""

    def __init__(self, settings: LeakSettings | None = None) -> None:
        self.settings = settings or LeakSettings()
        self._closed: deque[_Closed] = deque()
        self._run: _Run | None = None
        self._last: TankBalance | None = None
        self._settled_from_ms = 0

    def add(self, balance: TankBalance) -> None:
        s = self.settings
        last = self._last
        if balance.duration_ms <= 0:
            raise ValueError(
                f"tank balance at {balance.start_ms}: duration_ms = {balance.duration_ms} must be positive"
            )
        if last is not None and balance.start_ms < last.end_ms:
            raise ValueError(
                f"tank balance at {balance.start_ms} starts before the previous one ended ({last.end_ms}): "
                "feed each hour once, in time order"
            )
        jump = last is not None and abs(balance.temperature_cC - last.temperature_cC) >= s.temperature_jump_cC
        if balance.delivery_in_progress or balance.delivered_20_ml != 0 or jump:
            self._settled_from_ms = balance.end_ms + s.settle_h * HOUR_MS
        usable = not balance.gauge_invalid and balance.start_ms >= self._settled_from_ms
        contiguous = (
            last is not None and balance.start_ms == last.end_ms and balance.opening_20_ml == last.closing_20_ml
        )
        self._last = balance
        if not usable or not contiguous:
            self._close_run()
        if usable:
            if self._run is None:
                self._run = _Run(balance.start_ms, balance.opening_20_ml / 1000.0)
            self._run.add(balance, s.onset_step_h)
            if self._run.hours >= s.run_h:
                self._close_run()
        while self._closed and self._closed[0].start_ms < balance.end_ms - s.window_h * HOUR_MS:
            self._closed.popleft()

    def runs_held(self) -> int:
        """Closed runs in memory: never more than window_h of them, however long the detector runs."""
        return len(self._closed)

    def verdict(self) -> LeakVerdict:
        s = self.settings
        end_ms = self._last.end_ms if self._last is not None else 0
        fits = self._fits(end_ms)
        if not fits:
            return _empty(end_ms, s)
        lossy = [fit for fit in fits if fit.loses]
        if lossy:
            judged = max(lossy, key=lambda fit: fit.wald)
            leak_fails = judged.leak_l_per_h > _leak_threshold(judged, s)
            share_fails = judged.share_se is not None and judged.share > _share_threshold(judged, s)
            if leak_fails or share_fails:
                cause, log_odds = self._cause(judged)
                if log_odds >= math.log(s.cause_odds):
                    return _verdict("fail", cause, end_ms, judged, s)
                return _verdict("inconclusive", None, end_ms, judged, s)
        window = _verdict("inconclusive", None, end_ms, fits[0], s)
        if (
            window.min_detectable_leak_ml_per_h is not None
            and window.min_detectable_unrecorded_ppm is not None
            and window.min_detectable_leak_ml_per_h <= s.target_leak_ml_per_h
            and window.min_detectable_unrecorded_ppm <= s.target_unrecorded_ppm
        ):
            return _verdict("pass", None, end_ms, fits[0], s)
        return window

    def _held(self) -> list[_Closed]:
        """Every run in the window, the open one last."""
        run = self._run
        if run is None or run.hours == 0:
            return list(self._closed)
        return [*self._closed, _Closed(run.start_ms, tuple(run.candidates()), tuple(run.readings))]

    def _cause(self, fit: _Fit) -> tuple[Cause, float]:
        """The cause whose shape explains the span's loss best, by the Bayesian information criterion (the
        log-likelihood under the fit's noise, less half a log of the readings per free parameter): a leak (a
        constant loss per hour, quiet hours included), unrecorded sales in proportion to what is sold, or
        unrecorded sales as whole sales (steps of any size, each in an hour with sales, found one by one
        while each pays for its place and size). A leak cannot make a step, and sales cannot lose fuel in a
        quiet hour. Returns the cause and the log of its odds against the other."""
        m, noise2 = fit.moments, fit.noise_l * fit.noise_l
        pieces: list[list[tuple[float, bool]]] = []
        for run in self._held():
            if run.start_ms + round(run.readings[-1].at_h * HOUR_MS) <= fit.onset_ms:
                continue
            onset_h = (fit.onset_ms - run.start_ms) / HOUR_MS
            pieces.append([(r.variance_l, r.after_sales and r.at_h > onset_h) for r in run.readings])
        penalty = math.log(max(sum(len(piece) for piece in pieces), 2))
        leak = m.tc * m.tc / m.tt / noise2 if m.tt > 0.0 and m.tc > 0.0 else 0.0
        proportional = m.sc * m.sc / m.ss / noise2 if fit.share_se is not None and m.sc > 0.0 else 0.0
        steps = _steps_explained(pieces, 2.0 * penalty * noise2) / noise2
        sales = max(proportional - penalty, steps)
        log_odds = (leak - penalty - sales) / 2.0
        return ("leak", log_odds) if log_odds >= 0.0 else ("unrecorded_sales", -log_odds)

    def _close_run(self) -> None:
        if self._run is not None and self._run.hours > 0:
            run = self._run
            self._closed.append(_Closed(run.start_ms, tuple(run.candidates()), tuple(run.readings)))
        self._run = None

    def _fits(self, end_ms: int) -> list[_Fit]:
        """One fit per candidate onset with enough data after it, the whole window first. A candidate's span
        is its run from the onset on (the run's earlier readings pinning the level) and every later run; the
        runs before it are the sound part of the same change-point model, so their scatter counts in the
        noise: every candidate's noise is estimated from the whole window, and a few quiet days cannot look
        more precise than the month."""
        runs_full = [run.candidates[0][1] for run in self._held() if run.candidates]
        total_cc = sum(moments.cc for moments in runs_full)
        total_points = sum(moments.points for moments in runs_full)
        spans: list[tuple[int, _Moments, int, _Rest]] = []
        later, runs = _NO_MOMENTS, 0
        for run in reversed(self._held()):
            candidates = run.candidates
            if not candidates:
                continue
            whole = candidates[0][1] + later
            rest = _Rest(total_cc - whole.cc, total_points - whole.points, len(runs_full) - runs - 1)
            for onset_ms, moments in reversed(candidates):
                spans.append((onset_ms, moments + later, runs + 1, rest))
            later, runs = whole, runs + 1
        fits: list[_Fit] = []
        for onset_ms, moments, count, rest in reversed(spans):
            if moments.hours < self.settings.min_hours:
                continue
            fit = _fit(moments, count, rest, self.settings, onset_ms=onset_ms, end_ms=end_ms)
            if fit is not None:
                fits.append(fit)
        return fits


@dataclass(frozen=True, slots=True)
class _Rest:
    """The window's runs before a candidate's span: sound under its model, so only their scatter counts."""

    cc: float
    points: int
    runs: int


def _fit(m: _Moments, runs: int, rest: _Rest, s: LeakSettings, *, onset_ms: int, end_ms: int) -> _Fit | None:
    """Least squares of the cumulative variance on time and sales since the onset, one intercept per run; time
    alone when the span has (nearly) no sales, which leaves the share unknown. A loss of one kind is never
    explained by a gain of the other (time and sales grow together, so a large leak and a large negative
    share can cancel): when the two come out of opposite signs, the one that gains is held at zero and the
    other is fitted alone, a least squares with both causes non-negative. The noise is the scatter about
    this change-point model over the whole window, never below the settings' floor."""
    det = m.tt * m.ss - m.ts * m.ts
    with_sales = m.ss > 1.0 and det > 1e-9 * m.tt * m.ss
    if with_sales:
        leak = (m.ss * m.tc - m.ts * m.sc) / det
        share = (m.tt * m.sc - m.ts * m.tc) / det
        explained = leak * m.tc + share * m.sc
        leak_var, share_var = m.ss / det, m.tt / det
        if leak > 0.0 > share:
            leak, share, explained, leak_var = m.tc / m.tt, 0.0, m.tc * m.tc / m.tt, 1.0 / m.tt
        elif share > 0.0 > leak:
            leak, share, explained, share_var = 0.0, m.sc / m.ss, m.sc * m.sc / m.ss, 1.0 / m.ss
    elif m.tt > 0.0:
        leak, share = m.tc / m.tt, 0.0
        explained = leak * m.tc
        leak_var, share_var = 1.0 / m.tt, 0.0
    else:
        return None
    dof = m.points + rest.points - runs - rest.runs - (2 if with_sales else 1)
    if dof < 1:
        return None
    scatter = math.sqrt((max(m.cc - explained, 0.0) + rest.cc) / dof)
    thermal_l = m.volume_l / m.points * s.expansion_ppm_per_k / 1e6 * s.temperature_noise_cC / 100.0
    noise = max(scatter, math.hypot(s.level_noise_ml / 1000.0, thermal_l))
    return _Fit(
        onset_ms=onset_ms,
        span_h=-(-(end_ms - onset_ms) // HOUR_MS),
        moments=m,
        runs=runs,
        leak_l_per_h=leak,
        leak_se=noise * math.sqrt(leak_var),
        share=share,
        share_se=noise * math.sqrt(share_var) if with_sales else None,
        noise_l=noise,
        wald=explained / (noise * noise),
    )


def _steps_explained(pieces: list[list[tuple[float, bool]]], price: float) -> float:
    """Binary segmentation of each run's cumulative variance into rising steps at allowed readings: the sum
    of squares explained by the steps that each explain more than `price`, less their price."""
    found = 0.0
    todo = [(values, 0, len(values)) for values in pieces]
    while todo:
        values, low, high = todo.pop()
        best, at = _best_step(values, low, high)
        if best > price:
            found += best - price
            todo += [(values, low, at), (values, at, high)]
    return found


def _best_step(values: list[tuple[float, bool]], low: int, high: int) -> tuple[float, int]:
    """The rising step in values[low:high] that explains most (sum of squares about the two means), and where."""
    total = sum(value for value, _ in values[low:high])
    count = high - low
    best, at, left = 0.0, low, 0.0
    for index in range(low + 1, high):
        left += values[index - 1][0]
        if not values[index][1]:
            continue
        n_left, n_right = index - low, high - index
        right = total - left
        if right / n_right <= left / n_left:
            continue
        gain = left * left / n_left + right * right / n_right - total * total / count
        if gain > best:
            best, at = gain, index
    return best, at


def _leak_threshold(fit: _Fit, s: LeakSettings) -> float:
    return max(s.leak_threshold_ml_per_h / 1000.0, s.z_alarm * fit.leak_se)


def _share_threshold(fit: _Fit, s: LeakSettings) -> float:
    return s.meter_tolerance_ppm / 1e6 + s.z_alarm * (fit.share_se or 0.0)


def _verdict(status: Status, cause: Cause | None, end_ms: int, fit: _Fit, s: LeakSettings) -> LeakVerdict:
    leak_threshold = _leak_threshold(fit, s)
    share_threshold = _share_threshold(fit, s)
    m = fit.moments
    return LeakVerdict(
        status=status,
        cause=cause,
        end_ms=end_ms,
        span_h=fit.span_h,
        leak_ml_per_h=round(fit.leak_l_per_h * 1000.0),
        leak_threshold_ml_per_h=round(leak_threshold * 1000.0),
        min_detectable_leak_ml_per_h=round((leak_threshold + s.z_detect * fit.leak_se) * 1000.0),
        unrecorded_ppm=round(fit.share * 1e6),
        unrecorded_threshold_ppm=round(share_threshold * 1e6),
        min_detectable_unrecorded_ppm=(
            None if fit.share_se is None else round((share_threshold + s.z_detect * fit.share_se) * 1e6)
        ),
        hours=m.hours,
        quiet_hours=m.quiet_hours,
        runs=fit.runs,
        sold_20_ml=round(m.sold_l * 1000.0),
        noise_ml=round(fit.noise_l * 1000.0),
    )


def _empty(end_ms: int, s: LeakSettings) -> LeakVerdict:
    return LeakVerdict(
        status="inconclusive",
        cause=None,
        end_ms=end_ms,
        span_h=0,
        leak_ml_per_h=0,
        leak_threshold_ml_per_h=s.leak_threshold_ml_per_h,
        min_detectable_leak_ml_per_h=None,
        unrecorded_ppm=0,
        unrecorded_threshold_ppm=s.meter_tolerance_ppm,
        min_detectable_unrecorded_ppm=None,
        hours=0,
        quiet_hours=0,
        runs=0,
        sold_20_ml=0,
        noise_ml=0,
    )
