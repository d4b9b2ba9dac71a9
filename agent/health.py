"""The agent's health, decided once: the verdict and the problems behind it, for every reader alike.

Theory of operation: the parts' frozen snapshots go in, an `Assessment` comes out, with no I/O and no clock of
its own. `station-agent status` (text and JSON), the LED, the retained MQTT status and any other screen show
this one assessment, so they cannot disagree. Every problem is a `Problem` with a stable `kind` and `advice`
key; the words for people are chosen from those keys elsewhere (agent/status_text.py), in their language.

The rules, in order: a stopped uplink means the run is over (`stopped`); any problem that needs someone on site
makes `fault`; any that only delays delivery makes `degraded`; waiting for the first confirmation of this run
makes `starting`; only a platform (or, in broker mode, a broker) that confirmed the records of this run, with
nothing waiting longer than the confirmation window, is `ok`. One cause is one problem: the devices behind an
adapter that cannot be opened are one `line_down`, and their `device_silent` alarms fold into it; an alarm
supersedes the warning of the same family on the same subject.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from agent.contract.records import AlarmKind, format_ts
from agent.field.poller import LineStatus
from agent.ledger.recorder import RecorderStatus
from agent.station_view import ActiveAlarm
from agent.uplink.hj212_status import Hj212Status
from agent.uplink.uplink_status import UplinkStatus

Health = Literal["ok", "starting", "degraded", "fault", "stopped"]
Severity = Literal["fault", "degraded", "starting"]

HEALTH_OF: dict[Severity, Health] = {"fault": "fault", "degraded": "degraded", "starting": "starting"}
_RANK: dict[Severity, int] = {"fault": 0, "degraded": 1, "starting": 2}

PORT_CANNOT_OPEN = ("cannot open (", "cannot connect (")
"""How the drivers word a port or connection that cannot be had at all (drivers/modbus/master.py,
drivers/veeder_root/client.py): an unplugged USB adapter, a gateway that refuses."""

SIZE_OF_ALARM: dict[str, tuple[str, str]] = {
    AlarmKind.METERING_DEVIATION: ("deviation_ppm", "ppm"),
    AlarmKind.METERING_BIAS: ("bias_ppm", "ppm"),
    AlarmKind.ENCODER_NO_PULSES: ("volume_ml", "ml"),
    AlarmKind.TRANSACTION_SKIPPED: ("missing", "sales"),
    AlarmKind.TOTALIZER_DISCONTINUITY: ("difference", "counter"),
    AlarmKind.PULSES_AT_REST: ("volume_ml", "ml"),
    AlarmKind.DEVICE_SILENT: ("silent_s", "s"),
    AlarmKind.LINE_ERRORS: ("failed_permille", "permille"),
    AlarmKind.TANK_LEAK: ("leak_ml_per_h", "ml_per_h"),
    AlarmKind.UNRECORDED_SALES: ("unrecorded_ppm", "ppm"),
    AlarmKind.OUTBOX_FULL: ("used_bytes", "bytes"),
    AlarmKind.VAPOUR_PUMP_FAULT: ("vapour_ml_per_min", "ml_per_min"),
    AlarmKind.VAPOUR_AL_WARNING: ("pass_share_permille", "permille_passed"),
    AlarmKind.VAPOUR_AL_ALARM: ("pass_share_permille", "permille_passed"),
    AlarmKind.SLOW_DISPENSER: ("slow", "fuellings"),
    AlarmKind.TANK_PRESSURE_ZERO_WARNING: ("run_s", "s"),
    AlarmKind.TANK_PRESSURE_ZERO_ALARM: ("warning_days", "days"),
    AlarmKind.TANK_PRESSURE_OVER_WARNING: ("max_pa", "pa"),
    AlarmKind.TANK_PRESSURE_OVER_ALARM: ("max_pa", "pa"),
    AlarmKind.TANK_PRESSURE_BAND_WARNING: ("outside_band_permille", "permille"),
    AlarmKind.TANK_PRESSURE_BAND_ALARM: ("outside_band_permille", "permille"),
}
"""Which evidence key gives an alarm's size, and its unit (`counter`: mL or fen, as the evidence's `counter`)."""

SUPERSEDED_BY: dict[str, str] = {
    AlarmKind.VAPOUR_AL_WARNING: AlarmKind.VAPOUR_AL_ALARM,
    AlarmKind.TANK_PRESSURE_ZERO_WARNING: AlarmKind.TANK_PRESSURE_ZERO_ALARM,
    AlarmKind.TANK_PRESSURE_OVER_WARNING: AlarmKind.TANK_PRESSURE_OVER_ALARM,
    AlarmKind.TANK_PRESSURE_BAND_WARNING: AlarmKind.TANK_PRESSURE_BAND_ALARM,
}
"""A warning that says nothing once the alarm of its family is raised on the same subject."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One cause that keeps the box from ALL WELL, in the documented shape (docs/contract/status-command.json).

    `kind`: `storage_failing`, `line_down`, `device_not_answering`, `platform_offline`, `platform_unconfirmed`,
    `platform_awaiting`, `hj212_offline`, or an alarm kind (`metering_deviation`, …). `advice` is the key of the
    words said to staff; `size` in `unit` is how big it is (None when unknown); `detail` is the technical text
    for an installer (an error message), never shown as the advice."""

    kind: str
    severity: Severity
    subject: str
    since: str | None
    advice: str
    size: int | None = None
    unit: str | None = None
    members: tuple[str, ...] = ()
    """The devices a `line_down` stands for."""
    detail: str | None = None
    nozzles: tuple[str, ...] = ()
    """`line_down`, `device_not_answering`: the nozzles whose sales the box cannot record while it lasts (those
    of the pump controllers among its devices)."""


@dataclass(frozen=True, slots=True)
class Assessment:
    health: Health
    problems: tuple[Problem, ...]


def assess(
    recorder: RecorderStatus,
    uplink: UplinkStatus,
    lines: tuple[LineStatus, ...],
    alarms: tuple[ActiveAlarm, ...],
    *,
    backlog_records: int,
    oldest_waiting_age_s: int | None,
    confirmed_this_run: bool,
    uptime_s: int,
    confirm_within_s: float,
    ecology: Hj212Status | None = None,
    oldest_waiting_ts: str | None = None,
    sales_of: Mapping[str, tuple[str, ...]] | None = None,
) -> Assessment:
    """`confirmed_this_run`: the platform (or broker, in broker mode) has acknowledged a record since the agent
    started; `confirm_within_s`: how long a record may wait for that before it counts as a problem; `sales_of`:
    the nozzles whose sales each device reports (`nozzles_by_controller`), so that a device or line that is down
    names the nozzles it leaves unrecorded."""
    if uplink.state == "stopped":
        return Assessment("stopped", ())
    down, silent = _lines(lines, sales_of or {})
    covered = {device for problem in down for device in problem.members} | {p.subject for p in silent}
    problems = [*_storage(recorder), *down, *silent, *_alarms(alarms, covered, {p.subject for p in down})]
    problems += _platform(
        uplink,
        waiting=backlog_records,
        oldest_age_s=oldest_waiting_age_s,
        oldest_ts=oldest_waiting_ts,
        confirmed_this_run=confirmed_this_run,
        uptime_s=uptime_s,
        confirm_within_s=confirm_within_s,
    )
    if ecology is not None and ecology.state != "online":
        since = format_ts(ecology.since_ms)
        problems.append(
            Problem(
                "hj212_offline",
                "degraded",
                ecology.platform,
                since,
                "hj212_offline",
                ecology.backlog,
                "records",
                detail=ecology.last_error,
            )
        )
    ordered = tuple(sorted(problems, key=lambda problem: _RANK[problem.severity]))
    if not ordered:
        return Assessment("ok", ())
    return Assessment(HEALTH_OF[ordered[0].severity], ordered)


def _storage(recorder: RecorderStatus) -> list[Problem]:
    if recorder.state == "ok":
        return []
    since = None if recorder.trouble_since_ms is None else format_ts(recorder.trouble_since_ms)
    kind = "outbox_full" if recorder.state == "full" else "storage_failing"
    return [Problem(kind, "fault", "outbox", since, kind, recorder.used_bytes, "bytes", detail=recorder.problem)]


def nozzles_by_controller(nozzles: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """(controller, nozzle) pairs, as the config binds them, to the nozzles each controller reports."""
    served: dict[str, list[str]] = {}
    for controller, nozzle in nozzles:
        served.setdefault(controller, []).append(nozzle)
    return {controller: tuple(names) for controller, names in served.items()}


def _lines(
    lines: tuple[LineStatus, ...], sales_of: Mapping[str, tuple[str, ...]]
) -> tuple[list[Problem], list[Problem]]:
    """A line whose every device is offline is one problem (the adapter, the cable, the gateway); otherwise each
    device that does not answer is its own."""
    down: list[Problem] = []
    silent: list[Problem] = []
    for line in lines:
        offline = [device for device in line.devices if device.state == "offline"]
        if not offline:
            continue
        if (len(offline) == len(line.devices) > 1) or _cannot_open(offline[0].last_error):
            unplugged = all(_cannot_open(device.last_error) for device in offline)
            since = format_ts(min(device.since_ms for device in offline))
            down.append(
                Problem(
                    "line_down",
                    "fault",
                    line.name,
                    since,
                    "port_cannot_open" if unplugged else "line_silent",
                    len(offline),
                    "devices",
                    tuple(device.name for device in offline),
                    offline[0].last_error,
                    tuple(nozzle for device in offline for nozzle in sales_of.get(device.name, ())),
                )
            )
            continue
        silent += [
            Problem(
                "device_not_answering",
                "fault",
                device.name,
                format_ts(device.since_ms),
                "device_not_answering",
                detail=device.last_error,
                nozzles=sales_of.get(device.name, ()),
            )
            for device in offline
        ]
    return down, silent


def _cannot_open(error: str | None) -> bool:
    return error is not None and any(words in error for words in PORT_CANNOT_OPEN)


def _alarms(alarms: tuple[ActiveAlarm, ...], devices_covered: set[str], lines_down: set[str]) -> list[Problem]:
    active = {(alarm.kind, alarm.subject) for alarm in alarms}
    problems = []
    for alarm in alarms:
        if alarm.kind == AlarmKind.DEVICE_SILENT and alarm.subject in devices_covered:
            continue
        if alarm.kind == AlarmKind.LINE_ERRORS and alarm.subject in lines_down:
            continue
        if (SUPERSEDED_BY.get(alarm.kind), alarm.subject) in active:
            continue
        key, unit = SIZE_OF_ALARM.get(alarm.kind, ("", None))
        value = alarm.evidence.get(key)
        size = value if isinstance(value, int) and not isinstance(value, bool) else None
        if unit == "counter":
            unit = "fen" if alarm.evidence.get("counter") == "amount_fen" else "ml"
        shown_unit = unit if size is not None else None
        problems.append(Problem(alarm.kind, "fault", alarm.subject, alarm.since, alarm.kind, size, shown_unit))
    return problems


def _platform(
    uplink: UplinkStatus,
    *,
    waiting: int,
    oldest_age_s: int | None,
    oldest_ts: str | None,
    confirmed_this_run: bool,
    uptime_s: int,
    confirm_within_s: float,
) -> list[Problem]:
    """Online is not delivered: the broker may take every record while the platform behind it stores none."""
    since = format_ts(uplink.since_ms)
    late = oldest_age_s is not None and oldest_age_s > confirm_within_s
    if uplink.state == "online" and confirmed_this_run and (waiting == 0 or not late):
        return []  # nothing waiting is not enough: right after a start the run's first record may not be committed yet
    failed = uplink.state == "offline" and uplink.last_error is not None
    if not confirmed_this_run and uptime_s <= confirm_within_s and not failed:
        return [Problem("platform_awaiting", "starting", uplink.broker, since, "platform_awaiting", waiting, "records")]
    if uplink.state != "online":
        return [
            Problem(
                "platform_offline",
                "degraded",
                uplink.broker,
                since,
                "platform_offline",
                waiting,
                "records",
                detail=uplink.last_error,
            )
        ]
    return [
        Problem(
            "platform_unconfirmed",
            "degraded",
            uplink.broker,
            oldest_ts or since,
            "platform_unconfirmed",
            waiting,
            "records",
        )
    ]
