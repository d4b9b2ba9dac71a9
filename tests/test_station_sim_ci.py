"""`station-sim` as a supplier's CI drives it: a ready file with the ports `port = 0` bound and the pty paths,
one JSON line from every command, and the documented exit codes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.waiting import wait_until

from simulators import cli
from station_lab.demo import installed

READY_TIMEOUT_S = 30.0
STATION_TOML = """
[simulation]
seed = 7
report = "sim-report.json"
control = "sim.sock"

[[lines]]
kind = "rtu"
name = "rs485-1"
device_port = "tty/rs485-1.device"
agent_port = "tty/rs485-1"

[[lines]]
kind = "tcp"
name = "tcp-1"
port = 0

[[lines]]
kind = "tcp"
name = "tcp-empty"
port = 0

[[dispensers]]
id = "D01"
line = "tcp-1"
controller_unit = 1
nozzles = [{ grade = "92", price_fen_per_l = 770, tank = "T1" }]

[[pressure_sensors]]
line = "rs485-1"
unit = 21
tank = "T1"

[[tanks]]
id = "T1"
product = "gasoline"
shape = { diameter_mm = 2500, length_mm = 6000 }
volume_l = 15000

[[tank_gauges]]
id = "G1"
tanks = ["T1"]
device_port = "tty/gauge.device"
agent_port = "tty/gauge"
port = 0
"""


def station_sim(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "simulators.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(path: Path, process: subprocess.Popen[str]) -> dict[str, Any]:
    wait_until(lambda: path.exists() or process.poll() is not None, READY_TIMEOUT_S, "the ready file")
    assert path.exists(), f"station-sim run ended early: {process.communicate()}"
    ready: dict[str, Any] = json.loads(path.read_text())
    return ready


def ask_gauge(port: int) -> bytes:
    """A TLS inventory request over TCP, and what came back up to the end of the answer (ETX)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"\x01i20100")
        answer = b""
        while b"\x03" not in answer and len(answer) < 65536:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


def last_json_line(text: str) -> dict[str, Any]:
    lines = text.strip().splitlines()
    assert lines, "nothing on stdout"
    found: dict[str, Any] = json.loads(lines[-1])
    return found


def test_ready_file_names_every_endpoint_once_all_listen(tmp_path: Path) -> None:
    """`run --ready-file` writes the pid, the free ports `port = 0` bound (each answering), the agent's pty
    paths and the control socket; a TCP line with no device has no port; SIGTERM ends it with exit 0."""
    config = tmp_path / "simulators.toml"
    config.write_text(STATION_TOML)
    ready_file = tmp_path / "ready.json"
    process = station_sim("run", "--config", str(config), "--ready-file", str(ready_file))
    try:
        ready = wait_for(ready_file, process)
        assert ready["pid"] == process.pid
        tcp = ready["lines"]["tcp-1"]
        assert tcp["kind"] == "tcp" and tcp["host"] == "127.0.0.1" and 0 < tcp["port"] <= 65535
        assert ready["lines"]["tcp-empty"]["port"] is None
        rtu = ready["lines"]["rs485-1"]
        assert rtu == {"kind": "rtu", "agent_port": str(tmp_path / "tty" / "rs485-1"), "baudrate": 9600}
        assert Path(rtu["agent_port"]).resolve().is_char_device()
        gauge = ready["tank_gauges"]["G1"]
        assert Path(gauge["agent_port"]).resolve().is_char_device()
        assert gauge["port"] not in (0, tcp["port"])
        assert ask_gauge(gauge["port"]).startswith(b"\x01i20100")
        with socket.create_connection(("127.0.0.1", tcp["port"]), timeout=5):
            pass
        assert ready["control"] == str(tmp_path / "sim.sock") and Path(ready["control"]).is_socket()
        assert ready["platform"] is None
        assert not list(tmp_path.glob(".ready.json*")), "the partial file was renamed, not left behind"
        listed = subprocess.run(
            [sys.executable, "-m", "simulators.cli", "fault", "--control", ready["control"], "list"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert listed.returncode == 0 and last_json_line(listed.stdout)["ok"] is True
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "T1" in last_json_line(stdout)["tanks"]


def test_run_that_cannot_start_says_why_as_json(tmp_path: Path) -> None:
    """A TCP port already taken: exit 2, `{"error": ...}` naming the address on stdout, no ready file."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    with taken:
        port = taken.getsockname()[1]
        config = tmp_path / "simulators.toml"
        config.write_text(STATION_TOML.replace('name = "tcp-1"\nport = 0', f'name = "tcp-1"\nport = {port}'))
        process = station_sim("run", "--config", str(config), "--ready-file", str(tmp_path / "ready.json"))
        stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert f"127.0.0.1:{port}" in last_json_line(stdout)["error"]
    assert not (tmp_path / "ready.json").exists()


def test_config_problems_are_a_json_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad simulators.toml: exit 2, one JSON line whose error names the field, the value and what is allowed."""
    config = tmp_path / "simulators.toml"
    config.write_text(STATION_TOML.replace("port = 0\n", "port = 70000\n", 1))
    assert cli.main(["run", "--config", str(config)]) == 2
    error = last_json_line(capsys.readouterr().out)["error"]
    assert "lines[1].port: found 70000; allowed: at most 65535" in error


def test_fault_kinds_are_json_lines_or_text(capsys: pytest.CaptureFixture[str]) -> None:
    """`fault kinds` prints one JSON object per kind, params with bounds and defaults; `--text` the catalogue."""
    assert cli.main(["fault", "kinds"]) == 0
    kinds = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {kind["kind"]: kind for kind in kinds}
    assert by_name["pulse_injection"]["lifetime"] == "sustained"
    assert by_name["pulse_injection"]["targets"] == ["nozzle"]
    assert by_name["pulse_injection"]["params"][0] | {"doc": ""} == {
        "name": "percent",
        "type": "float",
        "low": -50.0,
        "high": 100.0,
        "default": 1.0,
        "doc": "",
    }
    assert by_name["controller_reboot"]["lifetime"] == "one-shot"
    assert cli.main(["fault", "kinds", "--text"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("pulse_injection (sustained; targets: nozzle)") and len(text.splitlines()) > len(kinds)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["fault", "list"], "--control"),
        (["fault", "--control", "/nonexistent/sim.sock", "list"], "sim.sock"),
        (["fault", "--control", "x.sock", "inject", "dead", "D01/controller", "--set", "oops"], "KEY=VALUE"),
        (["tank-chart", "--config", "/nonexistent/simulators.toml", "T1"], "cannot be read"),
        (["platform-audit", "--db", "p.sqlite", "--station", "ST-1"], "ID=PUBKEY.pem"),
        (["command", "ping", "--key", "/nonexistent/platform.key", "--station", "ST-1"], "platform.key"),
        (["hj212", "--port", "0", "--out", "o.jsonl", "--sm4-key-file", "/nonexistent/sm4.key"], "sm4.key"),
        (["compare", "--sim-report", "/nonexistent/r.json", "--db", "p.sqlite", "--station", "S"], "r.json"),
        (["no-such-command"], "no-such-command"),
        (["compare", "--db", "p.sqlite"], "--sim-report"),
    ],
)
def test_every_command_that_cannot_run_prints_a_json_error(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 and `{"error": ...}` as the one line on stdout, naming what to fix: usage errors of argparse too."""
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = int(str(exit_.code))
    assert code == 2
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1
    assert named in json.loads(out)["error"]


def test_demo_by_hand_commands_are_runnable_scripts() -> None:
    """The commands `make demo` prints for a run by hand name the virtualenv's scripts (`.venv/bin/...` from
    the checkout), and they run."""
    for command in ("station-sim", "station-agent"):
        script = installed(command)
        if Path(sys.executable).parent.is_relative_to(Path.cwd()):
            assert not Path(script).is_absolute() and script.endswith(f"bin/{command}")
        assert os.access(script, os.X_OK), script
    done = subprocess.run(
        [installed("station-sim"), "fault", "kinds"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and json.loads(done.stdout.splitlines()[0])["kind"] == "pulse_injection"
