"""One simulated tank-month, hour by hour: what really happens in the tank, and the books the agent keeps of it.

The true world: a horizontal steel tank of 20 to 50 kL underground, fuel whose temperature follows the
ground's slowly with a small daily swing, sales with a daily profile, a delivery whenever the tank runs low,
and the scenario's fault from its onset hour: a constant leak, or a share of the sales that never reaches the
books (every sale booked short, or whole sales off the books).

The books: at each hour boundary the gauge reads a level with noise (millimetres, turned into litres by the
liquid surface at that level) and a mean temperature with a constant offset, noise and, after a delivery, a
stratification error that fades; the agent converts to 20 degC with the density on the delivery note, not
the true one. Each sale is metered with the month's meter bias plus its own random error and converted at
the gauge's temperature. A delivery is booked with the delivery note's error. The detector sees only the
books: one `TankBalance` per hour, each hour's closing reading being the next hour's opening.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from agent.station.leak import TankBalance
from bench.detect.tank import Cylinder, expansion_per_k, from_20, to_20

HOUR_MS = 3_600_000
EPOCH_MS = 1_704_038_400_000
"""2024-01-01 00:00 at UTC+8: hour 0 of every simulated month is a local midnight."""

SALES_PROFILE = (
    0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 2.0, 4.5, 6.5, 6.5, 6.0, 5.8,
    5.5, 5.3, 5.3, 5.5, 6.2, 7.2, 7.2, 6.0, 4.8, 3.6, 2.4, 1.4,
)  # fmt: skip
"""Relative sales in each local hour of an urban station: two peaks and quiet small hours."""
NIGHT_HOURS = frozenset((22, 23, 0, 1, 2, 3, 4, 5))

FaultKind = Literal["none", "leak", "unrecorded_sales"]


@dataclass(frozen=True, slots=True)
class Physics:
    """The ranges each tank-month draws its conditions from; fixed, and printed with the results."""

    capacities_l: tuple[int, ...] = (20_000, 30_000, 40_000, 50_000)
    diameter_m: float = 2.6
    gauge_noise_mm: tuple[float, float] = (0.1, 0.5)
    """Standard deviation of each level reading, drawn per month."""
    probe_offset_k: tuple[float, float] = (-0.2, 0.2)
    """Constant error of the gauge's mean temperature, drawn per month."""
    probe_noise_k: float = 0.03
    """Standard deviation of each mean-temperature reading (which is then rounded to 0.01 K)."""
    density_note_error: float = 10.0
    """The density the agent converts with is off the true one by up to this (kg/m3)."""
    ground_c: tuple[float, float] = (8.0, 28.0)
    relax_h: tuple[float, float] = (48.0, 144.0)
    """Time constant of the fuel's temperature towards the ground's."""
    daily_swing_k: tuple[float, float] = (0.0, 0.3)
    delivered_offset_k: tuple[float, float] = (-5.0, 5.0)
    """The delivered fuel's temperature against the ground's."""
    stratification: tuple[float, float] = (-0.2, 0.2)
    """After a delivery the gauge's mean temperature misses by this share of the temperature step..."""
    stratification_fade_h: tuple[float, float] = (2.0, 8.0)
    """...and the miss fades with this time constant."""
    daily_sales_l: tuple[float, float] = (2_000.0, 6_000.0)
    day_to_day: float = 0.2
    """Lognormal spread of one day's sales around the month's mean."""
    night_factor: tuple[float, float] = (0.3, 2.0)
    """How busy the night hours are against the profile, drawn per month: from nearly idle to a highway."""
    sale_mean_l: tuple[float, float] = (30.0, 60.0)
    """Mean size of a sale, gasoline then diesel (lognormal, sigma 0.5)."""
    meter_bias: float = 0.001
    meter_random: float = 0.002
    """Each sale's meter error is the month's bias (uniform within the first) plus its own (within the second):
    within the 0.3 % that JJG 443 allows."""
    delivery_note_error: float = 0.003
    reorder_share: tuple[float, float] = (0.25, 0.40)
    """A delivery is ordered when the tank falls below this share of its capacity, drawn per month..."""
    reorder_delay_h: tuple[int, int] = (1, 12)
    """...and arrives this many hours later, filling the tank to `fill_share` in whole cubic metres."""
    fill_share: float = 0.92
    delivery_span_chance: float = 0.3
    """The chance that a delivery runs over an hour boundary, so that two hours carry it."""
    glitch_chance: float = 0.002
    """The chance per reading that the gauge reads 50 mm off and flags it (both hours around it are flagged)."""

    def mean_sale_l(self, product: str) -> float:
        return self.sale_mean_l[0] if product == "gasoline" else self.sale_mean_l[1]


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    onset_h: int
    leak_l_per_h: float = 0.0
    unrecorded_share: float = 0.0
    whole_sales: bool = False
    """Unrecorded sales as whole sales off the books, or (False) as every sale booked short by the share."""


@dataclass(frozen=True, slots=True)
class Conditions:
    """One tank-month's draw from `Physics`."""

    product: str
    capacity_l: int
    gauge_noise_mm: float
    probe_offset_k: float
    alpha_true: float
    alpha_agent: float
    ground_c: float
    relax_h: float
    daily_swing_k: float
    daily_sales_l: float
    night_factor: float
    meter_bias: float
    reorder_share: float


def draw(physics: Physics, rng: random.Random) -> Conditions:
    product = rng.choice(("gasoline", "diesel"))
    density = rng.uniform(720.0, 760.0) if product == "gasoline" else rng.uniform(820.0, 850.0)
    note = density + rng.uniform(-physics.density_note_error, physics.density_note_error)
    return Conditions(
        product=product,
        capacity_l=rng.choice(physics.capacities_l),
        gauge_noise_mm=rng.uniform(*physics.gauge_noise_mm),
        probe_offset_k=rng.uniform(*physics.probe_offset_k),
        alpha_true=expansion_per_k(product, density),
        alpha_agent=expansion_per_k(product, note),
        ground_c=rng.uniform(*physics.ground_c),
        relax_h=rng.uniform(*physics.relax_h),
        daily_swing_k=rng.uniform(*physics.daily_swing_k),
        daily_sales_l=rng.uniform(*physics.daily_sales_l),
        night_factor=rng.uniform(*physics.night_factor),
        meter_bias=rng.uniform(-physics.meter_bias, physics.meter_bias),
        reorder_share=rng.uniform(*physics.reorder_share),
    )


class _Tank:
    """The true state (volume at 20 degC, fuel temperature, stratification) and the gauge that reads it."""

    def __init__(self, physics: Physics, conditions: Conditions, rng: random.Random) -> None:
        self.physics = physics
        self.c = conditions
        self.rng = rng
        self.shape = Cylinder.of_capacity(conditions.capacity_l, physics.diameter_m)
        self.volume_20_l = conditions.capacity_l * rng.uniform(0.5, 0.9)
        self.fuel_c = conditions.ground_c + rng.uniform(-1.0, 1.0)
        self.stratification_k = 0.0
        self.fade = 1.0
        self.height_m = physics.diameter_m / 2.0

    def read(self, glitch: bool) -> tuple[int, float]:
        """One gauge reading: the volume at 20 degC as the agent computes it (mL), and the mean temperature."""
        ambient = from_20(self.volume_20_l, self.fuel_c, self.c.alpha_true)
        self.height_m = self.shape.height_m(ambient, self.height_m)
        noise_m = self.rng.gauss(0.0, self.c.gauge_noise_mm / 1000.0) + (0.05 if glitch else 0.0)
        measured = ambient + noise_m * self.shape.surface_m2(self.height_m) * 1000.0
        temperature = self.fuel_c + self.c.probe_offset_k + self.stratification_k
        temperature = round(temperature + self.rng.gauss(0.0, self.physics.probe_noise_k), 2)
        return round(to_20(measured, temperature, self.c.alpha_agent) * 1000.0), temperature

    def deliver(self) -> float:
        """Fill up with fuel at its own temperature; returns the volume at 20 degC that arrived."""
        p, rng = self.physics, self.rng
        amount = math.floor((self.c.capacity_l * p.fill_share - self.volume_20_l) / 1000.0) * 1000.0
        delivered_c = self.c.ground_c + rng.uniform(*p.delivered_offset_k)
        amount_20 = to_20(amount, delivered_c, self.c.alpha_true)
        before_c = self.fuel_c
        self.fuel_c = (self.volume_20_l * self.fuel_c + amount_20 * delivered_c) / (self.volume_20_l + amount_20)
        self.volume_20_l += amount_20
        self.stratification_k = rng.uniform(*p.stratification) * (self.fuel_c - before_c)
        self.fade = math.exp(-1.0 / rng.uniform(*p.stratification_fade_h))
        return amount_20

    def weather(self, local_hour: int) -> None:
        target = self.c.ground_c + self.c.daily_swing_k * math.sin(2.0 * math.pi * (local_hour - 9) / 24.0)
        self.fuel_c += (target - self.fuel_c) * (1.0 - math.exp(-1.0 / self.c.relax_h))
        self.stratification_k *= self.fade


def simulate(
    physics: Physics, conditions: Conditions, fault: Fault, hours: int, rng: random.Random
) -> Iterator[TankBalance]:
    """The month's hourly balances, as the agent would build them from the gauge and the sales."""
    c, p = conditions, physics
    tank = _Tank(p, c, rng)
    weights = [w * (c.night_factor if hour in NIGHT_HOURS else 1.0) for hour, w in enumerate(SALES_PROFILE)]
    per_weight = c.daily_sales_l / sum(weights) / p.mean_sale_l(c.product)
    sale_sigma = 0.5
    sale_mu = math.log(p.mean_sale_l(c.product)) - sale_sigma**2 / 2.0
    delivery_at: int | None = None
    carried_l, carried = 0.0, False
    flagged = False
    faulty_sold_l = hidden_l = 0.0
    day_factor = 1.0
    opening_ml, opening_c = tank.read(False)
    for hour in range(hours):
        local = hour % 24
        if local == 0:
            day_factor = rng.lognormvariate(-(p.day_to_day**2) / 2.0, p.day_to_day)
        faulty = fault.kind != "none" and hour >= fault.onset_h
        metered_l = 0.0
        for _ in range(_poisson(per_weight * day_factor * weights[local], rng)):
            size = rng.lognormvariate(sale_mu, sale_sigma)
            tank.volume_20_l -= to_20(size, tank.fuel_c, c.alpha_true)
            booked = size
            if faulty and fault.kind == "unrecorded_sales":
                faulty_sold_l += size
                if not fault.whole_sales:
                    booked = size * (1.0 - fault.unrecorded_share)
                elif hidden_l < fault.unrecorded_share * faulty_sold_l:
                    hidden_l += size
                    continue
            metered_l += booked * (1.0 + c.meter_bias + rng.uniform(-p.meter_random, p.meter_random))
        if faulty and fault.kind == "leak":
            tank.volume_20_l -= fault.leak_l_per_h
        delivered_l, delivery = carried_l, carried
        carried_l, carried = 0.0, False
        if delivery_at is None and tank.volume_20_l < c.capacity_l * c.reorder_share:
            delivery_at = hour + rng.randint(*p.reorder_delay_h)
        if delivery_at == hour:
            delivery_at = None
            booked_l = tank.deliver() * (1.0 + rng.gauss(0.0, p.delivery_note_error))
            delivery = True
            if rng.random() < p.delivery_span_chance:
                delivered_l += booked_l / 2.0
                carried_l, carried = booked_l / 2.0, True
            else:
                delivered_l += booked_l
        tank.weather(local)
        glitch = rng.random() < p.glitch_chance
        closing_ml, closing_c = tank.read(glitch)
        gauge_c = (opening_c + closing_c) / 2.0
        yield TankBalance(
            start_ms=EPOCH_MS + hour * HOUR_MS,
            duration_ms=HOUR_MS,
            opening_20_ml=opening_ml,
            closing_20_ml=closing_ml,
            delivered_20_ml=round(delivered_l * 1000.0),
            sold_20_ml=round(to_20(metered_l, gauge_c, c.alpha_agent) * 1000.0),
            temperature_cC=round(gauge_c * 100.0),
            delivery_in_progress=delivery,
            gauge_invalid=glitch or flagged,
        )
        flagged = glitch
        opening_ml, opening_c = closing_ml, closing_c


def _poisson(mean: float, rng: random.Random) -> int:
    """Knuth's method, fine for the few dozen sales an hour holds at most."""
    limit = math.exp(-mean)
    count = 0
    product = rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
