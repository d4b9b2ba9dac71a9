"""The simulated station's config (`simulators.toml`): lines, dispensers, tank sensors, faults, the platform.

A supplier's CI writes one of these to stand up a forecourt in software. Lines are transports only (a pty
pair for RS-485, or a TCP port); each dispenser names its line and the units of its pump controller and
optional pulse counter; faults are scheduled in simulated seconds. Paths are relative to the file. Every
problem is reported with its place in the file, the value found and what is allowed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simulators.faults import FaultError, ScheduledFault, TargetKind, device_target, make_fault, nozzle_target
from simulators.fuelling import FuellingPattern, Range


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


class NozzleSection(_Section):
    grade: str = Field(min_length=1, description="the fuel grade, e.g. '92', '0#'")
    price_fen_per_l: int = Field(ge=1, le=0xFFFF, description="unit price in fen per litre")
    al_ratio: float = Field(default=1.10, ge=0, le=5, description="vapour recovered per litre dispensed")
    al_spread: float = Field(default=0.01, ge=0, le=0.5, description="per-fuelling A/L noise, relative std dev")
    meter_error_ppm: int = Field(default=0, ge=-100_000, le=100_000, description="the controller meter's error")
    first_txn_no: int | None = Field(default=None, ge=0, description="the controller's last sale number at start")
    first_totalizer_ml: int | None = Field(default=None, ge=0, description="the volume totalizer at start")


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
    nozzles: list[NozzleSection] = Field(min_length=1)


class PressureSensorSection(_Section):
    line: str
    unit: int = Field(ge=1, le=247)
    profile: str = "sim-pressure-sensor"
    tank: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the tank it sits on; names the sensor")
    mean_pa: float = Field(default=-100.0, ge=-30_000, le=30_000, description="the pressure it wanders around")
    swing_pa: float = Field(default=150.0, ge=0, le=10_000, description="how far it typically wanders")


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
    time_scale: float = Field(default=1.0, gt=0, le=10_000, description="simulated seconds per real second")
    report: Path | None = Field(default=None, description="where to write what the devices did (JSON)")
    control: Path | None = Field(default=None, description="Unix socket for injecting faults while running")


class SimulatorsConfig(_Section):
    simulation: SimulationSection = SimulationSection()
    profile_dirs: list[Path] = Field(default_factory=list)
    lines: list[LineSection] = Field(default_factory=list)
    dispensers: list[DispenserSection] = Field(default_factory=list)
    pressure_sensors: list[PressureSensorSection] = Field(default_factory=list)
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
        return named

    def scheduled_faults(self) -> list[ScheduledFault]:
        targets = self.targets()
        return [ScheduledFault(make_fault(f.kind, f.target, f.params, targets), f.at_s, f.until_s) for f in self.faults]

    @model_validator(mode="after")
    def _consistent(self) -> SimulatorsConfig:
        problems = [*self._line_problems(), *self._unit_problems(), *self._fault_problems()]
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
        }
        for section, lines in placed.items():
            for index, line in enumerate(lines):
                if line not in names:
                    yield f"{section}[{index}].line: {line!r} is not a line; lines: {known}"

    def _unit_problems(self) -> Iterator[str]:
        taken: dict[tuple[str, int], str] = {}
        devices: list[tuple[str, str, int | None]] = []
        for index, dispenser in enumerate(self.dispensers):
            devices.append((f"dispensers[{index}].controller_unit", dispenser.line, dispenser.controller_unit))
            devices.append((f"dispensers[{index}].pulse_counter_unit", dispenser.line, dispenser.pulse_counter_unit))
        for index, sensor in enumerate(self.pressure_sensors):
            devices.append((f"pressure_sensors[{index}].unit", sensor.line, sensor.unit))
        for where, line, unit in devices:
            if unit is None:
                continue
            holder = taken.setdefault((line, unit), where)
            if holder != where:
                yield (
                    f"{where}: unit {unit} on line {line!r} is taken by {holder}; "
                    "each device on a line needs its own unit (1..247)"
                )

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
            yield f"{section}[{index}].{key}: {value!r} is used by {section}[{first}] too; each needs its own {key}"


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
        return SimulatorsConfig.model_validate(_resolve(document, path.parent))
    except ValidationError as exc:
        problems = describe_problems(exc)
        raise SimulatorsConfigError(f"{path}: {len(problems)} problem(s):\n" + "\n".join(problems)) from exc


def describe_problems(error: ValidationError) -> list[str]:
    """One line per problem: where, what is wrong, and the value found."""
    problems: list[str] = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if where:
            problems.append(f"  {where}: {message} (found {item.get('input')!r:.60})")
        else:
            problems.extend(f"  {line}" for line in message.splitlines())
    return problems
