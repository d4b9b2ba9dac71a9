"""A nozzle's metering bias, tested sale by sale: two one-sided CUSUMs on the controller's volume against the
encoder's, each sale weighted by how finely its two volumes are resolved.

Theory of operation. A sale gives the encoder's volume x and the controller's deviation from it d (both mL).
A controller that over-reads by b shows d = b·x + e, where e is what quantisation leaves on an honest sale:
the phase of a pulse at both ends of both counts (q^2/6 each, for pulses of q mL) and the controller's display
rounding (r^2/12), so var(e) = q^2/3 + r^2/12. The over-read test weighs H0: b = +legal (the MPE) against
H1: b = +alarm. Its log-likelihood ratio over a run of sales is

    LLR = Δ·(Σ x·d/σ² - m·Σ x²/σ²),   Δ = alarm - legal,  m = (legal + alarm) / 2,

so a run is four numbers: how many sales, since when, Σ x·d/σ² and Σ x²/σ². Page's CUSUM restarts the run
whenever its LLR falls to 0 (the evidence favours a legal meter) and raises when it reaches
h = ln((1 - beta) / alpha), Wald's upper boundary: started from 0 it is Wald's SPRT with its lower boundary at 0, so
a biased nozzle is found in about the SPRT's expected number of sales, and a legal one false-alarms at most
once in about 1/alpha restarts. The under-read test mirrors it (d and b change sign). While an alarm is raised,
the same statistic with its sign turned is the clearing test: the alarm clears when the evidence for a legal
meter over the alarm level reaches h in its turn. The run's sums also give the estimate the alarm carries:
b̂ = Σxd/σ² ÷ Σx²/σ², standard error 1/√(Σx²/σ²).

Sales below the minimum measured quantity count too: their weight x²/σ² is small, as their information is.
The sums are kept as integers (thousandths) so that the state travels as cursors with the records and a
restart resumes the very same test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

SCALE = 1000
"""The sums are kept in thousandths."""
Z_95 = 1.959964


class Direction(StrEnum):
    OVER = "over"
    UNDER = "under"

    @property
    def sign(self) -> int:
        return 1 if self is Direction.OVER else -1


@dataclass(frozen=True, slots=True)
class BiasSettings:
    """H0 is |b| ≤ legal, H1 is |b| ≥ alarm (ppm of volume); alpha and beta are one test's error rates."""

    legal_ppm: int = 3000
    alarm_ppm: int = 3600
    alpha: float = 1e-6
    beta: float = 1e-6

    def __post_init__(self) -> None:
        if not 0 <= self.legal_ppm < self.alarm_ppm:
            raise ValueError(f"alarm_ppm ({self.alarm_ppm}) must be above legal_ppm ({self.legal_ppm}) >= 0")
        if not (0 < self.alpha < 0.5 and 0 < self.beta < 0.5):
            raise ValueError(f"alpha ({self.alpha}) and beta ({self.beta}) must be within (0, 0.5)")

    @property
    def threshold(self) -> float:
        """Wald's upper boundary, ln((1 - beta) / alpha), in nats."""
        return math.log((1 - self.beta) / self.alpha)

    @property
    def step(self) -> float:
        return (self.alarm_ppm - self.legal_ppm) / 1e6

    @property
    def middle(self) -> float:
        return (self.alarm_ppm + self.legal_ppm) / 2e6


def noise_variance_ml2(encoder_ml_per_pulse: float, controller_resolution_ml: float) -> float:
    """The variance of an honest sale's deviation: a pulse's phase at both ends of both counts, and the
    controller's rounding."""
    return encoder_ml_per_pulse**2 / 3 + controller_resolution_ml**2 / 12


@dataclass(frozen=True, slots=True)
class SaleDeviation:
    """One sale as the test takes it: the encoder's volume, the controller's, and the noise between them."""

    pulse_volume_ml: int
    volume_ml: int
    variance_ml2: float
    ts_ms: int


def weights(sale: SaleDeviation) -> tuple[int, int]:
    """The sale's x·d/σ² and x²/σ², in thousandths."""
    x, d = sale.pulse_volume_ml, sale.volume_ml - sale.pulse_volume_ml
    return round(SCALE * x * d / sale.variance_ml2), round(SCALE * x * x / sale.variance_ml2)


@dataclass(frozen=True, slots=True)
class Run:
    """The sales since a test last restarted: how many, since when, Σ x·d/σ² and Σ x²/σ² in thousandths."""

    sales: int = 0
    since_ms: int = 0
    xd: int = 0
    xx: int = 0

    def add(self, sale: SaleDeviation) -> Run:
        return self.add_weighted(*weights(sale), sale.ts_ms)

    def add_weighted(self, xd: int, xx: int, ts_ms: int) -> Run:
        return Run(self.sales + 1, self.since_ms if self.sales else ts_ms, self.xd + xd, self.xx + xx)

    def llr(self, direction: Direction, settings: BiasSettings) -> float:
        """The evidence for H1 (bias beyond the alarm level this way) over H0 (within the legal band), nats."""
        return settings.step * (direction.sign * self.xd - settings.middle * self.xx) / SCALE


@dataclass(frozen=True, slots=True)
class Estimate:
    """The bias a run shows, in ppm, with its 95 % interval."""

    bias_ppm: int
    low_ppm: int
    high_ppm: int


def estimate(run: Run) -> Estimate | None:
    if run.xx <= 0:
        return None
    bias = run.xd / run.xx
    half = Z_95 / math.sqrt(run.xx / SCALE)
    return Estimate(round(bias * 1e6), round((bias - half) * 1e6), round((bias + half) * 1e6))


@dataclass(frozen=True, slots=True)
class BiasState:
    """Both one-sided tests while nothing is raised; the clearing test of the raised direction while one is."""

    over: Run = Run()
    under: Run = Run()
    raised: Direction | None = None
    clearing: Run = Run()


@dataclass(frozen=True, slots=True)
class BiasChange:
    """The test crossed its boundary: an alarm raised (`raised` True) or cleared, with the run that proved it."""

    raised: bool
    direction: Direction
    run: Run
    llr: float


def observe(state: BiasState, sale: SaleDeviation, settings: BiasSettings) -> tuple[BiasState, BiasChange | None]:
    """One more sale; returns the new state and the change it decided, if any."""
    if sale.pulse_volume_ml <= 0 or sale.variance_ml2 <= 0:
        return state, None
    if state.raised is not None:
        clearing = state.clearing.add(sale)
        evidence = -clearing.llr(state.raised, settings)
        if evidence >= settings.threshold:
            return BiasState(), BiasChange(False, state.raised, clearing, evidence)
        return replace(state, clearing=clearing if evidence > 0 else Run()), None
    xd, xx = weights(sale)
    over, under = state.over.add_weighted(xd, xx, sale.ts_ms), state.under.add_weighted(xd, xx, sale.ts_ms)
    over_llr, under_llr = over.llr(Direction.OVER, settings), under.llr(Direction.UNDER, settings)
    threshold = settings.threshold
    if over_llr >= threshold:
        return BiasState(raised=Direction.OVER), BiasChange(True, Direction.OVER, over, over_llr)
    if under_llr >= threshold:
        return BiasState(raised=Direction.UNDER), BiasChange(True, Direction.UNDER, under, under_llr)
    return BiasState(over if over_llr > 0 else Run(), under if under_llr > 0 else Run()), None


_RUNS = ("over", "under", "clearing")
_RUN_FIELDS = ("sales", "since_ms", "xd", "xx")


def state_values(state: BiasState) -> dict[str, int]:
    """The state as named integers, to travel as cursors (`over/xd`, ..., `raised` = +1, -1 or 0)."""
    values = {f"{name}/{field}": getattr(getattr(state, name), field) for name in _RUNS for field in _RUN_FIELDS}
    values["raised"] = 0 if state.raised is None else state.raised.sign
    return values


def state_of(values: Mapping[str, int]) -> BiasState:
    """The state back from its named integers; missing names (a first start) read 0."""
    runs = {name: Run(*(values.get(f"{name}/{field}", 0) for field in _RUN_FIELDS)) for name in _RUNS}
    raised = {1: Direction.OVER, -1: Direction.UNDER}.get(values.get("raised", 0))
    return BiasState(runs["over"], runs["under"], raised, runs["clearing"])
