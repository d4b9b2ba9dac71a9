"""The forecourt as the agent and a supplier's CI meet it: Modbus on a real pty line and on TCP, the fault
control socket, and `station-sim` on the command line.

Time is nearly frozen in these tests (time scale 1e-4) after moving the forecourt to a known moment, so
what a master reads is exact; only `station-sim run` runs at speed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from support.waiting import wait_until

from drivers.device import DeviceDriver
from drivers.modbus import TcpMaster
from drivers.readings import PulseCounterReading, PumpControllerReading
from simulators.broker import free_loopback_port
from simulators.cli import main
from simulators.config import SimulatorsConfig, load_simulators_config
from simulators.control import ControlError, send_request
from simulators.station import SimulatedStation

MBPOLL = shutil.which("mbpoll")
VALUE = re.compile(r"^\[(\d+)\]:\s+(-?\d+)", re.MULTILINE)
SCRIPT = {"idle_s": [1, 1], "lift_s": [1, 1], "volume_l": [10, 10], "flow_l_per_min": [60, 60], "hang_up_s": [5, 5]}
AFTER_FIRST_SALE_S = 12.5
FROZEN = 1e-4


def station_document(tcp_port: int, time_scale: float = FROZEN) -> dict[str, Any]:
    """D01 (controller 1, pulse counter 11) on a pty line, D02 (controller 1, pulse counter 11) on TCP."""
    nozzle = {"grade": "92", "price_fen_per_l": 770, "al_spread": 0, "first_txn_no": 41}
    return {
        "simulation": {"seed": 2, "time_scale": time_scale, "control": "sim.sock", "report": "report.json"},
        "lines": [
            {"kind": "rtu", "name": "rs485-1", "device_port": "tty/dev", "agent_port": "tty/agent"},
            {"kind": "tcp", "name": "tcp-1", "port": tcp_port},
        ],
        "dispensers": [
            {
                "id": dispenser,
                "line": line,
                "controller_unit": 1,
                "pulse_counter_unit": 11,
                "pattern": SCRIPT,
                "nozzles": [nozzle, nozzle],
            }
            for dispenser, line in (("D01", "rs485-1"), ("D02", "tcp-1"))
        ],
    }


def write_config(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "simulators.toml"
    path.write_text(tomli_w.dumps(document))
    return path


@pytest.fixture
def config(tmp_path: Path) -> SimulatorsConfig:
    return load_simulators_config(write_config(tmp_path, station_document(free_loopback_port())))


@pytest.fixture
def station(config: SimulatorsConfig) -> Iterator[SimulatedStation]:
    """The station, moved to just after each nozzle's first sale, then started with time almost standing."""
    simulated = SimulatedStation(config)
    simulated.site.advance_to(AFTER_FIRST_SALE_S)
    with simulated:
        yield simulated


def mbpoll(*arguments: str) -> subprocess.CompletedProcess[str]:
    if MBPOLL is None:
        pytest.skip("mbpoll not installed: apt-get install mbpoll")
    return subprocess.run(
        [MBPOLL, "-1", "-q", "-o", "1", "-0", *arguments], capture_output=True, text=True, timeout=10, check=False
    )


def mbpoll_rtu(config: SimulatorsConfig, unit: int, table: str, first: int, count: int) -> dict[int, int]:
    port = str(config.lines[0].agent_port)  # type: ignore[union-attr]
    result = mbpoll(
        "-m", "rtu", "-b", "9600", "-P", "none", "-a", str(unit), "-t", table, "-r", str(first), "-c", str(count), port
    )
    assert result.returncode == 0, f"mbpoll failed: {result.stdout}{result.stderr}"
    return {int(reference): int(value) for reference, value in VALUE.findall(result.stdout)}


class TestModbus:
    def test_mbpoll_reads_the_pulse_counts_over_the_pty_line(
        self, station: SimulatedStation, config: SimulatorsConfig
    ) -> None:
        """mbpoll, an outside Modbus master, reads the pulse counter's input registers at unit 11 and gets the
        simulated counts: 1000 liquid and 1100 vapour pulses for each nozzle's 10 L, and the firmware id."""
        assert mbpoll_rtu(config, 11, "3", 0, 16) == {0: 1000, 1: 1100, 2: 1000, 3: 1100} | dict.fromkeys(
            range(4, 15), 0
        ) | {15: 0x0100}

    def test_mbpoll_reads_the_controller_sale_on_the_same_line(
        self, station: SimulatedStation, config: SimulatorsConfig
    ) -> None:
        """On the same line, unit 1 answers with the sale: number 42, 1000 cL, 7700 fen (32-bit, high word first)."""
        read = mbpoll_rtu(config, 1, "4", 0x0100, 12)
        assert read[0x0100] == 3
        assert (read[0x0106] << 16 | read[0x0107], read[0x0108] << 16 | read[0x0109]) == (42, 1000)
        assert read[0x010A] << 16 | read[0x010B] == 7700

    def test_a_dead_controller_keeps_silent_while_its_pulse_counter_answers(
        self, station: SimulatedStation, config: SimulatorsConfig
    ) -> None:
        """A `dead` fault on D01/controller silences unit 1 only; clearing it brings it back."""
        station.inject("dead", "D01/controller")
        port = str(config.lines[0].agent_port)  # type: ignore[union-attr]
        silent = mbpoll("-m", "rtu", "-b", "9600", "-P", "none", "-a", "1", "-t", "4", "-r", "256", port)
        assert silent.returncode != 0
        assert mbpoll_rtu(config, 11, "3", 0, 1) == {0: 1000}
        station.clear("dead", "D01/controller")
        assert mbpoll_rtu(config, 1, "4", 0x0100, 1) == {0x0100: 3}

    def test_the_agents_drivers_decode_the_tcp_devices(
        self, station: SimulatedStation, config: SimulatorsConfig
    ) -> None:
        """Read over Modbus TCP through the profiles, D02's controller and counter agree with its sales."""
        site = station.site
        line = config.lines[1]
        master = TcpMaster("127.0.0.1", line.port)  # type: ignore[union-attr]
        try:
            controller, counter = (device.bank.profile for device in site.lines["tcp-1"])
            reading = DeviceDriver(controller, [1, 2]).read(master, 1)
            counts = DeviceDriver(counter, range(1, 5)).read(master, 11)
        finally:
            master.close()
        assert isinstance(reading, PumpControllerReading) and isinstance(counts, PulseCounterReading)
        assert [(n.txn_no, n.txn_volume_ml) for n in reading.nozzles] == [(42, 10_000), (42, 10_000)]
        assert reading.k_factor == 10_000 and counts.count_modulus == 65_536
        assert [counts.count(channel) for channel in range(1, 5)] == [1000, 1100, 1000, 1100]


class TestControl:
    def test_socket_inject_list_clear(self, station: SimulatedStation, config: SimulatorsConfig) -> None:
        """JSON lines over the control socket put a fault on, list it and take it off."""
        path = config.simulation.control
        assert path is not None
        injected = send_request(
            path, {"op": "inject", "kind": "slow", "target": "D02/pulse_counter", "params": {"delay_s": 0.2}}
        )
        assert injected == {
            "ok": True,
            "fault": {"kind": "slow", "target": "D02/pulse_counter", "params": {"delay_s": 0.2}},
        }
        (listed,) = send_request(path, {"op": "list"})["active"]
        assert (listed["kind"], listed["target"]) == ("slow", "D02/pulse_counter")
        assert station.site.lines["tcp-1"][1].link.delay_s == 0.2
        assert send_request(path, {"op": "clear", "kind": "slow", "target": "D02/pulse_counter"})["ok"]
        assert send_request(path, {"op": "list"}) == {"ok": True, "active": []}

    def test_socket_refusals_say_why(self, station: SimulatedStation, config: SimulatorsConfig) -> None:
        """Bad requests get ok: false and the reason, and the connection stays usable."""
        path = config.simulation.control
        assert path is not None
        assert send_request(path, {"op": "explode"}) == {
            "ok": False,
            "error": "unknown op 'explode'; ops: inject, clear, list",
        }
        refused = send_request(path, {"op": "inject", "kind": "dead", "target": "D01-N1"})
        assert refused["ok"] is False and "dead cannot target 'D01-N1' (a nozzle)" in refused["error"]

    def test_cli_inject_list_clear(
        self, station: SimulatedStation, config: SimulatorsConfig, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`station-sim fault` injects with --set, lists, clears; a refusal exits 1 with the reason."""
        control = str(config.simulation.control)
        assert main(["fault", "--control", control, "inject", "pulse_injection", "D01-N2", "--set", "percent=1.5"]) == 0
        assert json.loads(capsys.readouterr().out)["fault"]["params"] == {"percent": 1.5}
        assert main(["fault", "--control", control, "list"]) == 0
        assert [a["target"] for a in json.loads(capsys.readouterr().out)["active"]] == ["D01-N2"]
        assert main(["fault", "--control", control, "clear", "pulse_injection", "D01-N2"]) == 0
        capsys.readouterr()
        assert main(["fault", "--control", control, "inject", "pulse_injection", "D01-N2", "--set", "pct=2"]) == 1
        assert "pulse_injection has no param pct; its params: percent" in capsys.readouterr().err
        assert station.active_faults() == []

    def test_cli_without_a_station(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """No station at the socket: exit 2 and a line that says so."""
        assert main(["fault", "--control", str(tmp_path / "none.sock"), "list"]) == 2
        assert "cannot reach the station's control socket" in capsys.readouterr().err

    def test_second_station_on_the_same_socket_is_refused(
        self, station: SimulatedStation, config: SimulatorsConfig
    ) -> None:
        """A control socket a running station answers on is not taken over."""
        other = SimulatedStation(config.model_copy(update={"lines": [], "dispensers": []}))
        with pytest.raises(ControlError, match="is in use by a running station"):
            other.start()


def test_station_sim_run_with_faults_from_the_cli(tmp_path: Path) -> None:
    """`station-sim run` at 100x: the fault CLI injects through its socket, sales happen, and the report it
    prints at the end shows both volumes per sale and the fault that was on."""
    document = station_document(free_loopback_port(), time_scale=100)
    path = write_config(tmp_path, document)
    command = [sys.executable, "-m", "simulators.cli"]
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "lab")}
    with subprocess.Popen(
        [*command, "run", "--config", str(path), "--seconds", "8", "--ready-file", str(tmp_path / "ready.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as run:
        wait_until(lambda: (tmp_path / "ready.json").exists() or run.poll() is not None, 10, "the ready file")
        assert (tmp_path / "ready.json").exists(), "the station ended before it was ready"
        socket_path = Path(json.loads((tmp_path / "ready.json").read_text())["control"])
        injected = subprocess.run(
            [
                *command,
                "fault",
                "--control",
                str(socket_path),
                "inject",
                "pulse_injection",
                "D02-N1",
                "--set",
                "percent=1",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            env=env,
            check=False,
        )
        assert injected.returncode == 0, injected.stderr
        stdout, stderr = run.communicate(timeout=20)
    assert run.returncode == 0, stderr
    report = json.loads(stdout.splitlines()[-1])
    assert [(f["kind"], f["target"]) for f in report["faults"]] == [("pulse_injection", "D02-N1")]
    sales = report["nozzles"]["D02-N1"]["sales"]
    assert sales and all(volume >= real for _, volume, real, _ in sales)
    assert 0 <= sales[-1][1] - round(sales[-1][2] * 1.01 / 10) * 10 <= 10, "1 % more, give or take a pulse's phase"
    assert json.loads((tmp_path / "report.json").read_text())["nozzles"].keys() == report["nozzles"].keys()
    assert not (tmp_path / "sim.sock").exists()
