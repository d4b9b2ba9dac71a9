"""The line health the poller reports (what `line_errors` is judged on): a device's failures count for the line
only once it answers again, and a device that goes offline is never the line's trouble. The devices here are
scripted calls (the poller's logic, not a wire), each failure a protocol's own error type."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from support.waiting import wait_until
from test_field import Sink

from agent.clock import SystemClock
from agent.containment import Boundary
from agent.field.events import DeviceOffline, LineHealth
from agent.field.poller import LinePoller, PolledDevice
from drivers.errors import FieldError
from drivers.modbus import ModbusCrcError, ModbusTimeout
from drivers.readings import Reading, TankGaugeReading
from drivers.transport import LinkStatistics
from drivers.veeder_root import TlsChecksumError, TlsTimeout


class Scripted:
    """A device whose polls fail as scripted, then answer; `answers` counts the polls it answered."""

    def __init__(self, failures: Iterator[FieldError | None]) -> None:
        self._failures = failures
        self.answers = 0

    def __call__(self) -> Reading:
        failure = next(self._failures, None)
        if failure is not None:
            raise failure
        self.answers += 1
        return TankGaugeReading(tanks=())


def always(error: Callable[[], FieldError]) -> Iterator[FieldError | None]:
    while True:
        yield error()


def test_failures_count_for_the_line_once_the_device_answers_and_never_for_a_dead_device() -> None:
    """A noisy device's held failures (by kind, Modbus and TLS alike) join the line's counts when it answers;
    a dead device's never do, before or after it is declared offline."""
    noisy = Scripted(iter([ModbusCrcError("crc"), ModbusTimeout("late"), TlsChecksumError("sum"), None]))
    dead = Scripted(always(lambda: TlsTimeout("silent")))
    devices = [PolledDevice("noisy", 1, 0.01, noisy), PolledDevice("dead", 2, 0.01, dead)]
    events = Sink()
    boundary = Boundary("poller rs485-1", lambda _intent: None, SystemClock())
    poller = LinePoller("rs485-1", devices, _NoLink(), SystemClock(), events, boundary=boundary, health_every_s=0)
    poller.start()
    try:
        wait_until(lambda: bool(events.of(DeviceOffline)) and noisy.answers >= 5, 10, "dead offline, noisy answering")
    finally:
        assert poller.stop()
    health = events.of(LineHealth)[-1]
    assert isinstance(health, LineHealth)
    assert [event.device for event in events.of(DeviceOffline) if isinstance(event, DeviceOffline)] == ["dead"]
    assert (health.failures, health.crc_errors, health.timeouts) == (3, 2, 1)
    assert health.attempts == health.failures + noisy.answers
    assert dead.answers == 0


class _NoLink:
    """The line's link as the poller sees it: these devices are calls, so there is nothing to count."""

    def close(self) -> None:
        pass

    def statistics(self) -> LinkStatistics:
        return LinkStatistics()
