"""A warning that a peer can repeat at will, logged once in a while with the count it stands for.

A broker or receiver that sends junk as fast as the link allows would otherwise write a log line per message
(hundreds a second into journald, on a box with a small flash disk); one line a minute that says how many it
stands for tells the staff the same and costs nothing. Pure code: the caller brings the time and the logger.
"""

from __future__ import annotations

import threading


class LogTally:
    """Counts occurrences; `note` says when one is to be logged: the first at once, then the first after each
    `every_s`, carrying the count since the last line logged (itself included). Safe from any thread."""

    def __init__(self, every_s: float = 60.0) -> None:
        self._every_s = every_s
        self._lock = threading.Lock()
        self._unlogged = 0
        self._total = 0
        self._logged_at: float | None = None

    def note(self, now_s: float) -> int | None:
        """Count one occurrence at monotonic time `now_s`; the count to log with it, or None to stay quiet."""
        with self._lock:
            self._unlogged += 1
            self._total += 1
            if self._logged_at is not None and now_s - self._logged_at < self._every_s:
                return None
            count, self._unlogged, self._logged_at = self._unlogged, 0, now_s
            return count

    @property
    def total(self) -> int:
        """Every occurrence counted since start."""
        with self._lock:
            return self._total
