"""`station-agent selftest`: is this box ready to run the station? One line per check, and a fix for each failure.

Run it as the service user (`runuser -u station-agent -- station-agent selftest`), since ownership and write access
are checked for the user running it, and with the agent stopped: the agent holds its serial ports exclusively.

What the self-test does not do is make a record. A test record would take the next `seq` and be chained and
signed like any other, so it would stay in the station's history for good (and, written beside a running
agent, fork the chain); a record with a made-up `seq` is what the platform must reject as forged. So the
round trip with the platform is checked up to the point a record would start: the device key signs and
verifies, the broker takes a connection with the configured TLS and credentials, and grants the subscription
to the station's ack topic, which is where the platform's acks arrive.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from gettext import ngettext
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.config import AgentConfig, ConfigError
from agent.setup import prepare
from agent.tools.box_checks import (
    check_clock,
    check_device_key,
    check_disk,
    check_status_dir,
    check_tls_files,
    check_writable,
    ntp_synchronised,
)
from agent.tools.broker_check import check_broker
from agent.tools.checks import Check, Status, fail, ok
from agent.tools.device_checks import check_devices
from agent.wiring import SetupError


def run_selftest(
    config_path: Path,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    synchronised: Callable[[], bool | None] = ntp_synchronised,
    broker_timeout_s: float = 5.0,
) -> list[Check]:
    """Every check, in the order an installer fixes things."""
    ntp = synchronised()
    try:
        setup = prepare(config_path)
    except (ConfigError, SetupError) as exc:
        fix = (
            f"correct it; station-agent check-config {config_path} lists each problem"
            if config_path.exists()
            else "write it with station-agent provision (or give --config)"
        )
        return [fail("config", str(exc), fix), check_clock(now().astimezone(), ntp)]
    config = setup.loaded.config
    tls_files = check_tls_files(config.uplink)
    checks = [
        _check_config(config_path, config),
        check_device_key(config),
        *([tls_files] if tls_files else []),
        check_writable("outbox dir", config.outbox.path.parent),
        check_status_dir(config.status.path.parent),
        check_disk(config),
        check_clock(now().astimezone(ZoneInfo(config.station.timezone)), ntp),
        *check_devices(setup),
    ]
    if tls_files is not None and tls_files.status == Status.FAIL:
        checks.append(
            fail("broker", f"{config.uplink.broker}: not tried, the TLS files are not right", "fix tls files first")
        )
    else:
        checks += check_broker(config.uplink, config.station.id, broker_timeout_s)
    return checks


def _check_config(config_path: Path, config: AgentConfig) -> Check:
    """A config may be valid and still watch nothing (`[station] allow_empty`, kept from provisioning): with no
    device to poll the agent would run, look well and record nothing, which is a failure to hand over; devices
    that no dispenser or tank uses are only a warning (a box still being wired)."""
    devices = len(config.devices()) + len(config.gauges())
    said = f"{config_path}: station {config.station.id}, {len(config.lines)} lines, {devices} devices"
    if devices == 0:
        return fail(
            "config",
            f"{said}: nothing to poll",
            "add the [[lines]] and their devices (station-agent scan finds them), then [[dispensers]] and [[tanks]]",
        )
    if not config.dispensers and not config.tanks:
        return Check(
            "config",
            Status.WARN,
            f"{said}, but no dispensers or tanks use them: no sales or tank records",
            "add the [[dispensers]] and [[tanks]] and remove allow_empty from [station]",
        )
    return ok("config", said)


def failed(checks: list[Check]) -> bool:
    return any(check.status == Status.FAIL for check in checks)


def output(checks: list[Check], as_json: bool) -> str:
    """One line per check and its fix, or the checks as a JSON list."""
    if as_json:
        return json.dumps([asdict(check) for check in checks], indent=2)
    out: list[str] = []
    for check in checks:
        out.append(f"{check.status.value:<4}  {check.name:<14}  {check.detail}")
        if check.fix:
            out.append(f"{'':<4}  {'':<14}  fix: {check.fix}")
    failures = sum(check.status == Status.FAIL for check in checks)
    warnings = sum(check.status == Status.WARN for check in checks)
    said = ngettext("{n} failure", "{n} failures", failures).format(n=failures)
    said += ", " + ngettext("{n} warning", "{n} warnings", warnings).format(n=warnings)
    out.append(f"selftest: {said}")
    return "\n".join(out)
