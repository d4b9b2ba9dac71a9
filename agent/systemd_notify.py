"""Telling systemd how the service is: the sd_notify protocol, spoken with the standard library.

systemd hands a `Type=notify` service the address of a datagram socket in NOTIFY_SOCKET and, when the unit
sets WatchdogSec=, the watchdog period in WATCHDOG_USEC. Each message is newline-separated `KEY=value`
assignments in one datagram. The protocol is this small, so a dependency (or libsystemd) would buy nothing.

Outside systemd (a terminal, the tests without a socket, the demo) every call is a no-op, and a message that
cannot be delivered is logged, never raised: the agent's records matter more than its manager's view of it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from agent.logs import get_logger

log = get_logger("agent.systemd")


class SystemdNotifier:
    """One datagram socket for the process's life; `sendto` every time, so a re-executed systemd, which binds
    its socket afresh, still hears us."""

    def __init__(self, address: str | None, watchdog_period_s: float | None) -> None:
        self._address = "\0" + address[1:] if address and address.startswith("@") else address
        self._socket: socket.socket | None = None
        self._failed = False
        self.watchdog_period_s = watchdog_period_s
        """The unit's WatchdogSec in seconds, or None when systemd watches no pings from this process."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SystemdNotifier:
        """What systemd passed this process. WATCHDOG_PID names the process to ping from: when it names
        another one (a child that inherited the environment), this process is not the one watched."""
        address = environ.get("NOTIFY_SOCKET") or None
        period_us = environ.get("WATCHDOG_USEC", "")
        watched_pid = environ.get("WATCHDOG_PID", "")
        watched = period_us.isdigit() and int(period_us) > 0 and watched_pid in ("", str(os.getpid()))
        return cls(address, int(period_us) / 1e6 if watched else None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: str) -> None:
        """Send `KEY=value` lines in one datagram, e.g. notify(READY="1", STATUS="online")."""
        if self._address is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message, self._address)
        except OSError as exc:
            if not self._failed:
                log.warning("systemd_notify_failed", socket=self._address, error=str(exc))
            self._failed = True
            return
        self._failed = False

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
