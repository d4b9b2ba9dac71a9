"""The short guided dialogue of `provision`: the few answers a config cannot do without, asked on a terminal.

Each answer is checked at once by the same rules the config validation applies to its field (they live in
the field's annotation, in its section's settings module), so an installer retypes one answer instead of
meeting every problem at the end. Questions go through `ask`: the terminal for `provision`, a script in the tests.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.station.settings import StationId, TimeZone
from agent.uplink.settings import Broker
from drivers.schema import Rule

ATTEMPTS = 3
"""Wrong answers to one question before the dialogue gives up (a script feeding it rubbish must end)."""


class DialogueError(Exception):
    """The installer did not give a usable answer."""


@dataclass(frozen=True, slots=True)
class Answers:
    station_id: str
    name: str
    timezone: str
    broker: str


def _rules(annotated: object) -> list[Rule]:
    return [rule for rule in typing.get_args(annotated)[1:] if isinstance(rule, Rule)]


def _first_broken(rules: list[Rule], answer: str) -> str | None:
    """What the first rule the answer breaks allows; the rules are checked in order, as validation does, so a
    later rule may rely on an earlier one (a port is read after the HOST:PORT pattern held)."""
    for rule in rules:
        if not rule.holds(answer):
            return rule.allows
    return None


def _question(
    ask: Callable[[str], str], say: Callable[[str], None], prompt: str, annotated: object, default: str
) -> str:
    shown = f"{prompt} [{default}]: " if default else f"{prompt}: "
    for _ in range(ATTEMPTS):
        answer = ask(shown).strip() or default
        broken = _first_broken(_rules(annotated), answer) if answer else "given"
        if broken is None:
            return answer
        say(f"  must be {broken}")
    raise DialogueError(f"no usable answer to {prompt!r} after {ATTEMPTS} tries")


def system_timezone(localtime: Path = Path("/etc/localtime")) -> str:
    """The zone this box is set to (the target of /etc/localtime), or UTC when that says nothing."""
    try:
        target = str(localtime.resolve(strict=True))
    except OSError:
        return "UTC"
    _, marker, zone = target.partition("/zoneinfo/")
    return zone if marker and zone else "UTC"


def complete(given: Answers, ask: Callable[[str], str], say: Callable[[str], None], default_timezone: str) -> Answers:
    """Ask for what `given` lacks (empty strings); what was given on the command line is not asked again."""
    station_id = given.station_id or _question(ask, say, "Station id (as the platform registered it)", StationId, "")
    name = given.name or _question(ask, say, "Station name", str, station_id)
    timezone = given.timezone or _question(ask, say, "Time zone", TimeZone, default_timezone)
    broker = given.broker or _question(ask, say, "Platform MQTT broker HOST:PORT", Broker, "")
    return Answers(station_id, name, timezone, broker)
