"""The real agent process beside its simulated station, started the way the demo starts them.

A broker on a free loopback port, `station-sim run --config simulators.toml` and `station-agent run --config
agent.toml` (`python -m agent.cli run`, which validates and then execs into `agent.process`, same PID), each
its own process, all stopped by PID when the `with` block ends. A figure writes the two configs itself (from
`Wiring`: the broker's address, a free port for a Modbus TCP line, the platform's session, the status path) and
may do its own work between starting the simulators and starting the agent.

The status file and the agent's log go to tmpfs, as they do on the gateway (`/run` and journald), so the
block writes counted for the agent are the outbox's.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.ledger.keys import DeviceKey
from bench.processes import Child, broker, child, python_module
from bench.scale import Scale
from simulators.broker import free_loopback_port

SIMULATORS_READY = "station-sim: running"


@dataclass(frozen=True, slots=True)
class Wiring:
    """What the configs of one run must agree on."""

    broker: str
    """HOST:PORT of this run's Mosquitto."""
    tcp_port: int
    """A free loopback port for a Modbus TCP line of the simulated station."""
    session: str
    """The platform receiver's MQTT client id, new for each run so nothing queued earlier reaches it."""
    status_path: Path
    """Where the agent's config must put its status file (tmpfs)."""


class AgentRun:
    """One run's processes; made by `agent_run`, which stops them all when its block ends."""

    def __init__(self, stack: ExitStack, workdir: Path, scale: Scale, key: DeviceKey) -> None:
        self._stack = stack
        self._workdir = workdir
        self._scale = scale
        (workdir / "station.pub").write_text(key.public_pem())
        self.volatile = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="station-bench-", dir=_tmpfs())))
        mosquitto = stack.enter_context(broker(workdir))
        self.wiring = Wiring(
            broker=mosquitto.address,
            tcp_port=free_loopback_port(),
            session=f"bench-platform-{key.kid}",
            status_path=self.volatile / "status.json",
        )

    def start_simulators(self, config_text: str) -> Child:
        """`station-sim run` on `config_text` (written as simulators.toml), returned once its lines are up."""
        path = self._workdir / "simulators.toml"
        path.write_text(config_text)
        simulators = self._stack.enter_context(
            child(
                "station-sim",
                python_module("simulators.cli", "run", "--config", str(path)),
                self._workdir / "simulators.log",
            )
        )
        simulators.wait_for_output(SIMULATORS_READY, self._scale.timeout_s)
        return simulators

    def start_agent(self, config_text: str, env: Mapping[str, str] | None = None) -> Child:
        """`station-agent run` on `config_text` (written as agent.toml), returned as soon as it is spawned;
        `env` adds to its environment."""
        if str(self.wiring.status_path) not in config_text:
            raise ValueError(f"the agent config must write its status to {self.wiring.status_path} (tmpfs)")
        path = self._workdir / "agent.toml"
        path.write_text(config_text)
        return self._stack.enter_context(
            child(
                "station-agent",
                python_module("agent.cli", "run", "--config", str(path)),
                self.volatile / "agent.log",
                env=env,
            )
        )

    def status(self) -> dict[str, Any]:
        """The agent's last status snapshot, or {} before the first one."""
        return read_json(self.wiring.status_path)


@contextmanager
def agent_run(workdir: Path, scale: Scale, key: DeviceKey) -> Iterator[AgentRun]:
    with ExitStack() as stack:
        yield AgentRun(stack, workdir, scale, key)


def alive_before(agent: Child, deadline: float, what: str) -> None:
    """Raise if the agent has ended, or if `deadline` has passed before `what` happened."""
    if not agent.alive():
        raise RuntimeError(
            f"the agent ended (exit {agent.process.returncode}) before {what}; its log ends: {agent.output()[-800:]}"
        )
    if time.monotonic() > deadline:
        raise TimeoutError(f"the agent did not reach {what} in time")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _tmpfs() -> str | None:
    """A RAM-backed directory like the gateway's `/run`, if this machine has one; else the default temp dir."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None
