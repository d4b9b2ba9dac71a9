"""Every simulated device of a station, built from its config, and the faults routed to the right one.

This is the forecourt without any I/O: dispensers (controller and pulse counter sharing one physics), the
tanks their nozzles draw on, the tank gauges and level probes that read those tanks, and tank pressure
sensors; each Modbus device with its register bank by (line, unit), each gauge with its `answer`, all with
their faults and their report. The station (`simulators.station`) puts them on ptys and TCP ports; tests
can use a site directly and move its time with `advance_to`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from drivers.profile_validation import find_profile
from drivers.profiles import Profile, shipped_profile_dirs
from simulators.banks import DeviceBank
from simulators.config import (
    DispenserSection,
    LevelProbeSection,
    PressureSensorSection,
    RtuLineSection,
    SimulatorsConfig,
    TankGaugeSection,
)
from simulators.faults import ActiveFault, Fault, FaultError, Number, fault_kind, make_fault
from simulators.forecourt import Dispenser, FuelSource, NozzleSpec, Sale
from simulators.level_probe import LevelProbe
from simulators.modbus_slave import SlaveFaults
from simulators.model import SimulatedModel
from simulators.pressure import PressureSensor
from simulators.tank_gauge import TankGauge
from simulators.tanks import Tank


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
        start = config.simulation.start_time()
        self.tanks = {section.id: Tank(section.id, section.spec(), start=start) for section in config.tanks}
        self.tank_gauges: dict[str, TankGauge] = {}
        self.level_probes: dict[str, LevelProbe] = {}
        self.lines: dict[str, list[SiteDevice]] = {line.name: [] for line in config.lines}
        self._directories = [*config.profile_dirs, *shipped_profile_dirs()]
        self._rng = random.Random(config.simulation.seed)
        self._rtu_lines = {line.name for line in config.lines if isinstance(line, RtuLineSection)}
        self._owners: dict[str, SimulatedModel] = dict(self.tanks)
        for dispenser_section in config.dispensers:
            self._add_dispenser(dispenser_section)
        for sensor_section in config.pressure_sensors:
            self._add_pressure_sensor(sensor_section)
        for gauge_section in config.tank_gauges:
            self._add_tank_gauge(gauge_section)
        for probe_section in config.level_probes:
            self._add_level_probe(probe_section)
        for item in config.scheduled_faults():
            self._owners[item.fault.target].schedule(item)
        self.advance_to(0.0)

    # -- time -----------------------------------------------------------------------------------------------

    def models(self) -> list[SimulatedModel]:
        """Every model, dispensers before the tanks they draw on."""
        return [
            *self.dispensers.values(),
            *self.tanks.values(),
            *self.pressure_sensors.values(),
            *self.tank_gauges.values(),
            *self.level_probes.values(),
        ]

    def advance_to(self, sim_s: float) -> None:
        """Run every device up to `sim_s` simulated seconds."""
        for model in self.models():
            model.advance_to(sim_s)

    def advance(self) -> None:
        """Run every device up to the clock's present."""
        self.advance_to(self.clock())

    # -- faults ---------------------------------------------------------------------------------------------

    def inject(self, kind: str, target: str, **params: Number | str) -> Fault:
        """Put a fault on now (a one-shot happens now), once every device has run up to now (a delivery starts
        from the tank as the sales so far left it); FaultError names the kinds, targets or params allowed."""
        fault = make_fault(kind, target, params, self.targets)
        self.advance()
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
        real_volume_ml, vapour_ml], per tank its true contents and every litre by cause (`Tank.report`) and
        the pressure now, and the faults on now."""
        tanks: dict[str, dict[str, object]] = {tank_id: tank.report() for tank_id, tank in self.tanks.items()}
        for tank_id, sensor in self.pressure_sensors.items():
            tanks.setdefault(tank_id, {})["pressure_pa"] = sensor.pressure_pa
        return {
            "sim_s": round(self.clock(), 3),
            "nozzles": {
                nozzle: {"sales": [sale.to_json() for sale in sales]} for nozzle, sales in self.sales().items()
            },
            "tanks": tanks,
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
        sources: dict[int, FuelSource] = {
            number: self.tanks[nozzle.tank]
            for number, nozzle in enumerate(section.nozzles, start=1)
            if nozzle.tank is not None
        }
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
            sources=sources,
            meter=section.meter.noise(),
        )
        for nozzle in section.nozzles:
            if nozzle.tank is not None:
                self.tanks[nozzle.tank].add_feeder(dispenser)
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

    def _add_tank_gauge(self, section: TankGaugeSection) -> None:
        gauge = TankGauge(
            section.id,
            [self.tanks[tank] for tank in section.tanks],
            security_code=section.security_code,
            refuses=frozenset(section.refuses),
            rng=random.Random(self._rng.getrandbits(64)),
        )
        self.tank_gauges[gauge.id] = gauge
        self._owners[gauge.target] = gauge

    def _add_level_probe(self, section: LevelProbeSection) -> None:
        probe = LevelProbe(
            self.tanks[section.tank],
            self._profile(section.profile),
            rng=random.Random(self._rng.getrandbits(64)),
            has_crc=section.line in self._rtu_lines,
        )
        self.level_probes[section.tank] = probe
        self._owners[probe.target] = probe
        self._place(section.line, section.unit, probe.bank(self.clock))

    def _place(self, line: str, unit: int, bank: DeviceBank) -> None:
        self.lines[line].append(SiteDevice(bank.target, unit, bank, bank.model.link_faults[bank.target]))
