"""Figure link_cost: the CPU one exchange costs the agent's side of a line, for each protocol on the shared links.

The Modbus TCP master, the Modbus RTU master (on a pty pair at 115200 baud, no line timing emulated) and the
Veeder-Root TLS client over TCP each make `link_requests` exchanges with a simulator served from other threads of
this process; the figure is the CPU time of the calling thread alone (`time.thread_time`), so the simulator's
work and the waits on the line are left out, and what remains is the master's or client's own: framing, the
port or socket calls, the checks and the counters. Best of three runs, as the raw parts elsewhere. It is the
figure that says whether the transport under the protocols (drivers/transport) costs a request anything; the
agent's whole poll is `poll_cost` and `poll_cost_tcp`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.report import Target
from bench.scale import Scale
from drivers.modbus import SerialRtuMaster, TcpMaster
from drivers.transport import LinkStatistics
from drivers.veeder_root import TlsTcpClient
from simulators.fuel import Fuel, Product
from simulators.modbus_slave import RegisterMap, RtuSlaveServer, TcpSlaveServer
from simulators.serial_line import PtyPair
from simulators.tank_chart import TankChart
from simulators.tank_gauge import TankGauge
from simulators.tanks import Tank, TankSpec
from simulators.tls_server import TlsTcpServer

RUNS = 3
WARM_UP = 50
REGISTERS = 10
RTU_BAUDRATE = 115_200
RTU_SHARE = 5
"""The RTU master makes a fifth of the requests: each waits out the line's silence, so it takes longer."""
GAUGE_CLOCK_S = datetime(2026, 3, 1, 12).timestamp()


@dataclass(frozen=True, slots=True)
class LinkCost:
    """One protocol's exchanges: the calling thread's CPU per exchange, the best run and every run."""

    exchanges: int
    cpu_us_per_exchange: float
    runs_us: tuple[float, ...]
    statistics: LinkStatistics
    """The link's counters at the end: every exchange should be `ok`."""


@dataclass(frozen=True, slots=True)
class LinkCostFigure:
    modbus_tcp: LinkCost
    modbus_rtu: LinkCost
    tls_tcp: LinkCost

    def targets(self) -> tuple[Target, ...]:
        return ()


def measure(exchange: Callable[[], object], count: int, statistics: Callable[[], LinkStatistics]) -> LinkCost:
    for _ in range(WARM_UP):
        exchange()
    runs = []
    for _ in range(RUNS):
        started = time.thread_time()
        for _ in range(count):
            exchange()
        runs.append((time.thread_time() - started) / count * 1e6)
    return LinkCost(count, min(runs), tuple(runs), statistics())


def banks() -> dict[int, RegisterMap]:
    return {1: RegisterMap(holding={address: address for address in range(REGISTERS)})}


def run(scale: Scale, workdir: Path) -> LinkCostFigure:
    count = scale.link_requests
    with TcpSlaveServer(banks()) as tcp_server:
        master = TcpMaster(*tcp_server.address, timeout_s=scale.timeout_s)
        modbus_tcp = measure(lambda: master.read_registers(1, 0x03, 0, REGISTERS), count, master.statistics)
        master.close()
    with (
        PtyPair(workdir / "agent", workdir / "device") as line,
        RtuSlaveServer(line.link_b, banks(), baudrate=RTU_BAUDRATE),
    ):
        rtu_master = SerialRtuMaster(line.link_a, RTU_BAUDRATE, timeout_s=scale.timeout_s)
        rtu_count = count // RTU_SHARE
        modbus_rtu = measure(lambda: rtu_master.read_registers(1, 0x03, 0, REGISTERS), rtu_count, rtu_master.statistics)
        rtu_master.close()
    tank = Tank(
        "T1",
        TankSpec(fuel=Fuel(Product.GASOLINE, 745.0), chart=TankChart.horizontal_cylinder(2500, 6000), volume_l=15000),
        start=datetime(2026, 3, 1),
    )
    gauge_server = TlsTcpServer(TankGauge("G1", [tank]), lambda: GAUGE_CLOCK_S)
    gauge_server.start()
    try:
        client = TlsTcpClient(gauge_server.host, gauge_server.port, timeout_s=scale.timeout_s)
        tls_tcp = measure(lambda: client.request("i201", 1), count, client.statistics)
        client.close()
    finally:
        gauge_server.stop()
    return LinkCostFigure(modbus_tcp, modbus_rtu, tls_tcp)
