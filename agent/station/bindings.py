"""Where each nozzle and tank sits in the station and which devices report it: what the setup carries.

`agent.setup` makes these in the first stage of `station-agent run` and the agent process receives them across
the exec (agent.handover); a module of their own, so that the first stage loads neither the nozzles' and tanks'
trackers nor the record types they make.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from agent.station.chart import TankChart
from agent.station.vcf import Fuel


@dataclass(frozen=True, slots=True)
class Tap:
    """A counter channel wired to a nozzle's encoder or vapour meter."""

    device: str
    channel: int
    ml_per_pulse: Decimal
    factor: Decimal = Decimal(1)


@dataclass(frozen=True, slots=True)
class NozzleBinding:
    """Where a nozzle sits in the station and which devices report it."""

    nozzle: str
    dispenser: str
    grade: str
    tank: str
    controller: str
    controller_nozzle: int
    pulse: Tap | None = None
    vapour: Tap | None = None

    def cursor_key(self, what: str) -> str:
        return f"nozzle/{self.nozzle}/{what}"


@dataclass(frozen=True, slots=True)
class TankBinding:
    """A tank as configured: its fuel, its size, and the device (and gauge tank number) that measures it."""

    tank: str
    fuel: Fuel
    capacity_ml: int
    device: str
    gauge_tank: int | None = None
    chart: TankChart | None = None

    def cursor_key(self, what: str) -> str:
        return f"tank/{self.tank}/{what}"
