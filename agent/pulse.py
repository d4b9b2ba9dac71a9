"""A long-lived loop's sign of life: before each wait it promises when it will turn again.

A thread that is alive is not necessarily working: it may be stuck in a lock, a driver or a write that never
returns. Each loop therefore says, before it waits, how long it means to wait; the watchdog (agent/watchdog.py)
reads how far past that promise the loop is. A promise rather than a fixed period, because the loops wait for
very different spans (a second for the station, a reconnect backoff of minutes for the uplink), and only the
loop knows which wait it is in.

Real monotonic time on purpose: under accelerated station time the loops already convert their waits to real
seconds, and systemd's watchdog runs on real time too.
"""

from __future__ import annotations

import time


class Pulse:
    """Written by the loop's own thread, read by the main thread; one float assignment needs no lock."""

    __slots__ = ("_due_by",)

    def __init__(self) -> None:
        self._due_by = time.monotonic()

    def beat(self, next_within_s: float) -> None:
        """The loop is turning now and will turn again within `next_within_s` real seconds."""
        self._due_by = time.monotonic() + next_within_s

    def overdue_s(self, now: float) -> float:
        """How far past its promise the loop is at monotonic time `now`; 0.0 while it keeps it."""
        return max(0.0, now - self._due_by)
