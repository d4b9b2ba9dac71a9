"""A status snapshot as a running agent makes it, for tests of what reads one (the socket, `status`, the text)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from agent.contract.records import parse_ts
from agent.field.poller import DeviceStatus, LineStatus
from agent.health import assess
from agent.ledger.recorder import RecorderStatus
from agent.station_view import ActiveAlarm, ClockStep, LastSale, NozzleNow, TankLevel
from agent.status import AgentStatus, Backlog, ClockStatus, DiskStatus
from agent.uplink.hj212_status import Hj212Status
from agent.uplink.uplink_status import UplinkStatus
from drivers.transport import LinkStatistics

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
    LineStatus("rs485-1", (device("pc1"), device("pcm1")), LinkStatistics(requests=10_000, crc_errors=2)),
    LineStatus("tcp-1", (device("pc2"), device("pcm2")), LinkStatistics(requests=9_000, crc_errors=0)),
)
SALE = LastSale("D01-N1", "D01", "92", "2026-11-28T02:21:40.500Z", volume_ml=12_340, amount_fen=9_502)


ASSESSED = ("health", "problems", "confirmed_this_run")
"""Not parts of the snapshot but of its assessment: `confirmed_this_run` (default True) goes to assess."""


SALES_OF = {"pc1": ("D01-N1", "D01-N2"), "pc2": ("D02-N1",), "pc3": ("D03-N1", "D03-N2")}
"""The nozzles whose sales each pump controller reports, as the config binds them."""


def sample_status(**changes: Any) -> AgentStatus:
    """All well at 10:25 Shanghai time, unless `changes` say otherwise; health and problems are what
    agent.health.assess makes of the parts (pass `health`/`problems` to override)."""
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
        locale="zh_CN",
    )
    status = dataclasses.replace(status, **{k: v for k, v in changes.items() if k not in ASSESSED})
    verdict = assess(
        status.recorder,
        status.uplink,
        status.lines,
        status.alarms,
        backlog_records=status.backlog.records,
        oldest_waiting_age_s=status.backlog.oldest_age_s,
        oldest_waiting_ts=status.backlog.oldest_ts,
        confirmed_this_run=changes.get("confirmed_this_run", True),
        uptime_s=status.uptime_s,
        confirm_within_s=60.0,
        ecology=status.ecology,
        sales_of=SALES_OF,
    )
    return dataclasses.replace(
        status,
        health=changes.get("health", verdict.health),
        problems=changes.get("problems", verdict.problems),
    )


def fuelling_status() -> AgentStatus:
    """All well, D01-N1 fuelling (4.00 L so far), T1 read by its gauge two minutes ago, T2 not yet."""
    return sample_status(
        tanks=(
            TankLevel(
                "T1",
                "gasoline",
                30_000_000,
                volume_ml=18_000_000,
                volume_20_ml=17_980_500,
                ullage_ml=12_000_000,
                height_um=1_500_000,
                water_um=12_000,
                temperature_cC=1850,
                delivery_in_progress=False,
                ts="2026-11-28T02:23:00.000Z",
            ),
            TankLevel("T2", "gasoline", 20_000_000),
        ),
        nozzles=(
            NozzleNow("D01-N1", "D01", "fuelling", 4000),
            NozzleNow("D01-N2", "D01", "idle", None),
            NozzleNow("D02-N1", "D02", None, None),
        ),
    )


def starting_status() -> AgentStatus:
    """Twenty seconds after a start: the broker took the agent_start record, the platform has not confirmed it."""
    uplink = dataclasses.replace(UPLINK, since_ms=NOW_MS - 18_000, acked_upto=1199, head_seq=1201)
    return sample_status(
        uptime_s=20,
        uplink=uplink,
        recorder=dataclasses.replace(RECORDER, head_seq=1201, acked_upto=1199),
        backlog=Backlog(2, "2026-11-28T02:24:43.000Z", 20),
        last_sales=(),
        confirmed_this_run=False,
    )


def unconfirmed_status() -> AgentStatus:
    """Two minutes after a start, connected, and still nothing confirmed: not all well."""
    uplink = dataclasses.replace(UPLINK, since_ms=NOW_MS - 118_000, acked_upto=1199, head_seq=1205)
    return sample_status(
        uptime_s=120,
        uplink=uplink,
        backlog=Backlog(6, "2026-11-28T02:23:03.000Z", 120),
        confirmed_this_run=False,
    )


def offline_status() -> AgentStatus:
    """Forty minutes without the platform: 300 records wait."""
    uplink = dataclasses.replace(
        UPLINK, state="offline", since_ms=NOW_MS - 40 * MINUTE_MS, last_error="connection refused"
    )
    return sample_status(
        uplink=uplink,
        recorder=dataclasses.replace(RECORDER, head_seq=1500),
        backlog=Backlog(300, "2026-11-28T01:45:03.000Z", 2400),
    )


def fault_status() -> AgentStatus:
    """A pulse counter that stopped answering and a metering alarm on a nozzle; the clock was stepped."""
    lines = (LINES[0], LineStatus("tcp-1", (device("pc2"), device("pcm2", "offline", "timeout")), LinkStatistics()))
    alarm = ActiveAlarm("metering_deviation", "D01-N2", "2026-11-28T02:03:00.000Z", {"deviation_ppm": 10_000})
    return sample_status(
        lines=lines,
        alarms=(alarm,),
        clock=ClockStatus(
            "Asia/Shanghai",
            "2026-11-28 10:25:03",
            ClockStep("2026-11-28T01:00:00.000Z", "2026-11-28T01:05:00.000Z", 300_000),
        ),
    )


UNPLUGGED = "serial port /dev/ttyUSB0: cannot open ([Errno 2] could not open port /dev/ttyUSB0: [Errno 2] No such "
"file or directory: '/dev/ttyUSB0'); check that the adapter is plugged in and the port path in the config"


def unplugged_status() -> AgentStatus:
    """The RS-485 adapter of a line with four devices pulled out: each device offline, each with its alarm."""
    names = ("pc1", "pcm1", "pc3", "pcm3")
    line = LineStatus(
        "rs485-1", tuple(device(name, "offline", UNPLUGGED) for name in names), LinkStatistics(link_errors=40)
    )
    silent = tuple(
        ActiveAlarm("device_silent", name, "2026-11-28T01:00:00.000Z", {"line": "rs485-1", "silent_s": 60})
        for name in names
    )
    nozzles = tuple(
        NozzleNow(nozzle, nozzle.split("-")[0], None, None) for nozzle in (*SALES_OF["pc1"], *SALES_OF["pc3"])
    )
    return sample_status(lines=(line, LINES[1]), alarms=silent, nozzles=nozzles)


def nozzle_alarm_and_warning_status() -> AgentStatus:
    """On one nozzle the meter is 1 % off (an alarm) while its vapour recovery is out of range (a warning)."""
    alarms = (
        ActiveAlarm("metering_deviation", "D01-N2", "2026-11-28T02:03:00.000Z", {"deviation_ppm": 10_000}),
        ActiveAlarm("vapour_al_warning", "D01-N2", "2026-11-27T16:00:00.000Z", {"pass_share_permille": 600}),
    )
    return sample_status(alarms=alarms)


def hj212_down_status() -> AgentStatus:
    """The ecology platform's HJ 212 link is down for an hour with 376 records waiting; the city platform is fine."""
    ecology = Hj212Status(
        state="offline",
        since_ms=NOW_MS - 60 * MINUTE_MS,
        platform="hj212.example:9000",
        sent_seq=800,
        done_seq=824,
        head_seq=1200,
        backlog=376,
        frames_sent=500,
        frames_acked=500,
        resends=2,
        skipped=400,
        connects=3,
        last_error="[Errno 111] Connection refused",
    )
    return sample_status(ecology=ecology)


def outbox_full_status() -> AgentStatus:
    """The outbox reached its size limit with nothing it may prune: records wait in memory."""
    recorder = dataclasses.replace(
        RECORDER, state="full", problem="outbox full", trouble_since_ms=NOW_MS - 5 * MINUTE_MS, pending=120
    )
    return sample_status(recorder=recorder)


COMMON_STATES = {
    "all well": sample_status,
    "fuelling": fuelling_status,
    "starting": starting_status,
    "unconfirmed": unconfirmed_status,
    "offline": offline_status,
    "fault": fault_status,
    "adapter unplugged": unplugged_status,
    "nozzle alarm and warning": nozzle_alarm_and_warning_status,
    "HJ 212 down": hj212_down_status,
    "outbox full": outbox_full_status,
}
"""Every state the plain status must say well, in both languages (tests/test_status_view.py)."""
