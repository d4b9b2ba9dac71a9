"""The physical limit: the smallest leak that any test could find in so many days, from the simulated gauge's
noise alone.

The best case for a detector: it knows the onset, knows the loss is a leak (nothing to tell apart from
unrecorded sales), the level before the onset is pinned by a long sound record, and the hours after it are one
unbroken run. Each reading then carries white noise of the level (gauge noise x liquid surface) and of the 20
degC correction (probe noise x expansion x contents), and the leak's least-squares slope over T hours has the
standard error sigma / sqrt(sum of k^2, k = 1..T). A test at the bench's false-alarm rate that finds the leak
with probability `detection` needs the leak to be (z_alarm + z_detect) standard errors: no detector on this
gauge does better, and a real one, which must also place the onset and tell the cause, does worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from bench.detect.month import Physics
from bench.detect.tank import Cylinder, expansion_per_k

DAYS = (1, 2, 3, 5, 7)


@dataclass(frozen=True, slots=True)
class Gauge:
    """One gauge and tank of the simulated range, with its reading noise split by source."""

    name: str
    gauge_noise_mm: float
    capacity_l: int
    level_noise_l: float
    temperature_noise_l: float
    min_detectable_ml_per_h: tuple[tuple[int, float], ...]
    """(days of data after the onset, the smallest leak found with the bench's rates)."""

    @property
    def set_by(self) -> str:
        return "level" if self.level_noise_l >= self.temperature_noise_l else "temperature"


def gauges(physics: Physics, z_alarm: float, detection: float) -> tuple[Gauge, ...]:
    """The quietest, middle and noisiest gauge of the range on the largest tank (largest surface: worst)."""
    z = z_alarm + NormalDist().inv_cdf(detection)
    capacity = max(physics.capacities_l)
    shape = Cylinder.of_capacity(capacity, physics.diameter_m)
    surface_m2 = shape.surface_m2(physics.diameter_m / 2.0)
    contents_l = capacity * physics.fill_share
    alpha = expansion_per_k("gasoline", 720.0)
    temperature_l = physics.probe_noise_k * alpha * contents_l
    low, high = physics.gauge_noise_mm
    found = []
    for name, mm in (("quietest", low), ("middle", (low + high) / 2.0), ("noisiest", high)):
        level_l = mm / 1000.0 * surface_m2 * 1000.0
        sigma_l = math.hypot(level_l, temperature_l)
        rows = []
        for days in DAYS:
            hours = 24 * days
            squares = hours * (hours + 1) * (2 * hours + 1) / 6.0
            rows.append((days, 1000.0 * z * sigma_l / math.sqrt(squares)))
        found.append(Gauge(name, mm, capacity, level_l, temperature_l, tuple(rows)))
    return tuple(found)
