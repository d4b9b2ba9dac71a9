"""The `[leak]` section: what the leak and unrecorded-sales test (agent.station.leak) looks for.

A module of its own, so that checking a config (the first stage of `station-agent run`) does not load the test;
agent.config assembles it with the other sections.
"""

from __future__ import annotations

from statistics import NormalDist

from drivers.schema import settings


@settings
class LeakSettings:
    """What the detector looks for and how sure it must be: the station config's `[leak]` section.

    The targets follow the US EPA bar for tank gauges (0.2 gal/h = 757 mL/h) and manual inventory control
    (1 % of throughput); the window is SIR's 30 days. The noise levels are a floor under the scatter the data
    show, so that a span that happens to look quiet is not trusted beyond the gauge's known resolution. The
    defaults were checked with `make bench-detect` (docs/detection.md) against its simulated tanks."""

    target_leak_ml_per_h: int = 757
    """A pass promises that a leak this large would have been found (US EPA: 0.2 gal/h)."""
    leak_threshold_ml_per_h: int = 378
    """A leak estimate below this never fails, however precise: half the target, as EPA asks of SIR, so that
    small model errors (a residual thermal drift, a slightly wrong tank chart) cannot raise an alarm."""
    target_unrecorded_ppm: int = 10_000
    """A pass promises that unrecorded sales of this share of throughput would have been found."""
    meter_tolerance_ppm: int = 3_000
    """Share of throughput that is no fault: the dispensers' maximum permissible error (JJG 443, 0.3 %)."""
    false_alarm_probability: float = 1e-4
    """Chance that one hourly look fails on a sound tank under the model's assumptions; looks are correlated,
    and `make bench-detect` measures the resulting rate per tank-month."""
    detection_probability: float = 0.95
    cause_odds: float = 9.0
    """A loss fails only once one cause (leak, or unrecorded sales) is this many times likelier than the other,
    by the shapes of the loss (the Bayesian information criterion of each); until then the answer is
    inconclusive, never pass. 9 to 1 names the right cause nine times in ten when the two are equally likely
    beforehand."""
    """The chance with which the minimum detectable leak and share would be found."""
    window_h: int = 720
    """How far back the detector looks and remembers (30 days, as SIR asks)."""
    min_hours: int = 24
    """Usable hours a span needs before it is judged at all."""
    run_h: int = 168
    """Longest run: a run is a stretch of hours joined reading to reading, ended by a delivery, a flagged or
    missing reading, or this length, which bounds what a closed run keeps in memory."""
    onset_step_h: int = 12
    """Candidate onsets of a fault lie this far apart within a run (and at every run's start): how finely an
    onset is placed, and how many spans each look judges (window_h / onset_step_h, plus the runs)."""
    settle_h: int = 12
    """Hours left out after a delivery or a temperature jump: the new fuel's layers and waves make the level and
    the mean temperature unreliable until it settles."""
    temperature_jump_cC: int = 50
    """A change of the hourly mean temperature this large (0.5 K) is treated like a delivery."""
    level_noise_ml: int = 3_000
    """Assumed noise of one volume reading from the level: gauge height noise or resolution (mm) times the
    tank's largest liquid surface (m2) gives litres; 0.2 mm on a 30 kL tank of 2.6 m diameter is about 3 L.
    Never zero: no gauge reads exactly, and the standard errors rest on it."""
    temperature_noise_cC: int = 5
    """Assumed error of the mean fuel temperature behind each 20 degC volume."""
    expansion_ppm_per_k: int = 1_200
    """Thermal expansion of the product (gasoline about 1,200 ppm/K, diesel about 850), to turn the temperature
    error into a volume error of the tank's contents."""

    def __post_init__(self) -> None:
        for name in (
            "target_leak_ml_per_h",
            "target_unrecorded_ppm",
            "window_h",
            "min_hours",
            "run_h",
            "onset_step_h",
            "level_noise_ml",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"leak settings: {name} = {getattr(self, name)} must be positive")
        if not 0 <= self.leak_threshold_ml_per_h <= self.target_leak_ml_per_h:
            raise ValueError(
                f"leak settings: leak_threshold_ml_per_h = {self.leak_threshold_ml_per_h} must lie between 0 and "
                f"target_leak_ml_per_h ({self.target_leak_ml_per_h})"
            )
        if self.cause_odds < 1.0:
            raise ValueError(f"leak settings: cause_odds = {self.cause_odds} must be at least 1 (even odds)")
        for name in ("false_alarm_probability", "detection_probability"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"leak settings: {name} = {getattr(self, name)} must lie strictly between 0 and 1")
        if self.min_hours > self.window_h:
            raise ValueError(
                f"leak settings: min_hours = {self.min_hours} exceeds window_h = {self.window_h}: "
                "no span would ever be judged"
            )
        for name in (
            "meter_tolerance_ppm",
            "settle_h",
            "temperature_jump_cC",
            "temperature_noise_cC",
            "expansion_ppm_per_k",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"leak settings: {name} = {getattr(self, name)} must not be negative")

    @property
    def z_alarm(self) -> float:
        return NormalDist().inv_cdf(1.0 - self.false_alarm_probability)

    @property
    def z_detect(self) -> float:
        return NormalDist().inv_cdf(self.detection_probability)
