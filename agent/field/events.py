"""What the field bus tells the station: a device's reading, a device came or went, how a line is doing."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.readings import Reading


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


FieldEvent = DeviceReading | DeviceOnline | DeviceOffline | LineHealth
