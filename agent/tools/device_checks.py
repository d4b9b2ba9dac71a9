"""The self-test's check of the field devices: one read of each, with its line's own settings and timeout.

A port that cannot be opened fails its line once rather than each device on it; a port another process holds
(the running agent locks its ports) is a warning that the devices were not checked, not a broken line.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Iterator
from functools import partial
from gettext import ngettext

from agent.tools.checks import Check, Status, fail, ok
from agent.wiring import Setup, drivers_for
from drivers.device import DeviceDriver
from drivers.errors import FieldError, FieldLinkError, FieldRefused, FieldTimeout
from drivers.line_settings import LineSection, RtuLineSection, TcpLineSection, TlsLineSection
from drivers.modbus.master import SerialRtuMaster, TcpMaster
from drivers.veeder_root.client import TlsSerialClient, TlsTcpClient
from drivers.veeder_root.reports import INVENTORY, decode_inventory


def _where(line: LineSection) -> str:
    return str(line.port) if isinstance(line, RtuLineSection | TlsLineSection) else f"{line.host}:{line.port}"


def _device_fix(line: LineSection, error: Exception) -> str:
    if isinstance(error, FieldTimeout):
        scan = f"; station-agent scan --port {line.port} finds what answers" if isinstance(line, RtuLineSection) else ""
        return f"check its power and wiring (A/B), its unit id, and the line's baud rate and parity{scan}"
    if isinstance(error, FieldRefused):
        return "the device refuses what its profile maps: check the device's profile (or security code) in the config"
    return "a noisy or misconfigured line: check termination, parity and baud rate, and for a second master"


def _line_down(line: LineSection, error: FieldLinkError) -> Check:
    """A port that cannot be opened fails the line once, rather than each of its devices."""
    name, where = f"line {line.name}", _where(line)
    if getattr(error.__cause__, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK):
        return Check(
            name,
            Status.WARN,
            f"{where} is held by another process (the running agent?): its devices were not checked",
            "stop the agent (systemctl stop station-agent) for a full self-test, or read station-agent status",
        )
    fix = (
        "correct the line's host and port, or check the network to it"
        if isinstance(line, TcpLineSection)
        else f"plug the adapter in, or correct the line's port ({where}); ls /dev/serial/by-id lists the adapters"
    )
    return fail(name, str(error), fix)


def _read_modbus(driver: DeviceDriver, master: SerialRtuMaster | TcpMaster, unit: int) -> str:
    driver.read(master, unit)
    return f"unit {unit} ({driver.profile.name})"


def _read_gauge(client: TlsSerialClient | TlsTcpClient) -> str:
    tanks = len(decode_inventory(client.request(INVENTORY)).tanks)
    return "tank gauge (" + ngettext("{n} tank", "{n} tanks", tanks).format(n=tanks) + ")"


def _line_reads(
    line: LineSection, drivers: dict[str, DeviceDriver]
) -> tuple[list[tuple[str, Callable[[], str]]], Callable[[], None]]:
    """A read per device of the line, each naming what answered, and how to release the line."""
    timeout_s = line.timeout_ms / 1000
    if isinstance(line, RtuLineSection | TcpLineSection):
        master = (
            SerialRtuMaster(line.port, line.baudrate, line.parity, line.stopbits, timeout_s)
            if isinstance(line, RtuLineSection)
            else TcpMaster(line.host, line.port, timeout_s)
        )
        reads: list[tuple[str, Callable[[], str]]] = [
            (device.name, partial(_read_modbus, drivers[device.name], master, device.unit)) for device in line.devices
        ]
        return reads, master.close
    (gauge,) = line.devices
    client = (
        TlsSerialClient(line.port, line.baudrate, line.parity, timeout_s, gauge.security_code)
        if isinstance(line, TlsLineSection)
        else TlsTcpClient(line.host, line.port, timeout_s, gauge.security_code)
    )
    return [(gauge.name, partial(_read_gauge, client))], client.close


def check_devices(setup: Setup) -> Iterator[Check]:
    """One read of every configured device, with its line's own settings and timeout."""
    drivers = drivers_for(setup)
    for line in setup.loaded.config.lines:
        reads, release = _line_reads(line, drivers)
        try:
            for device, read in reads:
                started = time.monotonic()
                try:
                    what = read()
                except FieldLinkError as exc:
                    yield _line_down(line, exc)
                    break
                except (FieldError, ValueError, TypeError) as exc:
                    yield fail(f"device {device}", f"line {line.name}: {exc}", _device_fix(line, exc))
                else:
                    took_ms = 1000 * (time.monotonic() - started)
                    yield ok(f"device {device}", f"{what} answered in {took_ms:.0f} ms")
        finally:
            release()
