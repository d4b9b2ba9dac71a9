"""From the config's lines to running pollers: a Modbus master or a tank-gauge client per line, and for each
device on it the call that polls it once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from zoneinfo import ZoneInfo

from agent.clock import Clock
from agent.containment import Boundary
from agent.contract.records import RecordIntent
from agent.field.events import FieldEvent
from agent.field.poller import LinePoller, Link, PolledDevice
from drivers.device import DeviceDriver
from drivers.errors import DeviceValueFault
from drivers.line_settings import LineSection, RtuLineSection, TcpLineSection, TlsLineSection
from drivers.modbus.master import SerialRtuMaster, TcpMaster
from drivers.readings import TankGaugeReading
from drivers.veeder_root.client import TlsSerialClient, TlsTcpClient
from drivers.veeder_root.reports import ALARMS, DELIVERIES


def build_poller(
    line: LineSection,
    drivers: dict[str, DeviceDriver],
    clock: Clock,
    sink: Callable[[Sequence[FieldEvent]], None],
    *,
    health_every_s: float,
    zone: ZoneInfo,
    report: Callable[[RecordIntent], None],
) -> LinePoller:
    """`zone` is the station's: a tank gauge's clock shows local time. `report` takes the `internal_error`
    records of the line's containment boundary (the recorder's submit)."""
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
    boundary = Boundary(f"poller {line.name}", report, clock)
    return LinePoller(
        line.name,
        devices,
        link,
        clock,
        sink,
        boundary=boundary,
        health_every_s=health_every_s,
        answer_timeout_s=timeout_s,
    )


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
