"""Checking a config file: TOML in, settings out, or every problem an installer must fix, at once.

This is the one place the agent uses pydantic for its config: it validates the TOML document against the
settings dataclasses of `agent.config` (whose annotations carry the ranges and lengths), then checks the
patterns and the cross-references pydantic does not know about, and turns every error into a line that names
the field path, the value found and what is allowed. Paths in the file are relative to the file itself, so a
config directory can be moved as a whole.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import tomllib
import typing
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from agent.config import (
    AgentConfig,
    ConfigError,
    ConfigProblem,
    DeviceSection,
    LineSection,
    LoadedConfig,
    NozzleSection,
    RtuLineSection,
    TankGaugeSection,
    TcpLineSection,
    TlsLineSection,
    TlsTcpLineSection,
)

_ADAPTER: TypeAdapter[AgentConfig] | None = None
_LINE_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (RtuLineSection, TcpLineSection, TlsLineSection, TlsTcpLineSection)
}
_PATH_KEYS = {
    "device_key",
    "path",
    "socket",
    "leds_dir",
    "ca_file",
    "cert_file",
    "key_file",
    "port",
    "profile_dirs",
    "chart_file",
    "platform_key",
    "state_path",
    "sm4_key_file",
}
_LINE_KINDS = {
    RtuLineSection.__name__: "rtu",
    TcpLineSection.__name__: "tcp",
    TlsLineSection.__name__: "tls",
    TlsTcpLineSection.__name__: "tls_tcp",
}


def validate_config(source: Path) -> LoadedConfig:
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
    document = _resolve_paths(document, source.absolute().parent)
    try:
        config = _adapter().validate_python(document)
    except ValidationError as exc:
        raise ConfigError(source, explain(exc, document)) from exc
    problems = cross_check(config)
    if problems:
        raise ConfigError(source, problems)
    return LoadedConfig(config=config, source=source, sha256=hashlib.sha256(raw).hexdigest())


def _adapter() -> TypeAdapter[AgentConfig]:
    global _ADAPTER  # noqa: PLW0603 - built on first use: building it costs a tenth of a second
    if _ADAPTER is None:
        _ADAPTER = TypeAdapter(AgentConfig)
    return _ADAPTER


def _resolve_paths(node: Any, base: Path, key: str = "") -> Any:
    """Make relative paths absolute against the config's folder (TCP ports, which are numbers, excepted)."""
    if isinstance(node, dict):
        return {k: _resolve_paths(v, base, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_paths(item, base, key) for item in node]
    if isinstance(node, str) and key in _PATH_KEYS and not node.startswith("/"):
        return str(base / node)
    return node


def explain(error: ValidationError, document: dict[str, Any]) -> list[ConfigProblem]:
    """Turn pydantic's errors into problems that say the field path, the value found and what is allowed."""
    problems = []
    errors = error.errors(include_url=False)
    deeper = {item["loc"][:n] for item in errors for n in range(len(item["loc"]))}
    for item in errors:
        loc = item["loc"]
        if loc in deeper or not _in_chosen_branch(loc, document):
            continue  # a list is too short because its items failed: the items' errors say why
        where = _dotted(loc)
        if item["type"] == "unexpected_keyword_argument":
            problems.append(_unknown_field(loc, _shorten(repr(item.get("input")))))
            continue
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "value_error" and isinstance(item.get("input"), dict):
            problems.append(ConfigProblem(where or "(top level)", "", message))
            continue
        found = "nothing" if item["type"] == "missing" else _shorten(repr(item.get("input")))
        hint = _doc_at(loc)
        allowed = f"{message} ({hint})" if hint and hint not in message else message
        problems.append(ConfigProblem(where or "(top level)", found, allowed))
    return problems


def _in_chosen_branch(loc: tuple[int | str, ...], document: dict[str, Any]) -> bool:
    """A line is an RTU or a TCP line by its `kind`; errors of the branch it is not are noise."""
    node: Any = document
    for part in loc:
        if isinstance(part, str) and part in _LINE_KINDS:
            return isinstance(node, dict) and node.get("kind") == _LINE_KINDS[part]
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return True
    return True


def _unknown_field(loc: tuple[int | str, ...], found: str) -> ConfigProblem:
    parent = _class_at(loc[:-1])
    known = [f.name for f in dataclasses.fields(parent)] if parent is not None else []
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
        elif part not in _LINE_KINDS:
            text += f".{part}" if text else str(part)
    return text


def _class_at(loc: tuple[int | str, ...]) -> type | None:
    """The settings class that the location points into, following the annotations."""
    current: Any = AgentConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if part in _LINE_KINDS:
            current = _LINE_CLASSES[part]
            continue
        hints = typing.get_type_hints(current, include_extras=True) if dataclasses.is_dataclass(current) else {}
        if part not in hints:
            return None
        current = _inner_dataclass(hints[part])
        if current is None:
            return None
    return current if isinstance(current, type) and dataclasses.is_dataclass(current) else None


def _inner_dataclass(annotation: Any) -> type | None:
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_dataclass(arg)
        if found is not None:
            return found
    return None


def _doc_at(loc: tuple[int | str, ...]) -> str:
    names = [i for i, part in enumerate(loc) if isinstance(part, str) and part not in _LINE_KINDS]
    if not names:
        return ""
    parent = _class_at(loc[: names[-1]])
    if parent is None:
        return ""
    fields = {f.name: f for f in dataclasses.fields(parent)}
    chosen = fields.get(str(loc[names[-1]]))
    return str(chosen.metadata.get("doc", "")) if chosen is not None else ""


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
    placed: list[tuple[int, str, DeviceSection | TankGaugeSection]] = [
        (i, f"lines[{i}].devices[{j}]", device)
        for i, line in enumerate(config.lines)
        for j, device in enumerate(_line_devices(line))
    ]
    device_paths = [(f"{path}.name", device.name) for _, path, device in placed]
    once("device name", device_paths)
    for i, line in enumerate(config.lines):
        units = [(f"{path}.unit", str(d.unit)) for at, path, d in placed if at == i and isinstance(d, DeviceSection)]
        once(f"unit on line {line.name!r}", units)
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
    known = f"must name a device under [[lines]]; known devices: {', '.join(sorted(devices)) or 'none'}"
    taps = []
    for path, nozzle in nozzle_paths:
        if nozzle.controller not in devices:
            problems.append(ConfigProblem(f"{path}.controller", repr(nozzle.controller), known))
        for what, tap in (("pulse", nozzle.pulse), ("vapour", nozzle.vapour)):
            if tap is None:
                continue
            if tap.device not in devices:
                problems.append(ConfigProblem(f"{path}.{what}.device", repr(tap.device), known))
            taps.append((f"{path}.{what}.channel", f"{tap.device}#{tap.channel}"))
    once("pulse-counter channel", taps)
    for index, verification in enumerate(config.verifications):
        if verification.device not in devices:
            problems.append(ConfigProblem(f"verifications[{index}].device", repr(verification.device), known))
    problems += _tank_problems(config, nozzle_paths, once)
    problems += _day_problems(config)
    return problems


def _day_problems(config: AgentConfig) -> list[ConfigProblem]:
    """The pressure rules' intervals run from the epoch: the day's boundary must fall on an interval's edge, or
    one interval a day would straddle two days. (Zones are whole quarter hours from UTC, so it is the boundary's
    minute that matters: 00:00 suits every interval that divides an hour.)"""
    boundary = config.daily.boundary_time
    offset = datetime.combine(date(2026, 1, 1), boundary, ZoneInfo(config.station.timezone)).utcoffset()
    assert offset is not None
    seconds = boundary.hour * 3600 + boundary.minute * 60 - int(offset.total_seconds())
    interval = config.pressure.record_interval_s
    if seconds % interval == 0:
        return []
    return [
        ConfigProblem(
            "daily.boundary",
            repr(config.daily.boundary),
            f"must fall on the edge of a pressure.record_interval_s ({interval} s) interval in the station's zone: "
            "choose a boundary on a whole hour, or an interval that divides the boundary's minutes",
        )
    ]


def _line_devices(line: LineSection) -> tuple[DeviceSection | TankGaugeSection, ...]:
    return line.devices


def _tank_problems(
    config: AgentConfig,
    nozzle_paths: list[tuple[str, NozzleSection]],
    once: Callable[[str, list[tuple[str, str]]], None],
) -> list[ConfigProblem]:
    """Tanks name a gauge (and their number on it) or a Modbus probe, each measured once; once tanks are
    configured, every nozzle draws on one of them, or its sales could not be booked against a tank."""
    problems: list[ConfigProblem] = []
    once("tank id", [(f"tanks[{i}].id", tank.id) for i, tank in enumerate(config.tanks)])
    once(
        "gauge tank",
        [(f"tanks[{i}].gauge.tank", f"{t.gauge.device}#{t.gauge.tank}") for i, t in enumerate(config.tanks) if t.gauge],
    )
    once("level probe", [(f"tanks[{i}].probe", t.probe) for i, t in enumerate(config.tanks) if t.probe])
    gauges = {gauge.name for _, gauge in config.gauges()}
    modbus = {device.name for _, device in config.devices()}
    for i, tank in enumerate(config.tanks):
        if tank.gauge is not None and tank.gauge.device not in gauges:
            known = ", ".join(sorted(gauges)) or "none"
            problems.append(
                ConfigProblem(
                    f"tanks[{i}].gauge.device",
                    repr(tank.gauge.device),
                    f"must name a tank gauge on a 'tls' or 'tls_tcp' line; known gauges: {known}",
                )
            )
        if tank.probe is not None and tank.probe not in modbus:
            known = ", ".join(sorted(modbus)) or "none"
            problems.append(
                ConfigProblem(
                    f"tanks[{i}].probe", repr(tank.probe), f"must name a Modbus device under [[lines]]; known: {known}"
                )
            )
    tanks = {tank.id for tank in config.tanks}
    if tanks:
        for path, nozzle in nozzle_paths:
            if nozzle.tank not in tanks:
                problems.append(
                    ConfigProblem(
                        f"{path}.tank",
                        repr(nozzle.tank),
                        f"must name a tank under [[tanks]]: {', '.join(sorted(tanks))}",
                    )
                )
    return problems
