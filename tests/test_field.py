"""The line poller against a simulated controller on a real pty line: readings, and garbled or dead devices."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from station_rig import wait_until

from agent.clock import SystemClock
from agent.containment import Boundary
from agent.field.events import DeviceOffline, DeviceOnline, DeviceReading, FieldEvent
from agent.field.poller import LinePoller, PolledDevice
from drivers.device import DeviceDriver
from drivers.modbus.master import SerialRtuMaster
from drivers.profiles import load_profile
from simulators.clock import SimClock
from simulators.forecourt import Dispenser, NozzleSpec
from simulators.modbus_slave import RtuSlaveServer
from simulators.serial_line import PtyPair

PROFILE = Path(__file__).resolve().parents[1] / "config" / "profiles" / "sim-pump-controller.toml"


class Sink:
    def __init__(self) -> None:
        self.events: list[FieldEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: FieldEvent) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type) -> list[FieldEvent]:
        with self._lock:
            return [event for event in self.events if isinstance(event, kind)]


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[RtuSlaveServer, LinePoller, Sink]]:
    profile = load_profile(PROFILE)
    clock = SimClock(20)
    clock.start()
    nozzles = [NozzleSpec("92", 770), NozzleSpec("95", 820)]
    controllers = {
        unit: Dispenser(f"D0{unit}", nozzles, profile, rng=random.Random(unit)).controller_bank(clock)
        for unit in (1, 2)
    }
    sink = Sink()
    with PtyPair(tmp_path / "agent", tmp_path / "device") as pty, RtuSlaveServer(pty.link_b, controllers) as server:
        master = SerialRtuMaster(pty.link_a, timeout_s=0.1)
        driver = DeviceDriver(profile, [1, 2])
        devices = [PolledDevice(f"pc{unit}", unit, 0.05, partial(driver.read, master, unit)) for unit in (1, 2)]
        boundary = Boundary("poller rs485-1", lambda _intent: None, SystemClock())
        poller = LinePoller("rs485-1", devices, master, SystemClock(), sink, boundary=boundary)
        poller.start()
        try:
            yield server, poller, sink
        finally:
            poller.stop()


def readings_of(sink: Sink, device: str) -> int:
    return sum(1 for event in sink.of(DeviceReading) if isinstance(event, DeviceReading) and event.device == device)


class TestPoller:
    def test_devices_on_one_line_are_read_and_come_online(self, line: tuple[RtuSlaveServer, LinePoller, Sink]) -> None:
        """Both controllers on the line answer; each comes online once and keeps giving typed readings."""
        _, poller, sink = line
        wait_until(lambda: readings_of(sink, "pc1") >= 5 and readings_of(sink, "pc2") >= 5, 10, "readings")
        assert sorted(e.device for e in sink.of(DeviceOnline) if isinstance(e, DeviceOnline)) == ["pc1", "pc2"]
        reading = next(e for e in sink.of(DeviceReading) if isinstance(e, DeviceReading))
        assert [n.nozzle for n in reading.reading.nozzles] == [1, 2]
        assert reading.reading.k_factor == 10_000
        assert poller.status().bus.requests >= 10

    def test_garbled_answers_take_a_device_offline_and_back_without_stopping_the_other(
        self, line: tuple[RtuSlaveServer, LinePoller, Sink]
    ) -> None:
        """Garbage instead of answers makes pc1 offline (one event, with the error) while pc2 keeps being read;
        clean answers bring pc1 back online."""
        server, poller, sink = line
        wait_until(lambda: len(sink.of(DeviceOnline)) == 2, 10, "both devices online")
        server.faults[1].garble_rate = 1.0
        wait_until(lambda: bool(sink.of(DeviceOffline)), 10, "pc1 to go offline")
        before = readings_of(sink, "pc2")
        wait_until(lambda: readings_of(sink, "pc2") >= before + 5, 10, "pc2 to keep being read")
        (offline,) = sink.of(DeviceOffline)
        assert isinstance(offline, DeviceOffline) and offline.device == "pc1"
        assert "Modbus" in offline.reason
        server.faults[1].garble_rate = 0.0
        wait_until(lambda: len(sink.of(DeviceOnline)) == 3, 40, "pc1 to come back")
        statistics = poller.status().bus
        assert statistics.frame_errors + statistics.crc_errors + statistics.timeouts > 0

    def test_crc_errors_are_counted_and_a_dead_device_is_backed_off(
        self, line: tuple[RtuSlaveServer, LinePoller, Sink]
    ) -> None:
        """Corrupted CRCs are counted as such; a dead unit goes offline and is then polled less often."""
        server, poller, sink = line
        wait_until(lambda: len(sink.of(DeviceOnline)) == 2, 10, "both devices online")
        server.faults[2].corrupt_crc_rate = 1.0
        wait_until(lambda: poller.status().bus.crc_errors >= 3, 10, "CRC errors")
        server.faults[2].corrupt_crc_rate = 0.0
        server.faults[2].dead = True
        wait_until(lambda: any(e.device == "pc2" for e in sink.of(DeviceOffline)), 10, "pc2 offline")
        polls_then = next(d.polls for d in poller.status().devices if d.name == "pc2")
        readings_then = readings_of(sink, "pc1")
        wait_until(lambda: readings_of(sink, "pc1") >= readings_then + 20, 10, "pc1 polled meanwhile")
        polls_after = next(d.polls for d in poller.status().devices if d.name == "pc2")
        assert polls_after - polls_then < 10, "a dead device is backed off, not polled at full rate"
