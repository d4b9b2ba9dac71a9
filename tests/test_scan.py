"""`station-agent scan` against simulated devices on real pty lines and on Modbus TCP: it finds what answers and
names the profile each slave fits, and recognises the tank gauge on its own port."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from installer_site import CONTROLLER, COUNTER, PRESSURE, PROBE, forecourt, tcp_port

from agent.cli import main
from agent.tools.identify import Fit, Misfit, rank, try_profile
from agent.tools.line_settings import PARITIES, LineSetting
from agent.tools.scan import (
    Found,
    ScanProgress,
    ScanReport,
    _keep_whole,
    ordered_settings,
    profiles_in,
    scan_serial,
    scan_tcp,
)
from agent.tools.scan_arguments import SCANNED_BAUD_RATES, parse_units
from drivers.modbus.errors import ModbusExceptionResponse
from drivers.modbus.master import TcpMaster
from drivers.profiles import Profile, shipped_profile_dirs
from simulators.modbus_slave import RegisterMap, RtuSlaveServer, SlaveFaults
from simulators.serial_line import PtyPair
from simulators.station import SimulatedStation

FAST = {"timeout_s": 0.05, "gauge_timeout_s": 0.2}
PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatedStation, Path]]:
    workdir = tmp_path_factory.mktemp("scan")
    with forecourt(workdir) as running:
        yield running, workdir / "tty"


@pytest.fixture(scope="module")
def profiles() -> list[Profile]:
    return profiles_in(shipped_profile_dirs())


def by_unit(report: ScanReport) -> dict[int | None, Found]:
    return {found.unit: found for found in report.found if found.kind == "modbus"}


class TestSerialLine:
    def test_finds_each_slave_and_names_its_profile(
        self, station: tuple[SimulatedStation, Path], profiles: list[Profile]
    ) -> None:
        """Controller, pulse counter, pressure sensor and level probe are found at 9600 8N1, each with its own
        profile first; the unit nobody has stays silent; no gauge answers on a Modbus line."""
        _, tty = station
        report = scan_serial(
            tty / "rs485", profiles, baud_rates=(9600,), parities=("N",), units=(1, 2, 11, 21, 31), **FAST
        )
        found = by_unit(report)
        assert sorted(found) == [CONTROLLER, COUNTER, PRESSURE, PROBE]
        assert {unit: item.fits[0].profile for unit, item in found.items()} == {
            CONTROLLER: "sim-pump-controller",
            COUNTER: "sim-pulse-counter",
            PRESSURE: "sim-pressure-sensor",
            PROBE: "sim-level-probe",
        }
        assert all(str(item.setting) == "9600 8N1" for item in found.values())
        assert (found[CONTROLLER].fits[0].blocks, found[CONTROLLER].fits[0].capacity) == (2, 8)
        assert not [item for item in report.found if item.kind != "modbus"]

    def test_a_counter_also_reads_as_a_pressure_sensor_but_ranks_below_its_own_profile(
        self, station: tuple[SimulatedStation, Path], profiles: list[Profile]
    ) -> None:
        """The pressure sensor's two input registers exist on a pulse counter too; the counter's profile
        explains sixteen, so it comes first, and the pressure sensor's own profile fits it alone."""
        running, _ = station
        master = TcpMaster("127.0.0.1", tcp_port(running), timeout_s=0.5)
        try:
            fits, misfits = rank(profiles, master, COUNTER)
        finally:
            master.close()
        assert [fit.profile for fit in fits] == ["sim-pulse-counter", "sim-pressure-sensor"]
        assert fits[0].registers > fits[1].registers
        assert {misfit.profile for misfit in misfits} == {profile.name for profile in profiles} - {
            "sim-pulse-counter",
            "sim-pressure-sensor",
        }  # the pump controller, the level probe and the vendors' maps do not fit it

    def test_a_slave_found_once_is_not_searched_again_at_other_settings(
        self, station: tuple[SimulatedStation, Path], profiles: list[Profile]
    ) -> None:
        """A pty carries any baud rate, so every setting would find the controller; it is listed once, at the
        first setting that found it (the common settings are tried first)."""
        _, tty = station
        report = scan_serial(tty / "rs485", profiles, baud_rates=(9600, 19200), parities=("N", "O"), units=(1,), **FAST)
        assert [(item.unit, str(item.setting)) for item in report.found] == [(CONTROLLER, "9600 8N1")]
        assert [str(setting) for setting in report.settings] == ["9600 8N1", "19200 8N1", "9600 8O1", "19200 8O1"]

    def test_recognises_the_tank_gauge_at_each_baud_rate(
        self, station: tuple[SimulatedStation, Path], profiles: list[Profile]
    ) -> None:
        """An i201 answer is a Veeder-Root gauge, alone on its port, so no Modbus unit is asked there."""
        _, tty = station
        report = scan_serial(tty / "gauge", profiles, baud_rates=(9600, 19200), parities=("N",), units=(1,), **FAST)
        assert [(item.kind, str(item.setting)) for item in report.found] == [
            ("tls_gauge", "9600 8N1"),
            ("tls_gauge", "19200 8N1"),
        ]
        assert "2 tanks in its inventory" in report.found[0].note
        assert report.provision_hint() == f"--gauge-port {tty / 'gauge'} --gauge-baud 9600 --gauge-parity N"

    def test_a_port_that_cannot_open_is_an_error_that_names_it(self, tmp_path: Path) -> None:
        """No adapter: exit 2 with the port in the message."""
        code = main(["scan", "--port", str(tmp_path / "ttyUSB9"), "--baud", "9600", "--parity", "N", "--units", "1"])
        assert code == 2


class TestBrokenAnswers:
    def test_a_unit_whose_answers_arrive_broken_is_reported_as_such(
        self, tmp_path: Path, profiles: list[Profile]
    ) -> None:
        """Every answer of unit 5 has its CRC flipped: no slave is claimed, but the noise is reported, which
        points at parity, termination or wiring."""
        with (
            PtyPair(tmp_path / "master", tmp_path / "slave") as line,
            RtuSlaveServer(
                line.link_b, {5: RegisterMap(holding={0: 1})}, faults={5: SlaveFaults(corrupt_crc_rate=1.0)}
            ),
        ):
            report = scan_serial(line.link_a, profiles, baud_rates=(9600,), parities=("N",), units=(4, 5), **FAST)
        assert [(item.kind, item.unit) for item in report.found] == [("garbled", 5)]
        assert "CRC" in report.found[0].note
        assert "broken answers" in report.text()


class TestTcp:
    def test_finds_the_slaves_behind_an_endpoint(
        self, station: tuple[SimulatedStation, Path], profiles: list[Profile]
    ) -> None:
        running, _ = station
        report = scan_tcp("127.0.0.1", tcp_port(running), profiles, units=(1, 5, 11), timeout_s=0.1)
        assert {unit: item.fits[0].profile for unit, item in by_unit(report).items()} == {
            CONTROLLER: "sim-pump-controller",
            COUNTER: "sim-pulse-counter",
        }
        assert by_unit(report)[CONTROLLER].fits[0].blocks == 1


class TestCommandLine:
    def test_json_and_the_provision_hint(
        self, station: tuple[SimulatedStation, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--json lists every find with its profiles; the table ends with provision flags for the line."""
        _, tty = station
        args = ["scan", "--port", str(tty / "rs485"), "--baud", "9600", "--parity", "n", "--units", "1,11,21"]
        assert main([*args, "--timeout-ms", "50", "--gauge-timeout-ms", "200", "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
        assert document["units"] == "1,11,21"
        assert {item["kind"]: item["setting"] for item in document["found"]} == {
            "modbus": {"baudrate": 9600, "parity": "N"}
        }
        assert [(item["unit"], item["fits"][0]["profile"]) for item in document["found"]] == [
            (1, "sim-pump-controller"),
            (11, "sim-pulse-counter"),
            (21, "sim-pressure-sensor"),
        ]
        assert main([*args, "--timeout-ms", "50", "--gauge-timeout-ms", "200"]) == 0
        text = capsys.readouterr().out
        assert "sim-pump-controller (2 of 8 nozzles read)" in text
        assert (
            f"--port {tty / 'rs485'} --baud 9600 --parity N --device pc1:1:sim-pump-controller "
            "--device pcm11:11:sim-pulse-counter --device ps21:21:sim-pressure-sensor"
        ) in text


class Registers:
    """A slave's registers as a dict, for what a profile fits when values, not readability, decide."""

    def __init__(self, holding: dict[int, int]) -> None:
        self.holding = holding

    def read_registers(self, unit: int, function: int, address: int, count: int) -> tuple[int, ...]:
        if function != 3 or any(a not in self.holding for a in range(address, address + count)):
            raise ModbusExceptionResponse(function, 2, f"unit {unit}: no such register")
        return tuple(self.holding[a] for a in range(address, address + count))


class TestFit:
    def controller(self, state: int) -> Registers:
        registers = dict.fromkeys(range(0xFC, 0x100 + 2 * 0x20), 0)
        registers[0x100] = state
        return Registers(registers)

    def test_a_state_outside_the_profiles_table_does_not_fit(self, profiles: list[Profile]) -> None:
        (controller,) = [p for p in profiles if p.name == "sim-pump-controller"]
        outcome = try_profile(controller, self.controller(state=7), 1)
        assert isinstance(outcome, Misfit)
        assert outcome.reason == "state 7 is not in the profile's state table"
        fit = try_profile(controller, self.controller(state=2), 1)
        assert isinstance(fit, Fit)
        assert (fit.blocks, fit.registers) == (2, 0x120 + 18 - 0xFC)  # firmware id to nozzle 2's last point

    def test_a_temperature_no_tank_has_does_not_fit(self, profiles: list[Profile]) -> None:
        """Probe registers 2..6 with 200 degC (3200/16) in register 6 are not a level probe's."""
        (probe,) = [p for p in profiles if p.name == "sim-level-probe"]
        hot = Registers({2: 0, 3: 100, 4: 0, 5: 0, 6: 3200})
        outcome = try_profile(probe, hot, 31)
        assert isinstance(outcome, Misfit)
        assert outcome.reason == (
            "a value cannot be true for this profile: temperature_cC at register 0x0006 reads 0C80: "
            "20000 is outside the plausible -5000..10000 of temperature_cC"
        )
        hot.holding[6] = 320
        assert isinstance(try_profile(probe, hot, 31), Fit)


class TestUnits:
    def test_ranges_and_lists(self) -> None:
        assert parse_units("1-3,11, 21") == (1, 2, 3, 11, 21)

    @pytest.mark.parametrize("text", ["0", "248", "5-2", "x", "1-"])
    def test_outside_1_to_247_is_refused(self, text: str) -> None:
        with pytest.raises(argparse.ArgumentTypeError, match=r"within 1\.\.247"):
            parse_units(text)


def test_a_crowd_of_broken_answers_at_one_setting_is_one_row() -> None:
    """At a wrong baud rate a gauge garbles every unit id alike: one row says so instead of 247; a few broken
    answers stay listed one by one, and a unit found whole elsewhere drops its broken answers."""
    wrong, right = LineSetting(38400, "N"), LineSetting(9600, "N")
    crowd = [Found(wrong, "garbled", unit, note="CRC 0x4646 != computed 0x1317") for unit in range(1, 248)]
    few = [Found(right, "garbled", 5, note="CRC"), Found(right, "modbus", 7), Found(right, "garbled", 7, note="x")]
    rows = _keep_whole([*crowd, *few])
    assert [(row.setting, row.kind, row.unit) for row in rows] == [
        (wrong, "garbled", None),
        (right, "garbled", 5),
        (right, "modbus", 7),
    ]
    assert rows[0].note.startswith("246 unit ids (1-247) answered broken, e.g. CRC 0x4646")  # 7 was found whole


class TestInstallerSeesProgress:
    def test_progress_lines_with_an_estimate_go_to_stderr(
        self, station: tuple[SimulatedStation, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A scan says where it is and how long the rest takes, on stderr, while stdout keeps the JSON."""
        _, tty = station
        args = ["scan", "--port", str(tty / "rs485"), "--baud", "9600,19200", "--parity", "N", "--units", "1-6"]
        assert main([*args, "--timeout-ms", "50", "--gauge-timeout-ms", "200", "--progress-s", "0", "--json"]) == 0
        captured = capsys.readouterr()
        assert json.loads(captured.out)["target"] == str(tty / "rs485")
        lines = captured.err.splitlines()
        pattern = re.compile(
            r"scan: baud (9600|19200) parity N \(setting [12] of 2\): units [0-9]+-[0-9]+ of 6, ~[0-9]+ (s|min) left"
        )
        assert lines and all(pattern.fullmatch(line) for line in lines), lines
        assert lines[0].startswith("scan: baud 9600 parity N (setting 1 of 2): units 1-1 of 6")
        assert any(line.startswith("scan: baud 19200 parity N (setting 2 of 2): units 2-") for line in lines)

    def test_the_estimate_is_the_pace_so_far_times_what_is_left(self) -> None:
        """After 40 of 494 requests in 60 s, the rest takes 454 x 1.5 s = 681 s, said as ~11 min."""
        said: list[str] = []
        now = [0.0]
        progress = ScanProgress(2 * 247, 247, said.append, settings=2, every_s=5.0, clock=lambda: now[0])
        progress.setting_starts(1)
        for unit in range(1, 41):
            now[0] = unit * 1.5
            progress.asked(LineSetting(9600, "E"), unit)
        assert said[-1] == "baud 9600 parity E (setting 1 of 2): units 1-40 of 247, ~11 min left"
        assert len(said) == 10  # at 6, 12 ... 60 s: the first request at least 5 s after the last line

    def test_the_time_left_never_grows_and_shrinks_with_units_found_before(self) -> None:
        """A pace that slows (slaves found, then misses) holds the time said instead of raising it; units not asked
        again at the next setting leave the estimate; at a steady pace it falls line after line."""
        said: list[str] = []
        now = [0.0]
        progress = ScanProgress(2 * 100, 100, said.append, settings=2, every_s=5.0, clock=lambda: now[0])
        progress.setting_starts(1)
        for unit in range(1, 101):
            now[0] += 0.05 if unit <= 40 else 1.0  # quick answers first, then two timeouts a unit
            progress.asked(LineSetting(9600, "N"), unit)
        progress.setting_starts(2)
        progress.skipped(40)
        for unit in range(41, 101):
            now[0] += 1.0
            progress.asked(LineSetting(19200, "N"), unit)
        left = [int(line.rsplit("~", 1)[1].split()[0]) * (60 if "min left" in line else 1) for line in said]
        assert len(left) > 10
        assert all(later <= earlier for earlier, later in itertools.pairwise(left)), left
        assert left[-1] <= 5 and left[-3] > left[-2] > left[-1], left

    def test_a_stopped_scan_prints_what_it_found_and_says_it_was_interrupted(
        self, station: tuple[SimulatedStation, Path]
    ) -> None:
        """SIGTERM halfway through: the scan ends within a request, prints the slave it had found, a line saying
        it was interrupted, and exits 143 (128 + SIGTERM), as documented."""
        _, tty = station
        command = [sys.executable, "-m", "agent.cli", "scan", "--port", str(tty / "rs485"), "--baud", "9600",
                   "--parity", "N", "--units", "1-247", "--timeout-ms", "50", "--gauge-timeout-ms", "200",
                   "--progress-s", "0"]  # fmt: skip
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT
        ) as scanning:
            assert scanning.stderr is not None
            progress = ""
            for _ in range(200):
                ready, _, _ = select.select([scanning.stderr], [], [], 30)
                progress = scanning.stderr.readline() if ready else ""
                if not progress or re.search(r"units 1-(1[2-9]|[2-9][0-9]) ", progress):
                    break
            assert re.search(r"units 1-(1[2-9]|[2-9][0-9]) ", progress), progress  # past unit 11, not near 247
            scanning.send_signal(signal.SIGTERM)
            out, _ = scanning.communicate(timeout=30)
        assert scanning.returncode == 128 + signal.SIGTERM, (scanning.returncode, out)
        assert "INTERRUPTED by SIGTERM" in out, out
        assert re.search(rf"9600 8N1 +{CONTROLLER}  Modbus slave", out), out

    def test_the_readme_says_the_order_the_scan_tries(self) -> None:
        """The installer's guide lists the settings in the order the code tries them by default."""
        readme = " ".join((PROJECT / "README.md").read_text(encoding="utf-8").split())
        said = re.search(r"in this order: ([^.]+)\.", readme)
        assert said is not None
        listed = [part.strip() for part in said.group(1).replace(" and ", ", ").split(",")]
        assert listed == [str(setting) for setting in ordered_settings(SCANNED_BAUD_RATES, PARITIES)]

    def test_common_settings_come_first(self) -> None:
        """9600 8N1 and 8E1, then 19200, then the rest in the order given."""
        order = [str(s) for s in ordered_settings((1200, 9600, 19200, 115200), ("N", "E", "O"))]
        assert order[:4] == ["9600 8N1", "9600 8E1", "19200 8N1", "19200 8E1"]
        assert order[4:] == [
            "1200 8N1",
            "1200 8E1",
            "1200 8O1",
            "9600 8O1",
            "19200 8O1",
            "115200 8N1",
            "115200 8E1",
            "115200 8O1",
        ]

    def test_a_gauge_port_gives_the_gauge_and_no_broken_answers(
        self, station: tuple[SimulatedStation, Path], profiles: list[Profile]
    ) -> None:
        """The gauge is asked for i201 at every setting before any Modbus request, so its port is a gauge and not
        a line full of wiring faults."""
        _, tty = station
        report = scan_serial(
            tty / "gauge", profiles, baud_rates=(9600, 19200), parities=("N",), units=range(1, 11), **FAST
        )
        assert {item.kind for item in report.found} == {"tls_gauge"}
        assert report.found and report.provision_hint().startswith("--gauge-port")
