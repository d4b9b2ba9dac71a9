"""A small simulated forecourt for the installer's tools: one RS-485 line on a pty pair with a pump controller
(unit 1), its pulse counter (11), a tank pressure sensor (21) and a level probe (31), the same behind Modbus
TCP, and a Veeder-Root gauge on a pty pair of its own. Time is all but frozen: the tools only read."""

from __future__ import annotations

from pathlib import Path

from simulators.broker import free_loopback_port
from simulators.config import SimulatorsConfig
from simulators.station import SimulatedStation

CONTROLLER, COUNTER, PRESSURE, PROBE = 1, 11, 21, 31


def forecourt(workdir: Path) -> SimulatedStation:
    """The station, not yet started; its RS-485 line is `workdir/tty/rs485`, the gauge's `workdir/tty/gauge`,
    and its Modbus TCP port `tcp_port(station)`."""
    nozzles = [{"grade": "92", "price_fen_per_l": 770, "tank": "T1"}, {"grade": "0#", "price_fen_per_l": 735}]
    return SimulatedStation(
        SimulatorsConfig.model_validate(
            {
                "simulation": {"seed": 7, "time_scale": 1e-4},
                "lines": [
                    {
                        "kind": "rtu",
                        "name": "rs485",
                        "device_port": str(workdir / "tty" / "rs485.device"),
                        "agent_port": str(workdir / "tty" / "rs485"),
                    },
                    {"kind": "tcp", "name": "tcp", "port": free_loopback_port()},
                ],
                "dispensers": [
                    {
                        "id": "D01",
                        "line": "rs485",
                        "controller_unit": CONTROLLER,
                        "pulse_counter_unit": COUNTER,
                        "nozzles": nozzles,
                    },
                    {
                        "id": "D02",
                        "line": "tcp",
                        "controller_unit": CONTROLLER,
                        "pulse_counter_unit": COUNTER,
                        "nozzles": nozzles[:1],
                    },
                ],
                "tanks": [
                    {
                        "id": "T1",
                        "product": "gasoline",
                        "shape": {"diameter_mm": 2500, "length_mm": 6000},
                        "volume_l": 15_000,
                    },
                    {"id": "T2", "product": "diesel", "chart": [[0, 0], [2000, 20_000]], "volume_l": 5_000},
                ],
                "tank_gauges": [
                    {
                        "id": "G1",
                        "tanks": ["T1", "T2"],
                        "device_port": str(workdir / "tty" / "gauge.device"),
                        "agent_port": str(workdir / "tty" / "gauge"),
                    }
                ],
                "pressure_sensors": [{"line": "rs485", "unit": PRESSURE, "tank": "T1"}],
                "level_probes": [{"tank": "T2", "line": "rs485", "unit": PROBE}],
            }
        )
    )


def tcp_port(station: SimulatedStation) -> int:
    (line,) = [line for line in station.config.lines if line.kind == "tcp"]
    port: int = line.port  # type: ignore[union-attr]
    return port
