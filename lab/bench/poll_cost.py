"""Figure 8, poll_cost: what polling a 16-nozzle station at 2 Hz costs the real agent process.

Eight dispensers of two nozzles (eight pump controllers and eight pulse counters, 16 Modbus units) on four
RS-485 lines at 9600 baud, two dispensers a line, every device polled every 500 ms. The lines are pty pairs
to `station-sim run` with the line timing emulated, so each exchange takes as long as on a real line: a
controller's poll 147 ms, a counter's 60 ms, which fills a line to 83 % at 2 Hz (that is why four lines: two
dispensers are all a 9600-baud line carries at this rate). Customers fuel in real time, the reference platform
acknowledges the records, and the agent is `station-agent run` started as the demo starts it
(`bench.agent_run`), which validates its config and execs into `agent.process` (same PID).

Once every device is online and the uplink is up, a window of `poll_cost_seconds` is measured from one
status snapshot to another: the agent process's CPU time (utime + stime from /proc/PID/stat, all threads:
pollers, station, recorder, uplink, status writer) read the moment each snapshot appears, against the polls
the snapshots count. Memory is the process's peak resident set (VmHWM) at the end.

Raw references: for CPU, the same request frames sent by a bare pyserial loop (`bench.bare_line`) on one of
the lines before the agent starts, the I/O part of a poll that no master can skip; for memory, the peak of a
fresh interpreter that has only imported `agent.process`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agent.ledger.keys import generate_key_file
from bench.agent_process import TARGET_BYTES, import_floor_kb
from bench.agent_run import AgentRun, Wiring, agent_run, alive_before
from bench.bare_line import exchanges, read_frame
from bench.forecourt import Forecourt
from bench.processes import Child
from bench.procfs import cpu_seconds, memory_kb, threads_cpu_ns, window_cpu_s
from bench.report import Target, per_s, ratio
from bench.scale import Scale
from station_lab.demo import STATION_ID

LINES = 4
DISPENSERS_PER_LINE = 2
BAUDRATE = 9600
POLL_INTERVAL_MS = 500
TARGET_RATIO = 1.5
"""The agent's CPU per poll at most one and a half times a bare serial loop's on the same frames."""
WARM_UP_S = 2.0
FLOOR_EXCHANGES = 32
FLOOR_TIMEOUT_S = 0.3
SNAPSHOT_WAIT_S = 0.002
IMPORT_FLOORS = {"interpreter": "pass", "agent.process": "import agent.process"}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The agent's counters at the moment a status snapshot appeared, and its CPU time read right then."""

    at: float
    cpu_s: float
    """The whole process's, in 10 ms ticks: what start-up took."""
    threads_cpu_ns: dict[int, int]
    """Each running thread's, to the nanosecond: what a window took (`window_cpu_s`)."""
    polls: int
    failed_polls: int
    requests: int
    failed_requests: int
    head_seq: int


@dataclass(frozen=True, slots=True)
class PollCostFigure:
    nozzles: int
    devices: int
    lines: int
    baudrate: int
    poll_interval_ms: int
    window_s: float
    polls: int
    polls_per_s: float
    nominal_polls_per_s: float
    failed_polls: int
    requests: int
    failed_requests: int
    records: int
    """Records the agent committed in the window (transactions, heartbeats)."""
    cpu_s: float
    cpu_s_per_1000_polls: float
    cpu_share_of_one_core: float
    startup_cpu_s: float
    """CPU time before the window: validation (with pydantic), exec, imports, start-up and warm-up."""
    bare_cpu_s_per_1000_polls: float
    """The bare pyserial loop's CPU time for the same requests: the floor of a poll's I/O."""
    ratio: float
    """cpu_s_per_1000_polls over bare_cpu_s_per_1000_polls."""
    simulator_cpu_s_per_1000_polls: float
    vm_hwm_kb: int
    vm_rss_kb: int
    rss_anon_kb: int
    import_floor_kb: dict[str, int]
    rss_ratio: float
    """Peak over the `agent.process` import floor."""

    def targets(self) -> tuple[Target, ...]:
        return (
            Target("poll_cost.ratio_to_bare_loop", self.ratio, TARGET_RATIO, "x the bare loop", at_most=True),
            Target("poll_cost.rss_peak", self.vm_hwm_kb * 1024 / 1e6, TARGET_BYTES / 1e6, "MB", at_most=True),
        )


def run(scale: Scale, workdir: Path) -> PollCostFigure:
    forecourt = Forecourt(lines=LINES, dispensers_per_line=DISPENSERS_PER_LINE, baudrate=BAUDRATE)
    key = generate_key_file(workdir / "keys" / "device.key")
    devices = sum(len(forecourt.polled_units(line)) for line in forecourt.line_names())
    with agent_run(workdir, scale, key) as station:
        wiring = station.wiring
        simulators = station.start_simulators(forecourt.simulators_toml(platform_section(wiring)))
        bare_cpu_s_per_request = bare_floor(forecourt, workdir)
        agent = station.start_agent(forecourt.agent_toml(workdir, wiring.broker, wiring.status_path, POLL_INTERVAL_MS))
        wait_until_polling(agent, station, devices, scale.timeout_s)
        first, first_sim = snapshot(agent, station, scale.timeout_s), cpu_seconds(simulators.pid)
        end = first.at + scale.poll_cost_seconds
        while time.monotonic() < end:
            alive_before(agent, end + scale.timeout_s, "the end of the window")
            time.sleep(0.25)
        last, last_sim = snapshot(agent, station, scale.timeout_s), cpu_seconds(simulators.pid)
        peak_kb, rss_kb, anon_kb = (memory_kb(agent.pid, name) for name in ("VmHWM", "VmRSS", "RssAnon"))
    floors = {name: import_floor_kb(statement) for name, statement in IMPORT_FLOORS.items()}
    polls, requests = last.polls - first.polls, last.requests - first.requests
    window_s, cpu_s = last.at - first.at, window_cpu_s(first.threads_cpu_ns, last.threads_cpu_ns)
    cpu_per_1000 = cpu_s / polls * 1000 if polls else float("nan")
    bare_per_1000 = bare_cpu_s_per_request * requests / polls * 1000 if polls else float("nan")
    print(f"poll_cost: {polls} polls in {window_s:.1f} s, {cpu_s:.2f} CPU s, peak {peak_kb} kB", file=sys.stderr)
    return PollCostFigure(
        nozzles=LINES * DISPENSERS_PER_LINE * 2,
        devices=devices,
        lines=LINES,
        baudrate=BAUDRATE,
        poll_interval_ms=POLL_INTERVAL_MS,
        window_s=window_s,
        polls=polls,
        polls_per_s=per_s(polls, window_s),
        nominal_polls_per_s=devices * 1000 / POLL_INTERVAL_MS,
        failed_polls=last.failed_polls - first.failed_polls,
        requests=requests,
        failed_requests=last.failed_requests - first.failed_requests,
        records=last.head_seq - first.head_seq,
        cpu_s=cpu_s,
        cpu_s_per_1000_polls=cpu_per_1000,
        cpu_share_of_one_core=ratio(cpu_s, window_s),
        startup_cpu_s=first.cpu_s,
        bare_cpu_s_per_1000_polls=bare_per_1000,
        ratio=ratio(cpu_per_1000, bare_per_1000),
        simulator_cpu_s_per_1000_polls=(last_sim - first_sim) / polls * 1000 if polls else float("nan"),
        vm_hwm_kb=peak_kb,
        vm_rss_kb=rss_kb,
        rss_anon_kb=anon_kb,
        import_floor_kb=floors,
        rss_ratio=ratio(peak_kb, floors["agent.process"]),
    )


def bare_floor(forecourt: Forecourt, workdir: Path) -> float:
    """CPU seconds per request of the bare loop, on the first line, sending that line's devices' frames."""
    line = forecourt.line_names()[0]
    frames = [
        read_frame(unit.unit, request) for unit in forecourt.polled_units(line) for request in unit.driver.requests
    ]
    done = exchanges(
        forecourt.agent_port(workdir, line),
        frames,
        forecourt.baudrate,
        seconds=FLOOR_EXCHANGES * 2 * FLOOR_TIMEOUT_S,
        max_count=FLOOR_EXCHANGES,
        timeout_s=FLOOR_TIMEOUT_S,
    )
    if len(done) < 2 or not all(exchange.ok for exchange in done):
        raise RuntimeError(f"the bare loop on {line} got {sum(e.ok for e in done)} of {len(done)} answers")
    return (done[-1].cpu_s - done[0].cpu_s) / (len(done) - 1)


def snapshot(agent: Child, station: AgentRun, timeout_s: float) -> Snapshot:
    """Wait for the next status snapshot, read the agent's CPU time the moment it appears, then its counters."""
    path = station.wiring.status_path
    deadline = time.monotonic() + timeout_s
    before = path.stat().st_mtime_ns
    while path.stat().st_mtime_ns == before:
        alive_before(agent, deadline, "its next status snapshot")
        time.sleep(SNAPSHOT_WAIT_S)
    cpu_s, threads, at = cpu_seconds(agent.pid), threads_cpu_ns(agent.pid), time.monotonic()
    status = station.status()
    lines = status["lines"]
    devices = [device for line in lines for device in line["devices"]]
    return Snapshot(
        at=at,
        cpu_s=cpu_s,
        threads_cpu_ns=threads,
        polls=sum(device["polls"] for device in devices),
        failed_polls=sum(device["failed_polls"] for device in devices),
        requests=sum(line["bus"]["requests"] for line in lines),
        failed_requests=sum(line["bus"]["requests"] - line["bus"]["ok"] for line in lines),
        head_seq=status["recorder"]["head_seq"],
    )


def wait_until_polling(agent: Child, station: AgentRun, devices: int, timeout_s: float) -> None:
    """Until the uplink is online and every device answers, then the warm-up."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = station.status()
        online = [d for line in status.get("lines", []) for d in line["devices"] if d["state"] == "online"]
        if status.get("uplink", {}).get("state") == "online" and len(online) == devices:
            break
        alive_before(agent, deadline, f"the uplink online and all {devices} devices answering")
        time.sleep(0.25)
    time.sleep(WARM_UP_S)


def platform_section(wiring: Wiring) -> str:
    """The reference platform receiver, as the demo's simulators config has it."""
    return f"""[platform]
broker = "{wiring.broker}"
client_id = "{wiring.session}"
db = "platform.sqlite"
report = "platform-report.json"

[platform.stations]
{STATION_ID} = "station.pub"
"""
