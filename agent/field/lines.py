"""From the config's lines to running pollers: a Modbus master or a tank-gauge client per line, and for each
device on it the call that polls it once; a thread per serial line or tank gauge, and one for all Modbus TCP lines
(agent/field/tcp_lines.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol
from zoneinfo import ZoneInfo

from agent.clock import Clock
from agent.containment import Boundary
from agent.contract.records import RecordIntent
from agent.field.events import FieldEvent
from agent.field.poller import LinePoller, Link, PolledDevice
from agent.field.tcp_lines import TcpLinesPoller
from agent.pulse import Pulse
from drivers.device import DeviceDriver
from drivers.errors import DeviceValueFault
from drivers.line_settings import LineSection, RtuLineSection, TcpLineSection, TlsLineSection
from drivers.modbus.master import SerialRtuMaster, TcpMaster
from drivers.readings import TankGaugeReading
from drivers.veeder_root.client import TlsSerialClient, TlsTcpClient
from drivers.veeder_root.reports import ALARMS, DELIVERIES


class PollerThread(Protocol):
    """A thread that serves lines: a line's own (`LinePoller`) or the one of all Modbus TCP lines."""

    pulse: Pulse

    @property
    def name(self) -> str: ...

    def start(self) -> None: ...

    def ask_stop(self) -> None: ...

    def stop(self, timeout_s: float) -> bool: ...

    def alive(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Field:
    """The config's lines as pollers (each line's schedule, health and status, in the config's order) and the
    threads that serve them."""

    pollers: tuple[LinePoller, ...]
    threads: tuple[PollerThread, ...]


def build_field(
    lines: Sequence[LineSection],
    drivers: dict[str, DeviceDriver],
    clock: Clock,
    sink: Callable[[Sequence[FieldEvent]], None],
    *,
    health_every_s: float,
    zone: ZoneInfo,
    report: Callable[[RecordIntent], None],
) -> Field:
    """Every line's poller; the Modbus TCP lines together in one thread, each other line in its own. `zone` is the
    station's: a tank gauge's clock shows local time. `report` takes the `internal_error` records of each line's
    containment boundary (the recorder's submit)."""
    collected: list[FieldEvent] = []
    pollers: list[LinePoller] = []
    threads: list[PollerThread] = []
    tcp: list[tuple[LinePoller, TcpMaster]] = []
    for line in lines:
        link, devices = _link_and_devices(line, drivers, clock, zone)
        poller = LinePoller(
            line.name,
            devices,
            link,
            clock,
            collected.extend if isinstance(link, TcpMaster) else sink,
            boundary=Boundary(f"poller {line.name}", report, clock),
            health_every_s=health_every_s,
            answer_timeout_s=line.timeout_ms / 1000,
        )
        if isinstance(link, TcpMaster):
            tcp.append((poller, link))
        else:
            threads.append(poller)
        pollers.append(poller)
    if tcp:
        threads.append(TcpLinesPoller(tcp, clock, sink, collected))
    return Field(tuple(pollers), tuple(threads))


def _link_and_devices(
    line: LineSection, drivers: dict[str, DeviceDriver], clock: Clock, zone: ZoneInfo
) -> tuple[Link, list[PolledDevice]]:
    """The line's master or gauge client, and each device's poll: a Modbus TCP device's also as its reads, for the
    thread of all TCP lines; a serial line's and a gauge's read by waiting, in a thread of the line's own."""
    timeout_s = line.timeout_ms / 1000
    if isinstance(line, TcpLineSection):
        tcp_master = TcpMaster(line.host, line.port, timeout_s=timeout_s)
        return tcp_master, _modbus_devices(line, drivers, tcp_master, steps=True)
    if isinstance(line, RtuLineSection):
        master = SerialRtuMaster(line.port, line.baudrate, line.parity, line.stopbits, timeout_s=timeout_s)
        return master, _modbus_devices(line, drivers, master, steps=False)
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
    poll = GaugePoll(client, clock, gauge.deliveries_every_s)
    return client, [PolledDevice(gauge.name, None, gauge.poll_interval_ms / 1000, poll)]


def _modbus_devices(
    line: RtuLineSection | TcpLineSection,
    drivers: dict[str, DeviceDriver],
    master: SerialRtuMaster | TcpMaster,
    *,
    steps: bool,
) -> list[PolledDevice]:
    return [
        PolledDevice(
            device.name,
            device.unit,
            device.poll_interval_ms / 1000,
            partial(driver.read, master, device.unit),
            driver.reads(device.unit) if steps else (),
            partial(driver.reading_of, device.unit) if steps else None,
        )
        for device in line.devices
        for driver in (drivers[device.name],)
    ]


REPROBE_EVERY_S = 86_400
"""How often a report a gauge refused is asked for again: a console's setup can change, once in a while."""


class GaugePoll:
    """One poll of a tank gauge: inventory and alarms every time, the delivery history only now and then.

    The history (i202) is the gauge's longest answer, ten deliveries per tank: seconds on a 9600-baud line.
    It is read at the first poll, every `deliveries_every_s`, and at the poll after a tank's delivery flag
    went down, which is when the gauge has just logged one. The agent holds a tank's books open while a
    delivery is pending, so a report that comes a little later is booked all the same.

    What a gauge can report is learned, not assumed: a refused optional report (i202, i205) is not asked for
    again until `reprobe_every_s` later, and every reading names the reports known to be refused, so the
    station can record the fact once and infer deliveries from the inventory instead."""

    def __init__(
        self,
        client: TlsSerialClient | TlsTcpClient,
        clock: Clock,
        deliveries_every_s: int,
        reprobe_every_s: float = REPROBE_EVERY_S,
    ) -> None:
        self._client = client
        self._clock = clock
        self._every_s = deliveries_every_s
        self._reprobe_every_s = reprobe_every_s
        self._next_history_s: float | None = None
        self._delivering: frozenset[int] = frozenset()
        self._refused_until: dict[str, float] = {}

    def __call__(self) -> TankGaugeReading:
        now = self._clock.monotonic()
        due = self._next_history_s is None or now >= self._next_history_s
        deliveries = self._asks(DELIVERIES, now, due)
        alarms = self._asks(ALARMS, now, True)
        try:
            reading = self._client.read_gauge(deliveries=deliveries, alarms=alarms)
        except DeviceValueFault as fault:
            if isinstance(fault.partial, TankGaugeReading):
                fault.partial = self._learn(fault.partial, now, deliveries=deliveries, alarms=alarms)
            raise
        reading = self._learn(reading, now, deliveries=deliveries, alarms=alarms)
        delivering = frozenset(tank.tank for tank in reading.tanks if tank.delivery_in_progress)
        ended = bool(self._delivering - delivering)
        self._delivering = delivering
        if due:
            self._next_history_s = now + self._every_s
        elif ended:
            self._next_history_s = now  # the next poll reads it
        return reading

    def _asks(self, report: str, now: float, due: bool) -> bool:
        """Whether to ask for `report` now: when due, unless refused and not yet worth asking again."""
        until = self._refused_until.get(report)
        return due if until is None else now >= until

    def _learn(self, reading: TankGaugeReading, now: float, *, deliveries: bool, alarms: bool) -> TankGaugeReading:
        for report, asked in ((DELIVERIES, deliveries), (ALARMS, alarms)):
            if report in reading.refused:
                self._refused_until[report] = now + self._reprobe_every_s
            elif asked:
                self._refused_until.pop(report, None)
        return replace(reading, refused=tuple(sorted(self._refused_until)))
