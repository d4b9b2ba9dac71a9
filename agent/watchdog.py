"""What the agent tells systemd on each status turn: ready, alive (the watchdog ping), a status line, stopping.

Theory of operation: systemd restarts the service when WATCHDOG=1 stops arriving for WatchdogSec. The pings go
out from the main thread's status turn, but a main thread that turns proves only itself; so before each ping
the agent looks at every loop that does its work (the station, the recorder, the uplink, one poller per line).
A loop whose thread has ended, or that is more than a tolerance past the turn it promised (agent/pulse.py), is
stalled, and while any loop is stalled no ping goes out: systemd then kills and restarts the agent, which
resumes from its outbox. The tolerance is the unit's own WatchdogSec, the figure the operator already chose
for "how long may the agent be unresponsive", so a stalled loop costs at most twice that before the restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from agent.logs import get_logger
from agent.pulse import Pulse
from agent.status import AgentStatus
from agent.systemd_notify import SystemdNotifier

log = get_logger("agent.watchdog")


class Loop(Protocol):
    """A long-lived part with a thread of its own."""

    pulse: Pulse

    def alive(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Stall:
    """A loop that is not doing its work: its thread ended (`overdue_s` None), or it is that far past its turn."""

    loop: str
    overdue_s: float | None

    def __str__(self) -> str:
        if self.overdue_s is None:
            return f"{self.loop}: thread ended"
        return f"{self.loop}: {self.overdue_s:.0f} s past its next turn"


@dataclass(frozen=True, slots=True)
class Liveness:
    """The verdict of one look: every stalled loop, none when all are well."""

    stalled: tuple[Stall, ...]

    @property
    def alive(self) -> bool:
        return not self.stalled

    def loops(self) -> tuple[str, ...]:
        return tuple(stall.loop for stall in self.stalled)


def judge(loops: Mapping[str, Loop], now: float, tolerance_s: float) -> Liveness:
    """Which loops are stalled at monotonic time `now`: ended, or more than `tolerance_s` past their promise."""
    stalled: list[Stall] = []
    for name, loop in loops.items():
        if not loop.alive():
            stalled.append(Stall(name, None))
            continue
        overdue_s = loop.pulse.overdue_s(now)
        if overdue_s > tolerance_s:
            stalled.append(Stall(name, overdue_s))
    return Liveness(tuple(stalled))


def status_line(status: AgentStatus) -> str:
    """One line for `systemctl status`: the health, then the first problem or the figures that say all is well."""
    if status.problems:
        more = f" (+{len(status.problems) - 1} more)" if len(status.problems) > 1 else ""
        first = status.problems[0]
        return f"{status.health}: {first.kind} {first.subject}{more}"
    devices = [device for line in status.lines for device in line.devices]
    online = sum(1 for device in devices if device.state == "online")
    unsent = status.recorder.head_seq - status.recorder.acked_upto
    uplink = f"uplink {status.uplink.state}, {unsent} records unsent"
    return f"{status.health}: {uplink}, {online}/{len(devices)} devices online"


class ServiceWatchdog:
    """Pings only while every loop is alive; says so in the journal once when it starts and stops withholding."""

    def __init__(self, notifier: SystemdNotifier, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._notifier = notifier
        self._monotonic = monotonic
        self._last_status = ""
        self._withheld: tuple[str, ...] = ()

    @property
    def ping_every_s(self) -> float | None:
        """Half the watchdog period, as systemd advises; None when no watchdog is set."""
        period = self._notifier.watchdog_period_s
        return None if period is None else period / 2

    def ready(self, status: str) -> None:
        self._last_status = status
        self._notifier.notify(READY="1", STATUS=status)

    def turn(self, loops: Mapping[str, Loop], status: str) -> Liveness:
        """Ping if every loop is alive; tell systemd the status line (see status_line) when it changed."""
        period = self._notifier.watchdog_period_s
        liveness = Liveness(()) if period is None else judge(loops, self._monotonic(), period)
        if liveness.loops() != self._withheld:
            if liveness.stalled:
                log.error("watchdog_withheld", stalled=[str(stall) for stall in liveness.stalled])
            else:
                log.warning("watchdog_resumed", were_stalled=list(self._withheld))
            self._withheld = liveness.loops()
        line = status if liveness.alive else "stalled: " + "; ".join(map(str, liveness.stalled))
        fields = {"WATCHDOG": "1"} if period is not None and liveness.alive else {}
        if line != self._last_status:
            fields["STATUS"] = self._last_status = line
        if fields:
            self._notifier.notify(**fields)
        return liveness

    def stopping(self) -> None:
        self._notifier.notify(STOPPING="1", STATUS="stopping")
        self._last_status = "stopping"
