"""The installed product in a booted box, seen the way systemd and the platform see it.

The lab runs inside the box, on its loopback (the box has no other network): Mosquitto from the image, and,
started by the box's systemd as transient units, a simulated forecourt on a pty line and the reference platform
receiver, both from the checkout's lab (bound read-only at /src, the lab's packages under /src/lab) run by the
package's own Python in /opt/station-agent against the packaged agent, so nothing but the .deb's Depends is
installed for the agent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debian_box import DebianBox
from support.waiting import wait_until

STATION = "SYS-0001"
UNIT = "station-agent.service"
LAB = "/srv/lab"
LINE = f"{LAB}/tty/rs485"
REPORT = f"{LAB}/platform-report.json"
LAB_PYTHON = ["/usr/bin/env", "PYTHONPATH=/src/lab", "/opt/station-agent/bin/python"]

SIMULATORS_TOML = f"""
[simulation]
seed = 7
time_scale = 50.0

[[lines]]
kind = "rtu"
name = "rs485"
device_port = "{LINE}.device"
agent_port = "{LINE}"

[[dispensers]]
id = "D01"
line = "rs485"
controller_unit = 1
pulse_counter_unit = 11
pattern = {{ idle_s = [5, 20], lift_s = [1, 3], volume_l = [5, 40], flow_l_per_min = [20, 50], hang_up_s = [1, 3] }}
nozzles = [{{ grade = "92", price_fen_per_l = 770 }}, {{ grade = "95", price_fen_per_l = 820 }}]
"""

FORECOURT_TOML = """
[heartbeat]
interval_s = 2

[[dispensers]]
id = "D01"

[[dispensers.nozzles]]
id = "D01-N1"
grade = "92"
controller = "pc1"
controller_nozzle = 1
pulse = { device = "pcm11", channel = 1, ml_per_pulse = 10 }
vapour = { device = "pcm11", channel = 2, ml_per_pulse = 10 }

[[dispensers.nozzles]]
id = "D01-N2"
grade = "95"
controller = "pc1"
controller_nozzle = 2
pulse = { device = "pcm11", channel = 3, ml_per_pulse = 10 }
vapour = { device = "pcm11", channel = 4, ml_per_pulse = 10 }
"""
"""What the installer adds after provision (the guide's step 3): the forecourt, and heartbeats every 2 s so
that the test sees the chain move within seconds."""

PROVISION = [
    "station-agent",
    "provision",
    "--station-id",
    STATION,
    "--name",
    "System test",
    "--timezone",
    "Asia/Shanghai",
    "--broker",
    "127.0.0.1:1883",
    "--no-tls",
    "--port",
    LINE,
    "--baud",
    "9600",
    "--parity",
    "N",
    "--device",
    "pc1:1:sim-pump-controller",
    "--device",
    "pcm11:11:sim-pulse-counter",
    "--json",
]


POLL_S = 0.25
"""How often to ask the box: each question is a process run inside it."""


@dataclass(frozen=True, slots=True)
class Chain:
    """What the reference receiver has: the station's part of its report."""

    ok: bool
    upto: int
    highest_seq: int
    gaps: list[list[int]]
    forks: list[int]
    chain_breaks: list[int]
    by_type: dict[str, int]
    status: dict[str, Any] | None

    @property
    def whole(self) -> bool:
        """No gap, fork, break or rejection, and everything received is linked up to `upto`."""
        return self.ok and not self.gaps and not self.forks and not self.chain_breaks and self.upto == self.highest_seq


class StationBox:
    """The box with the lab around the agent; every method is one thing an installer or a bad day does."""

    def __init__(self, box: DebianBox) -> None:
        self.box = box

    # -- systemd's view ---------------------------------------------------------------------------------------

    def unit(self, *properties: str) -> dict[str, str]:
        return self.box.show(UNIT, *properties)

    def main_pid(self) -> int:
        return int(self.unit("MainPID")["MainPID"])

    def active(self) -> str:
        return self.box.run(["systemctl", "is-active", UNIT], check=False).stdout.strip()

    def wait_running(self, timeout_s: float, other_than: int = 0) -> int:
        """Wait for the agent active (running) with a main PID other than `other_than`; return that PID."""

        def running() -> int:
            state = self.unit("ActiveState", "SubState", "MainPID")
            pid = int(state["MainPID"])
            ok = state["ActiveState"] == "active" and state["SubState"] == "running" and pid not in (0, other_than)
            return pid if ok else 0

        return int(wait_until(running, timeout_s, f"{UNIT} active (running) with a new main PID", every_s=POLL_S))

    def journal(self, since_epoch_s: float, unit: str = UNIT) -> list[dict[str, Any]]:
        """The unit's journal entries since a wall-clock time, as journald's JSON objects."""
        out = self.box.run(
            ["journalctl", "--unit", unit, "--output", "json", "--no-pager", "--since", f"@{since_epoch_s:.6f}"]
        ).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def messages(self, since_epoch_s: float) -> list[str]:
        return [str(entry.get("MESSAGE", "")) for entry in self.journal(since_epoch_s)]

    # -- the lab ----------------------------------------------------------------------------------------------

    def write(self, inside: str, text: str) -> None:
        self.box.write(inside, text)

    def start_forecourt(self) -> str:
        """The simulated dispenser on a pty line; the agent's end gets a serial adapter's owner and mode
        (root:dialout 0660, what udev gives a ttyUSB). Returns the pty the line ends in."""
        self.write(f"{LAB}/simulators.toml", SIMULATORS_TOML)
        self.box.run(["mkdir", "-p", f"{LAB}/tty"])
        self.box.run(
            [
                "systemd-run",
                "--unit=lab-forecourt",
                f"--working-directory={LAB}",
                *LAB_PYTHON,
                "-m",
                "simulators.cli",
                "run",
                "--config",
                f"{LAB}/simulators.toml",
            ]
        )
        pty = wait_until(self._line_pty, 30, "the forecourt's pty", every_s=POLL_S)
        self.box.run(["chgrp", "dialout", pty])
        self.box.run(["chmod", "0660", pty])
        return str(pty)

    def _line_pty(self) -> str:
        return self.box.run(["readlink", "-e", LINE], check=False).stdout.strip()

    def start_platform(self) -> None:
        """The reference receiver on the box's broker; it verifies signatures and the chain and acks."""
        self.box.run(
            [
                "systemd-run",
                "--unit=lab-platform",
                f"--working-directory={LAB}",
                *LAB_PYTHON,
                "-m",
                "simulators.cli",
                "platform",
                "--db",
                f"{LAB}/platform.sqlite",
                "--station",
                f"{STATION}={LAB}/station.pub",
                "--broker",
                "127.0.0.1:1883",
                "--report",
                REPORT,
            ]
        )
        wait_until(lambda: self.box.path(REPORT).exists(), 30, "the receiver's first report", every_s=POLL_S)

    def chain(self) -> Chain:
        report = json.loads(self.box.path(REPORT).read_text())
        station = report["stations"][STATION]
        return Chain(
            ok=station["ok"],
            upto=station["upto"],
            highest_seq=station["highest_seq"],
            gaps=station["gaps"],
            forks=station["forks"],
            chain_breaks=station["chain_breaks"],
            by_type=station["by_type"],
            status=station.get("status"),
        )

    def wait_chain_past(self, seq: int, timeout_s: float) -> Chain:
        """Wait until the platform has every record up to some seq above `seq`, linked; return what it has."""

        def past() -> Chain | None:
            chain = self.chain()
            return chain if chain.upto > seq else None

        chain: Chain = wait_until(past, timeout_s, f"the platform to ack past seq {seq}", every_s=POLL_S)
        assert chain.whole, f"the platform's chain has a gap, fork, break or rejection: {chain}"
        return chain

    def status_json(self) -> dict[str, Any]:
        out = self.box.run(["station-agent", "status", "--json"], check=False).stdout
        return dict(json.loads(out))

    def file_digest(self, inside: str) -> str:
        return self.box.run(["sha256sum", inside]).stdout.split()[0]

    def host_path(self, inside: str) -> Path:
        return self.box.path(inside)
