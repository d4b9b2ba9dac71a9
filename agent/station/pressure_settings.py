"""The `[pressure]` section: the tank vapour-space pressure rules (agent.station.pressure).

A module of its own, so that checking a config (the first stage of `station-agent run`) does not load the rules and
the record and evidence types they make; agent.config assembles it with the other sections.
"""

from __future__ import annotations

from drivers.schema import settings


@settings
class PressureSettings:
    """The tank-pressure rules: the station config's `[pressure]` section. The defaults are the Chinese vendor
    rules of GB 20952-2020 Annex E monitoring (DOMAIN.md) around the P/V valve setting below."""

    zero_band_pa: int = 50
    """A reading within +- this is zero pressure."""
    zero_run_s: int = 43_200
    """Zero pressure held longer than this (12 h) raises `tank_pressure_zero_warning`."""
    zero_alarm_days: int = 5
    """Zero days in a row that raise `tank_pressure_zero_alarm`."""
    valve_opening_pa: int = 747
    """The P/V valve's positive opening pressure: 3.0 inches of water column, the middle of the range CARB's EVR
    certification sets for P/V vent valves (2.5 to 6.0 in wc). Set the installed valve's rated value."""
    over_margin_pa: int = 200
    """A reading above the valve's opening pressure by more than this is over-pressure."""
    over_alarm_s: int = 300
    """Over-pressure lasting this long without a break raises `tank_pressure_over_alarm`."""
    band_low_pa: int = -1_000
    """Lowest pressure of the normal band."""
    band_high_pa: int = 600
    """Highest pressure of the normal band."""
    band_share_permille: int = 250
    """A day with more than this share of its readings outside the band is a band warning day."""
    band_alarm_days: int = 7
    """Band warning days in a row that raise `tank_pressure_band_alarm`."""
    max_gap_s: int = 60
    """Readings further apart than this are not continuous: a zero run or an over-pressure spell starts anew."""
    record_interval_s: int = 300
    """The span of each sensor's `tank_pressure` interval record; a divisor of an hour keeps days whole."""

    def __post_init__(self) -> None:
        for name in (
            "zero_run_s",
            "zero_alarm_days",
            "over_alarm_s",
            "band_alarm_days",
            "max_gap_s",
            "record_interval_s",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"pressure.{name} = {getattr(self, name)}: must be at least 1")
        for name in ("zero_band_pa", "over_margin_pa", "band_share_permille"):
            if getattr(self, name) < 0:
                raise ValueError(f"pressure.{name} = {getattr(self, name)}: must not be negative")
        if self.band_share_permille > 1000:
            raise ValueError(f"pressure.band_share_permille = {self.band_share_permille}: a share is at most 1000")
        if not self.band_low_pa < -self.zero_band_pa <= self.zero_band_pa < self.band_high_pa:
            raise ValueError(
                f"pressure.band_low_pa = {self.band_low_pa} .. band_high_pa = {self.band_high_pa} must hold the zero "
                f"band +-{self.zero_band_pa} Pa with room on either side: widen the band or narrow zero_band_pa"
            )
        if 3_600 % self.record_interval_s:
            raise ValueError(
                f"pressure.record_interval_s = {self.record_interval_s} must divide an hour (3600 s), so that no "
                "interval spans a day boundary: use e.g. 60, 300 or 600"
            )

    @property
    def over_limit_pa(self) -> int:
        return self.valve_opening_pa + self.over_margin_pa
