"""A process's CPU time, memory and block-I/O counters, read from /proc, which is where the kernel keeps the truth.

`write_bytes` is what the process caused to be sent to the block layer (counted when a page is first dirtied,
so a page rewritten before write-back counts once); journal writes done by the file system's own thread are
not in it. `VmHWM` is the peak resident set since the process started (an exec starts it afresh, as it does
the address space). CPU time (`utime` + `stime`) counts from the process's start and survives an exec; it
moves in clock ticks (10 ms on most kernels), so it is read over windows of seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class IoCounters:
    write_bytes: int
    cancelled_write_bytes: int
    read_bytes: int

    def since(self, earlier: IoCounters) -> IoCounters:
        return IoCounters(
            self.write_bytes - earlier.write_bytes,
            self.cancelled_write_bytes - earlier.cancelled_write_bytes,
            self.read_bytes - earlier.read_bytes,
        )


def io_counters(pid: int | None = None) -> IoCounters:
    """The I/O counters of `pid` (this process when None)."""
    fields = _fields(pid, "io", ":")
    return IoCounters(fields["write_bytes"], fields["cancelled_write_bytes"], fields["read_bytes"])


def cpu_seconds(pid: int | None = None) -> float:
    """User plus system CPU time of `pid` (this process when None), all its threads, in seconds."""
    text = (Path("/proc") / ("self" if pid is None else str(pid)) / "stat").read_text()
    fields = text.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def threads_cpu_ns(pid: int) -> dict[int, int]:
    """CPU time of each thread `pid` runs now, in nanoseconds (`/proc/PID/task/TID/schedstat`): a window of a
    few hundred milliseconds of CPU is measured to the microsecond, where `cpu_seconds` counts 10 ms ticks."""
    times: dict[int, int] = {}
    for task in (Path("/proc") / str(pid) / "task").iterdir():
        try:
            times[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):  # the thread ended while it was read
            continue
    return times


def window_cpu_s(earlier: dict[int, int], later: dict[int, int]) -> float:
    """The CPU the threads took between two `threads_cpu_ns` readings; a thread started in between counts from
    zero, and one that ended in between is not counted (a steady process starts and ends none)."""
    return sum(ns - earlier.get(tid, 0) for tid, ns in later.items()) / 1e9


def memory_kb(pid: int | None, name: str) -> int:
    """A `Vm*` line of /proc/PID/status in kB, e.g. `VmHWM` (peak resident) or `VmRSS` (resident now)."""
    return _fields(pid, "status", ":")[name]


def _fields(pid: int | None, name: str, separator: str) -> dict[str, int]:
    text = (Path("/proc") / ("self" if pid is None else str(pid)) / name).read_text()
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(separator)
        number = value.strip().removesuffix(" kB")
        if number.isdigit():
            fields[key.strip()] = int(number)
    return fields
