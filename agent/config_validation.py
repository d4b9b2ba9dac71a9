"""Checking a config file: TOML in, settings out, or every problem an installer must fix, at once.

This is the one place the agent uses pydantic for its config: it validates the TOML document, as
`agent.config` reads it, against the settings dataclasses that module assembles (whose annotations carry the
ranges and lengths) in strict mode, so that a quoted number, a whole number with a decimal point or a `true` is
refused rather than coerced; it checks the
cross-references pydantic does not know about on the document as written, in the same pass; and it turns every
error into a line that names the field path, the value as written and what is allowed or how to write it.
Paths in the file are relative to the file itself, so a config directory can be moved as a whole.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from agent.config import AgentConfig, ConfigError, ConfigProblem, LoadedConfig, read_config_file
from drivers.line_settings import RtuLineSection, TcpLineSection, TlsLineSection, TlsTcpLineSection

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


def load_config(source: Path) -> LoadedConfig:
    """Read, parse and validate a config file; raise ConfigError listing every problem.

    The schema and the cross-references are checked in the same pass, so that an installer fixing a typo does
    not meet a bad tank reference only on the next run: the cross-references are read from the document as
    written, not from settings that a typo elsewhere kept from being built."""
    config_file = read_config_file(source)
    document = _resolve_paths(config_file.document, source.absolute().parent)
    problems: list[ConfigProblem] = []
    config: AgentConfig | None = None
    try:
        config = _adapter().validate_json(json.dumps(document, default=str), strict=True)
    except ValidationError as exc:
        problems += explain(exc, document)
    reported = {problem.path for problem in problems}
    problems += [problem for problem in _dates_and_times(document) if problem.path not in reported]
    problems += cross_check(document)
    if config is not None and not problems:
        problems += _day_problems(config)
    if problems:
        raise ConfigError(source, problems)
    assert config is not None, "no problems means the settings were built"
    return LoadedConfig(config=config, source=source, sha256=config_file.sha256)


def _dates_and_times(node: Any, loc: tuple[int | str, ...] = ()) -> list[ConfigProblem]:
    """TOML's bare dates and times (`boundary = 06:00`): no setting takes one, every time of day is quoted."""
    if isinstance(node, dict):
        return [problem for key, value in node.items() for problem in _dates_and_times(value, (*loc, key))]
    if isinstance(node, list):
        return [problem for index, item in enumerate(node) for problem in _dates_and_times(item, (*loc, index))]
    if isinstance(node, date | time):
        return [ConfigProblem(_dotted(loc), f"the TOML date/time {node}", f'write it in quotes: "{node}"')]
    return []


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
            problems.append(_unknown_field(loc, _shorten(_as_written(item.get("input")))))
            continue
        message = _type_rule(item["type"], loc, item.get("input")) or item["msg"].removeprefix("Value error, ")
        if item["type"] == "value_error" and isinstance(item.get("input"), dict):
            problems.append(ConfigProblem(where or "(top level)", "", message))
            continue
        found = "nothing" if item["type"] == "missing" else _shorten(_as_written(item.get("input")))
        hint = _doc_at(loc)
        allowed = f"{message} ({hint})" if hint and hint not in message else message
        problems.append(ConfigProblem(where or "(top level)", found, allowed))
    return problems


def _type_rule(kind: str, loc: tuple[int | str, ...], found: Any) -> str:
    """The words for a value of the wrong type, with the line to write instead where one can be guessed.

    Types are strict: `unit = "11"`, `unit = 11.0` and `unit = true` are each refused (lax coercion would turn
    `true` into unit 1, which the installer never meant), and the message says how to write the value."""
    key = str(loc[-1]) if loc else "value"
    if kind == "missing":
        return "must be given"
    if kind == "literal_error":
        allowed = str(_literal_values(loc))
        unquoted = f"; without quotes: {key} = {found}" if isinstance(found, str) and found in allowed else ""
        return "must be " + allowed + unquoted
    if kind == "int_type":
        if isinstance(found, bool):
            return "must be a whole number, not true or false"
        if isinstance(found, float) and found.is_integer():
            return f"must be a whole number, without a decimal point: {key} = {int(found)}"
        if isinstance(found, float):
            return "must be a whole number, not a fraction"
        if isinstance(found, str) and found.strip().lstrip("-").isdigit():
            return f"must be a number, without quotes: {key} = {int(found)}"
        return f"must be a whole number, without quotes (e.g. {key} = 1)"
    if kind == "float_type":
        if isinstance(found, str) and _is_number(found):
            return f"must be a number, without quotes: {key} = {found.strip()}"
        if isinstance(found, str):
            return "must be a number, without quotes"
        return "must be a number, not true or false"
    if kind == "bool_type":
        return f"must be true or false, without quotes: {key} = true"
    if kind == "string_type":
        return (
            f'must be text in quotes, e.g. {key} = "{found}"'
            if not isinstance(found, dict | list)
            else ("must be text in quotes, not a table or a list")
        )
    return ""


def _as_written(value: Any) -> str:
    """A value as the TOML file has it: `true`, not Python's `True`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _literal_values(loc: tuple[int | str, ...]) -> str:
    """The values a Literal setting takes, as the file writes them: `'N', 'E' or 'O'`, `1200, 2400 ...`."""
    names = [i for i, part in enumerate(loc) if isinstance(part, str) and part not in _LINE_KINDS]
    parent = _class_at(loc[: names[-1]]) if names else None
    hints = typing.get_type_hints(parent) if parent is not None else {}
    values = [_as_written(value) for arg in (hints.get(str(loc[names[-1]])),) if names for value in _literals(arg)]
    return ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else "".join(values)


def _literals(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [value for arg in typing.get_args(annotation) for value in _literals(arg)]


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


Table = dict[str, Any]


def _tables(node: Any, key: str) -> list[tuple[int, Table]]:
    """The entries of an array of tables (`[[lines]]`), by index; entries that are not tables are the schema's
    to report."""
    items = node.get(key) if isinstance(node, dict) else None
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)] if isinstance(items, list) else []


def _text(table: Any, key: str) -> str | None:
    value = table.get(key) if isinstance(table, dict) else None
    return value if isinstance(value, str) else None


def _whole(table: Table, key: str) -> int | None:
    value = table.get(key)
    return value if type(value) is int else None


class _Names:
    """Names collected from the document, with each one's path, for the uniqueness and reference checks."""

    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []

    def once(self, what: str, items: Sequence[tuple[str, object]]) -> None:
        seen: set[object] = set()
        for path, value in items:
            if value is None:
                continue
            if value in seen:
                self.problems.append(
                    ConfigProblem(path, repr(value), f"each {what} must be unique; this one is repeated")
                )
            seen.add(value)

    def exists(self, path: str, value: str | None, known: set[str], rule: str) -> None:
        if value is not None and value not in known:
            names = ", ".join(sorted(known)) or "none"
            self.problems.append(ConfigProblem(path, repr(value), f"{rule}; known: {names}"))


def cross_check(document: Table) -> list[ConfigProblem]:
    """Problems that no single field shows: repeated names and references to things that do not exist.

    Read from the document as written (whatever its other mistakes), so that they are reported together with
    the schema's; a value of the wrong type is the schema's to report and is left out here (`unit = true` is
    not a second unit 1)."""
    names = _Names()
    lines = _tables(document, "lines")
    names.once("line name", [(f"lines[{i}].name", _text(line, "name")) for i, line in lines])
    placed = [(line, f"lines[{i}].devices[{j}]", device) for i, line in lines for j, device in _tables(line, "devices")]
    names.once("device name", [(f"{path}.name", _text(device, "name")) for _, path, device in placed])
    for _, line in lines:
        if line.get("kind") in ("rtu", "tcp"):
            units = [(f"{path}.unit", _whole(d, "unit")) for at, path, d in placed if at is line]
            names.once(f"unit on line {line.get('name')!r}", units)
    modbus = {name for line, _, d in placed if line.get("kind") in ("rtu", "tcp") and (name := _text(d, "name"))}
    gauges = {name for line, _, d in placed if line.get("kind") in ("tls", "tls_tcp") and (name := _text(d, "name"))}
    on_lines = "must name a Modbus device under [[lines]]"
    dispensers = _tables(document, "dispensers")
    names.once("dispenser id", [(f"dispensers[{i}].id", _text(d, "id")) for i, d in dispensers])
    nozzles = [(f"dispensers[{i}].nozzles[{j}]", n) for i, d in dispensers for j, n in _tables(d, "nozzles")]
    names.once("nozzle id", [(f"{path}.id", _text(n, "id")) for path, n in nozzles])
    pairs = [(f"{p}.controller_nozzle", _pair(n, "controller", "controller_nozzle")) for p, n in nozzles]
    names.once("controller nozzle", pairs)
    taps = []
    for path, nozzle in nozzles:
        names.exists(f"{path}.controller", _text(nozzle, "controller"), modbus, on_lines)
        for what in ("pulse", "vapour"):
            tap = nozzle.get(what)
            if isinstance(tap, dict):
                names.exists(f"{path}.{what}.device", _text(tap, "device"), modbus, on_lines)
                taps.append((f"{path}.{what}.channel", _pair(tap, "device", "channel")))
    names.once("pulse-counter channel", taps)
    for i, verification in _tables(document, "verifications"):
        names.exists(
            f"verifications[{i}].device",
            _text(verification, "device"),
            modbus | gauges,
            "must name a device under [[lines]]",
        )
    _tank_references(document, names, nozzles, modbus, gauges)
    return names.problems + _empty_station(document)


def _pair(table: Table, name: str, number: str) -> str | None:
    """`device#channel`, when both are of the right type."""
    device, index = _text(table, name), _whole(table, number)
    return None if device is None or index is None else f"{device}#{index}"


def _tank_references(
    document: Table, names: _Names, nozzles: list[tuple[str, Table]], modbus: set[str], gauges: set[str]
) -> None:
    """Tanks name a gauge (and their number on it) or a Modbus probe, each measured once. A nozzle's tank must
    exist, with or without any [[tanks]]; and once tanks are configured, every nozzle draws on one of them, or
    its sales could not be booked against a tank."""
    tanks = _tables(document, "tanks")
    names.once("tank id", [(f"tanks[{i}].id", _text(t, "id")) for i, t in tanks])
    gauge_taps = [(i, t["gauge"]) for i, t in tanks if isinstance(t.get("gauge"), dict)]
    names.once("gauge tank", [(f"tanks[{i}].gauge.tank", _pair(g, "device", "tank")) for i, g in gauge_taps])
    names.once("level probe", [(f"tanks[{i}].probe", _text(t, "probe")) for i, t in tanks])
    for i, gauge in gauge_taps:
        names.exists(
            f"tanks[{i}].gauge.device",
            _text(gauge, "device"),
            gauges,
            "must name a tank gauge on a 'tls' or 'tls_tcp' line",
        )
    for i, tank in tanks:
        names.exists(f"tanks[{i}].probe", _text(tank, "probe"), modbus, "must name a Modbus device under [[lines]]")
    ids = {tank_id for _, t in tanks if (tank_id := _text(t, "id"))}
    for path, nozzle in nozzles:
        tank = nozzle.get("tank", "")
        if not isinstance(tank, str) or (tank == "" and not ids):
            continue
        if not ids:
            rule = "must name a tank under [[tanks]], and there are none: add the [[tanks]], or leave tank out"
        else:
            rule = f"must name a tank under [[tanks]]: {', '.join(sorted(ids))}"
        if tank not in ids:
            names.problems.append(ConfigProblem(f"{path}.tank", repr(tank), rule))


def _empty_station(document: Table) -> list[ConfigProblem]:
    """A station with no dispensers and no tanks would run, record heartbeats and look well while watching
    nothing: refused unless the installer says so."""
    station = document.get("station")
    if _tables(document, "dispensers") or _tables(document, "tanks"):
        return []
    if isinstance(station, dict) and station.get("allow_empty") is True:
        return []
    return [
        ConfigProblem(
            "station",
            "no [[dispensers]] and no [[tanks]]",
            "a station with nothing to watch records nothing: add the forecourt (station-agent scan finds the "
            "devices), or set allow_empty = true under [station] for a box that is still being set up",
        )
    ]
