"""From trials to figures: detection, false alarms, inconclusive answers and time to detection per scenario,
each share with its 95 % Wilson interval, and the US EPA bar as targets."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.detect.trial import MONTH_H, Outcome, Scenario
from bench.report import Target

EPA_DETECTION = 0.95
EPA_FALSE_ALARMS = 0.05
GOAL_DETECTION = 0.99
GOAL_P90_H = 168.0
"""The 90th percentile of the time to find a fault: within a week."""
GOAL_FALSE_ALARMS = 0.01
"""Per tank-month, on sound months and over all the sound time."""
GOAL_RIGHT_CAUSE = 0.90
"""In every unrecorded-sales scenario: found, and named as unrecorded sales."""


@dataclass(frozen=True, slots=True)
class Share:
    """k of n, as a share with its 95 % Wilson score interval (meaningful even at 0 of 200)."""

    share: float
    low_95: float
    high_95: float
    count: int
    of: int


def share(count: int, of: int) -> Share:
    if of == 0:
        return Share(math.nan, math.nan, math.nan, 0, 0)
    z = 1.959964
    p = count / of
    centre = (p + z * z / (2 * of)) / (1 + z * z / of)
    half = z * math.sqrt(p * (1 - p) / of + z * z / (4 * of * of)) / (1 + z * z / of)
    return Share(p, max(centre - half, 0.0), min(centre + half, 1.0), count, of)


@dataclass(frozen=True, slots=True)
class Band:
    gauge_noise_mm: tuple[float, float]
    detection: Share


@dataclass(frozen=True, slots=True)
class ScenarioSummary:
    """One scenario's figures. For a sound tank, `false_alarms` is the share of months with any `fail`; for a
    fault it is the share of months failing while still sound, before the onset. `detection`, `right_cause`
    and the hours are None for a sound tank."""

    months: int
    detection: Share | None
    right_cause: Share | None
    """Months found with the cause the scenario planted, of all its months."""
    false_alarms: Share
    inconclusive: Share
    """Months whose answer at the end of the scored month was `inconclusive` (not found, not cleared)."""
    passed: Share
    median_hours_to_detection: float | None
    p90_hours_to_detection: float | None
    median_min_detectable_leak_ml_per_h: float | None
    """For a sound tank: the minimum detectable leak its month ended with (what a pass there promises)."""
    detection_by_gauge_noise: tuple[Band, ...] | None


def summarise(scenario: Scenario, outcomes: Sequence[Outcome], gauge_noise_mm: tuple[float, float]) -> ScenarioSummary:
    """`gauge_noise_mm` is the range the months drew their gauge noise from, split in three bands."""
    n = len(outcomes)
    found = [o for o in outcomes if o.detected_after_h is not None]
    sound = scenario.fault == "none"
    hours = sorted(o.detected_after_h for o in outcomes if o.detected_after_h is not None)
    detectable = [o.final_min_detectable_leak_ml_per_h for o in outcomes]
    known = [value for value in detectable if value is not None]
    return ScenarioSummary(
        months=n,
        detection=None if sound else share(len(found), n),
        right_cause=None if sound else share(sum(o.cause == scenario.expected_cause() for o in found), n),
        false_alarms=share(sum(o.false_alarm for o in outcomes), n),
        inconclusive=share(sum(o.final_status == "inconclusive" for o in outcomes), n),
        passed=share(sum(o.final_status == "pass" for o in outcomes), n),
        median_hours_to_detection=statistics.median(hours) if hours and not sound else None,
        p90_hours_to_detection=hours[math.ceil(0.9 * len(hours)) - 1] if hours and not sound else None,
        median_min_detectable_leak_ml_per_h=statistics.median(known) if sound and known else None,
        detection_by_gauge_noise=None if sound else _bands(outcomes, gauge_noise_mm),
    )


def _bands(outcomes: Sequence[Outcome], gauge_noise_mm: tuple[float, float]) -> tuple[Band, ...]:
    low, high = gauge_noise_mm
    edges = [low + (high - low) * k / 3 for k in range(4)]
    bands = []
    for start, end in itertools.pairwise(edges):
        inside = [o for o in outcomes if start <= o.gauge_noise_mm < end or (end == high and o.gauge_noise_mm == high)]
        found = share(sum(o.detected_after_h is not None for o in inside), len(inside))
        bands.append(Band((start, end), found))
    return tuple(bands)


@dataclass(frozen=True, slots=True)
class SoundTime:
    """False alarms over all the sound time of a run: the sound months, and the days before every fault's
    onset. A trial counts at most once (its first false alarm)."""

    false_alarms: int
    sound_tank_months: float
    per_tank_month: float


def sound_time(outcomes: Sequence[Outcome]) -> SoundTime:
    alarms = sum(o.false_alarm for o in outcomes)
    months = sum(o.sound_h for o in outcomes) / MONTH_H
    return SoundTime(alarms, months, alarms / months if months else math.nan)


def targets(summaries: Mapping[str, ScenarioSummary], sound: SoundTime) -> list[Target]:
    """The EPA bar: every fault found in >= 95 % of months, and false alarms on sound months <= 5 %, also at
    the upper end of the 95 % interval (so that the claim holds beyond this run's luck) and over all the
    run's sound time."""
    checks: list[Target] = []
    for name, summary in summaries.items():
        if summary.detection is None:
            checks.append(Target(f"{name}: false alarms", summary.false_alarms.share, EPA_FALSE_ALARMS, "share", True))
            checks.append(
                Target(
                    f"{name}: false alarms, 95 % upper bound",
                    summary.false_alarms.high_95,
                    EPA_FALSE_ALARMS,
                    "share",
                    True,
                )
            )
        else:
            checks.append(Target(f"{name}: detection", summary.detection.share, EPA_DETECTION, "share", False))
    checks.append(
        Target("all sound time: false alarms", sound.per_tank_month, EPA_FALSE_ALARMS, "per tank-month", True)
    )
    return checks


def goals(summaries: Mapping[str, ScenarioSummary], sound: SoundTime) -> list[Target]:
    """The project's own goals, stricter than EPA's: every fault found in >= 99 % of months, 90 % of them
    within a week; false alarms <= 1 % per tank-month; unrecorded sales named right in >= 90 % of months."""
    checks: list[Target] = []
    for name, summary in summaries.items():
        if summary.detection is None:
            checks.append(Target(f"{name}: false alarms", summary.false_alarms.share, GOAL_FALSE_ALARMS, "share", True))
            continue
        checks.append(Target(f"{name}: detection", summary.detection.share, GOAL_DETECTION, "share", False))
        p90 = summary.p90_hours_to_detection
        checks.append(
            Target(f"{name}: 90th pct. time to find", math.nan if p90 is None else p90, GOAL_P90_H, "h", True)
        )
        if name.startswith("unrecorded") and summary.right_cause is not None:
            checks.append(Target(f"{name}: right cause", summary.right_cause.share, GOAL_RIGHT_CAUSE, "share", False))
    checks.append(
        Target("all sound time: false alarms", sound.per_tank_month, GOAL_FALSE_ALARMS, "per tank-month", True)
    )
    return checks
