"""Structured logs for the agent process: one event per fact, JSON for journald, readable lines for people.

    log = get_logger("agent.uplink")
    log.warning("uplink_connect_failed", broker="10.0.0.1:8883", error="timed out")

This is the standard library's logging with a formatter of our own rather than structlog: importing structlog
pulls in asyncio, 6.7 MB of the agent's 40 MB budget on a small gateway, for what forty lines do here. (The
simulators, which run on a developer's machine or in CI, use structlog.)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from drivers.schema import doc, settings

_FIELDS = "fields"


class EventLogger:
    """Logs an event name with keyword fields; what the fields are is the caller's, not a format string."""

    __slots__ = ("_logger",)

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, exc_info=exc_info, extra={_FIELDS: fields})

    def debug(self, event: str, /, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, /, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, /, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, /, **fields: Any) -> None:
        """An error with the traceback of the exception being handled."""
        self._log(logging.ERROR, event, fields, exc_info=True)


def get_logger(name: str) -> EventLogger:
    return EventLogger(name)


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in getattr(record, _FIELDS, {}).items():
            entry[f"{key}_" if key in entry else key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """`ts level event key=value ...`, for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{key}={value!r}" for key, value in getattr(record, _FIELDS, {}).items())
        line = f"{_timestamp(record)} {record.levelname.lower():7} {record.getMessage():30} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalPriority(logging.Formatter):
    """Puts the syslog priority in front of each line (`<4>` for a warning): journald takes it off and files
    the entry at that priority, so `journalctl -u station-agent -p warning` shows what needs a look."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{self._inner.format(record)}"


def _stderr_is_journal() -> bool:
    """systemd names the journal stream it connected as JOURNAL_STREAM=device:inode; only that stream, not a
    pipe or terminal the agent's stderr was redirected to since, takes priority prefixes."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else ConsoleFormatter()
    handler.setFormatter(JournalPriority(formatter) if _stderr_is_journal() else formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


REPEAT_EVERY_S = 60.0
"""How often one warning (the same event about the same thing) may be logged while it keeps happening."""
MAX_REPEAT_KEYS = 1_024
"""How many (event, key) pairs a gate remembers: the keys are device names or exception classes, a bounded set;
past this the oldest is forgotten, which at worst lets one more line through."""


class LogTally:
    """Counts occurrences of something a peer or a loop can repeat at will; `note` says when one is to be logged:
    the first at once, then the first after each `every_s`, carrying the count since the last line logged (itself
    included). One line a minute that says how many it stands for tells the staff as much as hundreds a second
    into journald on a small flash disk. Safe from any thread; the caller brings the time."""

    def __init__(self, every_s: float = REPEAT_EVERY_S) -> None:
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


class RepeatGate:
    """Decides which of a repeated warning's lines are logged: the first, then at most one per `every_s` for each
    (event, key), which carries how many were left out since the last. Pure logic: the caller brings the time.

    A burst's last suppressed lines are counted in the next line of the same event and key, whenever that comes;
    a warning that never comes back has said what it is already."""

    __slots__ = ("_every_s", "_max_keys", "_windows")

    def __init__(self, every_s: float = REPEAT_EVERY_S, max_keys: int = MAX_REPEAT_KEYS) -> None:
        self._every_s = every_s
        self._max_keys = max_keys
        self._windows: dict[tuple[str, str], LogTally] = {}

    def admit(self, event: str, key: str, now_s: float) -> int | None:
        """None: leave this line out. An int: log it, saying that many were left out before it."""
        tally = self._windows.get((event, key))
        if tally is None:
            if len(self._windows) >= self._max_keys:
                del self._windows[next(iter(self._windows))]
            tally = self._windows[(event, key)] = LogTally(self._every_s)
        count = tally.note(now_s)
        return None if count is None else count - 1


class RepeatLimitedLogger:
    """A logger for warnings a loop may repeat at a high rate (a device that keeps failing, a record refused over
    and over): each (event, key) is logged at most once per `every_s`, with `suppressed=N` once lines were left out.

        log = repeat_limited("agent.recorder")
        log.error("record_refused", key="transaction", type="transaction", reason="...")

    Thread-safe: pollers, the station and the recorder each log from their own thread."""

    __slots__ = ("_clock", "_gate", "_lock", "_logger")

    def __init__(
        self,
        logger: EventLogger,
        every_s: float = REPEAT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._gate = RepeatGate(every_s)
        self._clock = clock
        self._lock = threading.Lock()

    def warning(self, event: str, /, *, key: str = "", **fields: Any) -> None:
        self._log(logging.WARNING, event, key, fields)

    def error(self, event: str, /, *, key: str = "", **fields: Any) -> None:
        self._log(logging.ERROR, event, key, fields)

    def exception(self, event: str, /, *, key: str = "", **fields: Any) -> None:
        """An error with the traceback of the exception being handled (in the lines that are logged)."""
        self._log(logging.ERROR, event, key, fields, exc_info=True)

    def _log(self, level: int, event: str, key: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        with self._lock:
            suppressed = self._gate.admit(event, key, self._clock())
        if suppressed is None:
            return
        if suppressed:
            fields = {**fields, "suppressed": suppressed}
        self._logger._log(level, event, fields, exc_info=exc_info)


def repeat_limited(name: str, every_s: float = REPEAT_EVERY_S) -> RepeatLimitedLogger:
    return RepeatLimitedLogger(get_logger(name), every_s)


@settings
class LoggingSection:
    level: Literal["debug", "info", "warning", "error"] = doc("the least important log events written", default="info")
    format: Literal["json", "console"] = doc("'json' for journald, 'console' for people", default="json")
