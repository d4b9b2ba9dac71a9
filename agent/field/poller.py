"""One poller per line: devices served in turn, one request in flight, each device at its own rate.

Theory of operation: a line is a half-duplex bus, so its poller is one thread that keeps a schedule (a heap
of due times) and serves whichever device is due next; a slow or dead device costs only its own timeouts.
A failed request is retried within a small budget; a device that fails `OFFLINE_AFTER` polls in a row is
declared offline (an event for the station) and then polled less and less often, up to `MAX_BACKOFF_S`,
so that it cannot starve the healthy devices on the same line. The first good poll brings it back online.
The poller never waits on the station, the disk or the network: it hands each event to a non-blocking sink.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog

from agent.clock import Clock
from agent.field.events import DeviceOffline, DeviceOnline, DeviceReading, FieldEvent
from drivers.modbus.errors import ModbusError
from drivers.modbus.master import MasterStatistics, ModbusMaster
from drivers.pump_controller import PumpControllerDriver, PumpControllerReading

log = structlog.get_logger("agent.poller")

OFFLINE_AFTER = 3
RETRIES_PER_POLL = 1
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True, slots=True)
class PolledDevice:
    name: str
    unit: int
    interval_s: float
    driver: PumpControllerDriver


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    name: str
    unit: int
    state: Literal["unknown", "online", "offline"]
    since_ms: int
    polls: int
    failed_polls: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class LineStatus:
    name: str
    devices: tuple[DeviceStatus, ...]
    bus: MasterStatistics


@dataclass(slots=True)
class _Health:
    state: Literal["unknown", "online", "offline"] = "unknown"
    since_ms: int = 0
    failures_in_row: int = 0
    polls: int = 0
    failed_polls: int = 0
    last_error: str | None = None


class LinePoller:
    def __init__(
        self,
        line: str,
        devices: list[PolledDevice],
        master: ModbusMaster,
        clock: Clock,
        sink: Callable[[FieldEvent], None],
    ) -> None:
        self.line = line
        self._devices = devices
        self._master = master
        self._clock = clock
        self._sink = sink
        self._health = {device.name: _Health(since_ms=clock.wall_ms()) for device in devices}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"poller-{line}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        self._master.close()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> LineStatus:
        with self._lock:
            devices = tuple(
                DeviceStatus(
                    device.name,
                    device.unit,
                    health.state,
                    health.since_ms,
                    health.polls,
                    health.failed_polls,
                    health.last_error,
                )
                for device in self._devices
                for health in (self._health[device.name],)
            )
        return LineStatus(self.line, devices, self._master.statistics())

    def _run(self) -> None:
        now = self._clock.monotonic()
        schedule = [(now, index) for index in range(len(self._devices))]
        heapq.heapify(schedule)
        while schedule and not self._stop.is_set():
            due, index = schedule[0]
            delay = due - self._clock.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            heapq.heappop(schedule)
            device = self._devices[index]
            ok = self._poll(device)
            interval = device.interval_s if ok else self._backoff(device)
            heapq.heappush(schedule, (max(due + interval, self._clock.monotonic()), index))

    def _backoff(self, device: PolledDevice) -> float:
        health = self._health[device.name]
        if health.state != "offline":
            return device.interval_s
        exponent = min(health.failures_in_row - OFFLINE_AFTER, 10)
        return float(min(MAX_BACKOFF_S, device.interval_s * (2**exponent)))

    def _poll(self, device: PolledDevice) -> bool:
        error: ModbusError | None = None
        for _ in range(1 + RETRIES_PER_POLL):
            try:
                reading = device.driver.read(self._master, device.unit)
            except ModbusError as exc:
                error = exc
                continue
            self._succeeded(device, reading)
            return True
        assert error is not None
        self._failed(device, error)
        return False

    def _succeeded(self, device: PolledDevice, reading: PumpControllerReading) -> None:
        now_ms = self._clock.wall_ms()
        health = self._health[device.name]
        with self._lock:
            came_back = health.state != "online"
            health.polls += 1
            health.failures_in_row = 0
            if came_back:
                health.state, health.since_ms = "online", now_ms
        if came_back:
            log.info("device_online", line=self.line, device=device.name)
            self._sink(DeviceOnline(device.name, self.line, now_ms))
        self._sink(DeviceReading(device.name, self.line, now_ms, reading))

    def _failed(self, device: PolledDevice, error: ModbusError) -> None:
        now_ms = self._clock.wall_ms()
        health = self._health[device.name]
        with self._lock:
            health.polls += 1
            health.failed_polls += 1
            health.failures_in_row += 1
            health.last_error = str(error)
            went_away = health.state != "offline" and health.failures_in_row >= OFFLINE_AFTER
            if went_away:
                health.state, health.since_ms = "offline", now_ms
        if went_away:
            log.warning("device_offline", line=self.line, device=device.name, error=str(error))
            self._sink(DeviceOffline(device.name, self.line, now_ms, f"{type(error).__name__}: {error}"))
