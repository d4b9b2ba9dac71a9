"""Figure 11, startup: how long the real agent takes from exec to READY=1 and to its first poll.

`station-agent run` on the demo's station (broker and simulators already up), started the way systemd starts
a `Type=notify` service: NOTIFY_SOCKET names a Unix datagram socket the benchmark binds and listens on, a
stand-in for systemd's. Two starts: on an empty outbox, and on one holding `agent_drain_backlog` records
(50,000 in the full set) not yet acknowledged, the box after a long outage. Each gives the wall seconds from
spawn to READY=1 and to the first poll (the first `device_online` in the agent's log: a device answered), and
the agent process's CPU seconds at both moments (exec included: the config check before the exec counts too).
On a 1 GHz ARM gateway the CPU seconds are what stretch: the wall time here, on a fast loaded box, is mostly them.

The gateway's modules are byte-compiled before the starts, as installing its package does: a checkout run with
PYTHONDONTWRITEBYTECODE (a development box, CI) would otherwise compile them from source on every start, twice
(the config check and the process both import them), about 0.25 CPU s that no gateway spends.
"""

from __future__ import annotations

import compileall
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import agent
import drivers
from agent.ledger.keys import generate_key_file
from bench.agent_process import running_station
from bench.agent_run import alive_before
from bench.procfs import cpu_seconds
from bench.report import Target
from bench.scale import Scale
from bench.workload import prefill, transactions
from station_lab.demo import STATION_ID

FIRST_POLL = '"device_online"'
"""What the agent logs (JSON) when a device answers for the first time."""
WAIT_S = 0.005
GATEWAY_PACKAGES = (agent, drivers)
"""The gateway's distribution (pyproject.toml), whose byte code an installed box carries."""
BYTE_CODE = "compiled before the starts, as an installed package carries it"


@dataclass(frozen=True, slots=True)
class Start:
    """One start of the agent on an outbox of `outbox_records` unacknowledged records."""

    outbox_records: int
    wall_s_to_ready: float
    cpu_s_to_ready: float
    wall_s_to_first_poll: float
    cpu_s_to_first_poll: float


@dataclass(frozen=True, slots=True)
class StartupFigure:
    empty: Start
    backlog: Start
    byte_code: str = BYTE_CODE

    def targets(self) -> tuple[Target, ...]:
        return ()  # no target yet: the figure is there to be read against the next change


def run(scale: Scale, workdir: Path) -> StartupFigure:
    compile_gateway()
    return StartupFigure(
        empty=measure_start(workdir / "empty", scale, 0),
        backlog=measure_start(workdir / "backlog", scale, scale.agent_drain_backlog),
    )


def compile_gateway() -> None:
    """Write the byte code of the gateway's modules beside their sources (an editable install runs them there);
    compileall writes even where PYTHONDONTWRITEBYTECODE is set, and skips a module whose byte code is current."""
    for package in GATEWAY_PACKAGES:
        where = Path(package.__file__ or "").parent
        if not compileall.compile_dir(where, quiet=1):
            raise RuntimeError(f"could not byte-compile {where}: the start-up figure would count compiling")


def measure_start(workdir: Path, scale: Scale, records: int) -> Start:
    workdir.mkdir(parents=True)
    key = generate_key_file(workdir / "keys" / "device.key")
    if records:
        prefill(workdir / "outbox.sqlite", transactions(records, time.time_ns() // 1_000_000 - 1_000), key, STATION_ID)
    notify_path = workdir / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.setblocking(False)
        with running_station(workdir, scale, key, {"NOTIFY_SOCKET": str(notify_path)}) as (agent, _):
            deadline = agent.started_at + scale.timeout_s
            ready: tuple[float, float] | None = None
            while ready is None:
                alive_before(agent, deadline, "READY=1")
                try:
                    message = notify.recv(4096)
                except BlockingIOError:
                    time.sleep(WAIT_S)
                    continue
                if b"READY=1" in message.split(b"\n"):
                    ready = (time.monotonic() - agent.started_at, cpu_seconds(agent.pid))
            while FIRST_POLL not in agent.output():
                alive_before(agent, deadline, "its first poll")
                time.sleep(WAIT_S)
            first_poll = (time.monotonic() - agent.started_at, cpu_seconds(agent.pid))
    start = Start(records, ready[0], ready[1], first_poll[0], first_poll[1])
    print(f"startup: {records} records, ready {ready[0]:.2f} s, first poll {first_poll[0]:.2f} s", file=sys.stderr)
    return start
