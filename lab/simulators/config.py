"""The simulated station's config (`simulators.toml`): lines, dispensers, tanks and their gauges and probes,
tank sensors, faults, the platform.

A supplier's CI writes one of these to stand up a forecourt in software. Lines are transports only (a pty
pair for RS-485, or a TCP port); each dispenser names its line and the units of its pump controller and
optional pulse counter, and each nozzle the tank it draws on; a tank gauge (Veeder-Root TLS) has its own
pty pair and/or TCP port; level probes sit on Modbus lines. Faults and deliveries are scheduled in simulated
seconds. Paths are relative to the file. Every problem is reported with its place in the file, the value
found and what is allowed.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simulators.config_problems import explain
from simulators.faults import FaultError, ScheduledFault, TargetKind, device_target, make_fault, nozzle_target
from simulators.fuel import TYPICAL_DENSITY_15, Fuel, Product
from simulators.fuelling import FuellingPattern, Range
from simulators.meter import MeterNoise
from simulators.tank_chart import TankChart
from simulators.tanks import TankSpec


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PatternSection(_Section):
    """Customer behaviour, in simulated seconds and litres, each a [low, high] range drawn uniformly."""

    idle_s: Range = (20.0, 120.0)
    lift_s: Range = (3.0, 10.0)
    volume_l: Range = (5.0, 60.0)
    flow_l_per_min: Range = (20.0, 50.0)
    hang_up_s: Range = (2.0, 5.0)

    @model_validator(mode="after")
    def _valid(self) -> PatternSection:
        self.pattern()
        return self

    def pattern(self) -> FuellingPattern:
        return FuellingPattern(**self.model_dump())


class MeterSection(_Section):
    """How the controller's and the counter's counts of one sale differ (`simulators.meter`)."""

    controller_ml_per_pulse: float | None = Field(
        default=None, gt=0, description="the controller's own pulse, mL; none: the counter's (one encoder)"
    )
    controller_phase: bool = Field(default=True, description="the controller's count starts at a random phase")
    stop_jitter_probability: float = Field(
        default=0.02, ge=0, le=1, description="chance the counter counts one pulse more as the pump stops"
    )

    def noise(self) -> MeterNoise:
        return MeterNoise(**self.model_dump())


class NozzleSection(_Section):
    grade: str = Field(min_length=1, description="the fuel grade, e.g. '92', '0#'")
    price_fen_per_l: int = Field(ge=1, le=0xFFFF, description="unit price in fen per litre")
    al_ratio: float = Field(default=1.10, ge=0, le=5, description="vapour recovered per litre dispensed")
    al_spread: float = Field(default=0.01, ge=0, le=0.5, description="per-fuelling A/L noise, relative std dev")
    meter_error_ppm: int = Field(default=0, ge=-100_000, le=100_000, description="the controller meter's error")
    first_txn_no: int | None = Field(default=None, ge=0, description="the controller's last sale number at start")
    first_totalizer_ml: int | None = Field(default=None, ge=0, description="the volume totalizer at start")
    tank: str | None = Field(default=None, description="the [[tanks]] id it draws on; none: no tank")


class DispenserSection(_Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.]+$", description="letters, digits, '_' and '.'; nozzles are ID-N1...")
    line: str
    controller_unit: int = Field(ge=1, le=247)
    controller_profile: str = "sim-pump-controller"
    pulse_counter_unit: int | None = Field(default=None, ge=1, le=247, description="none: no pulse counter")
    pulse_counter_profile: str = "sim-pulse-counter"
    ml_per_pulse: float = Field(default=10.0, gt=0, description="liquid pulse equivalent, mL per pulse")
    vapour_ml_per_pulse: float = Field(default=10.0, gt=0, description="vapour meter, mL per pulse")
    pattern: PatternSection = PatternSection()
    meter: MeterSection = MeterSection()
    nozzles: list[NozzleSection] = Field(min_length=1)


class PressureSensorSection(_Section):
    line: str
    unit: int = Field(ge=1, le=247)
    profile: str = "sim-pressure-sensor"
    tank: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the tank it sits on; names the sensor")
    mean_pa: float = Field(default=-100.0, ge=-30_000, le=30_000, description="the pressure it wanders around")
    swing_pa: float = Field(default=150.0, ge=0, le=10_000, description="how far it typically wanders")


_ID = r"^[A-Za-z0-9_.-]+$"


class ShapeSection(_Section):
    """A horizontal cylinder with flat ends; its chart is computed with a row every `step_mm`."""

    diameter_mm: float = Field(gt=0, le=10_000)
    length_mm: float = Field(gt=0, le=100_000)
    step_mm: float = Field(default=10.0, gt=0, le=1000, description="the chart's height step")


class DeliverySection(_Section):
    at_s: float = Field(ge=0, description="simulated seconds after start")
    volume_l: float = Field(ge=1, le=100_000, description="litres the tanker meters, at the fuel's temperature")
    duration_s: float = Field(default=1800.0, ge=1, le=86_400, description="how long the drop takes")
    temperature_c: float = Field(default=20.0, ge=-40, le=60, description="the delivered fuel's temperature")


class TankSection(_Section):
    id: str = Field(pattern=_ID, description="the tank's name: nozzles, gauges, probes and faults use it")
    product: Product
    density_15_kg_m3: float | None = Field(default=None, ge=600, le=1000, description="none: a typical one")
    shape: ShapeSection | None = Field(default=None, description="a horizontal cylinder, or give `chart`")
    chart: list[tuple[float, float]] | None = Field(default=None, description="(height mm, volume L) rows")
    volume_l: float = Field(ge=0, description="product at start, at its temperature")
    water_mm: float = Field(default=0.0, ge=0, description="the water bottom's height")
    temperature_c: float | None = Field(default=None, ge=-40, le=60, description="none: the ground's")
    ground_c: float = Field(default=15.0, ge=-20, le=40, description="the fuel's temperature it relaxes to")
    daily_swing_c: float = Field(default=0.5, ge=0, le=20, description="amplitude of the daily swing")
    warmest_hour: float = Field(default=15.0, ge=0, lt=24, description="local hour of the daily maximum")
    relax_h: float = Field(default=48.0, gt=0, le=10_000, description="how fast a delivery's temperature fades")
    height_noise_mm: float = Field(default=0.05, ge=0, le=100, description="probe height noise (std dev)")
    water_noise_mm: float = Field(default=0.1, ge=0, le=100, description="probe water height noise (std dev)")
    temperature_noise_c: float = Field(default=0.02, ge=0, le=5, description="probe temperature noise (std dev)")
    resolution_mm: float = Field(default=0.1, gt=0, le=10, description="the probe's height step")
    delivery_settle_s: float = Field(default=300.0, ge=0, le=86_400, description="from a drop's end to its record")
    deliveries: list[DeliverySection] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> TankSection:
        if (self.shape is None) == (self.chart is None):
            raise ValueError(f"tank {self.id}: give either `shape` (a horizontal cylinder) or `chart`")
        self.spec()
        return self

    def tank_chart(self) -> TankChart:
        if self.shape is not None:
            return TankChart.horizontal_cylinder(self.shape.diameter_mm, self.shape.length_mm, self.shape.step_mm)
        return TankChart(self.chart or [])

    def spec(self) -> TankSpec:
        density = TYPICAL_DENSITY_15[self.product] if self.density_15_kg_m3 is None else self.density_15_kg_m3
        return TankSpec(
            fuel=Fuel(self.product, density),
            chart=self.tank_chart(),
            volume_l=self.volume_l,
            water_mm=self.water_mm,
            temperature_c=self.temperature_c,
            ground_c=self.ground_c,
            daily_swing_c=self.daily_swing_c,
            warmest_hour=self.warmest_hour,
            relax_h=self.relax_h,
            height_noise_mm=self.height_noise_mm,
            water_noise_mm=self.water_noise_mm,
            temperature_noise_c=self.temperature_noise_c,
            resolution_mm=self.resolution_mm,
            settle_s=self.delivery_settle_s,
        )


class TankGaugeSection(_Section):
    """A Veeder-Root TLS console: on a pty pair (both ports), on TCP (`port`), or both."""

    id: str = Field(pattern=_ID, description="the gauge's name; its fault target is ID/tank_gauge")
    tanks: list[str] = Field(min_length=1, max_length=99, description="[[tanks]] ids: gauge tank 1, 2, ...")
    device_port: Path | None = Field(default=None, description="the simulator's end of its pty pair")
    agent_port: Path | None = Field(default=None, description="the agent's end of its pty pair")
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535, description="its TCP port (TLS consoles use 10001)")
    security_code: str = Field(default="", pattern=r"^([\x20-\x7e]{6})?$", description="none, or 6 characters")
    refuses: list[Literal["i202", "i205"]] = Field(
        default_factory=list,
        description="optional reports it answers with the error answer 9999FF1B, as a console with the report "
        "switched off or older firmware does",
    )

    @model_validator(mode="after")
    def _valid(self) -> TankGaugeSection:
        if (self.device_port is None) != (self.agent_port is None):
            raise ValueError(f"tank gauge {self.id}: a serial line needs both device_port and agent_port")
        if self.device_port is None and self.port is None:
            raise ValueError(f"tank gauge {self.id}: give it a serial line (device_port, agent_port) or a TCP port")
        return self


class LevelProbeSection(_Section):
    tank: str = Field(description="the [[tanks]] id it measures; its fault target is TANK/level_probe")
    line: str
    unit: int = Field(ge=1, le=247)
    profile: str = "sim-level-probe"


class FaultSection(_Section):
    kind: str
    target: str
    at_s: float = Field(default=0.0, ge=0, description="simulated seconds after start")
    until_s: float | None = Field(default=None, gt=0, description="sustained faults only; none: until cleared")
    params: dict[str, int | float] = Field(default_factory=dict)


class RtuLineSection(_Section):
    kind: Literal["rtu"]
    name: str = Field(min_length=1)
    device_port: Path = Field(description="the simulator's end of the pty pair (a symlink socat makes)")
    agent_port: Path = Field(description="the agent's end of the pty pair; the agent's config names this one")
    baudrate: int = Field(default=9600, ge=300, le=921_600)
    emulate_line_timing: bool = False


class TcpLineSection(_Section):
    kind: Literal["tcp"]
    name: str = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)


LineSection = Annotated[RtuLineSection | TcpLineSection, Field(discriminator="kind")]


class PlatformSection(_Section):
    broker: str = Field(pattern=r"^[^:]+:\d+$", description="HOST:PORT of the MQTT broker")
    db: Path
    report: Path
    prefix: str = "fsm/v1"
    client_id: str = Field(
        default="station-sim-platform", min_length=1, description="names the receiver's persistent MQTT session"
    )
    stations: dict[str, Path] = Field(min_length=1, description="station id -> its public key (PEM)")


class SimulationSection(_Section):
    seed: int = 1
    start: datetime | None = Field(
        default=None,
        description="local time at simulated second 0 (gauge clocks, time of day); none: when the station is built",
    )

    def start_time(self) -> datetime:
        """`start`, or now on this machine's local clock (to the second), as a real gauge's clock shows."""
        return self.start or datetime.now().replace(microsecond=0)

    time_scale: float = Field(default=1.0, gt=0, le=10_000, description="simulated seconds per real second")
    report: Path | None = Field(default=None, description="where to write what the devices did (JSON)")
    control: Path | None = Field(default=None, description="Unix socket for injecting faults while running")


class SimulatorsConfig(_Section):
    simulation: SimulationSection = SimulationSection()
    profile_dirs: list[Path] = Field(default_factory=list)
    lines: list[LineSection] = Field(default_factory=list)
    dispensers: list[DispenserSection] = Field(default_factory=list)
    pressure_sensors: list[PressureSensorSection] = Field(default_factory=list)
    tanks: list[TankSection] = Field(default_factory=list)
    tank_gauges: list[TankGaugeSection] = Field(default_factory=list)
    level_probes: list[LevelProbeSection] = Field(default_factory=list)
    faults: list[FaultSection] = Field(default_factory=list)
    platform: PlatformSection | None = None

    def targets(self) -> dict[str, TargetKind]:
        """Every name a fault can aim at in this station."""
        named: dict[str, TargetKind] = {}
        for dispenser in self.dispensers:
            for number in range(1, len(dispenser.nozzles) + 1):
                named[nozzle_target(dispenser.id, number)] = TargetKind.NOZZLE
            named[device_target(dispenser.id, TargetKind.CONTROLLER)] = TargetKind.CONTROLLER
            if dispenser.pulse_counter_unit is not None:
                named[device_target(dispenser.id, TargetKind.PULSE_COUNTER)] = TargetKind.PULSE_COUNTER
        for sensor in self.pressure_sensors:
            named[device_target(sensor.tank, TargetKind.PRESSURE_SENSOR)] = TargetKind.PRESSURE_SENSOR
        for tank in self.tanks:
            named[tank.id] = TargetKind.TANK
        for gauge in self.tank_gauges:
            named[device_target(gauge.id, TargetKind.TANK_GAUGE)] = TargetKind.TANK_GAUGE
        for probe in self.level_probes:
            named[device_target(probe.tank, TargetKind.LEVEL_PROBE)] = TargetKind.LEVEL_PROBE
        return named

    def scheduled_faults(self) -> list[ScheduledFault]:
        """The `[[faults]]`, and the tanks' deliveries (one-shot `delivery` events)."""
        targets = self.targets()
        faults = [
            ScheduledFault(make_fault(f.kind, f.target, f.params, targets), f.at_s, f.until_s) for f in self.faults
        ]
        for tank in self.tanks:
            for drop in tank.deliveries:
                params = {"volume_l": drop.volume_l, "duration_s": drop.duration_s, "temperature_c": drop.temperature_c}
                faults.append(ScheduledFault(make_fault("delivery", tank.id, params, targets), drop.at_s))
        return faults

    @model_validator(mode="after")
    def _consistent(self) -> SimulatorsConfig:
        problems = [*self._line_problems(), *self._unit_problems(), *self._tank_problems(), *self._fault_problems()]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _line_problems(self) -> Iterator[str]:
        names = [line.name for line in self.lines]
        yield from _duplicates("lines", "name", names)
        yield from _duplicates("dispensers", "id", [dispenser.id for dispenser in self.dispensers])
        yield from _duplicates("pressure_sensors", "tank", [sensor.tank for sensor in self.pressure_sensors])
        known = ", ".join(names) or "none (add a [[lines]])"
        placed = {
            "dispensers": [dispenser.line for dispenser in self.dispensers],
            "pressure_sensors": [sensor.line for sensor in self.pressure_sensors],
            "level_probes": [probe.line for probe in self.level_probes],
        }
        for section, lines in placed.items():
            for index, line in enumerate(lines):
                if line not in names:
                    yield f"{section}[{index}].line: found {line!r}; allowed: a [[lines]] name: {known}"

    def _unit_problems(self) -> Iterator[str]:
        taken: dict[tuple[str, int], str] = {}
        devices: list[tuple[str, str, int | None]] = []
        for index, dispenser in enumerate(self.dispensers):
            devices.append((f"dispensers[{index}].controller_unit", dispenser.line, dispenser.controller_unit))
            devices.append((f"dispensers[{index}].pulse_counter_unit", dispenser.line, dispenser.pulse_counter_unit))
        for index, sensor in enumerate(self.pressure_sensors):
            devices.append((f"pressure_sensors[{index}].unit", sensor.line, sensor.unit))
        for index, probe in enumerate(self.level_probes):
            devices.append((f"level_probes[{index}].unit", probe.line, probe.unit))
        for where, line, unit in devices:
            if unit is None:
                continue
            holder = taken.setdefault((line, unit), where)
            if holder != where:
                yield (
                    f"{where}: found {unit}; allowed: a unit no other device on line {line!r} has "
                    f"({holder} has {unit}; 1..247)"
                )

    def _tank_problems(self) -> Iterator[str]:
        ids = [tank.id for tank in self.tanks]
        yield from _duplicates("tanks", "id", ids)
        yield from _duplicates("tank_gauges", "id", [gauge.id for gauge in self.tank_gauges])
        yield from _duplicates("level_probes", "tank", [probe.tank for probe in self.level_probes])
        known = ", ".join(ids) or "none (add a [[tanks]])"
        named = [
            (f"dispensers[{d}].nozzles[{n}].tank", nozzle.tank)
            for d, dispenser in enumerate(self.dispensers)
            for n, nozzle in enumerate(dispenser.nozzles)
        ]
        named += [(f"tank_gauges[{g}].tanks", tank) for g, gauge in enumerate(self.tank_gauges) for tank in gauge.tanks]
        named += [(f"level_probes[{p}].tank", probe.tank) for p, probe in enumerate(self.level_probes)]
        for where, tank in named:
            if tank is not None and tank not in ids:
                yield f"{where}: found {tank!r}; allowed: a [[tanks]] id: {known}"
        for index, gauge in enumerate(self.tank_gauges):
            yield from _duplicates(f"tank_gauges[{index}]", "tanks", gauge.tanks)

    def _fault_problems(self) -> Iterator[str]:
        targets = self.targets()
        for index, section in enumerate(self.faults):
            try:
                fault = make_fault(section.kind, section.target, section.params, targets)
                ScheduledFault(fault, section.at_s, section.until_s)
            except FaultError as error:
                yield f"faults[{index}]: {error}"


def _duplicates(section: str, key: str, values: list[str]) -> Iterator[str]:
    for index, value in enumerate(values):
        if value in values[:index]:
            first = values.index(value)
            yield (
                f"{section}[{index}].{key}: found {value!r}; "
                f"allowed: a value no other entry has ({section}[{first}] has it)"
            )


class SimulatorsConfigError(Exception):
    """A simulators config that cannot be used, with every problem in it."""


_PATH_KEYS = {"device_port", "agent_port", "db", "report", "control", "profile_dirs"}


def _resolve(node: object, base: Path, key: str = "") -> object:
    if isinstance(node, dict):
        if key == "stations":
            return {k: _resolve(v, base, "db") for k, v in node.items()}
        return {k: _resolve(v, base, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(item, base, key) for item in node]
    if isinstance(node, str) and key in _PATH_KEYS and not node.startswith("/"):
        return str(base / node)
    return node


def load_simulators_config(path: Path) -> SimulatorsConfig:
    """Read and validate `simulators.toml`; SimulatorsConfigError lists every problem with its place."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SimulatorsConfigError(f"{path}: cannot be read: {exc.strerror}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SimulatorsConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        # Strict, as the agent reads its config: a quoted number, 1.0 or `true` where a whole number belongs is a
        # mistake to name, not to coerce. Through JSON, so that TOML's arrays may stand for tuples.
        resolved = json.dumps(_resolve(document, path.parent), default=str)
        return SimulatorsConfig.model_validate_json(resolved, strict=True)
    except ValidationError as exc:
        problems = explain(exc, SimulatorsConfig)
        raise SimulatorsConfigError(
            f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  {problem}" for problem in problems)
        ) from exc
