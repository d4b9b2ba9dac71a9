"""The line poller against a simulated controller on a real pty line: readings, and garbled or dead devices."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import pytest
from support.waiting import wait_until

from agent.clock import SystemClock
from agent.containment import Boundary
from agent.contract.records import RecordIntent
from agent.field.events import DeviceOffline, DeviceOnline, DeviceReading, DeviceValueFaults, FieldEvent
from agent.field.poller import LinePoller, PolledDevice
from drivers.device import DeviceDriver
from drivers.modbus.master import SerialRtuMaster, TcpMaster
from drivers.profile_validation import load_profile
from drivers.profiles import encode_point
from drivers.readings import ValueFault
from simulators.clock import SimClock
from simulators.forecourt import Dispenser, NozzleSpec
from simulators.modbus_slave import RegisterMap, RtuSlaveServer, TcpSlaveServer, poison_words
from simulators.serial_line import PtyPair

PROFILE = Path(__file__).resolve().parents[1] / "config" / "profiles" / "sim-pump-controller.toml"


class Sink:
    def __init__(self) -> None:
        self.events: list[FieldEvent] = []
        self.hand_overs: list[tuple[FieldEvent, ...]] = []
        self._lock = threading.Lock()

    def __call__(self, events: Sequence[FieldEvent]) -> None:
        with self._lock:
            self.events.extend(events)
            self.hand_overs.append(tuple(events))

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


def test_devices_due_together_reach_the_station_in_one_hand_over(line: tuple[RtuSlaveServer, LinePoller, Sink]) -> None:
    """Two devices due at the same instant (as at start) are served in one turn of the poller's thread and handed
    over together, in the config's order: the station thread wakes once for both."""
    _, _, sink = line
    wait_until(lambda: len(sink.hand_overs) >= 2, 10, "two hand-overs")
    first = [(type(event).__name__, event.device) for event in sink.hand_overs[0]]
    assert first == [
        ("DeviceOnline", "pc1"),
        ("DeviceValueFaults", "pc1"),
        ("DeviceReading", "pc1"),
        ("DeviceOnline", "pc2"),
        ("DeviceValueFaults", "pc2"),
        ("DeviceReading", "pc2"),
    ]


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


FLOAT_PROBE = """
[profile]
name = "float-probe"
kind = "level_probe"

[[points]]
meaning = "oil_height_um"
address = 0x0010
type = "f32"
scale = 1000          # mm -> micrometres

[[points]]
meaning = "water_height_um"
address = 0x0012
type = "f32"
scale = 1000

[[points]]
meaning = "temperature_cC"
address = 0x0014
type = "i16"
min = -4000           # degC x 100: a tank is never colder than -40 degC
"""


@pytest.fixture
def probes(tmp_path: Path) -> Iterator[tuple[TcpSlaveServer, LinePoller, Sink]]:
    """Two float level probes behind one Modbus TCP slave, polled by the real poller."""
    path = tmp_path / "float-probe.toml"
    path.write_text(FLOAT_PROBE)
    profile = load_profile(path)
    driver = DeviceDriver(profile)
    banks = {}
    for unit in (31, 32):
        bank = RegisterMap()
        bank.set(3, 0x0010, encode_point(profile.document.points[0], 1_523_000, "big"))
        bank.set(3, 0x0012, encode_point(profile.document.points[1], 12_000, "big"))
        bank.set(3, 0x0014, [1850])
        banks[unit] = bank
    sink = Sink()
    reports: list[RecordIntent] = []
    with TcpSlaveServer(banks) as server:
        master = TcpMaster(*server.address, timeout_s=0.5)
        devices = [PolledDevice(f"lp{unit}", unit, 0.05, partial(driver.read, master, unit)) for unit in (31, 32)]
        boundary = Boundary("poller tcp-1", reports.append, SystemClock())
        poller = LinePoller("tcp-1", devices, master, SystemClock(), sink, boundary=boundary)
        poller.start()
        try:
            yield server, poller, sink
        finally:
            poller.stop()
    assert not reports, "a value fault is no internal error"


def faults_of(sink: Sink, device: str) -> list[DeviceValueFaults]:
    return [e for e in sink.of(DeviceValueFaults) if isinstance(e, DeviceValueFaults) and e.device == device]


class TestImplausibleValues:
    @pytest.mark.parametrize(
        ("poison", "raw_hex", "reason"),
        [
            ("nan", "7FC00000", "not a number (NaN)"),
            ("inf", "7F800000", "inf (infinite)"),
            ("-inf", "FF800000", "-inf (infinite)"),
        ],
    )
    def test_a_probe_that_reads_nan_or_infinity_is_a_value_fault_and_the_other_probe_goes_on(
        self, probes: tuple[TcpSlaveServer, LinePoller, Sink], poison: str, raw_hex: str, reason: str
    ) -> None:
        """A float register reading NaN or infinity over real Modbus TCP: the poller lives, says which register
        and what it held, stays online, gives no reading of that probe, the other keeps being read; once the
        register is sane again an empty fault list clears it and readings resume."""
        server, poller, sink = probes
        wait_until(lambda: readings_of(sink, "lp31") >= 3 and readings_of(sink, "lp32") >= 3, 10, "readings")
        assert [e.faults for e in faults_of(sink, "lp31")] == [()], "the first answer says: nothing at fault"
        server.faults[31].stuck = poison_words(poison, 0x0010)
        wait_until(lambda: len(faults_of(sink, "lp31")) == 2, 10, "the value fault")
        (fault,) = faults_of(sink, "lp31")[1].faults
        assert fault == ValueFault("oil_height_um", 0x0010, raw_hex, reason)
        stalled = readings_of(sink, "lp31")
        before = readings_of(sink, "lp32")
        wait_until(lambda: readings_of(sink, "lp32") >= before + 10, 10, "lp32 to keep being read")
        assert readings_of(sink, "lp31") == stalled, "no reading is made of a value that cannot be true"
        assert poller.alive() and not sink.of(DeviceOffline)
        assert len(faults_of(sink, "lp31")) == 2, "said once while it lasts"
        server.faults[31].stuck = {}
        wait_until(lambda: readings_of(sink, "lp31") > stalled, 10, "lp31 to read again")
        assert faults_of(sink, "lp31")[-1].faults == ()

    def test_a_value_below_the_profiles_min_is_a_value_fault(
        self, probes: tuple[TcpSlaveServer, LinePoller, Sink]
    ) -> None:
        """A temperature register reading -50 degC, below the profile's min of -40 degC, names the point, its
        register and the raw word."""
        server, _, sink = probes
        wait_until(lambda: readings_of(sink, "lp31") >= 1, 10, "a reading")
        server.faults[31].stuck = {0x0014: (-5000) & 0xFFFF}
        wait_until(lambda: len(faults_of(sink, "lp31")) == 2, 10, "the value fault")
        (fault,) = faults_of(sink, "lp31")[1].faults
        assert fault == ValueFault(
            "temperature_cC", 0x0014, "EC78", "-5000 is outside the plausible -4000..10000 of temperature_cC"
        )
