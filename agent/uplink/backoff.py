"""How long an uplink waits before it connects again: jittered, growing with the failures in a row.

Theory of operation: every reconnect waits, not only one after a failed connect, because a broker that accepts a
session and ends it at once (a flapping link, a second box with the same client id, a broker that CONNACKs and
closes) is as much a failure as one that refuses, and without a wait the agent knocks hundreds of times a
minute, each knock a full TLS handshake. A session counts as failed unless it lasted long enough to prove the link
steady; the count survives from one session to the next, so the wait grows across them. The wait is drawn from
[min_s / 2, min(max_s, min_s · 2^failures)]: jittered, so that a city's stations coming back after a broker outage
spread out instead of knocking at once, with a floor, so that no draw is an immediate knock. Pure code.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, min_s: float, max_s: float, draw: Callable[[float, float], float] = random.uniform) -> None:
        self._min_s = min_s
        self._max_s = max_s
        self._draw = draw
        self.failures = 0
        """Sessions or connects in a row that failed; 0 after a steady one."""

    def delay_s(self) -> float:
        ceiling = min(self._max_s, self._min_s * 2 ** min(self.failures, 30))
        return self._draw(min(self._min_s / 2, ceiling), ceiling)

    def failed(self) -> None:
        self.failures += 1

    def steady(self) -> None:
        self.failures = 0
