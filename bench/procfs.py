"""A process's memory and block-I/O counters, read from /proc, which is where the kernel keeps the truth.

`write_bytes` is what the process caused to be sent to the block layer (counted when a page is first dirtied,
so a page rewritten before write-back counts once); journal writes done by the file system's own thread are
not in it. `VmHWM` is the peak resident set since the process started.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
