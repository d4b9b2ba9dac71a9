"""The station config that `provision` writes, as a plan of typed values and the TOML text made from it.

The text is written by hand rather than by a TOML library: the agent may depend on no writer, and a
provisioned file is read and edited by people, so it carries the same short comments as the example config
and only the settings an installer decided; everything else keeps its documented default. Strings are
written as JSON strings, whose escapes are a subset of TOML's basic strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from agent.tools.line_settings import LineSetting


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """A Modbus device on the RS-485 line: its name in records, its slave address and its profile."""

    name: str
    unit: int
    profile: str


@dataclass(frozen=True, slots=True)
class SerialPlan:
    """An RS-485 (Modbus RTU) or gauge (Veeder-Root TLS) port and its settings."""

    port: Path
    setting: LineSetting


@dataclass(frozen=True, slots=True)
class TcpPlan:
    """A Modbus TCP endpoint (a gateway in front of RS-485 devices, or a device with Ethernet)."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ModbusLinePlan:
    """A Modbus line and the devices on it: an RS-485 port (`SerialPlan`) or a TCP endpoint (`TcpPlan`)."""

    where: SerialPlan | TcpPlan
    devices: tuple[DevicePlan, ...] = ()


@dataclass(frozen=True, slots=True)
class TlsPlan:
    """The files of mutual TLS to the broker; cert_file may not exist yet (the platform signs the CSR)."""

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class StationPlan:
    station_id: str
    name: str
    timezone: str
    broker: str
    device_key: Path
    outbox: Path
    status: Path
    status_socket: Path
    tls: TlsPlan | None
    lines: tuple[ModbusLinePlan, ...] = ()
    gauge: SerialPlan | None = None
    suite: str = "ed25519"
    """The signing suite of the device key: 'ed25519' or 'sm2' (written to the config only when not the default)."""


def _s(value: str | Path) -> str:
    return json.dumps(str(value))


def render(plan: StationPlan) -> str:
    """The config file's text for `plan`."""
    out = [
        "# station-agent config, written by `station-agent provision`. Check it after editing with",
        "#     station-agent check-config FILE",
        "# Every setting and its default is documented in config/station.example.toml.",
        "",
        "[station]",
        f"id = {_s(plan.station_id)}",
        f"name = {_s(plan.name)}",
        f"timezone = {_s(plan.timezone)}",
        "allow_empty = true                    # no forecourt yet: remove it when adding [[dispensers]]/[[tanks]]",
        "",
        "[keys]",
        f"device_key = {_s(plan.device_key)}   # signs every record; never leaves this box",
        *(
            [f"suite = {_s(plan.suite)}   # SM2 with SM3 (GB/T 32918); the platform verifies with the default ID"]
            if plan.suite != "ed25519"
            else []
        ),
        "",
        "[outbox]",
        f"path = {_s(plan.outbox)}",
        "",
        "[uplink]",
        f"broker = {_s(plan.broker)}",
        'ack_mode = "platform"                 # done when the platform acks {"upto": N}',
    ]
    if plan.tls is not None:
        out += [
            "",
            "[uplink.tls]",
            f"ca_file = {_s(plan.tls.ca_file)}     # the CA that signed the broker's certificate",
            f"cert_file = {_s(plan.tls.cert_file)}   # the platform's answer to the CSR",
            f"key_file = {_s(plan.tls.key_file)}",
        ]
    out += [
        "",
        "[status]",
        f"path = {_s(plan.status)}",
        f"socket = {_s(plan.status_socket)}   # where station-agent status asks",
    ]
    for name, line in _named(plan.lines):
        if isinstance(line.where, SerialPlan):
            out += ["", *_serial_line("rtu", name, line.where)]
        else:
            out += ["", "[[lines]]", 'kind = "tcp"', f"name = {_s(name)}", f"host = {_s(line.where.host)}"]
            out.append(f"port = {line.where.port}")
        for device in line.devices:
            out += [
                "",
                "[[lines.devices]]",
                f"name = {_s(device.name)}",
                f"unit = {device.unit}",
                f"profile = {_s(device.profile)}",
            ]
    if plan.gauge is not None:
        out += ["", *_serial_line("tls", "gauge", plan.gauge), "", "[[lines.devices]]", 'name = "tg1"']
    out += [
        "",
        "# Next: the forecourt ([[dispensers]] and their nozzles) and the [[tanks]], as in the example config.",
    ]
    return "\n".join(out) + "\n"


def _named(lines: tuple[ModbusLinePlan, ...]) -> list[tuple[str, ModbusLinePlan]]:
    """rs485-1, rs485-2 ... and tcp-1, tcp-2 ..., numbered in the order given."""
    counts = {"rs485": 0, "tcp": 0}
    named = []
    for line in lines:
        kind = "rs485" if isinstance(line.where, SerialPlan) else "tcp"
        counts[kind] += 1
        named.append((f"{kind}-{counts[kind]}", line))
    return named


def _serial_line(kind: str, name: str, serial: SerialPlan) -> list[str]:
    return [
        "[[lines]]",
        f"kind = {_s(kind)}",
        f"name = {_s(name)}",
        f"port = {_s(serial.port)}",
        f"baudrate = {serial.setting.baudrate}",
        f"parity = {_s(serial.setting.parity)}",
    ]
