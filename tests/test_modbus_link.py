"""Masters against the simulated slaves over a real pty pair (socat) and over TCP on 127.0.0.1.

Alarms and retry budgets key on the kind of failure, so each kind is provoked on purpose with the simulator's
fault knobs and must reach the caller as its own error type, with its message, and in the counters; and no
broken answer may leave the line in a state where the next answer is misread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import serial
from pymodbus.framer import FramerRTU
from support.waiting import wait_until

from drivers.modbus import (
    ModbusCrcError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusLinkError,
    ModbusTimeout,
    SerialRtuMaster,
    TcpMaster,
)
from drivers.modbus import master as master_module
from drivers.modbus import rtu as rtu_codec
from drivers.transport import LinkStatistics
from simulators.broker import free_loopback_port
from simulators.modbus_slave import RegisterMap, RtuSlaveServer, TcpSlaveServer
from simulators.serial_line import PtyPair

TIMEOUT_S = 0.2
SLACK_S = 0.25


def make_banks() -> dict[int, RegisterMap]:
    return {
        1: RegisterMap(
            holding={address: 1000 + address for address in range(20)},
            input_registers={address: 2000 + address for address in range(5)},
        ),
        2: RegisterMap(holding={0: 42}),
    }


@dataclass(frozen=True)
class Link:
    """A master and a slave server with units 1 and 2, and how to cut the link between them."""

    master: SerialRtuMaster | TcpMaster
    server: RtuSlaveServer | TcpSlaveServer
    banks: dict[int, RegisterMap]
    adu_overhead: int
    unplug: Callable[[], None]


def with_crc(frame: str) -> bytes:
    """An RTU frame with its CRC appended by pymodbus, an implementation independent of ours."""
    data = bytes.fromhex(frame)
    return data + FramerRTU.compute_CRC(data).to_bytes(2, "big")


def read_raw(port: serial.Serial, size: int, timeout_s: float = TIMEOUT_S) -> bytes:
    port.timeout = timeout_s
    answer: bytes = port.read(size)
    return answer


@pytest.fixture
def line(tmp_path: Path) -> Iterator[PtyPair]:
    with PtyPair(tmp_path / "master", tmp_path / "slave") as pair:
        yield pair


@pytest.fixture
def rtu_link(line: PtyPair) -> Iterator[Link]:
    banks = make_banks()
    with RtuSlaveServer(line.link_b, banks) as server:
        master = SerialRtuMaster(line.link_a, timeout_s=TIMEOUT_S)
        yield Link(master, server, banks, adu_overhead=3, unplug=line.stop)
        master.close()


@pytest.fixture
def tcp_link() -> Iterator[Link]:
    banks = make_banks()
    with TcpSlaveServer(banks) as server:
        master = TcpMaster(*server.address, timeout_s=TIMEOUT_S)
        yield Link(master, server, banks, adu_overhead=7, unplug=server.stop)
        master.close()


@pytest.fixture(params=["rtu", "tcp"])
def link(request: pytest.FixtureRequest) -> Link:
    fixture: Link = request.getfixturevalue(f"{request.param}_link")
    return fixture


@pytest.fixture
def raw_port(line: PtyPair) -> Iterator[serial.Serial]:
    """The master's end of the line, opened without our master, for hand-made frames."""
    with serial.Serial(str(line.link_a), timeout=TIMEOUT_S) as port:
        yield port


class TestExchanges:
    def test_read_holding_registers(self, link: Link) -> None:
        """A read of 10 holding registers returns the bank's values in order."""
        assert link.master.read_registers(1, 0x03, 0, 10) == tuple(range(1000, 1010))

    def test_read_input_registers(self, link: Link) -> None:
        """Function 0x04 reads the input table, not the holding one."""
        assert link.master.read_registers(1, 0x04, 1, 3) == (2001, 2002, 2003)

    def test_write_registers_reach_the_bank(self, link: Link) -> None:
        """write_registers (0x10) stores every value in the unit's bank and reads back."""
        link.master.write_registers(1, 5, [7, 8, 9])
        assert link.banks[1].read(0x03, 5, 3) == [7, 8, 9]
        assert link.master.read_registers(1, 0x03, 4, 5) == (1004, 7, 8, 9, 1008)

    def test_write_register_reaches_the_bank(self, link: Link) -> None:
        """write_register (0x06) stores one value in the addressed unit only."""
        link.master.write_register(2, 0, 0xBEEF)
        assert link.banks[2].read(0x03, 0, 1) == [0xBEEF]
        assert link.banks[1].read(0x03, 0, 1) == [1000]

    def test_missing_register_is_an_exception_response(self, link: Link) -> None:
        """A read past the unit's registers raises ModbusExceptionResponse 0x02 naming the exchange."""
        with pytest.raises(ModbusExceptionResponse) as raised:
            link.master.read_registers(1, 0x03, 0x0100, 10)
        assert raised.value.code == 0x02
        assert str(raised.value) == (
            "unit 1 function 0x03 @ 0x0100 x10: exception 0x02 (illegal data address) to function 0x03"
        )

    def test_write_to_missing_register_is_refused_whole(self, link: Link) -> None:
        """A write that runs past the unit's registers is refused with 0x02 and writes nothing."""
        with pytest.raises(ModbusExceptionResponse, match=r"exception 0x02 .* to function 0x10$"):
            link.master.write_registers(2, 0, [1, 2])
        assert link.banks[2].read(0x03, 0, 1) == [42]

    def test_dead_unit_times_out_while_another_answers(self, link: Link) -> None:
        """A dead unit raises ModbusTimeout; another unit on the same line keeps answering; revived, it answers."""
        link.server.faults[2].dead = True
        with pytest.raises(ModbusTimeout, match=r"^unit 2 function 0x03 @ 0x0000 x1: no answer within 0.2 s$"):
            link.master.read_registers(2, 0x03, 0, 1)
        assert link.master.read_registers(1, 0x03, 0, 1) == (1000,)
        link.server.faults[2].dead = False
        assert link.master.read_registers(2, 0x03, 0, 1) == (42,)

    def test_unit_nobody_serves_times_out(self, link: Link) -> None:
        """A unit id with no device behind it is a ModbusTimeout, as on a real bus."""
        with pytest.raises(ModbusTimeout):
            link.master.read_registers(9, 0x03, 0, 1)

    def test_slow_unit(self, link: Link) -> None:
        """A unit slower than the timeout is a ModbusTimeout; one within it answers."""
        link.server.faults[2].delay_s = TIMEOUT_S / 4
        assert link.master.read_registers(2, 0x03, 0, 1) == (42,)
        link.server.faults[2].delay_s = TIMEOUT_S * 2
        with pytest.raises(ModbusTimeout):
            link.master.read_registers(2, 0x03, 0, 1)

    def test_garbled_answers_fail_fast_and_never_lie(self, link: Link) -> None:
        """Random bytes for an answer raise a CRC or frame error within the timeout; then the link recovers."""
        link.server.faults[2].garble_rate = 1.0
        for _ in range(8):
            started = time.monotonic()
            with pytest.raises((ModbusCrcError, ModbusFrameError)):
                link.master.read_registers(2, 0x03, 0, 1)
            assert time.monotonic() - started < TIMEOUT_S + SLACK_S
        link.server.faults[2].garble_rate = 0.0
        assert link.master.read_registers(2, 0x03, 0, 1) == (42,)

    def test_unplugged_link_is_a_link_error(self, link: Link) -> None:
        """Once the line or the server is gone, a request raises ModbusLinkError rather than a timeout."""
        link.master.read_registers(1, 0x03, 0, 1)
        link.unplug()
        with pytest.raises(ModbusLinkError):
            link.master.read_registers(1, 0x03, 0, 1)

    def test_statistics_count_each_outcome(self, link: Link) -> None:
        """Each request counts once as ok or as its failure kind; bytes count what crossed the wire."""
        link.master.read_registers(1, 0x03, 0, 2)
        with pytest.raises(ModbusExceptionResponse):
            link.master.read_registers(1, 0x03, 0x0100, 1)
        link.server.faults[2].dead = True
        with pytest.raises(ModbusTimeout):
            link.master.read_registers(2, 0x03, 0, 1)
        request_bytes = 3 * (5 + link.adu_overhead)
        answer_bytes = (2 + 2 * 2 + link.adu_overhead) + (2 + link.adu_overhead)
        assert link.master.statistics() == LinkStatistics(
            requests=3, ok=1, timeouts=1, refusals=1, bytes_sent=request_bytes, bytes_received=answer_bytes
        )
        link.unplug()
        with pytest.raises(ModbusLinkError):
            link.master.read_registers(1, 0x03, 0, 1)
        statistics = link.master.statistics()
        assert (statistics.requests, statistics.link_errors) == (4, 1)

    def test_statistics_count_garbled_answers_by_kind(self, link: Link) -> None:
        """Garbled answers are counted under exactly the error kind each one raised."""
        link.server.faults[2].garble_rate = 1.0
        raised: list[ModbusError] = []
        for _ in range(6):
            with pytest.raises(ModbusError) as caught:
                link.master.read_registers(2, 0x03, 0, 1)
            raised.append(caught.value)
        statistics = link.master.statistics()
        assert statistics.requests == 6
        assert statistics.crc_errors == sum(isinstance(error, ModbusCrcError) for error in raised)
        assert statistics.frame_errors == sum(isinstance(error, ModbusFrameError) for error in raised)
        assert statistics.crc_errors + statistics.frame_errors == 6

    def test_slave_statistics(self, link: Link) -> None:
        """The slave counts answers, exception answers, silences and frames for units it does not serve."""
        link.master.read_registers(1, 0x03, 0, 1)
        with pytest.raises(ModbusExceptionResponse):
            link.master.read_registers(1, 0x03, 0x0100, 1)
        link.server.faults[2].dead = True
        with pytest.raises(ModbusTimeout):
            link.master.read_registers(2, 0x03, 0, 1)
        with pytest.raises(ModbusTimeout):
            link.master.read_registers(9, 0x03, 0, 1)
        statistics = link.server.statistics()
        assert (statistics.requests, statistics.answers, statistics.exceptions) == (3, 1, 1)
        assert (statistics.silent, statistics.ignored_other_unit) == (1, 1)


class TestSerialRtu:
    def test_corrupted_crc_is_a_crc_error(self, rtu_link: Link) -> None:
        """An answer with a flipped CRC raises ModbusCrcError with both CRCs; the next exchange is clean."""
        rtu_link.server.faults[2].corrupt_crc_rate = 1.0
        with pytest.raises(ModbusCrcError, match=r"^unit 2 function 0x03 @ 0x0000 x1: CRC 0x[0-9A-F]{4} != computed"):
            rtu_link.master.read_registers(2, 0x03, 0, 1)
        assert rtu_link.master.read_registers(1, 0x03, 0, 1) == (1000,)
        assert rtu_link.master.statistics().crc_errors == 1

    def test_late_answer_of_another_unit_is_not_taken(self, rtu_link: Link) -> None:
        """After a timeout the master keeps the line a timeout longer: a late answer then lands in the input
        discarded before the next request, so the next unit is read right; one later still is refused as the
        wrong unit's, never taken."""
        master = SerialRtuMaster(rtu_link.master.port, timeout_s=0.3)
        rtu_link.master.close()
        rtu_link.server.faults[2].delay_s = 0.45
        with pytest.raises(ModbusTimeout):
            master.read_registers(2, 0x03, 0, 1)
        assert master.read_registers(1, 0x03, 0, 1) == (1000,)
        rtu_link.server.faults[2].delay_s = 0.75
        with pytest.raises(ModbusTimeout):
            master.read_registers(2, 0x03, 0, 1)
        with pytest.raises(ModbusFrameError, match=r"answer comes from unit 2$"):
            master.read_registers(1, 0x03, 0, 1)
        rtu_link.server.faults[2].delay_s = 0.0
        assert master.read_registers(1, 0x03, 0, 1) == (1000,)
        master.close()

    def test_bytes_after_an_exception_answer_are_not_read_as_the_next_answer(self, line: PtyPair) -> None:
        """An exception answer is five bytes whatever the normal answer's length: what follows it (here a frame
        that would pass for the next answer) is dropped, and the next request reads its own answer."""
        master = SerialRtuMaster(line.link_a, timeout_s=TIMEOUT_S)
        answers = [with_crc("018302") + with_crc("0103020007"), with_crc("010302002A")]
        requests: list[bytes] = []

        def device() -> None:
            with serial.Serial(str(line.link_b), timeout=1.0) as port:
                for answer in answers:
                    requests.append(port.read(8))
                    port.write(answer)

        thread = threading.Thread(target=device, daemon=True)
        thread.start()
        time.sleep(SLACK_S)
        with pytest.raises(ModbusExceptionResponse):
            master.read_registers(1, 0x03, 0, 1)
        assert master.read_registers(1, 0x03, 0, 1) == (42,)
        thread.join(5.0)
        assert requests == [with_crc("010300000001")] * 2
        assert master.statistics().refusals == 1
        master.close()

    def test_an_answer_like_the_last_good_one_is_not_checked_again_but_a_damaged_copy_fails(
        self, rtu_link: Link, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A read asked again is sent as the frame made the first time, and an answer byte for byte the unit's last
        good one is taken without its CRC worked out again; the same answer with its CRC flipped is still a CRC
        error, and a changed register is read as changed."""
        crcs: list[bytes] = []
        crc16, master_thread = rtu_codec.crc16, threading.get_ident()

        def counted(data: bytes) -> int:
            if threading.get_ident() == master_thread:  # not the slave's, on its own thread
                crcs.append(data)
            return crc16(data)

        monkeypatch.setattr(rtu_codec, "crc16", counted)
        master = rtu_link.master
        assert master.read_registers(1, 0x03, 0, 3) == (1000, 1001, 1002)
        assert len(crcs) == 2  # the request's and the answer's
        assert master.read_registers(1, 0x03, 0, 3) == (1000, 1001, 1002)
        assert len(crcs) == 2  # the request's frame is kept, the answer's CRC is the last good one's
        rtu_link.server.faults[1].corrupt_crc_rate = 1.0
        with pytest.raises(ModbusCrcError):
            master.read_registers(1, 0x03, 0, 3)
        rtu_link.server.faults[1].corrupt_crc_rate = 0.0
        rtu_link.banks[1].write(1, (7,))
        assert master.read_registers(1, 0x03, 0, 3) == (1000, 7, 1002)
        assert master.statistics() == LinkStatistics(
            requests=4, ok=3, crc_errors=1, bytes_sent=4 * 8, bytes_received=4 * 11
        )

    def test_reads_kept_as_frames_are_bounded_and_made_again_when_dropped(
        self, rtu_link: Link, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past the number of reads a master keeps made, the kept ones are dropped: every read still gets its own
        answer, and no more than the bound is ever kept."""
        monkeypatch.setattr(master_module, "MAX_READS_KEPT", 2)
        master = rtu_link.master
        for _ in range(2):
            for address in range(4):
                assert master.read_registers(1, 0x03, address, 2) == (1000 + address, 1001 + address)
                assert len(master._reads) <= 2
        assert master.statistics().ok == 8

    def test_missing_port_is_a_link_error_until_it_appears(self, tmp_path: Path) -> None:
        """A port that does not exist yet raises ModbusLinkError naming it; once it appears, requests work."""
        master = SerialRtuMaster(tmp_path / "later", timeout_s=TIMEOUT_S)
        with pytest.raises(ModbusLinkError, match=f"serial port {tmp_path / 'later'}: cannot open"):
            master.read_registers(1, 0x03, 0, 1)
        with (
            PtyPair(tmp_path / "later", tmp_path / "slave"),
            RtuSlaveServer(tmp_path / "slave", make_banks()),
        ):
            assert master.read_registers(1, 0x03, 0, 1) == (1000,)
        master.close()
        assert master.statistics() == LinkStatistics(requests=2, ok=1, link_errors=1, bytes_sent=8, bytes_received=7)

    def test_replugged_line_recovers(self, rtu_link: Link, line: PtyPair) -> None:
        """After the line is unplugged and plugged back, master and slave both reopen their ends."""
        line.stop()
        with pytest.raises(ModbusLinkError):
            rtu_link.master.read_registers(1, 0x03, 0, 1)
        line.start()
        deadline = time.monotonic() + 3.0
        for _ in range(30):
            try:
                assert rtu_link.master.read_registers(1, 0x03, 0, 1) == (1000,)
                break
            except ModbusTimeout:
                assert time.monotonic() < deadline
        else:
            pytest.fail("no answer after the line came back")

    def test_silence_between_frames(self, rtu_link: Link) -> None:
        """At 300 baud the master keeps 3.5 characters (128 ms) of silence before its next request."""
        master = SerialRtuMaster(rtu_link.master.port, baudrate=300, timeout_s=TIMEOUT_S)
        rtu_link.master.close()
        master.read_registers(1, 0x03, 0, 1)
        ended = time.monotonic()
        master.read_registers(1, 0x03, 0, 1)
        assert time.monotonic() - ended >= 3.5 * 11 / 300
        master.close()

    def test_emulated_line_timing(self, line: PtyPair) -> None:
        """With line timing emulated, 125 registers at 9600 baud take the wire time of 263 bytes plus silence."""
        bank = RegisterMap(holding={address: address for address in range(125)})
        with RtuSlaveServer(line.link_b, {1: bank}, baudrate=9600, emulate_line_timing=True):
            master = SerialRtuMaster(line.link_a, baudrate=9600, timeout_s=0.5)
            started = time.monotonic()
            assert master.read_registers(1, 0x03, 0, 125) == tuple(range(125))
            elapsed_s = time.monotonic() - started
            master.close()
        wire_time_s = (8 + 255) * 11 / 9600 + 3.5 * 11 / 9600
        assert wire_time_s <= elapsed_s < wire_time_s + SLACK_S

    @pytest.mark.parametrize(
        ("unit", "function", "message"),
        [
            (0, 0x03, r"unit 0 is outside 1\.\.247"),
            (248, 0x03, r"unit 248 is outside 1\.\.247"),
            (1, 0x05, r"function 0x05 does not read registers"),
        ],
    )
    def test_arguments_checked_before_any_io(self, tmp_path: Path, unit: int, function: int, message: str) -> None:
        """Broadcast, out-of-range units and non-read functions raise ValueError and count nothing."""
        master = SerialRtuMaster(tmp_path / "absent")
        with pytest.raises(ValueError, match=message):
            master.read_registers(unit, function, 0, 1)
        assert master.statistics() == LinkStatistics()


class TestRtuSlave:
    def test_bad_crc_request_is_ignored(self, rtu_link: Link, raw_port: serial.Serial) -> None:
        """The slave keeps silent on a request with a bad CRC, as real slaves do, then answers the next."""
        rtu_link.master.close()
        raw_port.write(bytes.fromhex("01 03 00 00 00 01 00 00"))
        assert read_raw(raw_port, 7) == b""
        raw_port.write(with_crc("01 03 00 00 00 01"))
        assert read_raw(raw_port, 7) == with_crc("01 03 02 03 E8")
        assert rtu_link.server.statistics().ignored_bad_frames == 1

    def test_unknown_function_answers_exception_1(self, rtu_link: Link, raw_port: serial.Serial) -> None:
        """A sound request with a function the slave lacks (0x01, read coils) is answered with exception 1."""
        rtu_link.master.close()
        raw_port.write(with_crc("01 01 00 00 00 0A"))
        assert read_raw(raw_port, 5) == with_crc("01 81 01")

    def test_malformed_request_answers_exception_3(self, rtu_link: Link, raw_port: serial.Serial) -> None:
        """A write-multiple whose byte count disagrees with its count is answered with exception 3."""
        rtu_link.master.close()
        raw_port.write(with_crc("01 10 00 00 00 02 02 00 07"))
        assert read_raw(raw_port, 5) == with_crc("01 90 03")

    def test_stop_is_bounded_while_an_answer_is_delayed(self, rtu_link: Link, raw_port: serial.Serial) -> None:
        """stop() returns promptly even while the slave is holding a 10 s delayed answer."""
        rtu_link.master.close()
        rtu_link.server.faults[1].delay_s = 10.0
        answered = rtu_link.server.statistics().answers
        raw_port.write(with_crc("01 03 00 00 00 01"))
        wait_until(lambda: rtu_link.server.statistics().answers > answered, 5, "the slave to hold its answer back")
        started = time.monotonic()
        rtu_link.server.stop()
        assert time.monotonic() - started < 1.0
        assert not rtu_link.server.running


class TestTcp:
    def test_refused_connection_then_recovery(self) -> None:
        """Nobody listening is a ModbusLinkError naming host and port; once a server listens, requests work."""
        port = free_loopback_port()
        master = TcpMaster("127.0.0.1", port, timeout_s=TIMEOUT_S)
        with pytest.raises(ModbusLinkError, match=f"Modbus TCP 127.0.0.1:{port}: cannot connect"):
            master.read_registers(1, 0x03, 0, 1)
        with TcpSlaveServer(make_banks(), port=port):
            assert master.read_registers(1, 0x03, 0, 1) == (1000,)
        master.close()

    def test_server_restart_reconnects(self, tcp_link: Link) -> None:
        """A master whose server went away and came back reconnects on the next request."""
        tcp_link.master.read_registers(1, 0x03, 0, 1)
        tcp_link.server.stop()
        with pytest.raises(ModbusLinkError):
            tcp_link.master.read_registers(1, 0x03, 0, 1)
        tcp_link.server.start()
        assert tcp_link.master.read_registers(1, 0x03, 0, 1) == (1000,)

    def test_wrong_transaction_id_is_a_frame_error(self) -> None:
        """An answer carrying another transaction id is a ModbusFrameError, never taken as this answer."""
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(2.0)

            def answer_with_next_id() -> None:
                connection, _ = listener.accept()
                with connection:
                    connection.settimeout(2.0)
                    request = connection.recv(12)
                    transaction_id = int.from_bytes(request[:2], "big") + 1
                    connection.sendall(transaction_id.to_bytes(2, "big") + bytes.fromhex("00 00 00 05 01 03 02 00 2A"))

            server = threading.Thread(target=answer_with_next_id, daemon=True)
            server.start()
            master = TcpMaster(*listener.getsockname(), timeout_s=1.0)
            with pytest.raises(ModbusFrameError, match=r"transaction id 2, expected 1$"):
                master.read_registers(1, 0x03, 0, 1)
            master.close()
            server.join(2.0)

    def test_unit_range(self) -> None:
        """Modbus TCP takes units 0..255; 256 raises ValueError before connecting."""
        master = TcpMaster("127.0.0.1", free_loopback_port())
        with pytest.raises(ValueError, match=r"unit 256 is outside 0\.\.255"):
            master.read_registers(256, 0x03, 0, 1)
