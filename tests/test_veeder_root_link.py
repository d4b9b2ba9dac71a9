"""The TLS clients against the simulated tank gauge over a real pty pair (socat) and over TCP on 127.0.0.1.

Each way an exchange can fail is provoked on purpose and must reach the caller as its own error type and in
the counters, and no broken answer may leave the line in a state where the next answer is misread. The tank
here has a quiet probe (no noise) and a steady temperature, so what the gauge says is exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import serial

from agent.clock import SystemClock
from agent.contract.records import RecordIntent, RecordType
from agent.field.events import DeviceReading
from agent.field.lines import GaugePoll
from agent.station.bindings import TankBinding
from agent.station.devices import OPTIONAL_GAUGE_REPORTS
from agent.station.settings import MeteringSection, TankRulesSection
from agent.station.station import Station
from agent.station.tank import TankTracker
from agent.station.vcf import Fuel as AgentFuel
from agent.station.vcf import Product as AgentProduct
from drivers.readings import TankReading
from drivers.transport import LinkStatistics
from drivers.veeder_root import (
    TlsChecksumError,
    TlsCommandRefused,
    TlsFrameError,
    TlsLinkError,
    TlsSerialClient,
    TlsTcpClient,
    TlsTimeout,
)
from simulators.broker import free_loopback_port
from simulators.fuel import Fuel, Product
from simulators.serial_line import PtyPair
from simulators.tank_chart import TankChart
from simulators.tank_gauge import TankGauge
from simulators.tanks import Tank, TankSpec
from simulators.tls_server import TlsSerialServer, TlsTcpServer

TIMEOUT_S = 0.3
REOPEN_S = 0.2  # the serial server looks for its port again every 50 ms
NOW_S = 3600.0
START = datetime(2026, 3, 1, 13, 15)
TANK_BINDING = TankBinding("T1", AgentFuel(AgentProduct.GASOLINE, 745.0), 30_000_000, "tg1", gauge_tank=1)


def quiet_tank(tank_id: str = "T1", volume_l: float = 15_000.0) -> Tank:
    spec = TankSpec(
        fuel=Fuel(Product.GASOLINE, 745.0),
        chart=TankChart.horizontal_cylinder(2500, 6000),
        volume_l=volume_l,
        water_mm=20.0,
        temperature_c=15.0,
        daily_swing_c=0.0,
        height_noise_mm=0.0,
        water_noise_mm=0.0,
        temperature_noise_c=0.0,
    )
    return Tank(tank_id, spec, start=START)


@dataclass(frozen=True)
class Link:
    client: TlsSerialClient | TlsTcpClient
    gauge: TankGauge
    tank: Tank
    unplug: Callable[[], None]
    replug: Callable[[], None]


def gauge(security_code: str = "") -> TankGauge:
    return TankGauge("G1", [quiet_tank(), quiet_tank("T2", 2_000.0)], security_code=security_code)


@pytest.fixture
def line(tmp_path: Path) -> Iterator[PtyPair]:
    with PtyPair(tmp_path / "agent", tmp_path / "gauge") as pair:
        yield pair


def serial_link(line: PtyPair, simulated: TankGauge, security_code: str = "") -> Iterator[Link]:
    with TlsSerialServer(line.link_b, simulated, lambda: NOW_S):
        client = TlsSerialClient(line.link_a, timeout_s=TIMEOUT_S, security_code=security_code)

        def replug() -> None:
            line.start()
            time.sleep(REOPEN_S)  # the simulated gauge says nothing when it has its port again; it looks every 50 ms

        yield Link(client, simulated, simulated.tanks[1], line.stop, replug)
        client.close()


def tcp_link(simulated: TankGauge, security_code: str = "") -> Iterator[Link]:
    server = TlsTcpServer(simulated, lambda: NOW_S)
    server.start()
    client = TlsTcpClient(server.host, server.port, timeout_s=TIMEOUT_S, security_code=security_code)
    try:
        yield Link(client, simulated, simulated.tanks[1], server.stop, server.start)
    finally:
        client.close()
        server.stop()


@pytest.fixture(params=["serial", "tcp"])
def link(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Link]:
    if request.param == "serial":
        with PtyPair(tmp_path / "agent", tmp_path / "gauge") as pair:
            yield from serial_link(pair, gauge())
    else:
        yield from tcp_link(gauge())


class TestReadings:
    def test_read_gauge(self, link: Link) -> None:
        """Inventory, deliveries and alarms of every tank in three commands, in mL, micrometres, 0.01 degC."""
        reading = link.client.read_gauge()
        state = link.tank.state(NOW_S)
        tank_1, tank_2 = reading.tanks
        assert (tank_1.tank, tank_2.tank) == (1, 2)
        assert tank_1.height_um == pytest.approx(state.height_mm * 1000, abs=50)
        assert tank_1.volume_ml == pytest.approx(15_000_000, abs=1_000)
        assert tank_1.tc_volume_ml == pytest.approx(state.volume_20_l * 1000, abs=1_000)
        assert (tank_1.water_um, tank_1.temperature_cC, tank_1.delivery_in_progress) == (20_000, 1500, False)
        assert reading.deliveries == ()
        assert reading.alarms == ("tank 2: low product alarm (05)", "tank 2: delivery needed warning (11)")
        assert link.client.statistics().ok == 3

    def test_one_tank(self, link: Link) -> None:
        """`tanks` keeps the reading to the tanks asked for."""
        reading = link.client.read_gauge({2}, deliveries=False, alarms=False)
        assert [tank.tank for tank in reading.tanks] == [2]
        assert link.client.statistics().requests == 1

    def test_a_tank_the_gauge_lacks_is_absent(self, link: Link) -> None:
        """The gauge fills a tank it lacks with '?'; the reading leaves it out."""
        data = link.client.request("i201", 7)
        assert b"?" * 8 in data
        assert link.client.read_gauge({7}, deliveries=False, alarms=False).tanks == ()


class TestFailures:
    def test_unknown_command_is_refused(self, link: Link) -> None:
        with pytest.raises(TlsCommandRefused, match="'i90200'"):
            link.client.request("i902")
        assert link.client.statistics().refusals == 1
        assert link.client.read_gauge().tanks

    def test_checksum_noise(self, link: Link) -> None:
        """Answers with a spoilt checksum raise TlsChecksumError; once the noise stops, answers are good."""
        link.gauge.link.corrupt_crc_rate = 1.0
        for _ in range(3):
            with pytest.raises(TlsChecksumError, match="i20100: checksum"):
                link.client.request("i201")
        link.gauge.link.corrupt_crc_rate = 0.0
        assert len(link.client.read_gauge().tanks) == 2
        assert link.client.statistics().crc_errors == 3

    def test_dead_gauge_times_out(self, link: Link) -> None:
        link.gauge.link.dead = True
        with pytest.raises(TlsTimeout, match=r"^i20100: no answer within 0.3 s$"):
            link.client.request("i201")
        link.gauge.link.dead = False
        assert link.client.read_gauge().tanks

    def test_a_late_answer_is_never_taken_for_the_next(self, link: Link) -> None:
        """A gauge slower than the timeout times out; its late inventory is not read as the next answer."""
        link.gauge.link.delay_s = TIMEOUT_S * 1.5
        with pytest.raises(TlsTimeout):
            link.client.request("i201")
        link.gauge.link.delay_s = 0.0
        assert link.client.request("i205", 1).startswith(b"2603011415")
        assert link.client.statistics().timeouts == 1

    def test_unplugged_is_a_link_error_and_replugged_works(self, link: Link) -> None:
        link.client.request("i201")
        link.unplug()
        with pytest.raises(TlsLinkError):
            link.client.request("i201")
        link.replug()
        assert link.client.read_gauge().tanks

    def test_statistics_count_each_outcome(self, link: Link) -> None:
        link.client.request("i205", 1)
        with pytest.raises(TlsCommandRefused):
            link.client.request("i999")
        statistics = link.client.statistics()
        answer_bytes = len(b"\x01i20501" + b"2603011415" + b"0100" + b"&&CCCC\x03") + len(b"\x019999FF1B\x03")
        assert statistics == LinkStatistics(requests=2, ok=1, refusals=1, bytes_sent=14, bytes_received=answer_bytes)


class TestSecurityCode:
    def test_the_code_opens_the_gauge_and_silence_without_it(self, line: PtyPair) -> None:
        """A gauge with a security code keeps silent to commands without it (the manual's rule)."""
        secured = gauge("SECRET")
        for link in serial_link(line, secured, "SECRET"):
            assert link.client.read_gauge().tanks
        for link in serial_link(line, secured):
            with pytest.raises(TlsTimeout):
                link.client.request("i201")

    def test_over_tcp(self) -> None:
        for link in tcp_link(gauge("SECRET"), "SECRET"):
            assert link.client.read_gauge().tanks


class TestLinkErrors:
    def test_missing_port(self, tmp_path: Path) -> None:
        client = TlsSerialClient(tmp_path / "nothing", timeout_s=TIMEOUT_S)
        with pytest.raises(TlsLinkError, match=r"cannot open .* check that the gauge's cable is plugged in"):
            client.request("i201")
        assert client.statistics() == LinkStatistics(requests=1, link_errors=1)

    def test_refused_connection(self) -> None:
        client = TlsTcpClient("127.0.0.1", free_loopback_port(), timeout_s=TIMEOUT_S)
        with pytest.raises(TlsLinkError, match="cannot connect"):
            client.request("i201")


class TestHandMadeAnswersOnTheWire:
    """A raw peer on the gauge's end of the line answers with frames written out by hand."""

    def answer_with(self, line: PtyPair, answer: bytes) -> Callable[[], None]:
        port = serial.Serial(str(line.link_b), timeout=TIMEOUT_S)

        def reply() -> None:
            port.read(7)
            port.write(answer)

        thread = threading.Thread(target=reply, daemon=True)
        thread.start()

        def done() -> None:
            thread.join()
            port.close()

        return done

    def test_a_whole_hand_made_frame(self, line: PtyPair) -> None:
        """SOH i20100 2603011415 && has the checksum FC60 (worked by hand in the codec tests)."""
        done = self.answer_with(line, b"\x01i201002603011415&&FC60\x03")
        client = TlsSerialClient(line.link_a, timeout_s=TIMEOUT_S)
        assert client.request("i201") == b"2603011415"
        done()
        client.close()

    def test_an_answer_cut_short(self, line: PtyPair) -> None:
        done = self.answer_with(line, b"\x01i201002603011415&&FC")
        client = TlsSerialClient(line.link_a, timeout_s=TIMEOUT_S)
        with pytest.raises(TlsFrameError, match="cut short after 21 bytes"):
            client.request("i201")
        done()
        client.close()

    def test_an_answer_that_trickles_in_without_end_is_given_up_at_once(self, line: PtyPair) -> None:
        """A line that answers a byte every 0.2 s and never ends the frame (noise on a floating line, a device
        talking out of turn): each byte comes within the timeout, yet the request fails within a few timeouts,
        not after 65,536 bytes (3.6 hours), which would hold the line's poller that long."""
        port = serial.Serial(str(line.link_b), timeout=TIMEOUT_S)
        done = threading.Event()

        def trickle() -> None:
            port.read(7)
            port.write(b"\x01i20100")
            for _ in range(150):  # at most 30 s
                if done.wait(0.2):
                    return
                port.write(b"7")

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        client = TlsSerialClient(line.link_a, timeout_s=TIMEOUT_S)
        started = time.monotonic()
        try:
            with pytest.raises(TlsFrameError, match="trickles"):
                client.request("i201")
            took_s = time.monotonic() - started
        finally:
            done.set()
            thread.join()
            port.close()
            client.close()
        assert took_s < 3.0, f"the request took {took_s:.1f} s"


class TestRefusedReports:
    @pytest.mark.parametrize("report", ["i202", "i205"])
    def test_a_refused_report_is_learned_once_and_the_inventory_goes_on(self, link: Link, report: str) -> None:
        """A console answering 9999FF1B to one optional report: every poll still gives both tanks' inventory,
        the report is asked once (not at every poll) and named as refused, and the station records the fact
        once; when the console answers it again, the next probe finds it and the station says so, once."""
        link.gauge.refuses = frozenset({report})
        poll = GaugePoll(link.client, SystemClock(), deliveries_every_s=0, reprobe_every_s=3600)
        station = Station([], {}, MeteringSection())
        made: list[RecordIntent] = []
        for second in range(5):
            reading = poll()
            assert [tank.tank for tank in reading.tanks] == [1, 2]
            assert reading.refused == (report,)
            made += station.on_event(DeviceReading("tg1", "tls", 1_000 * second, reading))
        assert link.client.statistics().refusals == 1, "asked once, not at every poll"
        assert [intent.body.as_json() for intent in made] == [
            {
                "device": "tg1",
                "report": report,
                "available": False,
                "reason": f"the gauge refuses {report}; {OPTIONAL_GAUGE_REPORTS[report]}",
                "kind": "gauge_report_unavailable",
            }
        ]
        link.gauge.refuses = frozenset()
        reprobing = GaugePoll(link.client, SystemClock(), deliveries_every_s=0, reprobe_every_s=0)
        assert reprobing().refused == ()
        back = station.on_event(DeviceReading("tg1", "tls", 10_000, reprobing()))
        assert [(intent.body.report, intent.body.available) for intent in back] == [(report, True)]

    def test_without_i202_a_rise_of_the_tank_is_booked_as_detected_because_the_report_is_unavailable(self) -> None:
        """A tank whose gauge refuses i202 books a delivery from the inventory's rise at once, and its source
        says the gauge does not report deliveries."""
        tracker = TankTracker(TANK_BINDING, {}, TankRulesSection(), ZoneInfo("UTC"))
        tracker.gauge_reports_deliveries = False
        made: list[RecordIntent] = []
        for minute, volume_l in enumerate([10_000] * 3 + [18_000] * 30):
            reading = TankReading(1, volume_l * 1000, 1_200_000, 0, 1500)
            made += tracker.observe(tracker.from_gauge(reading, 60_000 * minute))
        deliveries = [intent.body.as_json() for intent in made if intent.type == RecordType.DELIVERY]
        assert [(d["source"], round(d["delivered_20_ml"] / 1_000_000)) for d in deliveries] == [
            ("detected_report_unavailable", 8)
        ]
