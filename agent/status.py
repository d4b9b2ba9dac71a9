"""The agent's status in one snapshot: what `station-agent status`, the LED and the demo read.

Each long-lived part keeps its own frozen status; this module puts them together and says, in plain words,
what needs attention. The snapshot is written to a file on tmpfs (`/run`), atomically, about once a second:
readers never see half a file, and the flash card never sees the writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from agent.contract.records import format_ts
from agent.field.poller import LineStatus
from agent.health import Health, Problem
from agent.ledger.outbox import OutboxError, OutboxReader
from agent.ledger.recorder import RecorderStatus
from agent.station_view import ActiveAlarm, ClockStep, LastSale, NozzleNow, TankLevel
from agent.uplink.hj212_status import Hj212Status
from agent.uplink.uplink_status import UplinkStatus


@dataclass(frozen=True, slots=True)
class Backlog:
    """Records made but not yet acknowledged: what the box holds for the platform while it is away."""

    records: int
    oldest_ts: str | None
    oldest_age_s: int | None


@dataclass(frozen=True, slots=True)
class DiskStatus:
    """The file system the outbox lives on."""

    path: str
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """The box's time in the station's zone, for staff to hold against a clock they trust."""

    zone: str
    local: str
    last_step: ClockStep | None


@dataclass(frozen=True, slots=True)
class AgentStatus:
    ts: str
    station: str
    version: str
    uptime_s: int
    health: Health
    problems: tuple[Problem, ...]
    """Every cause that keeps the box from `ok`, worst first (agent/health.py)."""
    recorder: RecorderStatus
    uplink: UplinkStatus
    lines: tuple[LineStatus, ...]
    backlog: Backlog
    alarms: tuple[ActiveAlarm, ...]
    last_sales: tuple[LastSale, ...]
    disk: DiskStatus | None
    clock: ClockStatus
    ecology: Hj212Status | None
    """The HJ 212 uplink to an ecology platform, where one is configured."""
    locale: str = "en"
    """The language staff read at this station (`[station] locale`): what `status` speaks unless told."""
    tanks: tuple[TankLevel, ...] = ()
    """Every configured tank, with its latest level where this run has recorded one."""
    nozzles: tuple[NozzleNow, ...] = ()
    """Every configured nozzle's phase now."""


def backlog(recorder: RecorderStatus, outbox: OutboxReader, now_ms: int) -> Backlog:
    """The age comes from the first unacknowledged record; unknown (None) if the outbox cannot say."""
    waiting = max(0, recorder.head_seq - recorder.acked_upto)
    try:
        oldest_ts_ms = outbox.ts_of(recorder.acked_upto + 1) if waiting else None
    except OutboxError:
        oldest_ts_ms = None
    if oldest_ts_ms is None:
        return Backlog(waiting, None, None)
    return Backlog(waiting, format_ts(oldest_ts_ms), max(0, (now_ms - oldest_ts_ms) // 1000))


def disk_of(path: Path) -> DiskStatus | None:
    """None when the file system cannot be asked: a status must come out even then. The sizes as
    `shutil.disk_usage` gives them (free: what an unprivileged process may still use), from `statvfs` itself."""
    try:
        usage = os.statvfs(path)
    except OSError:
        return None
    return DiskStatus(str(path), usage.f_bavail * usage.f_frsize, usage.f_blocks * usage.f_frsize)


def clock_at(now_ms: int, zone: ZoneInfo, last_step: ClockStep | None) -> ClockStatus:
    local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone)
    return ClockStatus(str(zone), local.strftime("%Y-%m-%d %H:%M:%S"), last_step)


def status_json(status: AgentStatus) -> bytes:
    """The same document as `json.dumps(dataclasses.asdict(status))`, made once a second: without `asdict`'s
    deep copy of every value, which cost more than the rest of the snapshot (the values are immutable), and with
    the JSON encoder itself walking the tuples and values, so that only a dataclass costs a Python call."""
    return json.dumps(status, separators=(",", ":"), default=_fields_of).encode()


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
"""Each dataclass's field names, read from `dataclasses.fields` once."""


def _fields_of(value: Any) -> dict[str, Any]:
    """A dataclass as the dict of its fields, one level (the encoder comes back for the dataclasses inside)."""
    kind = type(value)
    names = _FIELD_NAMES.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(value):
            raise TypeError(f"a {kind.__name__} has no place in the status")
        names = _FIELD_NAMES[kind] = tuple(field.name for field in dataclasses.fields(value))
    return {name: getattr(value, name) for name in names}


_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
"""A new file only: never one already at the name, nor through a link planted there (O_EXCL follows none)."""


def write_status(path: Path, document: bytes) -> None:
    """`document`: the snapshot as `status_json` wrote it. Once a second, so in plain system calls; the directory
    is made only when it is missing (a tmpfs emptied under the agent). Whatever lies at the temporary's name (a
    write a full disk cut short, or a link to another file) is removed rather than written into."""
    temporary = f"{path}.tmp"
    try:
        descriptor = os.open(temporary, _WRITE_FLAGS, 0o666)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temporary, _WRITE_FLAGS, 0o666)
    except FileExistsError:
        os.unlink(temporary)
        descriptor = os.open(temporary, _WRITE_FLAGS, 0o666)
    try:
        written = os.write(descriptor, document)
        while written < len(document):
            written += os.write(descriptor, document[written:])
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


def no_status_json(health: Literal["stopped", "unknown"], kind: str, subject: str, reason: str) -> bytes:
    """What `status --json` prints when no snapshot can be had (`agent_not_running`, `status_unreadable`): the
    same `health` and `problems` keys, so a script reads one shape whatever happened."""
    problem = Problem(kind, "fault", subject, None, kind, detail=reason)
    return json.dumps({"health": health, "problems": [dataclasses.asdict(problem)]}, separators=(",", ":")).encode()


class StatusFormatError(ValueError):
    """A status document that is not the shape this version writes."""


def read_status(document: bytes) -> AgentStatus:
    """The inverse of `status_json`, for `station-agent status`: typed again, so that rendering it cannot
    misspell a key. Keys this version does not know are ignored (a newer agent may say more); keys with a
    default may be missing (an older agent said less)."""
    try:
        built: AgentStatus = _build(AgentStatus, json.loads(document))
    except (ValueError, KeyError, TypeError) as exc:
        raise StatusFormatError(f"not a status this version understands: {exc!r}") from exc
    return built


def _build(kind: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = typing.get_type_hints(kind)
        return kind(
            **{
                f.name: _build(hints[f.name], value[f.name])
                for f in dataclasses.fields(kind)
                if f.name in value or f.default is dataclasses.MISSING
            }
        )
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        (present,) = (arg for arg in typing.get_args(kind) if arg is not type(None))
        return _build(present, value)
    if origin is tuple:
        return tuple(_build(typing.get_args(kind)[0], item) for item in value)
    if kind in (int, str, bool) and not isinstance(value, kind):
        raise TypeError(f"{value!r} is not a {kind.__name__}")
    return value
