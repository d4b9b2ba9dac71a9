"""A whole simulated station from one config: the forecourt's devices on pty lines and TCP ports, the tank
gauges on theirs, a ticker that keeps simulated time moving, the fault control socket, and optionally the
reference platform receiver.

This is what `station-sim run` starts and what a supplier's CI embeds:

    with SimulatedStation(load_simulators_config(Path("simulators.toml"))) as station:
        station.inject("pulse_injection", "D01-N1", percent=1.0)
        ...
        station.clear("pulse_injection", "D01-N1")
        sales = station.sales()["D01-N1"]

The devices run even when nobody polls them (a dead controller's nozzles still fuel cars), because the
ticker advances them; a read also brings its device to the present, so what a master reads is never stale.
"""

from __future__ import annotations

import json
import os
import random
import threading
from types import TracebackType
from typing import Any

from simulators.clock import SimClock
from simulators.config import RtuLineSection, SimulatorsConfig, TankGaugeSection
from simulators.control import ControlServer, handle_request
from simulators.faults import ActiveFault, Fault
from simulators.forecourt import Sale
from simulators.modbus_slave import RtuSlaveServer, TcpSlaveServer
from simulators.platform.cli import write_report
from simulators.platform.keys import StationKey, keyring
from simulators.platform.receiver import PlatformReceiver, ReceiverConfig
from simulators.serial_line import PtyPair
from simulators.site import Site
from simulators.tls_server import TlsSerialServer, TlsTcpServer

TICK_S = 0.1
"""Real seconds between two advances of every device when nobody reads them."""


class SimulatedStation:
    """The simulated station of a config; `start()` opens its lines, `stop()` closes them (and pauses time).

    Building it loads the profiles (ProfileError if one is missing or does not fit); `start()` raises
    SerialLineError, SlaveServerError, TlsServerError, ControlError or the platform's errors when something
    cannot open.
    """

    def __init__(self, config: SimulatorsConfig) -> None:
        self.config = config
        self.clock = SimClock(config.simulation.time_scale)
        self.site = Site(config, self.clock)
        self.platform: PlatformReceiver | None = None
        self._seeds = random.Random(config.simulation.seed)
        self._ptys: list[PtyPair] = []
        self._servers: list[RtuSlaveServer | TcpSlaveServer | TlsSerialServer | TlsTcpServer] = []
        self._tcp_lines: dict[str, TcpSlaveServer] = {}
        self._gauges_on_tcp: dict[str, TlsTcpServer] = {}
        self._control: ControlServer | None = None
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def device_count(self) -> int:
        return sum(len(devices) for devices in self.site.lines.values()) + len(self.site.tank_gauges)

    # -- life cycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.clock.start()
            self._start_lines()
            for gauge in self.config.tank_gauges:
                self._start_gauge(gauge)
            self._stopping.clear()
            self._ticker = threading.Thread(target=self._tick, name="station-sim-ticker", daemon=True)
            self._ticker.start()
            if self.config.simulation.control is not None:
                self._control = ControlServer(self.config.simulation.control, lambda r: handle_request(self, r))
                self._control.start()
            self._start_platform()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._control is not None:
            self._control.stop()
            self._control = None
        if self.platform is not None:
            self.platform.stop()
        for server in self._servers:
            server.stop()
        for pty in self._ptys:
            pty.stop()
        self._servers.clear()
        self._ptys.clear()
        self._tcp_lines.clear()
        self._gauges_on_tcp.clear()
        self.clock.stop()

    def __enter__(self) -> SimulatedStation:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _start_lines(self) -> None:
        for line in self.config.lines:
            devices = self.site.lines[line.name]
            banks = {device.unit: device.bank for device in devices}
            links = {device.unit: device.link for device in devices}
            seed = self._seeds.getrandbits(32)
            if isinstance(line, RtuLineSection):
                line.agent_port.parent.mkdir(parents=True, exist_ok=True)
                pty = PtyPair(line.agent_port, line.device_port)
                pty.start()
                self._ptys.append(pty)
                if not banks:
                    continue
                server: RtuSlaveServer | TcpSlaveServer = RtuSlaveServer(
                    line.device_port,
                    banks,
                    line.baudrate,
                    faults=links,
                    seed=seed,
                    emulate_line_timing=line.emulate_line_timing,
                )
            elif banks:
                server = self._tcp_lines[line.name] = TcpSlaveServer(
                    banks, line.host, line.port, faults=links, seed=seed
                )
            else:
                continue
            server.start()
            self._servers.append(server)

    def _start_gauge(self, section: TankGaugeSection) -> None:
        gauge = self.site.tank_gauges[section.id]
        if section.device_port is not None and section.agent_port is not None:
            section.agent_port.parent.mkdir(parents=True, exist_ok=True)
            pty = PtyPair(section.agent_port, section.device_port)
            pty.start()
            self._ptys.append(pty)
            serial_server = TlsSerialServer(section.device_port, gauge, self.clock)
            serial_server.start()
            self._servers.append(serial_server)
        if section.port is not None:
            tcp_server = self._gauges_on_tcp[section.id] = TlsTcpServer(gauge, self.clock, section.host, section.port)
            tcp_server.start()
            self._servers.append(tcp_server)

    def _start_platform(self) -> None:
        platform = self.config.platform
        if platform is None:
            return
        host, port = platform.broker.rsplit(":", 1)
        keys = keyring(StationKey.from_argument(f"{station}={path}") for station, path in platform.stations.items())
        self.platform = PlatformReceiver(
            ReceiverConfig(
                host=host,
                port=int(port),
                db_path=platform.db,
                keys=keys,
                prefix=platform.prefix,
                client_id=platform.client_id,
            )
        )
        self.platform.start()

    def endpoints(self) -> dict[str, object]:
        """Where a gateway finds everything, once `start()` returned: each line and tank gauge (the agent's end
        of a pty pair; the port a TCP server bound, a free one where the config says 0, None where a TCP line
        has no device and so nothing listens), the control socket, and the platform receiver's broker and
        session. What `station-sim run --ready-file` writes."""
        lines: dict[str, object] = {}
        for line in self.config.lines:
            if isinstance(line, RtuLineSection):
                lines[line.name] = {"kind": "rtu", "agent_port": str(line.agent_port), "baudrate": line.baudrate}
            else:
                server = self._tcp_lines.get(line.name)
                lines[line.name] = {"kind": "tcp", "host": line.host, "port": None if server is None else server.port}
        gauges: dict[str, object] = {}
        for section in self.config.tank_gauges:
            tcp = self._gauges_on_tcp.get(section.id)
            gauges[section.id] = {
                "agent_port": None if section.agent_port is None else str(section.agent_port),
                "host": None if tcp is None else tcp.host,
                "port": None if tcp is None else tcp.port,
            }
        platform = self.config.platform
        control = self.config.simulation.control
        report = self.config.simulation.report
        return {
            "lines": lines,
            "tank_gauges": gauges,
            "control": None if control is None else str(control),
            "report": None if report is None else str(report),
            "platform": None
            if platform is None
            else {
                "broker": platform.broker,
                "client_id": platform.client_id,
                "prefix": platform.prefix,
                "db": str(platform.db),
                "report": str(platform.report),
            },
        }

    def _tick(self) -> None:
        while not self._stopping.wait(TICK_S):
            self.site.advance()

    # -- faults ---------------------------------------------------------------------------------------------

    def inject(self, kind: str, target: str, **params: Any) -> Fault:
        """Put a fault on now, or make a one-shot happen now; FaultError names what is allowed."""
        return self.site.inject(kind, target, **params)

    def clear(self, kind: str, target: str) -> ActiveFault:
        """Take a sustained fault off now; FaultError if it is not on."""
        return self.site.clear(kind, target)

    def active_faults(self) -> list[ActiveFault]:
        return self.site.active_faults()

    # -- what happened --------------------------------------------------------------------------------------

    def sales(self) -> dict[str, list[Sale]]:
        """The latest sales (up to 1000 a nozzle) each controller booked, oldest first, by nozzle id."""
        self.site.advance()
        return self.site.sales()

    def phases(self) -> dict[str, str]:
        """What each nozzle is doing now (idle, lifted, fuelling, finished), by nozzle id."""
        return self.site.phases()

    def report(self) -> dict[str, object]:
        """What the devices did (see `Site.report`), and the platform receiver's report if it runs."""
        self.site.advance()
        report = self.site.report()
        if self.platform is not None:
            report["platform"] = self.platform.report().to_json()
        return report

    def write_reports(self) -> None:
        """Rewrite the report files the config names (devices, and the platform's), each atomically."""
        report_path = self.config.simulation.report
        if report_path is not None:
            report_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = report_path.with_name(report_path.name + ".tmp")
            temporary.write_text(json.dumps(self.report(), sort_keys=True))
            os.replace(temporary, report_path)
        if self.platform is not None and self.config.platform is not None:
            write_report(self.config.platform.report, self.platform.report())
