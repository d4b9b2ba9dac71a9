"""Figures 9 and 10, poll_cost_tcp and poll_growth: what polling Modbus TCP devices costs the real agent process.

poll_cost_tcp: 20 devices (ten dispensers, each a pump controller and a pulse counter behind its own Modbus TCP
endpoint, the way a dispenser's Modbus TCP gateway is wired) polled at 10 Hz, served by `station-sim run`, in
real time; customers fuel as in the demo. The agent is `station-agent run` as the demo starts it. Over a window
of `poll_cost_seconds` it gives the agent process's CPU per device poll and per Modbus request, its peak RSS and
its thread count. The raw reference is a bare socket loop sending the same request frames (MBAP + PDU) to the
same simulator endpoints and reading each answer whole: the CPU of a request that no TCP master in Python can
skip. ThingsBoard IoT Gateway 3.8.5 measured 0.665 ms of CPU per device poll (two reads) at the same load on this
kind of machine; the target is a sixth of it, 0.1 ms.

poll_growth: the CPU per second of the agent at 4, 16, 64 and 128 devices polled at 2 Hz over TCP, so the cost of
a bigger station is a line to read (a fit of CPU share against devices: its slope is the cost of one device).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agent.ledger.keys import generate_key_file
from bench.agent_process import import_floor_kb
from bench.agent_run import agent_run, alive_before
from bench.forecourt import Forecourt
from bench.poll_cost import platform_section, snapshot, wait_until_polling
from bench.procfs import memory_kb, window_cpu_s
from bench.report import Target, per_s, ratio
from bench.scale import Scale
from drivers.modbus import tcp
from drivers.modbus.pdu import ReadRegistersRequest, encode_request
from simulators.broker import free_loopback_port

DEVICES = 20
POLL_INTERVAL_MS = 100
GROWTH_DEVICES = (4, 16, 64, 128)
GROWTH_INTERVAL_MS = 500
THINGSBOARD_MS_PER_DEVICE_POLL = 0.665
TARGET_MS_PER_DEVICE_POLL = 0.1
BARE_REQUESTS = 2000


@dataclass(frozen=True, slots=True)
class TcpWindow:
    """One measured window of the agent polling `devices` Modbus TCP devices every `poll_interval_ms`."""

    devices: int
    poll_interval_ms: int
    window_s: float
    polls: int
    polls_per_s: float
    nominal_polls_per_s: float
    failed_polls: int
    requests: int
    cpu_s: float
    cpu_share_of_one_core: float
    cpu_ms_per_poll: float
    cpu_ms_per_request: float
    threads: int
    vm_hwm_kb: int


@dataclass(frozen=True, slots=True)
class PollCostTcpFigure:
    window: TcpWindow
    bare_cpu_ms_per_request: float
    """The bare socket loop's CPU per request to the same endpoints."""
    ratio_per_request: float
    thingsboard_ms_per_device_poll: float
    import_floor_kb: int

    def targets(self) -> tuple[Target, ...]:
        return (
            Target(
                "poll_cost_tcp.cpu_per_device_poll",
                self.window.cpu_ms_per_poll,
                TARGET_MS_PER_DEVICE_POLL,
                "ms",
                at_most=True,
            ),
        )


@dataclass(frozen=True, slots=True)
class PollGrowthFigure:
    windows: tuple[TcpWindow, ...]
    slope_share_per_device: float
    """Least-squares slope of the CPU share of one core against the number of devices."""
    intercept_share: float
    """Its intercept: the agent's cost with no device at all (heartbeats, status, uplink)."""

    def targets(self) -> tuple[Target, ...]:
        return ()


def _forecourt(devices: int) -> Forecourt:
    dispensers = max(1, devices // 2)
    return Forecourt(
        lines=dispensers, dispensers_per_line=1, tcp_ports=tuple(free_loopback_port() for _ in range(dispensers))
    )


def measure(
    scale: Scale, workdir: Path, devices: int, interval_ms: int, *, seconds: float, bare: bool
) -> tuple[TcpWindow, float]:
    """One window of the agent on a TCP forecourt of `devices`; with `bare`, also the bare loop's CPU per
    request (ms), measured before the agent starts."""
    forecourt = _forecourt(devices)
    key = generate_key_file(workdir / "keys" / "device.key")
    polled = sum(len(forecourt.polled_units(line)) for line in forecourt.line_names())
    bare_ms = float("nan")
    with agent_run(workdir, scale, key) as station:
        station.start_simulators(forecourt.simulators_toml(platform_section(station.wiring)))
        if bare:
            bare_ms = bare_cpu_ms_per_request(forecourt)
        agent = station.start_agent(
            forecourt.agent_toml(workdir, station.wiring.broker, station.wiring.status_path, interval_ms)
        )
        wait_until_polling(agent, station, polled, scale.timeout_s)
        first = snapshot(agent, station, scale.timeout_s)
        end = first.at + seconds
        while time.monotonic() < end:
            alive_before(agent, end + scale.timeout_s, "the end of the window")
            time.sleep(0.25)
        last = snapshot(agent, station, scale.timeout_s)
        threads = len(os.listdir(f"/proc/{agent.pid}/task"))
        peak_kb = memory_kb(agent.pid, "VmHWM")
    polls, requests = last.polls - first.polls, last.requests - first.requests
    window_s, cpu_s = last.at - first.at, window_cpu_s(first.threads_cpu_ns, last.threads_cpu_ns)
    print(f"poll_cost_tcp: {polled} devices, {polls} polls in {window_s:.1f} s, {cpu_s:.2f} CPU s", file=sys.stderr)
    window = TcpWindow(
        devices=polled,
        poll_interval_ms=interval_ms,
        window_s=window_s,
        polls=polls,
        polls_per_s=per_s(polls, window_s),
        nominal_polls_per_s=polled * 1000 / interval_ms,
        failed_polls=last.failed_polls - first.failed_polls,
        requests=requests,
        cpu_s=cpu_s,
        cpu_share_of_one_core=ratio(cpu_s, window_s),
        cpu_ms_per_poll=cpu_s / polls * 1000 if polls else float("nan"),
        cpu_ms_per_request=cpu_s / requests * 1000 if requests else float("nan"),
        threads=threads,
        vm_hwm_kb=peak_kb,
    )
    return window, bare_ms


def bare_cpu_ms_per_request(forecourt: Forecourt) -> float:
    """A bare socket loop: each endpoint's request frames in turn, each answer read whole; CPU ms per request."""
    sockets: list[tuple[socket.socket, list[tuple[bytes, int]]]] = []
    for line, port in zip(forecourt.line_names(), forecourt.tcp_ports, strict=True):
        frames = []
        for unit in forecourt.polled_units(line):
            for request in unit.driver.requests:
                pdu = encode_request(ReadRegistersRequest(request.function, request.address, request.count))
                frames.append((tcp.encode_adu(0, unit.unit, pdu), tcp.MBAP_BYTES + 2 + 2 * request.count))
        sockets.append((socket.create_connection(("127.0.0.1", port), timeout=2.0), frames))
    try:
        started = time.thread_time()
        for count in range(BARE_REQUESTS):
            connection, frames = sockets[count % len(sockets)]
            frame, answer_bytes = frames[(count // len(sockets)) % len(frames)]
            connection.sendall(frame)
            received = 0
            while received < answer_bytes:
                chunk = connection.recv(answer_bytes - received)
                if not chunk:
                    raise RuntimeError("the simulator closed a Modbus TCP connection during the bare loop")
                received += len(chunk)
        return (time.thread_time() - started) / BARE_REQUESTS * 1000
    finally:
        for connection, _ in sockets:
            connection.close()


def run(scale: Scale, workdir: Path) -> PollCostTcpFigure:
    window, bare_ms = measure(scale, workdir, DEVICES, POLL_INTERVAL_MS, seconds=scale.poll_cost_seconds, bare=True)
    return PollCostTcpFigure(
        window=window,
        bare_cpu_ms_per_request=bare_ms,
        ratio_per_request=ratio(window.cpu_ms_per_request, bare_ms),
        thingsboard_ms_per_device_poll=THINGSBOARD_MS_PER_DEVICE_POLL,
        import_floor_kb=import_floor_kb("import agent.process"),
    )


def run_growth(scale: Scale, workdir: Path) -> PollGrowthFigure:
    windows = []
    for devices in GROWTH_DEVICES:
        run_dir = workdir / f"devices-{devices}"
        run_dir.mkdir()
        window, _ = measure(
            scale, run_dir, devices, GROWTH_INTERVAL_MS, seconds=scale.poll_cost_seconds / 3, bare=False
        )
        windows.append(window)
    slope, intercept = _fit([(w.devices, w.cpu_share_of_one_core) for w in windows])
    return PollGrowthFigure(tuple(windows), slope, intercept)


def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else float("nan")
    return slope, mean_y - slope * mean_x
