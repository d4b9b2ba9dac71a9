"""A whole simulated station from one config: pty lines and TCP endpoints with their devices, and optionally
the reference platform receiver. This is what `station-sim run` starts and what a supplier's CI embeds."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from types import TracebackType

from drivers.profiles import find_profile, shipped_profile_dirs
from simulators.config import PumpControllerSection, RtuLineSection, SimulatorsConfig
from simulators.modbus_slave import RtuSlaveServer, TcpSlaveServer
from simulators.platform.cli import write_report
from simulators.platform.keys import StationKey, keyring
from simulators.platform.receiver import PlatformReceiver, ReceiverConfig
from simulators.pump_controller import FuellingPattern, SimulatedPumpController
from simulators.serial_line import PtyPair


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    line: str
    unit: int
    controller: SimulatedPumpController


class SimulatedStation:
    def __init__(self, config: SimulatorsConfig) -> None:
        self.config = config
        self._rng = random.Random(config.simulation.seed)
        self._directories = [*config.profile_dirs, *shipped_profile_dirs()]
        self.devices: list[SimulatedDevice] = []
        self._ptys: list[PtyPair] = []
        self._servers: list[RtuSlaveServer | TcpSlaveServer] = []
        self.platform: PlatformReceiver | None = None

    def _controller(self, line: str, section: PumpControllerSection) -> SimulatedPumpController:
        pattern = FuellingPattern(**section.pattern.model_dump())
        controller = SimulatedPumpController(
            find_profile(section.profile, self._directories),
            section.prices_fen_per_l,
            pattern,
            random.Random(self._rng.getrandbits(64)),
            time_scale=self.config.simulation.time_scale,
        )
        self.devices.append(SimulatedDevice(line, section.unit, controller))
        return controller

    def start(self) -> None:
        try:
            for line in self.config.lines:
                banks = {device.unit: self._controller(line.name, device) for device in line.devices}
                if isinstance(line, RtuLineSection):
                    line.agent_port.parent.mkdir(parents=True, exist_ok=True)
                    pty = PtyPair(line.agent_port, line.device_port)
                    pty.start()
                    self._ptys.append(pty)
                    server: RtuSlaveServer | TcpSlaveServer = RtuSlaveServer(
                        line.device_port,
                        banks,
                        line.baudrate,
                        seed=self._rng.getrandbits(32),
                        emulate_line_timing=line.emulate_line_timing,
                    )
                else:
                    server = TcpSlaveServer(banks, line.host, line.port, seed=self._rng.getrandbits(32))
                server.start()
                self._servers.append(server)
            if self.config.platform is not None:
                platform = self.config.platform
                host, port = platform.broker.rsplit(":", 1)
                keys = keyring(
                    StationKey.from_argument(f"{station}={path}") for station, path in platform.stations.items()
                )
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
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.platform is not None:
            self.platform.stop()
        for server in self._servers:
            server.stop()
        for pty in self._ptys:
            pty.stop()
        self._servers.clear()
        self._ptys.clear()

    def report(self) -> dict[str, object]:
        """What the simulated devices did: per controller nozzle, the latest sales booked as [txn_no, volume_ml]."""
        devices = []
        for device in self.devices:
            sales = device.controller.completed_sales()
            devices.append(
                {
                    "line": device.line,
                    "unit": device.unit,
                    "nozzles": {str(n): {"sales": v} for n, v in sorted(sales.items())},
                }
            )
        report: dict[str, object] = {"devices": devices}
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

    def __enter__(self) -> SimulatedStation:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
