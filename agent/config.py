"""The station's configuration: one TOML file, validated before anything starts.

An installer writes this file by hand at a customer's site, so every mistake must come back as a line that names
the field, the value found and what is allowed, all of them at once, rather than a traceback at the first one.
Paths in the file are relative to the file itself, so a config directory can be moved as a whole.
"""

from __future__ import annotations

import difflib
import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

STATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
TOPIC_PREFIX_PATTERN = r"^[^#+\s]+(/[^#+\s]+)*$"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Name = Annotated[str, Field(pattern=NAME_PATTERN, description="a short name: letters, digits, '_', '-', '.'")]


class StationSection(_Section):
    id: str = Field(
        pattern=STATION_ID_PATTERN,
        description="the station id the platform registered, 1-64 of letters, digits, '_', '-', '.'",
    )
    name: str = Field(default="", max_length=200, description="a human-readable station name")
    timezone: str = Field(default="UTC", description="the station's local time zone")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Asia/Shanghai'") from exc
        return value


class KeysSection(_Section):
    device_key: Path = Field(
        default=Path("/var/lib/station-agent/keys/device.key"),
        description="the device's Ed25519 private key (PEM), made by 'station-agent keygen'",
    )


class OutboxSection(_Section):
    path: Path = Field(default=Path("/var/lib/station-agent/outbox.sqlite"), description="the SQLite outbox file")
    max_bytes: int = Field(
        default=2 * 1024**3,
        ge=1024**2,
        description="the most the outbox may occupy on disk, in bytes (>= 1 MiB); when reached, new records "
        "stop with an alarm until acknowledged records can be pruned",
    )
    retention_days: float = Field(
        default=30, ge=0, description="how long acknowledged records stay for re-sends, in days (>= 0)"
    )
    retention_bytes: int = Field(
        default=512 * 1024**2,
        ge=0,
        description="the most bytes of acknowledged records kept for re-sends (>= 0)",
    )
    pending_limit: int = Field(
        default=10_000,
        ge=100,
        description="how many records wait in memory while the outbox cannot be written (>= 100)",
    )
    retry_s: float = Field(
        default=5.0, gt=0, le=300, description="how often a full or failing outbox is tried again, in seconds"
    )


class TlsSection(_Section):
    ca_file: Path | None = Field(default=None, description="CA bundle that signed the broker's certificate")
    cert_file: Path | None = Field(default=None, description="the device certificate for mutual TLS")
    key_file: Path | None = Field(default=None, description="the private key of cert_file")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mutual TLS needs both cert_file and key_file, or neither")
        return self


class UplinkSection(_Section):
    broker: str = Field(
        pattern=r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$",
        description="the MQTT broker as HOST:PORT, e.g. '127.0.0.1:1883'",
    )
    prefix: str = Field(
        default="fsm/v1",
        pattern=TOPIC_PREFIX_PATTERN,
        description="the topic prefix, without '#', '+' or spaces",
    )
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="the MQTT protocol version: '5' or '3.1.1'")
    client_id: str | None = Field(default=None, max_length=64, description="the MQTT client id")
    username: str | None = None
    password: str | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive in seconds (5..3600)")
    ack_mode: Literal["platform", "broker"] = Field(
        default="platform",
        description="'platform': a record is done when the platform acks it on the ack topic; "
        "'broker': when the broker's PUBACK arrives",
    )
    ack_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="re-send from the last acked record after this many seconds"
    )
    max_message_bytes: int = Field(
        default=128 * 1024, ge=4096, le=256 * 1024**2, description="the largest records message, in bytes"
    )
    max_records_per_message: int = Field(default=500, ge=1, le=10_000)
    max_inflight_messages: int = Field(default=8, ge=1, le=1000)
    reconnect_min_s: float = Field(default=1.0, gt=0, le=600)
    reconnect_max_s: float = Field(default=120.0, gt=0, le=3600)
    tls: TlsSection | None = None

    @field_validator("broker")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        port = int(value.rsplit(":", 1)[1])
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is not a TCP port (1..65535)")
        return value

    @model_validator(mode="after")
    def _backoff_ordered(self) -> UplinkSection:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    @property
    def host(self) -> str:
        return self.broker.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.broker.rsplit(":", 1)[1])


class HeartbeatSection(_Section):
    interval_s: int = Field(default=60, ge=1, le=86_400, description="seconds between heartbeat records")


class ClockSection(_Section):
    jump_threshold_s: float = Field(
        default=5.0, gt=0, description="a wall-clock step larger than this, in seconds, is a clock_jump event"
    )


class LoggingSection(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = Field(default="json", description="'json' for journald, 'console' for people")


class StatusSection(_Section):
    path: Path = Field(
        default=Path("/run/station-agent/status.json"), description="where the status snapshot is written"
    )
    interval_s: float = Field(default=1.0, gt=0, le=60)


class DeviceSection(_Section):
    name: Name
    unit: int = Field(ge=1, le=247, description="the Modbus slave address, 1..247")
    profile: str = Field(min_length=1, description="a profile name from the profile directories")
    poll_interval_ms: int = Field(default=500, ge=50, le=3_600_000, description="poll period in ms (50..3600000)")


class RtuLineSection(_Section):
    kind: Literal["rtu"]
    name: Name
    port: Path = Field(description="the serial device, e.g. '/dev/ttyS1' or '/dev/serial/by-id/...'")
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_ms: int = Field(default=300, ge=10, le=10_000, description="response timeout in ms (10..10000)")
    devices: list[DeviceSection] = Field(min_length=1)


class TcpLineSection(_Section):
    kind: Literal["tcp"]
    name: Name
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    timeout_ms: int = Field(default=1000, ge=10, le=30_000)
    devices: list[DeviceSection] = Field(min_length=1)


LineSection = Annotated[RtuLineSection | TcpLineSection, Field(discriminator="kind")]


class NozzleSection(_Section):
    id: Name
    grade: str = Field(min_length=1, max_length=32, description="the fuel grade, e.g. '92', '95', '0#'")
    tank: str = Field(default="", max_length=32, description="the tank this nozzle draws from")
    controller: Name = Field(description="the name of the pump-controller device that reports this nozzle")
    controller_nozzle: int = Field(ge=1, le=32, description="the nozzle's number on its controller, 1..32")


class DispenserSection(_Section):
    id: Name
    nozzles: list[NozzleSection] = Field(min_length=1)


class AgentConfig(_Section):
    station: StationSection
    keys: KeysSection = KeysSection()
    outbox: OutboxSection = OutboxSection()
    uplink: UplinkSection
    heartbeat: HeartbeatSection = HeartbeatSection()
    clock: ClockSection = ClockSection()
    logging: LoggingSection = LoggingSection()
    status: StatusSection = StatusSection()
    profile_dirs: list[Path] = Field(
        default_factory=lambda: [Path("/etc/station-agent/profiles")],
        description="directories searched for device profiles before the shipped ones",
    )
    lines: list[LineSection] = Field(default_factory=list)
    dispensers: list[DispenserSection] = Field(default_factory=list)

    def devices(self) -> list[tuple[RtuLineSection | TcpLineSection, DeviceSection]]:
        return [(line, device) for line in self.lines for device in line.devices]

    def nozzles(self) -> list[tuple[DispenserSection, NozzleSection]]:
        return [(dispenser, nozzle) for dispenser in self.dispensers for nozzle in dispenser.nozzles]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file, said so that an installer can fix it without reading code."""

    path: str
    found: str
    allowed: str

    def __str__(self) -> str:
        return f"{self.path}: found {self.found}; {self.allowed}"


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


def load_config(source: Path) -> LoadedConfig:
    """Read, parse and validate a config file; raise ConfigError listing every problem."""
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
    document = _resolve_paths(document, source.parent)
    try:
        config = AgentConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(source, explain(exc, AgentConfig)) from exc
    problems = cross_check(config)
    if problems:
        raise ConfigError(source, problems)
    return LoadedConfig(config=config, source=source, sha256=hashlib.sha256(raw).hexdigest())


_PATH_KEYS = {"device_key", "path", "ca_file", "cert_file", "key_file", "port"}


def _resolve_paths(node: Any, base: Path, key: str = "") -> Any:
    """Make relative paths absolute against the config's folder (serial ports and TCP ports excepted)."""
    if isinstance(node, dict):
        is_tcp_line = node.get("kind") == "tcp"
        return {k: v if (is_tcp_line and k == "port") else _resolve_paths(v, base, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_paths(item, base, key) for item in node]
    if isinstance(node, str) and (key in _PATH_KEYS or key == "profile_dirs") and not node.startswith("/"):
        return str(base / node)
    return node


def explain(error: ValidationError, model: type[BaseModel]) -> list[ConfigProblem]:
    """Turn pydantic's errors into problems that say the field path, the value found and what is allowed."""
    problems = []
    for item in error.errors(include_url=False):
        location = _dotted(item["loc"])
        found = _shorten(repr(item.get("input")))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            problems.append(_unknown_field(model, item["loc"], found))
            continue
        if item["type"] == "missing":
            found = "nothing"
        hint = _description(model, item["loc"])
        allowed = f"{message} ({hint})" if hint and hint not in message else message
        problems.append(ConfigProblem(location or "(top level)", found, allowed))
    return problems


def _unknown_field(model: type[BaseModel], loc: tuple[int | str, ...], found: str) -> ConfigProblem:
    parent = _model_at(model, loc[:-1])
    known = list(parent.model_fields) if parent is not None else []
    guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
    suggestion = f"did you mean {guess[0]!r}? " if guess else ""
    return ConfigProblem(
        _dotted(loc), found, f"unknown field; {suggestion}known fields here: {', '.join(known) or 'none'}"
    )


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in {"rtu", "tcp"}:
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if part in {"rtu", "tcp"}:
            current = RtuLineSection if part == "rtu" else TcpLineSection
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return None
        current = _inner_model(field.annotation)
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _description(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    names = [part for part in loc if isinstance(part, str) and part not in {"rtu", "tcp"}]
    if not names:
        return ""
    parent = _model_at(model, loc[: max(i for i, part in enumerate(loc) if part == names[-1])])
    if parent is None:
        return ""
    field = parent.model_fields.get(names[-1])
    return field.description or "" if field is not None else ""


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cross_check(config: AgentConfig) -> list[ConfigProblem]:
    """Problems that no single field shows: repeated names and references to things that do not exist."""
    problems: list[ConfigProblem] = []

    def once(what: str, items: list[tuple[str, str]]) -> None:
        seen: set[str] = set()
        for path, value in items:
            if value in seen:
                problems.append(ConfigProblem(path, repr(value), f"each {what} must be unique; this one is repeated"))
            seen.add(value)

    once("line name", [(f"lines[{i}].name", line.name) for i, line in enumerate(config.lines)])
    device_paths = [
        (f"lines[{i}].devices[{j}].name", device.name)
        for i, line in enumerate(config.lines)
        for j, device in enumerate(line.devices)
    ]
    once("device name", device_paths)
    for i, line in enumerate(config.lines):
        once(
            f"unit on line {line.name!r}",
            [(f"lines[{i}].devices[{j}].unit", str(device.unit)) for j, device in enumerate(line.devices)],
        )
    once("dispenser id", [(f"dispensers[{i}].id", d.id) for i, d in enumerate(config.dispensers)])
    nozzle_paths = [
        (f"dispensers[{i}].nozzles[{j}]", nozzle)
        for i, dispenser in enumerate(config.dispensers)
        for j, nozzle in enumerate(dispenser.nozzles)
    ]
    once("nozzle id", [(f"{path}.id", nozzle.id) for path, nozzle in nozzle_paths])
    once(
        "controller nozzle",
        [(f"{path}.controller_nozzle", f"{n.controller}#{n.controller_nozzle}") for path, n in nozzle_paths],
    )
    devices = {name for _, name in device_paths}
    for path, nozzle in nozzle_paths:
        if nozzle.controller not in devices:
            problems.append(
                ConfigProblem(
                    f"{path}.controller",
                    repr(nozzle.controller),
                    f"must name a device under [[lines]]; known devices: {', '.join(sorted(devices)) or 'none'}",
                )
            )
    return problems


def _tls_mode(tls: TlsSection | None) -> str:
    if tls is None:
        return "off"
    return "mutual" if tls.cert_file is not None else "on"


def summary(loaded: LoadedConfig) -> str:
    """A one-screen picture of the station, for an installer checking a config before handing over."""
    config = loaded.config
    out = [
        f"station   {config.station.id}  {config.station.name}  ({config.station.timezone})",
        f"config    {loaded.source}  sha256 {loaded.sha256[:16]}",
        f"uplink    mqtt{' ' + config.uplink.protocol} {config.uplink.broker}  prefix {config.uplink.prefix}"
        f"  tls {_tls_mode(config.uplink.tls)}"
        f"  acks from the {config.uplink.ack_mode}",
        f"outbox    {config.outbox.path}  cap {config.outbox.max_bytes // 1024**2} MiB"
        f"  keeps acked records {config.outbox.retention_days:g} days / {config.outbox.retention_bytes // 1024**2} MiB",
        f"key       {config.keys.device_key}",
        f"heartbeat every {config.heartbeat.interval_s} s",
    ]
    for line in config.lines:
        where = (
            f"{line.port} {line.baudrate} {line.parity}{line.stopbits}"
            if isinstance(line, RtuLineSection)
            else f"tcp {line.host}:{line.port}"
        )
        out.append(f"line      {line.name}: {where}")
        out.extend(
            f"  device  {device.name}: unit {device.unit}, profile {device.profile}, every {device.poll_interval_ms} ms"
            for device in line.devices
        )
    for dispenser in config.dispensers:
        nozzles = ", ".join(
            f"{n.id} ({n.grade}, tank {n.tank or '-'}, {n.controller}#{n.controller_nozzle})" for n in dispenser.nozzles
        )
        out.append(f"dispenser {dispenser.id}: {nozzles}")
    return "\n".join(out)
