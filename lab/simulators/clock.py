"""Simulated time: how many simulated seconds have passed, at `time_scale` simulated seconds per real second.

Every device model of a station reads the same clock, so a fault scheduled at a simulated second lands at that
second on every device, and a demo at time scale 10 holds ten minutes of forecourt in one real minute. The
clock stands still while the station is stopped: powered-off devices do not fuel cars.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SimClock:
    """Simulated seconds since the first `start`, not counting the time spent stopped; callable."""

    def __init__(self, time_scale: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0 simulated seconds per real second, got {time_scale}")
        self.time_scale = time_scale
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._elapsed_s = 0.0
        self._running_since: float | None = None

    def start(self) -> None:
        with self._lock:
            if self._running_since is None:
                self._running_since = self._monotonic()

    def stop(self) -> None:
        with self._lock:
            if self._running_since is not None:
                self._elapsed_s += (self._monotonic() - self._running_since) * self.time_scale
                self._running_since = None

    def __call__(self) -> float:
        with self._lock:
            if self._running_since is None:
                return self._elapsed_s
            return self._elapsed_s + (self._monotonic() - self._running_since) * self.time_scale
