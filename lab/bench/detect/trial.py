"""One trial: a simulated tank-month fed hour by hour to the detector, which is asked for its verdict every hour.

A trial first runs `LEAD_IN_H` sound hours, so that the scored month starts with a full window as it would on
an agent that has been running. Without a fault the scored month is the next `MONTH_H` hours. With a fault,
the onset falls on a uniformly drawn hour of that month and the trial runs until `MONTH_H` hours after it: the
fault counts as found if a `fail` comes within a month of its onset. A `fail` while the tank is still sound
(the whole month without a fault, the hours before an onset) is a false alarm.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from agent.station.leak import Cause, LeakDetector, Status
from agent.station.leak_settings import LeakSettings
from bench.detect.month import Fault, FaultKind, Physics, draw, simulate

LEAD_IN_H = 720
MONTH_H = 720


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    fault: FaultKind
    leak_l_per_h: float = 0.0
    unrecorded_share: float = 0.0
    whole_sales: bool = False

    def expected_cause(self) -> Cause | None:
        return None if self.fault == "none" else self.fault


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one trial gave; hours count from the fault's onset."""

    seed: str
    gauge_noise_mm: float
    sound_h: int
    """Scored hours in which the tank was sound: the whole month without a fault, the hours before an onset."""
    false_alarm: bool
    """A `fail` while the tank was sound."""
    detected_after_h: int | None
    cause: Cause | None
    final_status: Status
    """The verdict at the end of the scored month (`fail` for a fault found earlier)."""
    final_min_detectable_leak_ml_per_h: int | None


def seed_of(base_seed: int, scenario: Scenario, index: int) -> str:
    return f"{base_seed}/{scenario.name}/{index}"


def run(scenario: Scenario, index: int, base_seed: int, settings: LeakSettings, physics: Physics) -> Outcome:
    seed = seed_of(base_seed, scenario, index)
    rng = random.Random(seed)
    conditions = draw(physics, rng)
    sound = scenario.fault == "none"
    onset = LEAD_IN_H + (MONTH_H if sound else rng.randrange(MONTH_H))
    fault = Fault(scenario.fault, onset, scenario.leak_l_per_h, scenario.unrecorded_share, scenario.whole_sales)
    detector = LeakDetector(settings)
    false_alarm = False
    detected: int | None = None
    cause: Cause | None = None
    end = onset if sound else onset + MONTH_H
    for hour, balance in enumerate(simulate(physics, conditions, fault, end, rng), start=1):
        detector.add(balance)
        if hour <= LEAD_IN_H:
            continue
        verdict = detector.verdict()
        if verdict.status != "fail":
            continue
        if hour <= onset:
            false_alarm = True
        else:
            detected, cause = hour - onset, verdict.cause
            break
    final = detector.verdict()
    return Outcome(
        seed=seed,
        gauge_noise_mm=conditions.gauge_noise_mm,
        sound_h=onset - LEAD_IN_H,
        false_alarm=false_alarm,
        detected_after_h=detected,
        cause=cause,
        final_status="fail" if detected is not None else final.status,
        final_min_detectable_leak_ml_per_h=final.min_detectable_leak_ml_per_h,
    )
