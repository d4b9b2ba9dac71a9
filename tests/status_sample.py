"""A status snapshot as a running agent makes it, for tests of what reads one (the socket, `status`, the text)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from agent.field.poller import DeviceStatus, LineStatus
from agent.ledger.recorder import RecorderStatus
from agent.records import parse_ts
from agent.station_view import ActiveAlarm, ClockStep, LastSale
from agent.status import AgentStatus, Backlog, ClockStatus, DiskStatus
from agent.uplink.session import UplinkStatus

NOW = "2026-11-28T02:25:03.000Z"
NOW_MS = parse_ts(NOW)
MINUTE_MS = 60_000

RECORDER = RecorderStatus(
    state="ok",
    problem=None,
    trouble_since_ms=None,
    head_seq=1200,
    acked_upto=1200,
    pending=0,
    dropped=0,
    committed=1200,
    commits=900,
    used_bytes=12_400_000,
)
UPLINK = UplinkStatus(
    state="online",
    since_ms=NOW_MS - 130 * MINUTE_MS,
    broker="platform.example:8883",
    ack_mode="platform",
    acked_upto=1200,
    head_seq=1200,
    messages_published=400,
    records_published=1200,
    rewinds=0,
    connects=1,
    last_error=None,
)


def device(name: str, state: Literal["online", "offline"] = "online", error: str | None = None) -> DeviceStatus:
    return DeviceStatus(name, 1, state, NOW_MS - 90 * MINUTE_MS, 5000, 3, error)


LINES = (
    LineStatus("rs485-1", (device("pc1"), device("pcm1")), {"requests": 10_000, "crc_errors": 2}),
    LineStatus("tcp-1", (device("pc2"), device("pcm2")), {"requests": 9_000, "crc_errors": 0}),
)
SALE = LastSale("D01-N1", "D01", "92", "2026-11-28T02:21:40.500Z", volume_ml=12_340, amount_fen=9_502)


def sample_status(**changes: Any) -> AgentStatus:
    """All well at 10:25 Shanghai time, unless `changes` say otherwise."""
    status = AgentStatus(
        ts=NOW,
        station="ST-0001",
        version="0.6.0",
        uptime_s=2 * 3600 + 13 * 60,
        health="ok",
        problems=(),
        recorder=RECORDER,
        uplink=UPLINK,
        lines=LINES,
        backlog=Backlog(0, None, None),
        alarms=(),
        last_sales=(SALE,),
        disk=DiskStatus("/var/lib/station-agent", 1_200_000_000, 3_500_000_000),
        clock=ClockStatus("Asia/Shanghai", "2026-11-28 10:25:03", None),
        ecology=None,
    )
    return dataclasses.replace(status, **changes)


def offline_status() -> AgentStatus:
    """Forty minutes without the platform: 300 records wait."""
    uplink = dataclasses.replace(
        UPLINK, state="offline", since_ms=NOW_MS - 40 * MINUTE_MS, last_error="connection refused"
    )
    return sample_status(
        health="degraded",
        problems=("platform not reachable, records are kept on the box: connection refused",),
        uplink=uplink,
        recorder=dataclasses.replace(RECORDER, head_seq=1500),
        backlog=Backlog(300, "2026-11-28T01:45:03.000Z", 2400),
    )


def fault_status() -> AgentStatus:
    """A pulse counter that stopped answering and a metering alarm on a nozzle; the clock was stepped."""
    lines = (LINES[0], LineStatus("tcp-1", (device("pc2"), device("pcm2", "offline", "timeout")), {}))
    alarm = ActiveAlarm("metering_deviation", "D01-N2", "2026-11-28T02:03:00.000Z", {"deviation_ppm": 10_000})
    return sample_status(
        health="fault",
        problems=("device pcm2 on line tcp-1 is not answering: timeout", "alarm metering_deviation on D01-N2"),
        lines=lines,
        alarms=(alarm,),
        clock=ClockStatus(
            "Asia/Shanghai",
            "2026-11-28 10:25:03",
            ClockStep("2026-11-28T01:00:00.000Z", "2026-11-28T01:05:00.000Z", 300_000),
        ),
    )
