"""The flags of `station-agent provision`, apart from the tool itself: the command line is built for every
command, `run` included, which then never loads what provisioning needs (the TLS request's `cryptography`, the
config writer, the dialogue); agent/tools/provision.py reads what they give."""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.tools.line_settings import BAUD_RATES, PARITIES
from agent.tools.station_toml import DevicePlan

_DEVICE = re.compile(r"(?P<name>[^:]+):(?P<unit>[0-9]{1,3}):(?P<profile>[^:]+)")


def parse_device(text: str) -> DevicePlan:
    """NAME:UNIT:PROFILE, e.g. pc1:1:sim-pump-controller."""
    match = _DEVICE.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME:UNIT:PROFILE, e.g. pc1:1:sim-pump-controller")
    return DevicePlan(match["name"], int(match["unit"]), match["profile"])


@dataclass(slots=True)
class LineDraft:
    """A line while its flags are read: the flags after a --port or --tcp belong to it."""

    where: Path | str
    baud: int = 9600
    parity: str = "N"
    devices: list[DevicePlan] = dataclasses.field(default_factory=list)


class LineAction(argparse.Action):
    """Collects --port/--tcp and the --baud, --parity and --device that follow each into one list of lines."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any, flag: Any = None
    ) -> None:
        lines: list[LineDraft] = getattr(namespace, "lines", None) or []
        namespace.lines = lines
        if flag in ("--port", "--tcp"):
            lines.append(LineDraft(value))
            return
        if not lines:
            parser.error(f"{flag} belongs to a line: give --port DEV or --tcp HOST:PORT before it")
        line = lines[-1]
        if flag == "--device":
            line.devices.append(value)
        elif isinstance(line.where, str):
            parser.error(f"{flag} is for an RS-485 --port, not for --tcp {line.where}")
        elif flag == "--baud":
            line.baud = value
        else:
            line.parity = value


def add_arguments(parser: argparse.ArgumentParser, default_config: Path) -> None:
    parser.add_argument("--config", type=Path, default=default_config, help=f"what to write ({default_config})")
    parser.add_argument("--state-dir", type=Path, default=Path("/var/lib/station-agent"), help="keys and outbox")
    parser.add_argument("--run-dir", type=Path, default=Path("/run/station-agent"), help="the status snapshot")
    parser.add_argument("--station-id", default="", help="the id the platform registered")
    parser.add_argument("--name", default="", help="a human-readable station name")
    parser.add_argument("--timezone", default="", help="IANA zone, e.g. Asia/Shanghai (default: the box's)")
    parser.add_argument("--broker", default="", help="the platform's MQTT broker, HOST:PORT")
    parser.add_argument("--ca-file", type=Path, help="the CA of the broker's certificate (default CONFIG_DIR/tls/)")
    parser.add_argument("--no-tls", action="store_true", help="plain MQTT, no TLS key or CSR (private networks)")
    lines = parser.add_argument_group(
        "Modbus lines", "each --port or --tcp starts a line; the --baud, --parity and --device after it are its own"
    )
    lines.add_argument("--port", type=Path, action=LineAction, dest="lines", help="an RS-485 port; repeat")
    lines.add_argument("--tcp", metavar="HOST:PORT", action=LineAction, dest="lines", help="a Modbus TCP endpoint")
    lines.add_argument(
        "--baud", type=int, choices=BAUD_RATES, action=LineAction, dest="lines", help="the port's baud (9600)"
    )
    lines.add_argument("--parity", choices=PARITIES, action=LineAction, dest="lines", help="the port's parity (N)")
    lines.add_argument(
        "--device", type=parse_device, action=LineAction, dest="lines", help="NAME:UNIT:PROFILE on the line; repeat"
    )
    lines.add_argument(
        "--lines-file", type=Path, help="or: a TOML file of [[lines]] tables as in the config (rtu and tcp lines)"
    )
    parser.add_argument("--gauge-port", type=Path, help="the serial port of a Veeder-Root TLS tank gauge")
    parser.add_argument("--gauge-baud", type=int, choices=BAUD_RATES, default=9600, help="its baud rate")
    parser.add_argument("--gauge-parity", choices=PARITIES, default="N", help="its parity (default N)")
    parser.add_argument(
        "--suite", choices=("ed25519", "sm2"), default="ed25519", help="the device key's signing suite (ed25519)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing config (never the device key)")
    parser.add_argument(
        "--service-user", default="station-agent", help="run as root: give the keys and state to this user"
    )
    parser.add_argument("--json", action="store_true", help="print the commissioning sheet as JSON")
