"""The metering-bias test on simulated nozzle-months: how soon a biased controller is found, and how seldom an
honest or merely legal one is accused, with Wald's expected sample number beside it as the physical limit.

A station-month is 16 nozzles, half with a controller showing 10 mL, half 1 mL, all on encoders of 10 mL a
pulse. A nozzle sells 30-120 times a day for 30 days; a sale is a scooter's (2-8 L, 30 %), a car's (15-50 L,
55 %) or a van's (50-80 L, 15 %), uniformly within each. Every sale goes through the simulator's meter
(`simulators.meter.Encoder`: pulse phases, display rounding, jitter at the stop) and its two volumes to the
agent's pure test (`agent.station.metering_bias`), exactly as the nozzle tracker passes them. The bias is on
from the month's first sale (the CUSUM is at 0 then, as it is on any honest nozzle), and a nozzle counts as
found at the sale whose test raises `metering_bias` in the bias's direction.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from typing import Any

from agent.station.metering_bias import BiasSettings, BiasState, Direction, SaleDeviation, noise_variance_ml2, observe
from bench.report import Target
from simulators.meter import Encoder, MeterNoise

NOZZLES = 16
RESOLUTIONS_ML = (10, 1)
ENCODER_ML_PER_PULSE = 10
DAYS = 30
SALES_PER_DAY = (30, 120)
SALE_MIX_L = ((0.30, 2.0, 8.0), (0.55, 15.0, 50.0), (0.15, 50.0, 80.0))
"""(share, low L, high L) of each kind of customer."""
BIASES_PERCENT = (0.0, 0.2, 0.3, 0.35, 0.4, 0.5, 1.0)
FULL_STATION_MONTHS = 13
QUICK_STATION_MONTHS = 4
DETECT_WITHIN_MONTH = 0.99
LEGAL_FALSE_ALARMS = 0.01
ASN_FACTOR = 1.5


@dataclass(frozen=True, slots=True)
class Job:
    bias_percent: float
    direction: Direction
    station_month: int
    seed: int
    settings: BiasSettings
    noise: MeterNoise


@dataclass(frozen=True, slots=True)
class NozzleMonth:
    resolution_ml: int
    sales: int
    found_at: int | None
    """The sale (counted from 1) whose test raised the alarm in the bias's direction."""
    wrong_way: bool
    """An alarm in the other direction."""


def sale_litres(rng: random.Random) -> float:
    pick = rng.random()
    for share, low, high in SALE_MIX_L:
        if pick < share:
            return rng.uniform(low, high)
        pick -= share
    return rng.uniform(*SALE_MIX_L[-1][1:])


def mean_square_litres() -> float:
    """E[V²] of the sale mix, from the uniform components: (a² + ab + b²) / 3 each."""
    return sum(share * (low * low + low * high + high * high) / 3 for share, low, high in SALE_MIX_L)


def station_month(job: Job) -> list[NozzleMonth]:
    rng = random.Random(f"{job.seed}/metering/{job.bias_percent}/{job.direction}/{job.station_month}")
    factor = 1 + job.direction.sign * job.bias_percent / 100
    months = []
    for nozzle in range(NOZZLES):
        resolution = RESOLUTIONS_ML[nozzle % len(RESOLUTIONS_ML)]
        variance = noise_variance_ml2(ENCODER_ML_PER_PULSE, resolution)
        encoder = Encoder(job.noise, ENCODER_ML_PER_PULSE, turned_ul=rng.uniform(0, 1e9))
        sales = DAYS * rng.randint(*SALES_PER_DAY)
        state, found_at, wrong_way = BiasState(), None, False
        for index in range(1, sales + 1):
            shown_ml, pulses = encoder.sale(sale_litres(rng) * 1e6, factor, resolution, rng)
            sale = SaleDeviation(pulses * ENCODER_ML_PER_PULSE, shown_ml, variance, index)
            state, change = observe(state, sale, job.settings)
            if change is not None and change.raised:
                if change.direction is job.direction:
                    found_at = index
                    break
                wrong_way = True
        months.append(NozzleMonth(resolution, sales, found_at, wrong_way))
    return months


def true_variance_ml2(noise: MeterNoise, resolution_ml: int) -> float:
    """The simulated meter's deviation variance on a biased sale: both pulse phases, the rounding, the jitter."""
    q = ENCODER_ML_PER_PULSE
    q_controller = noise.controller_ml_per_pulse or q
    p = noise.stop_jitter_probability
    phase = q_controller**2 / 6 if noise.controller_phase else 0.0
    return phase + q * q / 6 + resolution_ml**2 / 12 + p * (1 - p) * q * q


def wald_asn(bias: float, settings: BiasSettings, mean_weight: float) -> float:
    """Wald's expected sample number of the SPRT of H0 b = legal against H1 b = alarm with the test's alpha and beta,
    at true bias `bias` (a fraction, on the tested side), when a sale's LLR has mean Δ(b - m)·w and variance
    Δ²·w for weight w = x²/σ² (its mean `mean_weight`)."""
    log_a, log_b = math.log((1 - settings.beta) / settings.alpha), math.log(settings.beta / (1 - settings.alpha))
    step, middle = settings.step, settings.middle
    drift = step * (bias - middle) * mean_weight
    if abs(bias - middle) < 1e-12:
        return -log_a * log_b / (step * step * mean_weight)
    h = -2 * (bias - middle) / step  # E[exp(h·z)] = 1
    accept_h0 = (math.exp(h * log_a) - 1) / (math.exp(h * log_a) - math.exp(h * log_b))
    return (accept_h0 * log_b + (1 - accept_h0) * log_a) / drift


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile, infinity when it falls among nozzles never found."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def row(
    bias_percent: float,
    direction: Direction,
    resolution_ml: int,
    months: list[NozzleMonth],
    *,
    settings: BiasSettings,
    noise: MeterNoise,
) -> dict[str, Any]:
    mine = [m for m in months if m.resolution_ml == resolution_ml]
    found = [m for m in mine if m.found_at is not None]
    to_detection = [float(m.found_at) if m.found_at is not None else math.inf for m in mine]
    weight = mean_square_litres() * 1e6 / true_variance_ml2(noise, resolution_ml)
    legal = bias_percent * 1e4 <= settings.legal_ppm
    asn = None if legal else wald_asn(bias_percent / 100, settings, weight)
    median = percentile(to_detection, 0.5)
    return {
        "bias_percent": direction.sign * bias_percent,
        "resolution_ml": resolution_ml,
        "nozzle_months": len(mine),
        "detected": len(found),
        "detected_share": len(found) / len(mine),
        "median_sales": _finite(median),
        "p90_sales": _finite(percentile(to_detection, 0.9)),
        "wald_asn": asn,
        "median_over_asn": None if asn is None or math.isinf(median) else median / asn,
        "wrong_way": sum(m.wrong_way for m in mine),
        "sales_per_month": statistics.fmean(m.sales for m in mine),
    }


def _finite(sales: float) -> float | None:
    """Sales to detection, None where it falls among nozzles never found (JSON has no infinity)."""
    return None if math.isinf(sales) or math.isnan(sales) else sales


def targets(rows: list[dict[str, Any]]) -> list[Target]:
    checks: list[Target] = []
    for r in rows:
        name = f"{r['bias_percent']:+.2f} % at {r['resolution_ml']} mL"
        size = abs(r["bias_percent"])
        if r["wald_asn"] is not None:
            ratio = r["median_over_asn"]
            checks.append(
                Target(f"{name}: median sales / Wald ASN", math.nan if ratio is None else ratio, ASN_FACTOR, "x", True)
            )
        if size >= 0.35:
            checks.append(Target(f"{name}: found within a month", r["detected_share"], DETECT_WITHIN_MONTH, "", False))
        elif size == 0.3:
            checks.append(Target(f"{name}: legal meter accused", r["detected_share"], LEGAL_FALSE_ALARMS, "", True))
    return checks


def clean_bound(rows: list[dict[str, Any]]) -> dict[str, Any]:
    clean = [r for r in rows if r["bias_percent"] == 0]
    months = sum(r["nozzle_months"] for r in clean)
    alarms = sum(r["detected"] + r["wrong_way"] for r in clean)
    return {"nozzle_months": months, "alarms": alarms, "upper_95_per_nozzle_month": 3 / months if not alarms else None}


def run(pool: Executor, *, quick: bool, seed: int, settings: BiasSettings, noise: MeterNoise) -> dict[str, Any]:
    """Every bias both ways (0 once) on its station-months, in `pool`; the figures, the targets, the bound."""
    station_months = QUICK_STATION_MONTHS if quick else FULL_STATION_MONTHS
    rows: list[dict[str, Any]] = []
    for bias in BIASES_PERCENT:
        for direction in (Direction.OVER,) if bias == 0 else tuple(Direction):
            jobs = [Job(bias, direction, index, seed, settings, noise) for index in range(station_months)]
            months = [month for station in pool.map(station_month, jobs) for month in station]
            rows += [
                row(bias, direction, resolution, months, settings=settings, noise=noise)
                for resolution in RESOLUTIONS_ML
            ]
    checks = targets(rows)
    clean = clean_bound(rows)
    return {
        "protocol": {
            "nozzles": NOZZLES,
            "station_months": station_months,
            "resolutions_ml": list(RESOLUTIONS_ML),
            "encoder_ml_per_pulse": ENCODER_ML_PER_PULSE,
            "sales_per_day": list(SALES_PER_DAY),
            "sale_mix_l": [list(kind) for kind in SALE_MIX_L],
            "bias_from": "the month's first sale",
        },
        "settings": {**asdict(settings), "threshold_nats": settings.threshold},
        "meter": asdict(noise),
        "rows": rows,
        "clean": clean,
        "targets": [check.to_json() for check in checks]
        + [
            {
                "name": "clean meter never accused",
                "measured": clean["alarms"],
                "rule": "== 0",
                "pass": not clean["alarms"],
            }
        ],
        "all_targets_pass": all(check.passed for check in checks) and not clean["alarms"],
    }


def _sales(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(figures: dict[str, Any]) -> str:
    """The rows as a text table, the targets under it."""
    lines = [
        "metering bias: nozzle-months per row, sales to detection (median, p90) against Wald's ASN",
        f"{'bias %':>7} {'res mL':>6} {'months':>6} {'found':>7} {'median':>7} {'p90':>7} {'ASN':>7} {'x ASN':>6}",
    ]
    for r in figures["rows"]:
        asn = "legal" if r["wald_asn"] is None else f"{r['wald_asn']:.1f}"
        ratio = "" if r["median_over_asn"] is None else f"{r['median_over_asn']:.2f}"
        lines.append(
            f"{r['bias_percent']:>+7.2f} {r['resolution_ml']:>6} {r['nozzle_months']:>6} "
            f"{r['detected_share']:>7.1%} {_sales(r['median_sales']):>7} {_sales(r['p90_sales']):>7} "
            f"{asn:>7} {ratio:>6}"
        )
    clean = figures["clean"]
    bound = clean["upper_95_per_nozzle_month"]
    lines.append(
        f"clean meters: {clean['alarms']} alarms in {clean['nozzle_months']} nozzle-months"
        + ("" if bound is None else f" (95 % upper bound {bound:.4f} per nozzle-month, 3/n)")
    )
    lines += [
        f"  {'met ' if t['pass'] else 'MISS'} {t['name']}: {t['measured']} ({t['rule']})" for t in figures["targets"]
    ]
    return "\n".join(lines)
