"""What the field bus tells the station: a device's reading, a device came or went, how a line is doing."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.readings import Reading, ValueFault


@dataclass(frozen=True, slots=True)
class DeviceReading:
    device: str
    line: str
    ts_ms: int
    reading: Reading


@dataclass(frozen=True, slots=True)
class DeviceOnline:
    device: str
    line: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class DeviceOffline:
    device: str
    line: str
    ts_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class LineHealth:
    """Cumulative poll attempts and failures on a line, counting only devices that were answering: a dead
    device is a device_silent matter, a noisy line is a line_errors one."""

    line: str
    ts_ms: int
    attempts: int
    failures: int
    crc_errors: int
    timeouts: int


@dataclass(frozen=True, slots=True)
class DeviceValueFaults:
    """A device's values that cannot be true (NaN, infinity, out of range), said when they change: on the first
    poll, when a fault appears or changes, and when the device reads sane again (`faults` empty)."""

    device: str
    line: str
    ts_ms: int
    faults: tuple[ValueFault, ...]


FieldEvent = DeviceReading | DeviceOnline | DeviceOffline | LineHealth | DeviceValueFaults
