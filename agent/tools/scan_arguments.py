"""The flags of `station-agent scan`, apart from the tool itself: the command line is built for every command,
`run` included, which then never loads the scan's masters, gauge client and profile matching;
agent/tools/scan.py reads what they give."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.tools.line_settings import BAUD_RATES, PARITIES

SCANNED_BAUD_RATES = (9600, 19200, 38400, 115200)
"""The rates field devices ship with; the others the config allows are tried only when asked for."""
LOCAL_PROFILES = Path("/etc/station-agent/profiles")
_UNITS = re.compile(r"([0-9]{1,3})(?:-([0-9]{1,3}))?")


def parse_units(text: str) -> tuple[int, ...]:
    """'1-247', '1,11,21' or '1-5,11': unit ids 1..247."""
    units: set[int] = set()
    for part in text.split(","):
        match = _UNITS.fullmatch(part.strip())
        low = int(match[1]) if match else 0
        high = int(match[2]) if match and match[2] else low
        if not 1 <= low <= high <= 247:
            raise argparse.ArgumentTypeError(f"{part!r} is not a unit id or range within 1..247, e.g. 1-20")
        units.update(range(low, high + 1))
    return tuple(sorted(units))


def _list_of(kind: type, allowed: Sequence[Any]) -> Any:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            values = tuple(kind(part.strip().upper()) for part in text.split(","))
        except ValueError:
            values = ()
        if not values or any(value not in allowed for value in values):
            raise argparse.ArgumentTypeError(f"{text!r}: give a comma-separated list of {allowed}")
        return values

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=Path, help="the serial port, e.g. /dev/ttyUSB0 (stop the agent first)")
    where.add_argument("--tcp", metavar="HOST:PORT", help="a Modbus TCP endpoint instead")
    parser.add_argument(
        "--baud",
        type=_list_of(int, BAUD_RATES),
        default=SCANNED_BAUD_RATES,
        help="baud rates to try, e.g. 9600,19200 (default 9600,19200,38400,115200)",
    )
    parser.add_argument(
        "--parity", type=_list_of(str, PARITIES), default=PARITIES, help="parities to try (default N,E,O)"
    )
    parser.add_argument(
        "--units", type=parse_units, default=tuple(range(1, 248)), help="unit ids, e.g. 1-20 or 1,11,21"
    )
    parser.add_argument("--timeout-ms", type=int, default=100, help="wait for a slave's answer (default 100)")
    parser.add_argument("--gauge-timeout-ms", type=int, default=1000, help="wait for a gauge's (default 1000)")
    parser.add_argument(
        "--profile-dir", type=Path, action="append", default=[], help=f"profiles to match (before {LOCAL_PROFILES})"
    )
    parser.add_argument(
        "--progress-s", type=float, default=5.0, help="a progress line on stderr this often (default 5 s)"
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
