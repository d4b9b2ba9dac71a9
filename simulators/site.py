"""Every simulated device of a station, built from its config, and the faults routed to the right one.

This is the forecourt without any I/O: dispensers (controller and pulse counter sharing one physics) and
tank pressure sensors, each with its Modbus register bank by (line, unit), its faults and its report. The
station (`simulators.station`) puts the banks on ptys and TCP ports; tests can use a site directly and move
its time with `advance_to`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from drivers.profiles import Profile, find_profile, shipped_profile_dirs
from simulators.banks import DeviceBank
from simulators.config import DispenserSection, PressureSensorSection, RtuLineSection, SimulatorsConfig
from simulators.faults import ActiveFault, Fault, FaultError, Number, fault_kind, make_fault
from simulators.forecourt import Dispenser, NozzleSpec, Sale
from simulators.modbus_slave import SlaveFaults
from simulators.model import SimulatedModel
from simulators.pressure import PressureSensor


@dataclass(frozen=True, slots=True)
class SiteDevice:
    """One Modbus unit on a line: its fault target name, its register bank and the link faults its server reads."""

    target: str
    unit: int
    bank: DeviceBank
    link: SlaveFaults


class Site:
    """The station's simulated devices, reading `clock()` for the simulated present.

    Raises ProfileError when a profile is missing or does not fit (too few nozzles or channels).
    """

    def __init__(self, config: SimulatorsConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.targets = config.targets()
        self.dispensers: dict[str, Dispenser] = {}
        self.pressure_sensors: dict[str, PressureSensor] = {}
        self.lines: dict[str, list[SiteDevice]] = {line.name: [] for line in config.lines}
        self._directories = [*config.profile_dirs, *shipped_profile_dirs()]
        self._rng = random.Random(config.simulation.seed)
        self._rtu_lines = {line.name for line in config.lines if isinstance(line, RtuLineSection)}
        self._owners: dict[str, SimulatedModel] = {}
        for dispenser_section in config.dispensers:
            self._add_dispenser(dispenser_section)
        for sensor_section in config.pressure_sensors:
            self._add_pressure_sensor(sensor_section)
        for item in config.scheduled_faults():
            self._owners[item.fault.target].schedule(item)
        self.advance_to(0.0)

    # -- time -----------------------------------------------------------------------------------------------

    def models(self) -> list[SimulatedModel]:
        return [*self.dispensers.values(), *self.pressure_sensors.values()]

    def advance_to(self, sim_s: float) -> None:
        """Run every device up to `sim_s` simulated seconds."""
        for model in self.models():
            model.advance_to(sim_s)

    def advance(self) -> None:
        """Run every device up to the clock's present."""
        self.advance_to(self.clock())

    # -- faults ---------------------------------------------------------------------------------------------

    def inject(self, kind: str, target: str, **params: Number | str) -> Fault:
        """Put a fault on now (a one-shot happens now); FaultError names the kinds, targets or params allowed."""
        fault = make_fault(kind, target, params, self.targets)
        self._owners[target].inject(fault, self.clock())
        return fault

    def clear(self, kind: str, target: str) -> ActiveFault:
        """Take a sustained fault off now; FaultError if it is not on, naming the faults that are."""
        if fault_kind(kind, target, self.targets).one_shot:
            raise FaultError(f"{kind} is one-shot: it happened once and there is nothing to clear")
        return self._owners[target].clear(kind, target, self.clock())

    def active_faults(self) -> list[ActiveFault]:
        found = [active for model in self.models() for active in model.active_faults()]
        return sorted(found, key=lambda a: (a.since_s, a.fault.target, a.fault.kind))

    # -- what happened --------------------------------------------------------------------------------------

    def sales(self) -> dict[str, list[Sale]]:
        """The latest sales each nozzle's controller booked (up to 1000), oldest first, by nozzle id."""
        return {nozzle: sales for dispenser in self.dispensers.values() for nozzle, sales in dispenser.sales().items()}

    def phases(self) -> dict[str, str]:
        """What each nozzle is doing at the clock's present, by nozzle id."""
        self.advance()
        return {nozzle: phase for dispenser in self.dispensers.values() for nozzle, phase in dispenser.phases().items()}

    def report(self) -> dict[str, object]:
        """What the devices did, as JSON: per nozzle its sales as [txn_no, volume_ml (controller),
        real_volume_ml, vapour_ml], per tank the pressure now, and the faults on now."""
        return {
            "sim_s": round(self.clock(), 3),
            "nozzles": {
                nozzle: {"sales": [sale.to_json() for sale in sales]} for nozzle, sales in self.sales().items()
            },
            "tanks": {tank: {"pressure_pa": sensor.pressure_pa} for tank, sensor in self.pressure_sensors.items()},
            "faults": [active.to_json() for active in self.active_faults()],
        }

    # -- building -------------------------------------------------------------------------------------------

    def _profile(self, name: str) -> Profile:
        return find_profile(name, self._directories)

    def _add_dispenser(self, section: DispenserSection) -> None:
        rng = random.Random(self._rng.getrandbits(64))
        nozzles = [
            NozzleSpec(
                grade=nozzle.grade,
                price_fen_per_l=nozzle.price_fen_per_l,
                al_ratio=nozzle.al_ratio,
                al_spread=nozzle.al_spread,
                meter_error_ppm=nozzle.meter_error_ppm,
                first_txn_no=rng.randrange(100, 10_000) if nozzle.first_txn_no is None else nozzle.first_txn_no,
                first_totalizer_ml=(
                    rng.randrange(100_000, 10_000_000) * 10
                    if nozzle.first_totalizer_ml is None
                    else nozzle.first_totalizer_ml
                ),
            )
            for nozzle in section.nozzles
        ]
        dispenser = Dispenser(
            section.id,
            nozzles,
            self._profile(section.controller_profile),
            pulse_counter_profile=(
                None if section.pulse_counter_unit is None else self._profile(section.pulse_counter_profile)
            ),
            pattern=section.pattern.pattern(),
            ml_per_pulse=section.ml_per_pulse,
            vapour_ml_per_pulse=section.vapour_ml_per_pulse,
            rng=rng,
            has_crc=section.line in self._rtu_lines,
        )
        self.dispensers[dispenser.id] = dispenser
        self._owners.update(dict.fromkeys(dispenser.targets(), dispenser))
        self._place(section.line, section.controller_unit, dispenser.controller_bank(self.clock))
        if section.pulse_counter_unit is not None:
            self._place(section.line, section.pulse_counter_unit, dispenser.pulse_counter_bank(self.clock))

    def _add_pressure_sensor(self, section: PressureSensorSection) -> None:
        sensor = PressureSensor(
            section.tank,
            self._profile(section.profile),
            mean_pa=section.mean_pa,
            swing_pa=section.swing_pa,
            rng=random.Random(self._rng.getrandbits(64)),
            has_crc=section.line in self._rtu_lines,
        )
        self.pressure_sensors[sensor.tank] = sensor
        self._owners[sensor.target] = sensor
        self._place(section.line, section.unit, sensor.bank(self.clock))

    def _place(self, line: str, unit: int, bank: DeviceBank) -> None:
        self.lines[line].append(SiteDevice(bank.target, unit, bank, bank.model.link_faults[bank.target]))
