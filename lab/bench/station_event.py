"""Figure station_event: what one field event costs the station model and the station loop, in µs of CPU.

The station is built as the agent builds it for the demo's config (`station_lab.demo.agent_config`: two
dispensers of two nozzles, each nozzle with its encoder and vapour meter on a pulse counter, three tanks, the
day's rules), from an empty outbox. It is fed the events a poll of dispenser D01 produces, in station time at
10 Hz (the controller's reading, then its pulse counter's 20 ms later), one case at a time:

- `idle_fresh`: an idle dispenser whose readings are new objects every poll (what the drivers hand over when
  a word changed somewhere in the answers);
- `idle_same`: the same idle dispenser whose answers are word for word those of the last poll, so the drivers
  hand over the very same reading objects again (drivers/device.py): most of a station's day;
- `fuelling`: nozzle 1 fuelling, its volume and its encoder's and vapour meter's counts rising every poll.

Each case is timed twice: `Station.on_event` alone, and through the station loop as the agent runs it (a
poll's events handed over at once, the hand-over counted in, and taken by one `StationLoop.step` from a real
inbox, with the containment, the status view watching the intents, the nozzles' phases for the status, and
the once-a-second tick at its station-time rate; the agent's thread takes the hand-overs of several pollers in
one turn). The figure is the calling thread's CPU (`time.thread_time`) per event, best of three runs; what the
agent's station thread spends per event in `poll_cost_tcp` beyond the loop's figure is its wake-ups.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.clock import Instant, SystemClock
from agent.containment import Boundary
from agent.contract.records import RecordIntent
from agent.field.events import DeviceReading, FieldEvent
from agent.setup import prepare
from agent.station.station import Station
from agent.station_loop import HeartbeatFacts, StationLoop
from agent.station_view import StationView
from agent.wiring import Setup, bindings_for
from bench.report import Target
from bench.scale import Scale
from drivers.readings import (
    ChannelCount,
    ControllerCounters,
    NozzleReading,
    PulseCounterReading,
    PumpControllerReading,
)
from station_lab.demo import agent_config, simulators_config, write_probe_chart

RUNS = 3
WARM_UP_POLLS = 50
POLL_MS = 100
COUNTER_AFTER_MS = 20
START_MS = 1_800_000_000_000
COUNTERS = ControllerCounters(
    txn_no_modulus=10**8,
    totalizer_volume_modulus_ml=10**11,
    totalizer_amount_modulus_fen=10**11,
    volume_resolution_ml=10,
)
"""What the shipped simulated controller's profile gives the drivers."""
FLOW_ML_PER_POLL = 80
"""40 L/min at 10 polls a second; with 10 mL per pulse, 8 encoder pulses a poll."""


@dataclass(frozen=True, slots=True)
class EventCost:
    """One case: CPU µs per event of the station model alone and of the station loop around it."""

    case: str
    events: int
    station_us_per_event: float
    loop_us_per_event: float
    station_runs_us: tuple[float, ...]
    loop_runs_us: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class StationEventFigure:
    nozzles: int
    cases: tuple[EventCost, ...]

    def targets(self) -> tuple[Target, ...]:
        return ()


def demo_setup(workdir: Path) -> Setup:
    """The demo's agent config, checked as `station-agent run` checks it (with the probe tank's chart)."""
    (workdir / "simulators.toml").write_text(simulators_config("127.0.0.1:1883", 5020, "bench", time_scale=1.0))
    write_probe_chart(workdir)
    path = workdir / "agent.toml"
    path.write_text(agent_config(workdir, "127.0.0.1:1883", 5020, time_scale=1.0))
    return prepare(path)


def new_station(setup: Setup) -> Station:
    """The station model as the agent process builds it at a first start (no cursors, no history)."""
    config = setup.loaded.config
    return Station(
        bindings_for(config),
        {},
        config.metering,
        config.verifications,
        tanks=setup.tanks,
        tank_rules=config.tank_rules,
        zone=ZoneInfo(config.station.timezone),
        leak=config.leak,
        vapour=config.vapour,
        pressure=config.pressure,
        daily=config.daily,
    )


def _idle(nozzle: int) -> NozzleReading:
    return NozzleReading(
        nozzle=nozzle,
        state="idle",
        txn_no=100 + nozzle,
        txn_volume_ml=20_000,
        txn_amount_fen=15_400,
        txn_price_fen_per_l=770,
        totalizer_volume_ml=5_000_000 * nozzle,
        totalizer_amount_fen=3_850_000 * nozzle,
        price_fen_per_l=770,
    )


def _controller(*nozzles: NozzleReading) -> PumpControllerReading:
    return PumpControllerReading(nozzles, 10_000, 0x0102, COUNTERS)


def _counter(counts: tuple[int, ...]) -> PulseCounterReading:
    return PulseCounterReading(tuple(ChannelCount(i + 1, c) for i, c in enumerate(counts)), 2**32, 0x0201)


def idle_fresh() -> Iterator[tuple[PumpControllerReading, PulseCounterReading]]:
    while True:
        yield _controller(_idle(1), _idle(2)), _counter((1000, 1100, 2000, 2200))


def idle_same() -> Iterator[tuple[PumpControllerReading, PulseCounterReading]]:
    controller, counter = _controller(_idle(1), _idle(2)), _counter((1000, 1100, 2000, 2200))
    while True:
        yield controller, counter


def fuelling() -> Iterator[tuple[PumpControllerReading, PulseCounterReading]]:
    polls = 0
    while True:
        polls += 1
        volume_ml = polls * FLOW_ML_PER_POLL
        pulses = volume_ml // 10
        flowing = replace(
            _idle(1), state="fuelling", current_volume_ml=volume_ml, current_amount_fen=volume_ml * 77 // 100
        )
        yield _controller(flowing, _idle(2)), _counter((1000 + pulses, 1100 + pulses, 2000, 2200))


CASES: dict[str, Callable[[], Iterator[tuple[PumpControllerReading, PulseCounterReading]]]] = {
    "idle_fresh": idle_fresh,
    "idle_same": idle_same,
    "fuelling": fuelling,
}


def events(polls: Iterator[tuple[PumpControllerReading, PulseCounterReading]], count: int) -> list[FieldEvent]:
    """`count` polls of D01 at 10 Hz: the controller's event, then the counter's."""
    made: list[FieldEvent] = []
    for number in range(count):
        controller, counter = next(polls)
        ts_ms = START_MS + number * POLL_MS
        made.append(DeviceReading("pc1", "rs485-1", ts_ms, controller))
        made.append(DeviceReading("pcm1", "rs485-1", ts_ms + COUNTER_AFTER_MS, counter))
    return made


def _station_cpu_us(setup: Setup, case: str, polls: int) -> float:
    station = new_station(setup)
    fed = events(CASES[case](), WARM_UP_POLLS + polls)
    for event in fed[: 2 * WARM_UP_POLLS]:
        station.on_event(event)
    timed = fed[2 * WARM_UP_POLLS :]
    started = time.thread_time()
    for event in timed:
        station.on_event(event)
    return (time.thread_time() - started) / len(timed) * 1e6


def _loop_cpu_us(setup: Setup, case: str, polls: int) -> float:
    """Through `StationLoop.step`, each poll's two events handed over at once as a poller does, and the status
    view watching what the loop submits."""
    config = setup.loaded.config
    bindings = bindings_for(config)
    clock = SystemClock()
    submitted: list[RecordIntent] = []
    view = StationView({}, tanks=setup.tanks, nozzles=bindings)
    submit = view.watching(submitted.append)
    loop = StationLoop(
        new_station(setup),
        submit,
        clock,
        heartbeat_interval_s=config.heartbeat.interval_s,
        jump_threshold_ms=int(config.clock.jump_threshold_s * 1000),
        facts=lambda: HeartbeatFacts(True, 0, 4, 4),
        boundary=Boundary("station", submit, clock),
        nozzles=view.nozzles,
    )
    started_s, started_ms = clock.monotonic(), clock.wall_ms()
    fed = events(CASES[case](), WARM_UP_POLLS + polls)

    def feed(part: list[FieldEvent]) -> float:
        """The loop's CPU seconds for `part`: each poll's two events handed over at once, as a poller does (the
        hand-over counted in), and a turn that takes them, at the second event's station time (so the tick runs
        once a station second, as in the agent)."""
        instants = [Instant(started_s + (e.ts_ms - START_MS) / 1000, started_ms + e.ts_ms - START_MS) for e in part]
        began = time.thread_time()
        for first in range(0, len(part), 2):
            loop.inbox.post_all(part[first : first + 2])
            loop.step(instants[first + 1])
        spent = time.thread_time() - began
        submitted.clear()
        return spent

    feed(fed[: 2 * WARM_UP_POLLS])
    timed = fed[2 * WARM_UP_POLLS :]
    return feed(timed) / len(timed) * 1e6


def run(scale: Scale, workdir: Path) -> StationEventFigure:
    setup = demo_setup(workdir)
    polls = scale.link_requests * 5
    cases = []
    for case in CASES:
        station_runs = tuple(_station_cpu_us(setup, case, polls) for _ in range(RUNS))
        loop_runs = tuple(_loop_cpu_us(setup, case, polls) for _ in range(RUNS))
        cases.append(EventCost(case, 2 * polls, min(station_runs), min(loop_runs), station_runs, loop_runs))
    return StationEventFigure(len(bindings_for(setup.loaded.config)), tuple(cases))
