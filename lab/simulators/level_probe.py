"""A magnetostrictive level probe in a tank, read over Modbus: product height, water height, temperature.

It measures the tank's truth through the same probe model a tank gauge uses (`Tank.measure`: noise and
resolution from the tank's config), with fresh noise on every read, and lays the values out by its profile
(`sim-level-probe`: heights in 1/65536 mm, temperature in 1/16 degC). A probe gives heights only; the
agent's copy of the tank's chart turns them into volumes. Its fault target is `T1/level_probe`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from drivers.profiles import DeviceKind, Profile, ProfileError
from simulators.banks import DeviceBank, ProfiledRegisters, Values
from simulators.faults import Fault, TargetKind, device_target
from simulators.model import SimulatedModel
from simulators.tanks import Tank


class LevelProbe(SimulatedModel):
    """The probe in `tank`; `bank(clock)` is its Modbus register bank."""

    def __init__(self, tank: Tank, profile: Profile, *, rng: random.Random | None = None, has_crc: bool = True):
        self.target = device_target(tank.id, TargetKind.LEVEL_PROBE)
        super().__init__([self.target], has_crc=has_crc)
        if profile.kind != DeviceKind.LEVEL_PROBE:
            raise ProfileError(f"profile {profile.name} is a {profile.kind}, not a level_probe")
        self.tank = tank
        self.registers = ProfiledRegisters(profile)
        self._rng = rng or random.Random(0)

    def targets(self) -> dict[str, TargetKind]:
        return {self.target: TargetKind.LEVEL_PROBE}

    def bank(self, clock: Callable[[], float]) -> DeviceBank:
        return DeviceBank(self, self.target, self.registers, self.values, clock)

    def values(self) -> Values:
        seen = self.tank.measure(self.tank.state(self._now_s), self._rng)
        return {
            (0, "oil_height_um"): round(seen.height_mm * 1000),
            (0, "water_height_um"): round(seen.water_mm * 1000),
            (0, "temperature_cC"): round(seen.temperature_c * 100),
        }

    def _run_to(self, sim_s: float) -> None:
        self._now_s = sim_s

    def _happen(self, fault: Fault) -> None:
        raise AssertionError(f"a level probe has no one-shot fault, got {fault.kind}")
