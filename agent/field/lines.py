"""From the config's lines to running pollers: a Modbus master or a tank-gauge client per line, and for each
device on it the call that polls it once."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from zoneinfo import ZoneInfo

from agent.clock import Clock
from agent.config import LineSection, RtuLineSection, TcpLineSection, TlsLineSection
from agent.field.events import FieldEvent
from agent.field.poller import LinePoller, Link, PolledDevice
from drivers.device import DeviceDriver
from drivers.modbus.master import SerialRtuMaster, TcpMaster
from drivers.readings import TankGaugeReading
from drivers.veeder_root.client import TlsSerialClient, TlsTcpClient


def build_poller(
    line: LineSection,
    drivers: dict[str, DeviceDriver],
    clock: Clock,
    sink: Callable[[FieldEvent], None],
    *,
    health_every_s: float,
    zone: ZoneInfo,
) -> LinePoller:
    """`zone` is the station's: a tank gauge's clock shows local time."""
    link: Link
    devices: list[PolledDevice]
    timeout_s = line.timeout_ms / 1000
    if isinstance(line, RtuLineSection | TcpLineSection):
        master = (
            SerialRtuMaster(line.port, line.baudrate, line.parity, line.stopbits, timeout_s=timeout_s)
            if isinstance(line, RtuLineSection)
            else TcpMaster(line.host, line.port, timeout_s=timeout_s)
        )
        link = master
        devices = [
            PolledDevice(
                device.name,
                device.unit,
                device.poll_interval_ms / 1000,
                partial(drivers[device.name].read, master, device.unit),
            )
            for device in line.devices
        ]
    else:
        (gauge,) = line.devices
        client = (
            TlsSerialClient(
                str(line.port),
                line.baudrate,
                line.parity,
                timeout_s,
                gauge.security_code,
                stopbits=line.stopbits,
                zone=zone,
            )
            if isinstance(line, TlsLineSection)
            else TlsTcpClient(line.host, line.port, timeout_s, gauge.security_code, zone=zone)
        )
        link = client
        poll = GaugePoll(client, clock, gauge.deliveries_every_s)
        devices = [PolledDevice(gauge.name, None, gauge.poll_interval_ms / 1000, poll)]
    return LinePoller(line.name, devices, link, clock, sink, health_every_s=health_every_s)


class GaugePoll:
    """One poll of a tank gauge: inventory and alarms every time, the delivery history only now and then.

    The history (i202) is the gauge's longest answer, ten deliveries per tank: seconds on a 9600-baud line.
    It is read at the first poll, every `deliveries_every_s`, and at the poll after a tank's delivery flag
    went down, which is when the gauge has just logged one. The agent holds a tank's books open while a
    delivery is pending, so a report that comes a little later is booked all the same."""

    def __init__(self, client: TlsSerialClient | TlsTcpClient, clock: Clock, deliveries_every_s: int) -> None:
        self._client = client
        self._clock = clock
        self._every_s = deliveries_every_s
        self._next_history_s: float | None = None
        self._delivering: frozenset[int] = frozenset()

    def __call__(self) -> TankGaugeReading:
        now = self._clock.monotonic()
        due = self._next_history_s is None or now >= self._next_history_s
        reading = self._client.read_gauge(deliveries=due)
        delivering = frozenset(tank.tank for tank in reading.tanks if tank.delivery_in_progress)
        ended = bool(self._delivering - delivering)
        self._delivering = delivering
        if due:
            self._next_history_s = now + self._every_s
        elif ended:
            self._next_history_s = now  # the next poll reads it
        return reading
