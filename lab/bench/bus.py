"""Figure 7, bus: requests per second the agent's own poller gets through a 9600-baud RS-485 line.

The line is a pty pair to `station-sim run`, whose RTU slaves hold every answer for the time the exchange
takes on a real line (`emulate_line_timing`: request and answer at 11 bits per byte, plus 3.5 characters of
silence). On it, four dispensers of the demo's kind: four pump controllers and four pulse counters, each a
unit of its own, each poll one read (54 registers for a controller, 16 for a counter), as the shipped
profiles plan them.

The agent's side is the agent's own code, in this process: `LinePoller` with a `SerialRtuMaster` and each
device's `DeviceDriver`, every device due every 50 ms (the shortest poll period a config allows), so the line
is never idle. The sink the poller hands its events to notes when each reading came in and the poller
thread's CPU time then; nothing else is added to the agent's path.

Theoretical maximum, for the very frames of the run: each request costs (request bytes + answer bytes) x 11
bits at the baud rate, plus 3.5 characters of silence after each of its two frames. The ratio is that time
over the time the requests really took. Raw limit beside it: the same frames sent round and round by a bare
pyserial loop (`bench.bare_line`) to the same simulator, which is as fast as any master on this machine and
this simulator can be; `agent_added_us` is how much longer the agent's requests take than the bare ones.
The first second of each run (port opening, first answers) is left out of the window.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from pathlib import Path

from agent.clock import SystemClock
from agent.containment import Boundary
from agent.field.events import DeviceReading, FieldEvent
from agent.field.poller import LinePoller, PolledDevice
from bench.agent_run import SIMULATORS_READY
from bench.bare_line import Exchange, Frame, exchanges, read_frame
from bench.forecourt import Forecourt, PolledUnit
from bench.processes import child, python_module
from bench.procfs import cpu_seconds
from bench.report import Target, per_s, ratio
from bench.scale import Scale
from drivers.modbus import rtu
from drivers.modbus.master import SerialRtuMaster

TARGET_RATIO = 0.9
BAUDRATE = 9600
DISPENSERS = 4
POLL_INTERVAL_S = 0.05
"""The shortest poll period an agent config allows (`poll_interval_ms` >= 50)."""
TIMEOUT_S = 0.3
"""An RTU line's default `timeout_ms`."""
WARM_UP_S = 1.0
MAX_REQUESTS_PER_S = 1000
"""Bounds the bare loop's count; a 9600-baud line carries under 100 requests a second."""


@dataclass(frozen=True, slots=True)
class LineRun:
    """Requests completed in the measured window, the time they took and what the theory allows for them."""

    requests: int
    seconds: float
    theoretical_seconds: float
    requests_per_s: float
    theoretical_requests_per_s: float
    ratio: float
    """theoretical_seconds / seconds: 1.0 is a line that never waits for the master or the slaves."""
    overhead_us: float
    """Per request, the time beyond the theoretical line time."""
    overhead_us_by_registers: dict[int, float]
    cpu_us_per_request: float
    """CPU time of the thread that made the requests (the poller's, or the bare loop's)."""
    simulator_cpu_us_per_request: float
    """CPU time of the `station-sim` process over the whole run (its line server and its forecourt)."""
    failed_requests: int


@dataclass(frozen=True, slots=True)
class BusFigure:
    baudrate: int
    units: int
    registers_per_request: dict[int, int]
    """Requests of the agent's window by registers read (the mix)."""
    mean_registers_per_request: float
    theoretical_ms_by_registers: dict[int, float]
    bare: LineRun
    agent: LineRun
    agent_added_us: float
    """Per request, the agent's overhead beyond the bare loop's."""
    ratio: float
    """The agent's requests per second over the theoretical maximum for the same frames."""
    ratio_to_bare: float

    def targets(self) -> tuple[Target, ...]:
        return (Target("bus.ratio", self.ratio, TARGET_RATIO, "x theoretical", at_most=False),)


def exchange_time_s(frame: Frame, baudrate: int) -> float:
    """A request and its answer on the line, back to back, each followed by 3.5 characters of silence."""
    return rtu.frame_time_s(len(frame.adu) + frame.answer_bytes, baudrate) + 2 * rtu.silence_s(baudrate)


def run(scale: Scale, workdir: Path) -> BusFigure:
    forecourt = Forecourt(lines=1, dispensers_per_line=DISPENSERS, baudrate=BAUDRATE, emulate_line_timing=True)
    (line,) = forecourt.line_names()
    units = forecourt.polled_units(line)
    port = forecourt.agent_port(workdir, line)
    config = workdir / "simulators.toml"
    config.write_text(forecourt.simulators_toml())
    argv = python_module("simulators.cli", "run", "--config", str(config))
    with child("station-sim", argv, workdir / "simulators.log") as simulators:
        simulators.wait_for_output(SIMULATORS_READY, scale.timeout_s)
        frames = [read_frame(unit.unit, request) for unit in units for request in unit.driver.requests]
        sim_cpu = cpu_seconds(simulators.pid)
        done = exchanges(
            port,
            frames,
            BAUDRATE,
            seconds=scale.bus_seconds,
            max_count=int(scale.bus_seconds * MAX_REQUESTS_PER_S),
            timeout_s=TIMEOUT_S,
        )
        bare = line_run(done, sum(not e.ok for e in done), cpu_seconds(simulators.pid) - sim_cpu, len(done))
        print(f"bus: bare loop {bare.requests_per_s:.2f} requests/s, ratio {bare.ratio:.3f}", file=sys.stderr)
        sim_cpu = cpu_seconds(simulators.pid)
        done, failed, sent = poll_with_agent(port, units, scale.bus_seconds)
        agent = line_run(done, failed, cpu_seconds(simulators.pid) - sim_cpu, sent)
        print(f"bus: agent {agent.requests_per_s:.2f} requests/s, ratio {agent.ratio:.3f}", file=sys.stderr)
    mix: dict[int, int] = defaultdict(int)
    for exchange in _window(done)[1:]:
        for frame in exchange.frames:
            mix[frame.registers] += 1
    return BusFigure(
        baudrate=BAUDRATE,
        units=len(units),
        registers_per_request=dict(sorted(mix.items())),
        mean_registers_per_request=sum(registers * count for registers, count in mix.items()) / agent.requests,
        theoretical_ms_by_registers=dict(
            sorted((frame.registers, exchange_time_s(frame, BAUDRATE) * 1000) for frame in frames)
        ),
        bare=bare,
        agent=agent,
        agent_added_us=agent.overhead_us - bare.overhead_us,
        ratio=agent.ratio,
        ratio_to_bare=ratio(agent.requests_per_s, bare.requests_per_s),
    )


def poll_with_agent(port: Path, units: list[PolledUnit], seconds: float) -> tuple[list[Exchange], int, int]:
    """The agent's poller on the line for `seconds`: its readings as exchanges, failed and all requests sent."""
    frames = {unit.name: tuple(read_frame(unit.unit, request) for request in unit.driver.requests) for unit in units}
    done: list[Exchange] = []

    def sink(events: Sequence[FieldEvent]) -> None:
        for event in events:
            if isinstance(event, DeviceReading):
                done.append(Exchange(time.perf_counter(), time.thread_time(), frames[event.device], ok=True))

    master = SerialRtuMaster(port, BAUDRATE, timeout_s=TIMEOUT_S)
    devices = [
        PolledDevice(unit.name, unit.unit, POLL_INTERVAL_S, partial(unit.driver.read, master, unit.unit))
        for unit in units
    ]
    boundary = Boundary("poller rs485-1", lambda _intent: None, SystemClock())
    poller = LinePoller("rs485-1", devices, master, SystemClock(), sink, boundary=boundary)
    poller.start()
    try:
        threading.Event().wait(seconds)
    finally:
        poller.stop()
    if poller.alive():
        raise RuntimeError("the poller did not stop within 5 s of being told to")
    statistics = master.statistics()
    return done, statistics.requests - statistics.ok, statistics.requests


def line_run(done: list[Exchange], failed: int, simulator_cpu_s: float, sent: int) -> LineRun:
    """The window's figures: from the first exchange after the warm-up to the last, each timed from the one
    before it (requests follow each other, so that is the whole of its time on the line and off it)."""
    window = _window(done)
    if len(window) < 2:
        raise RuntimeError(f"only {len(window)} exchanges after the warm-up: the line did not answer")
    seconds = window[-1].ended_at - window[0].ended_at
    requests = sum(len(exchange.frames) for exchange in window[1:])
    theoretical = sum(exchange_time_s(frame, BAUDRATE) for exchange in window[1:] for frame in exchange.frames)
    overheads: dict[int, list[float]] = defaultdict(list)
    for before, exchange in pairwise(window):
        own = sum(exchange_time_s(frame, BAUDRATE) for frame in exchange.frames)
        overheads[sum(frame.registers for frame in exchange.frames)].append(exchange.ended_at - before.ended_at - own)
    return LineRun(
        requests=requests,
        seconds=seconds,
        theoretical_seconds=theoretical,
        requests_per_s=per_s(requests, seconds),
        theoretical_requests_per_s=per_s(requests, theoretical),
        ratio=ratio(theoretical, seconds),
        overhead_us=(seconds - theoretical) / requests * 1e6,
        overhead_us_by_registers={
            registers: sum(values) / len(values) * 1e6 for registers, values in sorted(overheads.items())
        },
        cpu_us_per_request=(window[-1].cpu_s - window[0].cpu_s) / requests * 1e6,
        simulator_cpu_us_per_request=simulator_cpu_s / sent * 1e6 if sent else float("nan"),
        failed_requests=failed,
    )


def _window(done: list[Exchange]) -> list[Exchange]:
    if not done:
        return []
    start = done[0].ended_at + WARM_UP_S
    return [exchange for exchange in done if exchange.ended_at >= start]
