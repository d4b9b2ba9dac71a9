"""The `[vapour]` section: how vapour recovery is judged (agent.station.vapour).

A module of its own, so that checking a config (the first stage of `station-agent run`) does not load the rules and the
record and evidence types they make; agent.config assembles it with the other sections.
"""

from __future__ import annotations

from typing import Literal

from drivers.schema import settings

RuleSet = Literal["gb20952", "carb"]


@settings
class VapourSettings:
    """How vapour recovery is judged: the station config's `[vapour]` section. The defaults are GB 20952-2020
    Annex E as a Chinese vendor implements it, and CARB's EVR in-station diagnostics for the `carb` rule set."""

    rule_set: RuleSet = "gb20952"
    """Which rules give the daily verdict: `gb20952` (pass share, warning days) or `carb` (daily and weekly means)."""
    min_volume_ml: int = 15_000
    """A fuelling smaller than this does not count: the A/L of a short fuelling is dominated by start-up."""
    al_low_permille: int = 1_000
    """Lowest A/L, per mille, of a passing fuelling."""
    al_high_permille: int = 1_200
    """Highest A/L, per mille, of a passing fuelling."""
    slow_flow_ml_per_min: int = 10_000
    """A fuelling below this liquid flow is slow (10 L/min)."""
    pump_fault_vapour_ml_per_min: int = 1_000
    """A counted fuelling below this vapour flow (1 L/min) shows a vacuum pump that does not draw."""
    pump_fault_fuellings: int = 3
    """Counted fuellings in a row with too little vapour flow that raise `vapour_pump_fault`."""
    min_fuellings_per_day: int = 5
    """Counted fuellings a day (with those rolled over) needs before it is judged."""
    warning_pass_share_permille: int = 750
    """A judged day whose share of passing fuellings is below this is a warning day."""
    alarm_warning_days: int = 5
    """Warning days in a row that make an alarm."""
    max_carry_days: int = 100
    """Oldest, in days, a pool of thin days' fuellings may grow; a pool still too thin then is dropped. The age
    is counted from the pool's first day with a counted fuelling: empty days before it carry no evidence."""
    thin_day_breaks_run: bool = False
    """Whether an inconclusive day ends a run of warning days (or of failing CARB assessments). No source
    decides it; the default, false, leaves the run as it is, so that thin days cannot hide a failing nozzle."""
    carb_daily_low_permille: int = 330
    """CARB: lowest daily mean A/L, per mille."""
    carb_daily_high_permille: int = 1_900
    """CARB: highest daily mean A/L, per mille."""
    carb_daily_min_fuellings: int = 15
    """CARB: counted fuellings a day needs before its mean is judged."""
    carb_weekly_low_permille: int = 810
    """CARB: lowest mean A/L over the week, per mille."""
    carb_weekly_high_permille: int = 1_320
    """CARB: highest mean A/L over the week, per mille."""
    carb_weekly_min_fuellings: int = 30
    """CARB: counted fuellings the week needs before its mean is judged."""
    carb_week_days: int = 7
    """CARB: the days, today included, whose fuellings make the weekly mean."""
    carb_daily_failure_days: int = 2
    """CARB: failing daily assessments in a row that make an alarm (the first ones are warnings); consoles
    shut the station down on the 2nd day."""
    carb_weekly_failure_days: int = 8
    """CARB: failing weekly assessments in a row that make an alarm; consoles shut down on the 8th day."""

    def __post_init__(self) -> None:
        if self.rule_set not in ("gb20952", "carb"):
            raise ValueError(f"vapour.rule_set = {self.rule_set!r}: use 'gb20952' or 'carb'")
        for name in (
            "min_volume_ml",
            "pump_fault_fuellings",
            "min_fuellings_per_day",
            "alarm_warning_days",
            "max_carry_days",
            "carb_daily_min_fuellings",
            "carb_weekly_min_fuellings",
            "carb_week_days",
            "carb_daily_failure_days",
            "carb_weekly_failure_days",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"vapour.{name} = {getattr(self, name)}: must be at least 1")
        for name in ("slow_flow_ml_per_min", "pump_fault_vapour_ml_per_min", "warning_pass_share_permille"):
            if getattr(self, name) < 0:
                raise ValueError(f"vapour.{name} = {getattr(self, name)}: must not be negative")
        if self.warning_pass_share_permille > 1000:
            raise ValueError(
                f"vapour.warning_pass_share_permille = {self.warning_pass_share_permille}: a share is at most 1000"
            )
        for low, high in (
            ("al_low_permille", "al_high_permille"),
            ("carb_daily_low_permille", "carb_daily_high_permille"),
            ("carb_weekly_low_permille", "carb_weekly_high_permille"),
        ):
            if not 0 <= getattr(self, low) < getattr(self, high):
                raise ValueError(
                    f"vapour.{low} = {getattr(self, low)} must be at least 0 and below vapour.{high} = "
                    f"{getattr(self, high)}: lower {low} or raise {high}"
                )
