"""The `[[lines]]` sections: the field-bus lines and the devices on them, as a config names them.

Beside the drivers rather than in the agent's config module, because the Modbus and Veeder-Root links are made
from exactly these values (`agent.field.lines`, the installer's checks) and their limits (baud rates, parities,
timeouts) are the buses' own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from drivers.schema import Ge, Le, MaxLen, MinLen, Name, doc, settings


@settings
class DeviceSection:
    name: Name = doc("a short name for the device, used in records and status")
    unit: Annotated[int, Ge(1), Le(247)] = doc("the Modbus slave address, 1..247")
    profile: Annotated[str, MinLen(1)] = doc("the name of the device's profile in the profile directories")
    poll_interval_ms: Annotated[int, Ge(50), Le(3_600_000)] = doc("poll period in ms (50..3600000)", default=500)


@settings
class RtuLineSection:
    kind: Literal["rtu"] = doc("'rtu' for an RS-485 port")
    name: Name = doc("a short name for the line")
    port: Path = doc("the serial device, e.g. '/dev/ttyS1' or '/dev/serial/by-id/...'")
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = doc("the line's baud rate", default=9600)
    parity: Literal["N", "E", "O"] = doc("parity: N, E or O", default="N")
    stopbits: Literal[1, 2] = doc("stop bits: 1 or 2", default=1)
    timeout_ms: Annotated[int, Ge(10), Le(10_000)] = doc(
        "how long a device has to start its answer, in ms", default=300
    )
    devices: Annotated[tuple[DeviceSection, ...], MinLen(1)] = doc("the devices on this line")


@settings
class TcpLineSection:
    kind: Literal["tcp"] = doc("'tcp' for a Modbus TCP endpoint")
    name: Name = doc("a short name for the line")
    host: Annotated[str, MinLen(1)] = doc("the host of the Modbus TCP endpoint")
    port: Annotated[int, Ge(1), Le(65535)] = doc("the TCP port", default=502)
    timeout_ms: Annotated[int, Ge(10), Le(30_000)] = doc("how long a device has to answer, in ms", default=1000)
    devices: Annotated[tuple[DeviceSection, ...], MinLen(1)] = doc("the devices behind this endpoint")


@settings
class TankGaugeSection:
    """A tank gauge that speaks the Veeder-Root TLS serial protocol (most gauges in the field do)."""

    name: Name = doc("a short name for the gauge, used by [[tanks]] and in records")
    security_code: Annotated[str, MaxLen(6)] = doc("the gauge's security code, if one is set", default="")
    poll_interval_ms: Annotated[int, Ge(1000), Le(3_600_000)] = doc("poll period in ms", default=10_000)
    deliveries_every_s: Annotated[int, Ge(10), Le(86_400)] = doc(
        "how often to read the gauge's delivery history (i202, long on a slow line); also after a delivery ends",
        default=300,
    )


@settings
class TlsLineSection:
    kind: Literal["tls"] = doc("'tls' for a tank gauge on a serial port")
    name: Name = doc("a short name for the line")
    port: Path = doc("the serial device the gauge is on")
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = doc("the line's baud rate", default=9600)
    parity: Literal["N", "E", "O"] = doc("parity: N, E or O", default="N")
    stopbits: Literal[1, 2] = doc("stop bits: 1 or 2", default=1)
    timeout_ms: Annotated[int, Ge(100), Le(30_000)] = doc("how long the gauge has to answer, in ms", default=2000)
    devices: Annotated[tuple[TankGaugeSection, ...], MinLen(1), MaxLen(1)] = doc("the gauge on this port")


@settings
class TlsTcpLineSection:
    kind: Literal["tls_tcp"] = doc("'tls_tcp' for a tank gauge on the network")
    name: Name = doc("a short name for the line")
    host: Annotated[str, MinLen(1)] = doc("the gauge's host")
    port: Annotated[int, Ge(1), Le(65535)] = doc("the gauge's TCP port", default=10001)
    timeout_ms: Annotated[int, Ge(100), Le(30_000)] = doc("how long the gauge has to answer, in ms", default=2000)
    devices: Annotated[tuple[TankGaugeSection, ...], MinLen(1), MaxLen(1)] = doc("the gauge behind this endpoint")


LineSection = RtuLineSection | TcpLineSection | TlsLineSection | TlsTcpLineSection
