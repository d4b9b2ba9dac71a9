"""The status in plain words, for station staff: how the box is first, then what to do, then the details.

Staff read this on a phone or a shop PC, not a manual: every problem comes with the next step in words they
can act on, times are in the station's own zone, volumes in litres and money in yuan. The facts behind it are
the same snapshot scripts get as JSON; only the wording is here.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from agent.records import AlarmKind, parse_ts
from agent.status import AgentStatus, Health

WIDTH = 100
"""Steps are wrapped to this many columns, so that a phone's or a small terminal's screen does not cut them."""

HEADLINES: dict[Health, str] = {
    "ok": "ALL WELL: sales are recorded and reach the platform.",
    "degraded": "OFFLINE, BUFFERING: the platform cannot be reached; sales are recorded and kept on the box.",
    "fault": "NEEDS SOMEONE: see what to do below.",
    "stopped": "STOPPED: the agent has stopped; nothing is being recorded.",
}

ALARM_ADVICE: dict[str, str] = {
    AlarmKind.METERING_DEVIATION: "the pump's meter and its pulse encoder disagree on {subject}: have the "
    "dispenser checked by the metrology service",
    AlarmKind.ENCODER_NO_PULSES: "{subject} sold fuel but its encoder gave no pulses: have the pulse cable "
    "and the pulse counter checked",
    AlarmKind.TRANSACTION_SKIPPED: "the controller's sale numbers on {subject} jumped, a sale may be missing: "
    "call support",
    AlarmKind.TRANSACTION_COUNTER_RESET: "the controller of {subject} restarted its sale numbers: write down "
    "whether it was serviced or reset, and call support",
    AlarmKind.TOTALIZER_DISCONTINUITY: "the totaliser of {subject} jumped: call the maintenance company",
    AlarmKind.PULSES_AT_REST: "the encoder of {subject} counts while the nozzle hangs up: check for a leak at "
    "the dispenser, then call the maintenance company",
    AlarmKind.CALIBRATION_UNVERIFIED: "the calibration or firmware of {subject} changed without a verification "
    "certificate: call the metrology service",
    AlarmKind.DEVICE_SILENT: "{subject} has stopped answering: check that it is powered and its cable to the box",
    AlarmKind.LINE_ERRORS: "line {subject} garbles many messages: have its cable, termination and earthing checked",
    AlarmKind.TANK_LEAK: "the books of tank {subject} point to a leak: follow the station's leak procedure now and "
    "call the maintenance company",
    AlarmKind.UNRECORDED_SALES: "fuel leaves tank {subject} that no recorded sale accounts for: check the pumps "
    "on that tank and call support",
    AlarmKind.VAPOUR_AL_WARNING: "the vapour recovery of {subject} recovers too little or too much vapour: have "
    "its vapour pump and nozzle checked before it becomes an alarm",
    AlarmKind.VAPOUR_AL_ALARM: "the vapour recovery of {subject} has failed for days: have the maintenance company "
    "repair it and tell the ecology bureau as the station's permit says",
    AlarmKind.VAPOUR_PUMP_FAULT: "no vapour flows back at {subject}: have its vacuum pump checked",
    AlarmKind.SLOW_DISPENSER: "{subject} dispenses slowly: have its filter and pump checked",
    AlarmKind.TANK_PRESSURE_ZERO_WARNING: "the vapour space of {subject} stays at zero pressure: have the tank's "
    "vapour tightness checked (a cap or valve left open)",
    AlarmKind.TANK_PRESSURE_ZERO_ALARM: "the vapour space of {subject} has not held pressure for days: have the "
    "tank's vapour tightness checked now",
    AlarmKind.TANK_PRESSURE_OVER_WARNING: "the pressure in {subject} is above its valve's setting: check the P/V "
    "valve and the vent line",
    AlarmKind.TANK_PRESSURE_OVER_ALARM: "the pressure in {subject} stays above its valve's setting: call the "
    "maintenance company now",
    AlarmKind.TANK_PRESSURE_BAND_WARNING: "the pressure in {subject} is often out of its normal band: have the "
    "vapour recovery system checked",
    AlarmKind.TANK_PRESSURE_BAND_ALARM: "the pressure in {subject} has been out of band for days: have the "
    "vapour recovery system repaired",
    AlarmKind.OUTBOX_FULL: "the box's storage is full: call support",
    AlarmKind.OUTBOX_FAILING: "the box cannot write its storage: call support",
}
"""The next step per alarm kind, said for staff; a kind not listed gets 'call support'."""

OFFLINE_ADVICE = (
    "nothing right away: records wait on the box and go out when the link is back. If it stays offline for "
    "hours, check the router and the box's network cable, then call support"
)


def render(status: AgentStatus) -> str:
    zone = ZoneInfo(status.clock.zone)
    lines = [f"{HEADLINES[status.health]}  (station {status.station})", "", "What to do:"]
    lines += [
        textwrap.fill(step, WIDTH, initial_indent="  - ", subsequent_indent="    ") for step in _what_to_do(status)
    ]
    lines += ["", *_details(status, zone)]
    return "\n".join(lines)


def _what_to_do(status: AgentStatus) -> list[str]:
    if status.health == "stopped":
        return ["start it with `sudo systemctl start station-agent`; if it stops again, call support"]
    steps = []
    if status.recorder.state != "ok":
        steps.append(f"call support now: the box cannot store records ({status.recorder.problem})")
    steps += [
        f"{device.name} on line {line.name} does not answer ({device.last_error}): check that it is powered and "
        "its cable to the box; if it still does not answer, call the maintenance company"
        for line in status.lines
        for device in line.devices
        if device.state == "offline"
    ]
    steps += [
        ALARM_ADVICE.get(alarm.kind, "alarm {kind} on {subject}: call support").format(
            kind=alarm.kind, subject=alarm.subject
        )
        for alarm in status.alarms
    ]
    if status.uplink.state != "online":
        steps.append(OFFLINE_ADVICE)
    elif status.health == "degraded":
        steps += [f"{problem}: nothing right away; if it lasts for hours, call support" for problem in status.problems]
    return steps or ["nothing"]


def _details(status: AgentStatus, zone: ZoneInfo) -> list[str]:
    now_ms = parse_ts(status.ts)
    uplink = status.uplink
    error = f" ({uplink.last_error})" if uplink.last_error and uplink.state != "online" else ""
    rows = [
        (
            "Platform",
            f"{uplink.state} since {_local(uplink.since_ms, zone)} ({_duration(now_ms - uplink.since_ms)}){error}",
        ),
        ("Waiting", _backlog(status, zone)),
    ]
    for line in status.lines:
        devices = ", ".join(_device(device.name, device.state, device.since_ms, zone) for device in line.devices)
        rows.append(("Line", f"{line.name}: {devices}"))
    rows += [("Alarm", _alarm(alarm.kind, alarm.subject, alarm.since, zone)) for alarm in status.alarms] or [
        ("Alarms", "none")
    ]
    rows += [
        (
            "Last sale",
            f"{sale.nozzle} ({sale.grade}) {sale.volume_ml / 1000:.2f} L, {sale.amount_fen / 100:.2f} yuan "
            f"at {_local(parse_ts(sale.end), zone)}",
        )
        for sale in status.last_sales
    ] or [("Last sale", "none since the agent started")]
    rows += [("Disk", _disk(status)), ("Clock", _clock(status, zone)), ("Agent", _agent(status, zone))]
    return [f"{label:<10} {text}" for label, text in rows]


def _backlog(status: AgentStatus, zone: ZoneInfo) -> str:
    backlog = status.backlog
    if backlog.records == 0:
        return "nothing, the platform has every record"
    oldest = ""
    if backlog.oldest_ts is not None and backlog.oldest_age_s is not None:
        age = _duration(backlog.oldest_age_s * 1000)
        oldest = f", the oldest from {_local(parse_ts(backlog.oldest_ts), zone)} ({age} ago)"
    if status.uplink.state == "online":
        return f"{backlog.records} record(s) on their way to the platform{oldest}"
    return f"{backlog.records} record(s) not yet confirmed by the platform{oldest}"


def _device(name: str, state: str, since_ms: int, zone: ZoneInfo) -> str:
    """Only trouble gets a time: a row of identical 'online since' would hide the one that matters."""
    if state == "online":
        return f"{name} online"
    if state == "unknown":
        return f"{name} not polled yet"
    return f"{name} NOT ANSWERING since {_local(since_ms, zone)}"


def _alarm(kind: str, subject: str, since: str | None, zone: ZoneInfo) -> str:
    when = "since before the agent started" if since is None else f"since {_local(parse_ts(since), zone)}"
    return f"{kind} on {subject}, {when}"


def _disk(status: AgentStatus) -> str:
    stored = f"records use {_size(status.recorder.used_bytes)}"
    if status.disk is None:
        return f"free space unknown; {stored}"
    return f"{_size(status.disk.free_bytes)} free of {_size(status.disk.total_bytes)}; {stored}"


def _clock(status: AgentStatus, zone: ZoneInfo) -> str:
    clock = status.clock
    text = f"{clock.local} ({clock.zone}); compare with a clock you trust"
    step = clock.last_step
    if step is not None:
        direction = "forward" if step.jump_ms > 0 else "back"
        text += f"; it was set {_duration(abs(step.jump_ms))} {direction} at {_local(parse_ts(step.to_ts), zone)}"
    return text


def _agent(status: AgentStatus, zone: ZoneInfo) -> str:
    running = _duration(status.uptime_s * 1000)
    return f"version {status.version}, running for {running}; this status is of {_local(parse_ts(status.ts), zone)}"


def _local(ts_ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _duration(ms: int) -> str:
    seconds = max(0, ms) // 1000
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
