"""Tanks in a simulated station: the config that declares them, and the gauge and probe on real lines.

T1 (gasoline) has a TLS gauge on a pty pair and on TCP, and the nozzle of D01 draws on it; T2 (diesel) has a
Modbus level probe on a TCP line and a pressure sensor. Time is nearly frozen (time scale 1e-4) once the site
has been moved to a known moment, so what the agent's clients read is the site's state then.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from drivers.device import DeviceDriver
from drivers.modbus import TcpMaster
from drivers.profile_validation import find_profile
from drivers.profiles import shipped_profile_dirs
from drivers.readings import LevelProbeReading
from drivers.veeder_root import TlsSerialClient, TlsTcpClient
from simulators.broker import free_loopback_port
from simulators.cli import main
from simulators.config import SimulatorsConfigError, load_simulators_config
from simulators.control import send_request
from simulators.faults import CATALOGUE, FaultError
from simulators.site import Site
from simulators.station import SimulatedStation

SCRIPT = {"idle_s": [1, 1], "lift_s": [1, 1], "volume_l": [10, 10], "flow_l_per_min": [60, 60], "hang_up_s": [5, 5]}
FROZEN = 1e-4
HOUR = 3600.0


def document(modbus_port: int = 15020, gauge_port: int = 10001, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "simulation": {"seed": 4, "time_scale": FROZEN, "control": "sim.sock", "start": "2026-03-01T06:00:00"},
        "lines": [{"kind": "tcp", "name": "tcp-1", "port": modbus_port}],
        "dispensers": [
            {
                "id": "D01",
                "line": "tcp-1",
                "controller_unit": 1,
                "pattern": SCRIPT,
                "nozzles": [{"grade": "92", "price_fen_per_l": 770, "tank": "T1"}],
            }
        ],
        "tanks": [
            {
                "id": "T1",
                "product": "gasoline",
                "shape": {"diameter_mm": 2500, "length_mm": 6000},
                "volume_l": 15_000,
                "water_mm": 20,
                "deliveries": [{"at_s": 2 * HOUR, "volume_l": 8_000, "duration_s": 1200}],
            },
            {
                "id": "T2",
                "product": "diesel",
                "chart": [[0, 0], [1000, 9_000], [2000, 20_000]],
                "volume_l": 5_000,
            },
        ],
        "tank_gauges": [
            {"id": "G1", "tanks": ["T1"], "device_port": "tty/gauge", "agent_port": "tty/agent", "port": gauge_port}
        ],
        "level_probes": [{"tank": "T2", "line": "tcp-1", "unit": 31}],
        "pressure_sensors": [{"line": "tcp-1", "unit": 21, "tank": "T2"}],
    }
    return base | changes


def write(tmp_path: Path, content: dict[str, Any]) -> Path:
    path = tmp_path / "simulators.toml"
    path.write_text(tomli_w.dumps(content))
    return path


def problems(tmp_path: Path, content: dict[str, Any]) -> str:
    with pytest.raises(SimulatorsConfigError) as raised:
        load_simulators_config(write(tmp_path, content))
    return str(raised.value)


class TestConfig:
    def test_targets(self, tmp_path: Path) -> None:
        """Tanks are fault targets by their id, the gauge as G1/tank_gauge, the probe as T2/level_probe."""
        targets = load_simulators_config(write(tmp_path, document())).targets()
        assert {"T1", "T2", "G1/tank_gauge", "T2/level_probe"} <= set(targets)

    def test_unknown_tanks_are_named(self, tmp_path: Path) -> None:
        content = document()
        content["dispensers"][0]["nozzles"][0]["tank"] = "T9"
        content["tank_gauges"][0]["tanks"] = ["T1", "T8"]
        text = problems(tmp_path, content)
        assert "dispensers[0].nozzles[0].tank: found 'T9'; allowed: a [[tanks]] id: T1, T2" in text
        assert "tank_gauges[0].tanks: found 'T8'; allowed: a [[tanks]] id" in text

    def test_a_tank_needs_one_shape(self, tmp_path: Path) -> None:
        content = document()
        content["tanks"][1]["shape"] = {"diameter_mm": 2000, "length_mm": 5000}
        assert "tank T2: give either `shape` (a horizontal cylinder) or `chart`" in problems(tmp_path, content)

    def test_a_tank_cannot_hold_more_than_it_holds(self, tmp_path: Path) -> None:
        content = document()
        content["tanks"][1]["volume_l"] = 25_000
        assert "does not fit the tank's 20000 L" in problems(tmp_path, content)

    def test_a_gauge_needs_a_transport(self, tmp_path: Path) -> None:
        content = document(tank_gauges=[{"id": "G1", "tanks": ["T1"]}])
        assert "tank gauge G1: give it a serial line (device_port, agent_port) or a TCP port" in problems(
            tmp_path, content
        )

    def test_probe_units_share_the_line(self, tmp_path: Path) -> None:
        content = document(level_probes=[{"tank": "T2", "line": "tcp-1", "unit": 21}])
        assert (
            "level_probes[0].unit: found 21; allowed: a unit no other device on line 'tcp-1' has "
            "(pressure_sensors[0].unit has 21; 1..247)"
        ) in problems(tmp_path, content)

    def test_tank_faults(self, tmp_path: Path) -> None:
        """leak needs its rate; unrecorded_dispensing defaults to 1 % of throughput; a gauge has no firmware id."""
        site = Site(load_simulators_config(write(tmp_path, document())), lambda: 0.0)
        with pytest.raises(FaultError, match="leak needs l_per_h"):
            site.inject("leak", "T1")
        assert site.inject("unrecorded_dispensing", "T1").params == {"fraction": 0.01, "l_per_h": 0.0}
        with pytest.raises(FaultError, match="firmware_change cannot target 'G1/tank_gauge'"):
            site.inject("firmware_change", "G1/tank_gauge", firmware_id=2)
        assert {"leak", "unrecorded_dispensing", "delivery"} <= set(CATALOGUE)

    def test_scheduled_deliveries_and_the_report(self, tmp_path: Path) -> None:
        """The config's delivery happens at its second; the report has the truth per tank, pressure merged."""
        site = Site(load_simulators_config(write(tmp_path, document())), lambda: 3 * HOUR)
        site.advance_to(3 * HOUR)
        tanks = site.report()["tanks"]
        assert isinstance(tanks, dict)
        t1, t2 = tanks["T1"], tanks["T2"]
        assert [delivery["start_s"] for delivery in t1["deliveries"]] == [2 * HOUR]
        assert t1["delivered_ml"] == 8_000_000
        assert t1["sold_ml"] > 0
        assert t2["sold_ml"] == 0
        assert "pressure_pa" in t2
        assert "pressure_pa" not in t1


@pytest.fixture
def station(tmp_path: Path) -> Iterator[SimulatedStation]:
    simulated = SimulatedStation(
        load_simulators_config(write(tmp_path, document(free_loopback_port(), free_loopback_port())))
    )
    simulated.site.advance_to(HOUR)
    with simulated:
        yield simulated


class TestStation:
    def test_the_gauge_on_its_pty_and_on_tcp(self, station: SimulatedStation, tmp_path: Path) -> None:
        """Both transports reach the same console: T1 with 15,000 L less an hour of sales."""
        sold_l = station.site.tanks["T1"].state(HOUR).volume_l
        (section,) = station.config.tank_gauges
        assert section.port is not None
        clients = [
            TlsSerialClient(tmp_path / "tty" / "agent", timeout_s=1.0),
            TlsTcpClient("127.0.0.1", section.port, timeout_s=1.0),
        ]
        for client in clients:
            (tank,) = client.read_gauge().tanks
            assert tank.volume_ml == pytest.approx(sold_l * 1000, abs=3_000)
            assert tank.volume_ml < 15_000_000 - 100_000
            client.close()

    def test_the_level_probe_on_modbus(self, station: SimulatedStation) -> None:
        modbus = next(line for line in station.config.lines if line.name == "tcp-1")
        assert modbus.kind == "tcp"
        master = TcpMaster("127.0.0.1", modbus.port, timeout_s=1.0)
        reading = DeviceDriver(find_profile("sim-level-probe", shipped_profile_dirs())).read(master, 31)
        master.close()
        assert isinstance(reading, LevelProbeReading)
        assert reading.oil_height_um == pytest.approx(station.site.tanks["T2"].state(HOUR).height_mm * 1000, abs=300)

    def test_a_delivery_through_the_control_socket(self, station: SimulatedStation, tmp_path: Path) -> None:
        answer = send_request(
            tmp_path / "sim.sock", {"op": "inject", "kind": "delivery", "target": "T2", "params": {"volume_l": 500}}
        )
        assert answer["ok"], answer
        tanks = station.report()["tanks"]
        assert isinstance(tanks, dict)
        assert tanks["T2"]["delivery_in_progress"]


def test_tank_chart_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`station-sim tank-chart` prints the chart the agent's config must carry."""
    path = write(tmp_path, document())
    assert main(["tank-chart", "--config", str(path), "T2"]) == 0
    assert capsys.readouterr().out == "height_mm,volume_l\n0,0.000\n1000,9000.000\n2000,20000.000\n"
    assert main(["tank-chart", "--config", str(path), "T7"]) == 2
    assert "no tank 'T7'" in capsys.readouterr().err
