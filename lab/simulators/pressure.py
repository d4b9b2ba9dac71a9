"""A tank's vapour-space pressure sensor: a plausible pressure that wanders slowly, with the sensor's noise.

Vapour recovery keeps a tank near atmospheric pressure, a little under while the nozzles draw vapour back.
The simulated pressure wanders around `mean_pa` as a mean-reverting random walk (Ornstein-Uhlenbeck, half an
hour to forget), `swing_pa` being its typical distance from the mean, so a day of readings looks like a day
of a real tank and the ecology checks (zero pressure, over-pressure, out-of-band share) have something to
look at. The `tank_pressure` fault holds it at a value instead.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from drivers.profiles import DeviceKind, Profile, ProfileError
from simulators.banks import DeviceBank, ProfiledRegisters, Values
from simulators.faults import Fault, TargetKind, device_target
from simulators.model import SimulatedModel

MEMORY_S = 1800.0
FIRMWARE_ID = 0x0100


class PressureSensor(SimulatedModel):
    """The pressure sensor of one tank; `bank(clock)` is its Modbus register bank."""

    def __init__(
        self,
        tank: str,
        profile: Profile,
        *,
        mean_pa: float = -100.0,
        swing_pa: float = 150.0,
        temperature_cC: int = 1800,
        rng: random.Random | None = None,
        has_crc: bool = True,
    ) -> None:
        self.target = device_target(tank, TargetKind.PRESSURE_SENSOR)
        super().__init__([self.target], has_crc=has_crc)
        if profile.kind != DeviceKind.PRESSURE_SENSOR:
            raise ProfileError(f"profile {profile.name} is a {profile.kind}, not a pressure_sensor")
        self.tank = tank
        self.mean_pa = mean_pa
        self.swing_pa = swing_pa
        self.temperature_cC = temperature_cC
        self.registers = ProfiledRegisters(profile)
        self._rng = rng or random.Random(0)
        self._pressure_pa = mean_pa

    def targets(self) -> dict[str, TargetKind]:
        return {self.target: TargetKind.PRESSURE_SENSOR}

    def bank(self, clock: Callable[[], float]) -> DeviceBank:
        return DeviceBank(self, self.target, self.registers, self.values, clock)

    @property
    def pressure_pa(self) -> int:
        with self.lock:
            held = self._board.value("tank_pressure", self.target, "pa")
            pressure = self._pressure_pa if held is None else held
            return round(pressure)

    def values(self) -> Values:
        return {
            (0, "pressure_pa"): self.pressure_pa,
            (0, "temperature_cC"): self.temperature_cC,
            (0, "firmware_id"): self._firmware_id(self.target, FIRMWARE_ID),
        }

    def _run_to(self, sim_s: float) -> None:
        elapsed_s = sim_s - self._now_s
        if elapsed_s > 0:
            kept = math.exp(-elapsed_s / MEMORY_S)
            spread = self.swing_pa * math.sqrt(1 - kept * kept)
            self._pressure_pa = self.mean_pa + (self._pressure_pa - self.mean_pa) * kept + self._rng.gauss(0, spread)
        self._now_s = sim_s

    def _happen(self, fault: Fault) -> None:
        raise AssertionError(f"a pressure sensor has no one-shot fault, got {fault.kind}")
