"""Figure 5, rss (and the agent's own disk writes): the real agent process, as `station-agent run` starts it.

Two runs, each with its own broker, `station-sim run` (forecourt plus reference platform) and the agent, all
started from the demo's configs the way the demo starts them (`bench.agent_run`):

- station: a small simulated station for `station_seconds`; memory is the process's peak (VmHWM), and its
  block writes per record are taken over the steady part (after start-up) at that nominal load;
- drain: the same station whose outbox already holds a backlog (written beforehand with the station's own
  key, as if the link had been down), run until the platform has acknowledged all of it.

The raw reference is the peak memory of this interpreter importing
what the agent imports, before it does anything: the floor the agent's own work sits on.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.ledger.keys import DeviceKey, generate_key_file
from bench.agent_run import agent_run, alive_before
from bench.processes import PACKAGE_ROOT, Child
from bench.procfs import IoCounters, io_counters, memory_kb
from bench.report import Target, ratio
from bench.scale import Scale
from bench.workload import prefill, transactions
from station_lab.demo import STATION_ID, agent_config, simulators_config, write_probe_chart

TARGET_BYTES = 40_000_000
DISK_TARGET_BYTES_PER_RECORD = 2048
WARM_UP_S = 2.0
SAMPLE_S = 0.25
STATUS_LINE = 'path = "status.json"'
IMPORT_FLOORS = {
    "interpreter": "pass",
    "pydantic": "import pydantic",
    "agent.config": "import agent.config",
    "agent.daemon": "import agent.daemon",
    "agent.cli": "import agent.cli",
    "agent.process": "import agent.process",
}
"""Peak memory of a fresh interpreter after each statement. `agent.cli` is what `station-agent run` loads to
validate; it then execs into `agent.process` (same PID, fresh address space), whose imports are the floor of
the long-running process."""


@dataclass(frozen=True, slots=True)
class ProcessUse:
    """What the agent process cost: memory from /proc/PID/status, block writes from /proc/PID/io."""

    vm_hwm_kb: int
    vm_rss_kb: int
    rss_anon_kb: int
    """Of vm_rss_kb, the process's own heap and stacks; the rest is mapped files (the interpreter, libcrypto)."""
    write_bytes: int
    cancelled_write_bytes: int
    seconds: float
    outbox_bytes: int
    wal_bytes: int


@dataclass(frozen=True, slots=True)
class StationRun:
    use: ProcessUse
    records: int
    """Records committed in the measured window (after start-up)."""
    window_s: float
    write_bytes_per_record: float
    write_bytes_per_s: float


@dataclass(frozen=True, slots=True)
class DrainRun:
    use: ProcessUse
    backlog: int
    seconds_to_acked: float
    """From spawning the process (interpreter start included) to the platform's ack of the whole backlog."""
    write_bytes_per_record: float


@dataclass(frozen=True, slots=True)
class RssFigure:
    station: StationRun
    drain: DrainRun
    import_floor_kb: dict[str, int]
    ratio: float
    """Peak of the station run over the `agent.process` import floor."""

    def targets(self) -> tuple[Target, ...]:
        return (
            Target("rss.station_peak", self.station.use.vm_hwm_kb * 1024 / 1e6, TARGET_BYTES / 1e6, "MB", at_most=True),
            Target("rss.drain_peak", self.drain.use.vm_hwm_kb * 1024 / 1e6, TARGET_BYTES / 1e6, "MB", at_most=True),
            Target(
                "disk.agent_drain_bytes_per_record",
                self.drain.write_bytes_per_record,
                DISK_TARGET_BYTES_PER_RECORD,
                "B",
                at_most=True,
            ),
        )


def run(scale: Scale, workdir: Path) -> RssFigure:
    station = run_station(workdir / "station", scale)
    drain = run_drain(workdir / "drain", scale)
    floors = {name: import_floor_kb(statement) for name, statement in IMPORT_FLOORS.items()}
    return RssFigure(station, drain, floors, ratio(station.use.vm_hwm_kb, floors["agent.process"]))


def run_station(workdir: Path, scale: Scale) -> StationRun:
    workdir.mkdir(parents=True)
    with running_station(workdir, scale, generate_key_file(workdir / "keys" / "device.key")) as (agent, status):
        deadline = time.monotonic() + scale.timeout_s
        while status().get("uplink", {}).get("state") != "online":
            alive_before(agent, deadline, "online")
            time.sleep(SAMPLE_S)
        time.sleep(WARM_UP_S)
        first_head, first_io, first_at = status()["recorder"]["head_seq"], io_counters(agent.pid), time.monotonic()
        end = first_at + scale.station_seconds
        while time.monotonic() < end:
            alive_before(agent, end + 1.0, "the end of the run")
            time.sleep(SAMPLE_S)
        records = status()["recorder"]["head_seq"] - first_head
        window_s = time.monotonic() - first_at
        use = process_use(agent, workdir, first_io, window_s)
    print(f"rss: station run peak {use.vm_hwm_kb} kB, {records} records in {window_s:.0f} s", file=sys.stderr)
    return StationRun(
        use=use,
        records=records,
        window_s=window_s,
        write_bytes_per_record=use.write_bytes / records if records else math.nan,
        write_bytes_per_s=use.write_bytes / window_s,
    )


def run_drain(workdir: Path, scale: Scale) -> DrainRun:
    workdir.mkdir(parents=True)
    key = generate_key_file(workdir / "keys" / "device.key")
    count = scale.agent_drain_backlog
    prefill(workdir / "outbox.sqlite", transactions(count, time.time_ns() // 1_000_000 - 1_000), key, STATION_ID)
    with running_station(workdir, scale, key) as (agent, status):
        deadline = time.monotonic() + scale.timeout_s
        while status().get("uplink", {}).get("acked_upto", 0) < count:
            alive_before(agent, deadline, f"{count} records acknowledged")
            time.sleep(SAMPLE_S / 5)
        acked_s = time.monotonic() - agent.started_at
        use = process_use(agent, workdir, IoCounters(0, 0, 0), acked_s)
    print(f"rss: drain of {count} acknowledged {acked_s:.1f} s after start, peak {use.vm_hwm_kb} kB", file=sys.stderr)
    return DrainRun(use=use, backlog=count, seconds_to_acked=acked_s, write_bytes_per_record=use.write_bytes / count)


@contextmanager
def running_station(
    workdir: Path, scale: Scale, key: DeviceKey, env: Mapping[str, str] | None = None
) -> Iterator[tuple[Child, Callable[[], dict[str, Any]]]]:
    """Broker, `station-sim run` and `station-agent run` (with `env` added to its environment) from the demo's
    configs; the agent and its status."""
    with agent_run(workdir, scale, key) as run:
        wiring = run.wiring
        config = agent_config(workdir, wiring.broker, wiring.tcp_port, time_scale=1.0)
        if config.count(STATUS_LINE) != 1:
            raise RuntimeError(f"the demo's agent config no longer has one '{STATUS_LINE}' line to move to tmpfs")
        run.start_simulators(simulators_config(wiring.broker, wiring.tcp_port, wiring.session, time_scale=1.0))
        write_probe_chart(workdir)
        agent = run.start_agent(config.replace(STATUS_LINE, f'path = "{wiring.status_path}"'), env)
        yield agent, run.status


def process_use(agent: Child, workdir: Path, since: IoCounters, seconds: float) -> ProcessUse:
    """The agent's peak and current memory, and its block writes since `since`, read while it still runs."""
    written = io_counters(agent.pid).since(since)
    return ProcessUse(
        vm_hwm_kb=memory_kb(agent.pid, "VmHWM"),
        vm_rss_kb=memory_kb(agent.pid, "VmRSS"),
        rss_anon_kb=memory_kb(agent.pid, "RssAnon"),
        write_bytes=written.write_bytes,
        cancelled_write_bytes=written.cancelled_write_bytes,
        seconds=seconds,
        outbox_bytes=_size(workdir / "outbox.sqlite"),
        wal_bytes=_size(workdir / "outbox.sqlite-wal"),
    )


def import_floor_kb(statement: str) -> int:
    """VmHWM of a fresh interpreter that has run `statement` and nothing else."""
    code = f"{statement}\nprint(open('/proc/self/status').read())"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=PACKAGE_ROOT
    )
    for line in result.stdout.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM line after {statement!r}")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
