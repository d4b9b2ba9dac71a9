"""The config file: what an installer sees when it is wrong, and what it means when it is right."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main
from agent.config import ConfigError
from agent.config_validation import load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "station.example.toml"

MINIMAL = """
[station]
id = "ST-1"
allow_empty = true
[uplink]
broker = "127.0.0.1:1883"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return [str(problem) for problem in caught.value.problems]


class TestGoodFiles:
    def test_the_shipped_example_is_valid(self) -> None:
        """config/station.example.toml loads as it is."""
        loaded = load_config(EXAMPLE)
        assert loaded.config.station.id == "CQ-YB-0001"
        assert [line.name for line in loaded.config.lines] == ["rs485-1", "gauge", "tcp-1"]

    def test_defaults_fill_a_minimal_file(self, tmp_path: Path) -> None:
        """Only station.id and uplink.broker are required; the rest has documented defaults."""
        config = load_config(write(tmp_path, MINIMAL)).config
        assert config.uplink.ack_mode == "platform" and config.uplink.prefix == "fsm/v1"
        assert config.heartbeat.interval_s == 60
        assert config.outbox.path == Path("/var/lib/station-agent/outbox.sqlite")

    def test_relative_paths_are_relative_to_the_file(self, tmp_path: Path) -> None:
        """A relative path in the file resolves against the file's folder, not the working directory."""
        config = load_config(write(tmp_path, MINIMAL + '[outbox]\npath = "data/outbox.sqlite"\n')).config
        assert config.outbox.path == tmp_path / "data" / "outbox.sqlite"

    def test_digest_changes_with_the_bytes(self, tmp_path: Path) -> None:
        """The config digest is of the file's bytes, so any edit is a config change."""
        first = load_config(write(tmp_path, MINIMAL)).sha256
        second = load_config(write(tmp_path, MINIMAL + "\n")).sha256
        assert first != second


class TestProblems:
    def test_every_problem_is_reported_with_path_value_and_rule(self, tmp_path: Path) -> None:
        """Several mistakes come back together, each naming its field, the value and what is allowed."""
        found = problems(
            tmp_path,
            """
[station]
id = "bad id!"
allow_empty = true
[uplink]
broker = "nohost"
ack_mode = "sometimes"
[[lines]]
kind = "rtu"
name = "l1"
port = "/dev/ttyS1"
baudrate = 9601
[[lines.devices]]
name = "pc1"
unit = 300
profile = "x"
""",
        )
        assert len(found) == 5
        assert found[0].startswith("station.id: found 'bad id!';")
        assert found[1].startswith("uplink.broker: found 'nohost';") and "HOST:PORT" in found[1]
        assert found[2].startswith("uplink.ack_mode: found 'sometimes';") and "'platform' or 'broker'" in found[2]
        assert found[3].startswith("lines[0].baudrate: found 9601;") and "9600" in found[3]
        assert found[4].startswith("lines[0].devices[0].unit: found 300;") and "247" in found[4]

    def test_a_misspelt_key_gets_a_suggestion(self, tmp_path: Path) -> None:
        """An unknown key names the closest known one."""
        (problem,) = problems(tmp_path, MINIMAL + "[outbox]\nretension_days = 3\n")
        assert "outbox.retension_days" in problem and "did you mean 'retention_days'?" in problem

    def test_missing_required_field_says_so(self, tmp_path: Path) -> None:
        """A missing required field is reported as found nothing."""
        (problem,) = problems(tmp_path, "[station]\nid = 'A'\nallow_empty = true\n")
        assert problem.startswith("uplink: found nothing;")

    def test_unknown_time_zone(self, tmp_path: Path) -> None:
        """A time zone that is not an IANA name is refused with an example of one."""
        (problem,) = problems(tmp_path, MINIMAL.replace('id = "ST-1"', 'id = "ST-1"\ntimezone = "Mars/Base"'))
        assert "station.timezone" in problem and "Asia/Shanghai" in problem

    def test_references_must_resolve_and_names_be_unique(self, tmp_path: Path) -> None:
        """A nozzle naming an unknown controller, and a repeated nozzle id, are both reported by path."""
        found = problems(
            tmp_path,
            MINIMAL
            + """
[[lines]]
kind = "tcp"
name = "t"
host = "127.0.0.1"
[[lines.devices]]
name = "pc1"
unit = 1
profile = "sim-pump-controller"
[[dispensers]]
id = "D1"
nozzles = [
  { id = "N1", grade = "92", controller = "pcX", controller_nozzle = 1 },
  { id = "N1", grade = "95", controller = "pc1", controller_nozzle = 2 },
]
""",
        )
        assert any(p.startswith("dispensers[0].nozzles[1].id: found 'N1'") and "unique" in p for p in found)
        assert any(p.startswith("dispensers[0].nozzles[0].controller: found 'pcX'") and "pc1" in p for p in found)

    def test_toml_syntax_error_has_line_and_column(self, tmp_path: Path) -> None:
        """A TOML syntax error is one problem with the parser's line and column."""
        (problem,) = problems(tmp_path, "[station\nid = 1\n")
        assert "line 1" in problem

    def test_unreadable_file(self, tmp_path: Path) -> None:
        """A config that cannot be read says so rather than raising."""
        (problem,) = problems_for_path(tmp_path / "missing.toml")
        assert "cannot be read" in problem


def problems_for_path(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(problem) for problem in caught.value.problems]


class TestCheckConfigCommand:
    def test_good_file_prints_a_summary_and_exits_0(self, capsys: pytest.CaptureFixture[str]) -> None:
        """check-config on the example prints the station on one screen."""
        assert main(["check-config", str(EXAMPLE)]) == 0
        out = capsys.readouterr().out
        assert "CQ-YB-0001" in out and "dispenser D01" in out and "tank      T3" in out and len(out.splitlines()) < 40

    def test_bad_file_exits_2_with_every_problem(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """check-config on a broken file exits 2 and prints each problem on its own line."""
        path = write(tmp_path, "[station]\nid = 'bad id!'\nallow_empty = true\n[uplink]\nbroker = 'x'\n")
        assert main(["check-config", str(path)]) == 2
        err = capsys.readouterr().err
        assert "2 problem(s)" in err and "station.id" in err and "uplink.broker" in err

    def test_unknown_profile_is_a_config_problem(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A device whose profile exists nowhere fails check-config with the folders searched."""
        text = EXAMPLE.read_text().replace('profile = "sim-pump-controller"', 'profile = "no-such-model"', 1)
        assert main(["check-config", str(write(tmp_path, text))]) == 2
        assert "no profile 'no-such-model'" in capsys.readouterr().err


TANKS = """
[[lines]]
kind = "tls_tcp"
name = "gauge-net"
host = "127.0.0.1"
[[lines.devices]]
name = "tg"
[[lines]]
kind = "tcp"
name = "t"
host = "127.0.0.1"
[[lines.devices]]
name = "pc1"
unit = 1
profile = "sim-pump-controller"
[[dispensers]]
id = "D1"
nozzles = [{ id = "N1", grade = "92", tank = "T1", controller = "pc1", controller_nozzle = 1 }]
"""


class TestTanks:
    def test_a_gauge_tank_and_a_probe_tank_load(self, tmp_path: Path) -> None:
        """Tanks name a gauge and their number on it, or a probe with its chart; the chart file is CSV."""
        (tmp_path / "t2.csv").write_text("height_mm,volume_l\n0,0\n1000,9000.5\n2500,30000\n")
        text = (
            MINIMAL
            + TANKS
            + """
[[lines.devices]]
name = "probe"
unit = 2
profile = "sim-pressure-sensor"
[[tanks]]
id = "T1"
product = "gasoline"
density_15_kg_m3 = 745
capacity_l = 30000
gauge = { device = "tg", tank = 1 }
[[tanks]]
id = "T2"
product = "diesel"
density_15_kg_m3 = 840
capacity_l = 30000
probe = "probe"
chart_file = "t2.csv"
"""
        )
        config = load_config(write(tmp_path, text)).config
        assert [tank.id for tank in config.tanks] == ["T1", "T2"]
        assert config.tanks[1].chart_file == tmp_path / "t2.csv"
        assert [gauge.name for _, gauge in config.gauges()] == ["tg"]

    def test_tank_mistakes_name_the_field_and_the_fix(self, tmp_path: Path) -> None:
        """An unknown gauge, a tank measured twice, a nozzle on an unknown tank, a probe without a chart."""
        found = problems(
            tmp_path,
            MINIMAL
            + TANKS.replace('tank = "T1"', 'tank = "T9"')
            + """
[[tanks]]
id = "T1"
product = "gasoline"
density_15_kg_m3 = 745
capacity_l = 30000
gauge = { device = "tgX", tank = 1 }
[[tanks]]
id = "T2"
product = "gasoline"
density_15_kg_m3 = 745
capacity_l = 30000
gauge = { device = "tgX", tank = 1 }
[[tanks]]
id = "T3"
product = "diesel"
density_15_kg_m3 = 840
capacity_l = 30000
probe = "pc9"
chart = [[0, 0], [2000, 30000]]
""",
        )
        assert any(p.startswith("tanks[2].probe: found 'pc9'") and "pc1" in p for p in found), found
        assert any(p.startswith("tanks[0].gauge.device: found 'tgX'") and "known: tg" in p for p in found), found
        assert any(p.startswith("tanks[1].gauge.tank: found 'tgX#1'") and "unique" in p for p in found), found
        assert any(p.startswith("dispensers[0].nozzles[0].tank: found 'T9'") and "T1" in p for p in found), found

    def test_a_probe_tank_needs_its_chart(self, tmp_path: Path) -> None:
        """Only the chart turns a probe's heights into volumes, so a probe tank without one is refused."""
        tank = '[[tanks]]\nid = "T1"\nproduct = "diesel"\ndensity_15_kg_m3 = 840\ncapacity_l = 30000\nprobe = "p"\n'
        chart, probe = problems(tmp_path, MINIMAL + tank)
        assert chart.startswith("tanks[0]") and "chart or chart_file" in chart
        assert probe == "tanks[0].probe: found 'p'; must name a Modbus device under [[lines]]; known: none"


def test_a_day_boundary_off_the_pressure_intervals_is_refused_and_a_fitting_one_taken(tmp_path: Path) -> None:
    """The pressure rules' 5-minute intervals must not straddle the day's boundary."""
    found = problems(tmp_path, MINIMAL + '[daily]\nboundary = "06:07"\n')
    assert any(line.startswith("daily.boundary: found '06:07'") and "(300 s)" in line for line in found), found
    fitting = MINIMAL + '[daily]\nboundary = "06:07"\n[pressure]\nrecord_interval_s = 60\n'
    assert load_config(write(tmp_path, fitting)).config.daily.boundary == "06:07"


def test_a_config_named_by_a_relative_path_still_gives_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`station-agent run --config demo-run/agent.toml` from another folder: the paths in the file are relative to
    the file, and absolute once loaded, so that nothing depends on the folder the agent was started from."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "agent.toml").write_text(MINIMAL + '[outbox]\npath = "outbox.sqlite"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("site/agent.toml")).config
    assert config.outbox.path == tmp_path / "site" / "outbox.sqlite"
