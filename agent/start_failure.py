"""Why the agent last failed to start, in one short line that station staff may read.

The journal says why in full, but only root, `adm` and `systemd-journal` may read it; staff in the
`station-agent` group may not. So a start that fails also leaves `last-start-failure` in the agent's runtime
directory (systemd's `$RUNTIME_DIRECTORY`, /run/station-agent, group-readable and kept after the unit stops by
`RuntimeDirectoryPreserve=yes`; outside systemd, the directory of the status socket), and `station-agent status`
shows it while the agent is not running. A start that gets past its checks removes it.

The line is `<local time>\\t<kind>\\t<detail>`: `kind` is one of KINDS, which status words for people; `detail` is
what an installer needs to find the fault (for a config, the names of the wrong fields only: the values found
may be secrets, such as an MQTT password, and are never written here).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.config import ConfigError
from agent.locale import LANGUAGES, language_for_zone
from agent.station.settings import StationSection

NOTE_NAME = "last-start-failure"
MAX_BYTES = 512
DETAIL_CHARS = 160
Kind = Literal["config", "setup", "outbox", "fault", "startup"]
KINDS: tuple[Kind, ...] = ("config", "setup", "outbox", "fault", "startup")
MAX_CONFIG_BYTES = 1024**2
DEFAULT_ZONE = next(field.default for field in fields(StationSection) if field.name == "timezone")


@dataclass(frozen=True, slots=True)
class StartFailure:
    when: str
    """The box's local time, `YYYY-MM-DD HH:MM:SS +HHMM`."""
    kind: Kind
    detail: str


def note_directory(status_socket: Path | None) -> Path | None:
    """Where the note goes: systemd's runtime directory for the unit, else the status socket's directory."""
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return Path(runtime)
    return None if status_socket is None else status_socket.parent


def config_detail(error: ConfigError) -> str:
    """The wrong fields of a config, by name only (never the value found, which may be a secret)."""
    return ", ".join(dict.fromkeys(problem.path for problem in error.problems))


def first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else ""


@dataclass(frozen=True, slots=True)
class StationWords:
    """A station's language and time zone, as far as its config file says them (None where it does not)."""

    language: str | None
    zone: ZoneInfo | None


def station_words(config: Path) -> StationWords:
    """`[station] locale` and `timezone` read leniently from a config that may fail its validation: the staff of
    a station whose config is broken are still told in their language and their time. A value that is not one
    of LANGUAGES or a known zone counts as unsaid."""
    try:
        with config.open("rb") as handle:
            document = tomllib.loads(handle.read(MAX_CONFIG_BYTES).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return StationWords(None, None)
    station = document.get("station")
    station = station if isinstance(station, dict) else {}
    zone = _zone(station.get("timezone", DEFAULT_ZONE))
    locale = station.get("locale")
    if locale in LANGUAGES:
        return StationWords(locale, zone)
    return StationWords(None if zone is None else language_for_zone(zone.key), zone)


def _zone(name: object) -> ZoneInfo | None:
    if not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return None


def record(
    directory: Path | None, kind: Kind, detail: str, zone: ZoneInfo | None = None, now: datetime | None = None
) -> None:
    """Leave the note, its time in the station's `zone` (the box's own when unknown); a directory that cannot take
    it (not there, read-only) is let be: the journal has it."""
    if directory is None:
        return
    moment = (now or datetime.now(UTC)).astimezone(zone)
    printable = "".join(char if char.isprintable() else " " for char in detail)[:DETAIL_CHARS]
    line = f"{moment:%Y-%m-%d %H:%M:%S %z}\t{kind}\t{printable}\n"
    temporary = directory / f".{NOTE_NAME}.tmp"
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
        try:
            os.write(descriptor, line.encode()[:MAX_BYTES])
        finally:
            os.close(descriptor)
        os.replace(temporary, directory / NOTE_NAME)
    except OSError:
        return


def clear(directory: Path | None) -> None:
    if directory is not None:
        try:
            (directory / NOTE_NAME).unlink(missing_ok=True)
        except OSError:
            return


def read(directory: Path) -> StartFailure | None:
    """The note, or None if there is none or it is not one this module wrote (bounded read, no link followed)."""
    try:
        descriptor = os.open(directory / NOTE_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        data = os.read(descriptor, MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(descriptor)
    when, kind, detail = [*data[:MAX_BYTES].decode("utf-8", "replace").strip().split("\t"), "", "", ""][:3]
    for known in KINDS:
        if kind == known:
            return StartFailure(when, known, detail)
    return None
