"""How big each benchmark run is: the full set for `make bench`, a quick one for a smoke run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scale:
    """Record counts and durations of one benchmark run; every loop in the benchmarks is bounded by these."""

    name: str
    ledger_records: int
    uplink_records: int
    full_path_records: int
    drain_backlog: int
    live_interval_s: float
    station_seconds: float
    agent_drain_backlog: int
    disk_burst_records: int
    nominal_records: int
    nominal_interval_s: float
    bus_seconds: float
    """How long the bare master and then the agent's poller each keep the baud-emulated line busy."""
    poll_cost_seconds: float
    """The measured window of the 16-nozzle station polled at 2 Hz (after start-up)."""
    link_requests: int
    """Exchanges per run of each protocol's master or client in `link_cost`."""
    timeout_s: float
    """The longest any single wait may take before the run is declared failed."""


FULL = Scale(
    name="full",
    ledger_records=10_000,
    uplink_records=20_000,
    full_path_records=5_000,
    drain_backlog=50_000,
    live_interval_s=0.1,
    station_seconds=25.0,
    agent_drain_backlog=50_000,
    disk_burst_records=10_000,
    nominal_records=12,
    nominal_interval_s=2.0,
    bus_seconds=30.0,
    poll_cost_seconds=45.0,
    link_requests=5_000,
    timeout_s=120.0,
)

QUICK = Scale(
    name="quick",
    ledger_records=2_000,
    uplink_records=4_000,
    full_path_records=1_000,
    drain_backlog=5_000,
    live_interval_s=0.1,
    station_seconds=8.0,
    agent_drain_backlog=5_000,
    disk_burst_records=2_000,
    nominal_records=5,
    nominal_interval_s=0.5,
    bus_seconds=6.0,
    poll_cost_seconds=10.0,
    link_requests=1_000,
    timeout_s=60.0,
)
