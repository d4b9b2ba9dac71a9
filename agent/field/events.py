"""What the field bus tells the station: a device's reading, or that a device came or went."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.pump_controller import PumpControllerReading


@dataclass(frozen=True, slots=True)
class DeviceReading:
    device: str
    line: str
    ts_ms: int
    reading: PumpControllerReading


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


FieldEvent = DeviceReading | DeviceOnline | DeviceOffline
