"""The forecourt from its config, without I/O: what a config may say, the errors it gets when it is wrong,
and the faults it schedules starting and stopping at their simulated seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w

from simulators.config import SimulatorsConfig, SimulatorsConfigError, load_simulators_config
from simulators.faults import FaultError
from simulators.site import Site

SCRIPT = {"idle_s": [1, 1], "lift_s": [1, 1], "volume_l": [10, 10], "flow_l_per_min": [60, 60], "hang_up_s": [5, 5]}


def document(**changes: Any) -> dict[str, Any]:
    """A two-line station: D01 (controller 1, pulse counter 11) on a pty line, D02 on TCP, a tank sensor."""
    base: dict[str, Any] = {
        "simulation": {"seed": 5, "report": "out/report.json", "control": "sim.sock"},
        "lines": [
            {"kind": "rtu", "name": "rs485-1", "device_port": "tty/dev", "agent_port": "tty/agent"},
            {"kind": "tcp", "name": "tcp-1", "port": 15020},
        ],
        "dispensers": [
            {
                "id": "D01",
                "line": "rs485-1",
                "controller_unit": 1,
                "pulse_counter_unit": 11,
                "pattern": SCRIPT,
                "nozzles": [{"grade": "92", "price_fen_per_l": 770, "al_spread": 0, "first_txn_no": 7}],
            },
            {
                "id": "D02",
                "line": "tcp-1",
                "controller_unit": 1,
                "nozzles": [{"grade": "0#", "price_fen_per_l": 735}, {"grade": "95", "price_fen_per_l": 820}],
            },
        ],
        "pressure_sensors": [{"line": "rs485-1", "unit": 21, "tank": "T1"}],
    }
    return base | changes


def write(tmp_path: Path, content: dict[str, Any]) -> Path:
    path = tmp_path / "simulators.toml"
    path.write_text(tomli_w.dumps(content))
    return path


def problems(tmp_path: Path, content: dict[str, Any]) -> str:
    with pytest.raises(SimulatorsConfigError) as caught:
        load_simulators_config(write(tmp_path, content))
    return str(caught.value)


class TestConfig:
    def test_paths_are_relative_to_the_file(self, tmp_path: Path) -> None:
        """Ports, the report and the control socket resolve against the config's folder."""
        config = load_simulators_config(write(tmp_path, document()))
        assert config.simulation.report == tmp_path / "out" / "report.json"
        assert config.simulation.control == tmp_path / "sim.sock"
        assert config.lines[0].agent_port == tmp_path / "tty" / "agent"  # type: ignore[union-attr]

    def test_targets_follow_the_config(self, tmp_path: Path) -> None:
        """Nozzles are ID-N<n>; devices ID/controller, ID/pulse_counter (only if it has one), TANK/pressure_sensor."""
        targets = load_simulators_config(write(tmp_path, document())).targets()
        assert sorted(targets) == [
            "D01-N1",
            "D01/controller",
            "D01/pulse_counter",
            "D02-N1",
            "D02-N2",
            "D02/controller",
            "T1/pressure_sensor",
        ]

    def test_unknown_line_and_taken_unit(self, tmp_path: Path) -> None:
        """A dispenser on a line that does not exist and two devices on one unit are named with their place."""
        content = document()
        content["dispensers"][1]["line"] = "rs485-9"
        content["pressure_sensors"][0]["unit"] = 11
        text = problems(tmp_path, content)
        assert "dispensers[1].line: found 'rs485-9'; allowed: a [[lines]] name: rs485-1, tcp-1" in text
        assert (
            "pressure_sensors[0].unit: found 11; allowed: a unit no other device on line 'rs485-1' has "
            "(dispensers[0].pulse_counter_unit has 11; 1..247)"
        ) in text

    def test_duplicate_names(self, tmp_path: Path) -> None:
        """Two lines, dispensers or tank sensors with one name are refused, pointing at both."""
        content = document()
        content["dispensers"][1]["id"] = "D01"
        content["dispensers"][1]["controller_unit"] = 2
        text = problems(tmp_path, content)
        assert "dispensers[1].id: found 'D01'; allowed: a value no other entry has (dispensers[0] has it)" in text

    def test_field_errors_show_the_value_found(self, tmp_path: Path) -> None:
        """Field-level problems give the path as the file spells it, the value found and what is allowed."""
        content = document()
        content["dispensers"][0]["controller_unit"] = 300
        content["dispensers"][0]["nozzles"][0]["price_fen_per_l"] = 0
        text = problems(tmp_path, content)
        assert "  dispensers[0].controller_unit: found 300; allowed: at most 247\n" in text + "\n"
        assert (
            "  dispensers[0].nozzles[0].price_fen_per_l: found 0; allowed: 1 or more (unit price in fen per litre)"
        ) in text

    @pytest.mark.parametrize("unit", ["1", 1.0, True])
    def test_a_unit_address_must_be_a_whole_number_as_written(self, tmp_path: Path, unit: object) -> None:
        """As in the agent's config: a quoted number, a whole number with a decimal point or a `true` where a
        unit address belongs is named, not quietly turned into unit 1."""
        content = document()
        content["dispensers"][0]["controller_unit"] = unit
        text = problems(tmp_path, content)
        assert "dispensers[0].controller_unit: found " in text and "allowed: a whole number" in text

    def test_wrong_types_unknown_fields_and_line_kinds_are_explained(self, tmp_path: Path) -> None:
        """A string for a number, a misspelt field (with the closest known name) and an unknown line kind are
        each one line: path, value found, what is allowed."""
        content = document()
        content["simulation"]["time_scale"] = "fast"
        content["simulation"]["tme_scale"] = 3
        content["lines"].append({"kind": "serial", "name": "x"})
        content["lines"][1]["prot"] = 5020
        text = problems(tmp_path, content)
        assert "simulation.time_scale: found 'fast'; allowed: a number (simulated seconds per real second)" in text
        assert (
            "simulation.tme_scale: found 3; unknown field; did you mean 'time_scale'? "
            "known fields here: seed, start, time_scale, report, control"
        ) in text
        assert (
            "lines[1].prot: found 5020; unknown field; did you mean 'port'? known fields here: kind, name, host, port"
        ) in text
        assert "lines[2].kind: found 'serial'; allowed: 'rtu', 'tcp'" in text
        assert "3 problem(s)" not in text and "4 problem(s)" in text

    def test_fault_problems_name_the_fault(self, tmp_path: Path) -> None:
        """Scheduled faults are checked against the catalogue and the station's targets."""
        content = document(
            faults=[
                {"kind": "encoder_failure", "target": "D02/pulse_counter", "at_s": 5},
                {"kind": "controller_reboot", "target": "D01/controller", "at_s": 5, "until_s": 9},
                {"kind": "pulse_injection", "target": "D01-N1", "at_s": 50, "until_s": 10},
            ]
        )
        text = problems(tmp_path, content)
        assert "faults[0]: encoder_failure cannot target 'D02/pulse_counter' (no such target)" in text
        assert "faults[1]: controller_reboot is one-shot: it happens at at_s and has no until_s" in text
        assert "faults[2]: until_s 10.0 must be after at_s 50.0" in text


class TestScheduledFaults:
    def site(self, tmp_path: Path, faults: list[dict[str, Any]]) -> Site:
        return Site(load_simulators_config(write(tmp_path, document(faults=faults))), clock=lambda: 0.0)

    def test_sustained_fault_starts_and_stops_at_its_seconds(self, tmp_path: Path) -> None:
        """A calibration change from 100 s to 200 s is on exactly in [100, 200) and listed with both times."""
        site = self.site(
            tmp_path,
            [
                {
                    "kind": "calibration_change",
                    "target": "D01/controller",
                    "at_s": 100,
                    "until_s": 200,
                    "params": {"k_factor": 9990},
                }
            ],
        )
        bank = site.lines["rs485-1"][0].bank
        seen = {}
        for moment in (99.9, 100.0, 199.9, 200.0):
            site.advance_to(moment)
            seen[moment] = bank.read(3, 0x00FE, 1)[0]
            if moment == 100.0:
                (active,) = site.active_faults()
                assert (active.fault.kind, active.since_s, active.until_s) == ("calibration_change", 100.0, 200.0)
        assert seen == {99.9: 10_000, 100.0: 9990, 199.9: 9990, 200.0: 10_000}
        assert site.active_faults() == []

    def test_one_shot_fault_happens_once_at_its_second(self, tmp_path: Path) -> None:
        """A skip scheduled at 13 s makes the second sale (booked at 29 s) jump; the first is untouched."""
        site = self.site(
            tmp_path, [{"kind": "skip_transactions", "target": "D01-N1", "at_s": 13, "params": {"count": 2}}]
        )
        site.advance_to(30)
        assert [sale.txn_no for sale in site.sales()["D01-N1"]] == [8, 11]

    def test_device_fault_on_a_schedule_reaches_the_server_faults(self, tmp_path: Path) -> None:
        """A dead tank sensor from 10 s to 20 s: the SlaveFaults its server reads follow the schedule."""
        site = self.site(tmp_path, [{"kind": "dead", "target": "T1/pressure_sensor", "at_s": 10, "until_s": 20}])
        link = next(device.link for device in site.lines["rs485-1"] if device.unit == 21)
        states = []
        for moment in (5, 10, 15, 20):
            site.advance_to(moment)
            states.append(link.dead)
        assert states == [False, True, True, False]


class TestSite:
    def test_banks_sit_at_their_units(self, tmp_path: Path) -> None:
        """Each line serves its devices at the configured units."""
        site = Site(load_simulators_config(write(tmp_path, document())), clock=lambda: 0.0)
        assert {line: [(d.unit, d.target) for d in devices] for line, devices in site.lines.items()} == {
            "rs485-1": [(1, "D01/controller"), (11, "D01/pulse_counter"), (21, "T1/pressure_sensor")],
            "tcp-1": [(1, "D02/controller")],
        }

    def test_inject_routes_and_refuses_with_the_valid_choices(self, tmp_path: Path) -> None:
        """Site.inject reaches the right device; clearing a one-shot or an unknown target says why not."""
        site = Site(load_simulators_config(write(tmp_path, document())), clock=lambda: 0.0)
        site.inject("crc_noise", "D02/controller", rate=0.25)
        (device,) = site.lines["tcp-1"]
        assert device.link.garble_rate == 0.25
        with pytest.raises(FaultError, match="controller_reboot is one-shot: it happened once and there is nothing"):
            site.clear("controller_reboot", "D01/controller")
        with pytest.raises(FaultError, match="dead cannot target 'D03/controller' \\(no such target\\)"):
            site.clear("dead", "D03/controller")

    def test_report_lists_sales_tanks_and_faults(self, tmp_path: Path) -> None:
        """The report has each nozzle's sales as [txn_no, volume_ml, real_volume_ml, vapour_ml], the tanks'
        pressure and the faults on."""
        clock = [13.0]
        site = Site(load_simulators_config(write(tmp_path, document())), clock=lambda: clock[0])
        site.inject("pulse_injection", "D01-N1", percent=2)
        clock[0] = 30.0
        site.advance()
        report = site.report()
        assert report["nozzles"]["D01-N1"] == {"sales": [[8, 10_000, 10_000, 11_000], [9, 10_200, 10_000, 11_000]]}  # type: ignore[index]
        assert set(report["nozzles"]) == {"D01-N1", "D02-N1", "D02-N2"}  # type: ignore[arg-type]
        assert -2000 < report["tanks"]["T1"]["pressure_pa"] < 2000  # type: ignore[index]
        assert report["faults"] == [
            {
                "kind": "pulse_injection",
                "target": "D01-N1",
                "params": {"percent": 2.0},
                "since_s": 13.0,
                "until_s": None,
            }
        ]

    def test_pressure_wanders_around_its_mean(self, tmp_path: Path) -> None:
        """Over a simulated day the tank pressure moves, stays plausible and averages near its mean."""
        site = Site(load_simulators_config(write(tmp_path, document())), clock=lambda: 0.0)
        sensor = site.pressure_sensors["T1"]
        readings = []
        for minute in range(1, 24 * 60):
            site.advance_to(minute * 60.0)
            readings.append(sensor.pressure_pa)
        assert len(set(readings)) > 100
        assert all(-1000 < reading < 800 for reading in readings)
        assert abs(sum(readings) / len(readings) - -100) < 100

    def test_tank_pressure_fault_holds_the_reading(self, tmp_path: Path) -> None:
        """tank_pressure holds input register 0 at its value; cleared, the pressure drifts again from where it was."""
        site = Site(load_simulators_config(write(tmp_path, document())), clock=lambda: 0.0)
        bank = next(device.bank for device in site.lines["rs485-1"] if device.unit == 21)
        site.inject("tank_pressure", "T1/pressure_sensor", pa=-1200)
        site.advance_to(600)
        assert bank.read(4, 0, 2) == [(-1200) & 0xFFFF, 180]
        site.clear("tank_pressure", "T1/pressure_sensor")
        site.advance_to(1200)
        assert -1000 < site.pressure_sensors["T1"].pressure_pa < 800

    def test_config_in_python(self) -> None:
        """A config can be built in Python as well as loaded from a file (paths then as given)."""
        config = SimulatorsConfig.model_validate(document(simulation={"seed": 1}))
        assert config.simulation.control is None and config.dispensers[0].ml_per_pulse == 10.0
