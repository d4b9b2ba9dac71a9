"""The station's config as the running agent uses it: the sections, assembled; and the file it is read from.

Each section is a frozen dataclass defined beside the code that reads it (`agent.station.settings`,
`agent.uplink.settings`, `drivers.line_settings`, ...), with the rules its values must follow on the fields.
This module puts them together as `AgentConfig` and reads the file; turning the file's document into settings
is `agent.config_validation`'s job (pydantic, at the edge), so the agent process proper runs without pydantic
(see drivers/schema.py).
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.commands.settings import CommandsSection
from agent.led import LedSection
from agent.ledger.settings import KeysSection, OutboxSection
from agent.lifecycle_settings import ClockSection, HeartbeatSection
from agent.logs import LoggingSection
from agent.station.daily_settings import DaySettings
from agent.station.leak_settings import LeakSettings
from agent.station.pressure_settings import PressureSettings
from agent.station.settings import (
    DispenserSection,
    MeteringSection,
    NozzleSection,
    StationSection,
    TankRulesSection,
    TankSection,
    VerificationSection,
)
from agent.station.vapour_settings import VapourSettings
from agent.status_settings import StatusSection
from agent.uplink.hj212_settings import Hj212Section
from agent.uplink.settings import UplinkSection
from agent.web_settings import WebSection
from drivers.line_settings import DeviceSection, LineSection, TankGaugeSection, TlsLineSection, TlsTcpLineSection
from drivers.schema import doc, settings


@settings
class AgentConfig:
    station: StationSection = doc("the station")
    uplink: UplinkSection = doc("the MQTT uplink to the platform")
    keys: KeysSection = doc("the device key", factory=KeysSection)
    outbox: OutboxSection = doc("the outbox", factory=OutboxSection)
    heartbeat: HeartbeatSection = doc("heartbeat records", factory=HeartbeatSection)
    clock: ClockSection = doc("clock checks", factory=ClockSection)
    logging: LoggingSection = doc("logs", factory=LoggingSection)
    status: StatusSection = doc("the status snapshot", factory=StatusSection)
    led: LedSection = doc("the status LED", factory=LedSection)
    profile_dirs: tuple[Path, ...] = doc(
        "directories searched for device profiles before the shipped ones",
        default=(Path("/etc/station-agent/profiles"),),
    )
    lines: tuple[LineSection, ...] = doc("the field-bus lines", default=())
    dispensers: tuple[DispenserSection, ...] = doc("the forecourt's dispensers", default=())
    metering: MeteringSection = doc("metering checks", factory=MeteringSection)
    verifications: tuple[VerificationSection, ...] = doc("verified calibrations", default=())
    tanks: tuple[TankSection, ...] = doc("the station's tanks", default=())
    tank_rules: TankRulesSection = doc("when tank records are made", factory=TankRulesSection)
    leak: LeakSettings = doc("the tanks' leak and unrecorded-sales test", factory=LeakSettings)
    vapour: VapourSettings = doc("the nozzles' vapour-recovery (A/L) evaluation", factory=VapourSettings)
    pressure: PressureSettings = doc("the tanks' vapour-space pressure rules", factory=PressureSettings)
    daily: DaySettings = doc("when the day's books close", factory=DaySettings)
    commands: CommandsSection = doc("signed commands from the platform", factory=CommandsSection)
    hj212: Hj212Section | None = doc("a second uplink, to an ecology platform that takes HJ 212", default=None)
    web: WebSection = doc("the local web page for staff and installers", factory=WebSection)

    def devices(self) -> list[tuple[LineSection, DeviceSection]]:
        """The Modbus devices, by line."""
        return [(line, device) for line in self.lines for device in line.devices if isinstance(device, DeviceSection)]

    def gauges(self) -> list[tuple[TlsLineSection | TlsTcpLineSection, TankGaugeSection]]:
        """The tank gauges, by line."""
        return [
            (line, device)
            for line in self.lines
            if isinstance(line, TlsLineSection | TlsTcpLineSection)
            for device in line.devices
        ]

    def hj212_nozzles(self) -> list[tuple[str, str | None]]:
        """Every nozzle's id and explicit HJ 212 code, in the config's order, which numbers the guns."""
        return [(nozzle.id, nozzle.hj212_code) for _, nozzle in self.nozzles()]

    def nozzles(self) -> list[tuple[DispenserSection, NozzleSection]]:
        return [(dispenser, nozzle) for dispenser in self.dispensers for nozzle in dispenser.nozzles]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file, said so that an installer can fix it without reading code."""

    path: str
    found: str
    allowed: str

    def __str__(self) -> str:
        return f"{self.path}: found {self.found}; {self.allowed}" if self.found else f"{self.path}: {self.allowed}"


class ConfigError(Exception):
    """A config file that cannot be used, with every problem in it."""

    def __init__(self, source: Path, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config and the digest of its bytes, which the agent records when it changes."""

    config: AgentConfig
    source: Path
    sha256: str


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """A config file as read: its TOML document, paths as written, and the digest of its bytes."""

    source: Path
    document: dict[str, Any]
    sha256: str


def read_config_file(source: Path) -> ConfigFile:
    """Read and parse a config file; ConfigError if it cannot be read, is not UTF-8 or is not TOML."""
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise ConfigError(
            source, [ConfigProblem("(file)", repr(str(source)), f"cannot be read: {exc.strerror}")]
        ) from exc
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [ConfigProblem("(file)", "bytes that are not UTF-8", "save it as UTF-8")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [ConfigProblem("(syntax)", "invalid TOML", str(exc))]) from exc
    except RecursionError as exc:  # tomllib descends once per nested array or inline table
        problem = ConfigProblem("(syntax)", "arrays or tables nested too deep", "no setting nests; check the file")
        raise ConfigError(source, [problem]) from exc
    return ConfigFile(source, document, hashlib.sha256(raw).hexdigest())
