"""The shared links under the field protocols (drivers/transport): one set of counters for every protocol, the
serial port's rules after a timeout or a broken answer on a real pty, and the TCP connection's bounded reads
against a real peer on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from drivers.errors import FieldError
from drivers.modbus import (
    ModbusCrcError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusLinkError,
    ModbusTimeout,
)
from drivers.transport import LinkCounters, LinkStatistics, LinkWording, SerialPort, TcpConnection
from drivers.veeder_root import (
    TlsChecksumError,
    TlsCommandRefused,
    TlsFrameError,
    TlsLinkError,
    TlsTimeout,
)
from simulators.broker import free_loopback_port
from simulators.serial_line import PtyPair

TIMEOUT_S = 0.3


def failed(*errors: FieldError) -> LinkStatistics:
    counters = LinkCounters()
    for error in errors:
        counters.failed(error)
    return counters.snapshot()


class TestLinkCounters:
    def test_each_protocols_failure_lands_in_the_counter_of_its_kind(self) -> None:
        """A Modbus failure and the TLS failure of the same kind are counted in the same counter."""
        pairs = [
            (ModbusTimeout("t"), TlsTimeout("t"), LinkStatistics(requests=1, timeouts=1)),
            (ModbusCrcError("c"), TlsChecksumError("c"), LinkStatistics(requests=1, crc_errors=1)),
            (ModbusFrameError("f"), TlsFrameError("f"), LinkStatistics(requests=1, frame_errors=1)),
            (ModbusExceptionResponse(3, 2), TlsCommandRefused("i999"), LinkStatistics(requests=1, refusals=1)),
            (ModbusLinkError("l"), TlsLinkError("l"), LinkStatistics(requests=1, link_errors=1)),
        ]
        for modbus, tls, expected in pairs:
            assert (failed(modbus), failed(tls)) == (expected, expected)

    def test_a_failure_of_no_known_kind_is_a_frame_error(self) -> None:
        """A FieldError of none of the kinds is an answer that cannot be the reply: a frame error."""
        assert failed(FieldError("odd")) == LinkStatistics(requests=1, frame_errors=1)

    def test_every_request_ends_as_ok_or_one_failure_and_held_counts_add_up(self) -> None:
        """requests is always ok plus the failures; counts held apart and added later sum field by field."""
        live, held = LinkCounters(), LinkCounters()
        live.answered()
        held.failed(ModbusTimeout("t"))
        held.failed(TlsChecksumError("c"))
        held.bytes_sent, held.bytes_received = 16, 7
        live.add(held)
        live.answered()
        statistics = live.snapshot()
        assert statistics == LinkStatistics(requests=4, ok=2, timeouts=1, crc_errors=1, bytes_sent=16, bytes_received=7)
        failures = sum(getattr(statistics, name) for name in ("timeouts", "crc_errors", "frame_errors", "refusals"))
        assert statistics.requests == statistics.ok + failures + statistics.link_errors

    def test_a_snapshot_is_frozen_and_does_not_follow_the_live_counters(self) -> None:
        """The snapshot the status reads cannot change, neither by hand nor by later requests."""
        counters = LinkCounters()
        counters.answered()
        snapshot = counters.snapshot()
        counters.answered()
        assert snapshot.requests == 1
        with pytest.raises(dataclasses.FrozenInstanceError):
            snapshot.requests = 5  # type: ignore[misc]


@pytest.fixture
def line(tmp_path: Path) -> Iterator[PtyPair]:
    with PtyPair(tmp_path / "ours", tmp_path / "device") as pair:
        yield pair


@pytest.fixture
def device(line: PtyPair) -> Iterator[serial.Serial]:
    """The far end of the line, written to by hand."""
    with serial.Serial(str(line.link_b), timeout=TIMEOUT_S) as port:
        yield port


def serial_port(path: Path, counters: LinkCounters, **setting: Any) -> SerialPort:
    """A port as the Modbus master makes one, 9600 8N1, with `setting` changed."""
    settings: dict[str, Any] = {"baudrate": 9600, "bytesize": 8, "parity": "N", "stopbits": 1, **setting}
    return SerialPort(
        path,
        counters,
        timeout_s=TIMEOUT_S,
        wording=settings.pop("wording", LinkWording(ModbusLinkError, "request", "check the adapter")),
        **settings,
    )


def write_later(port: serial.Serial, delay_s: float, data: bytes) -> threading.Thread:
    def write() -> None:
        time.sleep(delay_s)
        port.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


class TestSerialPort:
    def test_a_late_answer_during_the_hold_is_dropped_not_read_as_the_next_answer(
        self, line: PtyPair, device: serial.Serial
    ) -> None:
        """After a timeout the next frame waits out the hold; an answer that came late in it is dropped."""
        counters = LinkCounters()
        port = serial_port(line.link_a, counters)
        port.send(b"first")
        assert device.read(5) == b"first"
        assert port.read_exactly(2, time.monotonic() + 0.05) == b""
        port.hold_after_timeout()
        late = write_later(device, TIMEOUT_S / 10, b"LATE")
        port.send(b"second")
        late.join(5)
        assert device.read(6) == b"second"
        device.write(b"ok")
        assert port.read_exactly(4, time.monotonic() + TIMEOUT_S) == b"ok"
        port.close()

    def test_without_the_hold_the_late_answer_would_be_read(self, line: PtyPair, device: serial.Serial) -> None:
        """The reference case for the test above: with no hold, the late bytes are there to be misread."""
        port = serial_port(line.link_a, LinkCounters())
        port.send(b"first")
        device.write(b"LATE")
        assert port.read_exactly(4, time.monotonic() + TIMEOUT_S) == b"LATE"
        port.close()

    def test_flush_until_quiet_drops_the_rest_of_a_broken_answer(self, line: PtyPair, device: serial.Serial) -> None:
        """The rest of a broken answer is read and dropped (and counted as received), not read as the next one."""
        counters = LinkCounters()
        port = serial_port(line.link_a, counters)
        port.send(b"ask")
        device.write(b"AB" + b"rest of it")
        assert port.read_exactly(2, time.monotonic() + TIMEOUT_S) == b"AB"
        port.flush_until_quiet()
        device.write(b"next")
        assert port.read_exactly(4, time.monotonic() + TIMEOUT_S) == b"next"
        assert counters.snapshot().bytes_received == len(b"AB") + len(b"rest of it") + len(b"next")
        port.close()

    def test_read_at_least_returns_once_enough_has_come_and_never_more_than_asked(
        self, line: PtyPair, device: serial.Serial
    ) -> None:
        """A read that needs `least` bytes takes what has come up to `size` and leaves the rest; with fewer than
        `least` by the deadline it returns those."""
        counters = LinkCounters()
        port = serial_port(line.link_a, counters)
        port.send(b"ask")
        device.write(b"0123456789")
        first = port.read_at_least(2, 6, time.monotonic() + TIMEOUT_S)
        assert 2 <= len(first) <= 6
        assert first + port.read_exactly(10 - len(first), time.monotonic() + TIMEOUT_S) == b"0123456789"
        device.write(b"x")
        assert port.read_at_least(2, 6, time.monotonic() + TIMEOUT_S) == b"x"
        assert counters.snapshot().bytes_received == 11
        port.close()

    def test_a_frame_longer_than_the_port_takes_at_once_goes_out_whole(
        self, line: PtyPair, device: serial.Serial
    ) -> None:
        """A frame that overfills the output buffer (the far end not reading yet) is written as room comes, whole
        and in order."""
        frame = bytes(range(256)) * 4096
        port = serial_port(line.link_a, LinkCounters())
        sender = threading.Thread(target=port.send, args=(frame,), daemon=True)
        sender.start()
        time.sleep(TIMEOUT_S)
        assert sender.is_alive(), "the whole frame was taken at once: nothing was left to write as room came"
        device.timeout = 5.0
        assert device.read(len(frame)) == frame
        sender.join(5.0)
        assert not sender.is_alive()
        port.close()

    def test_read_some_takes_no_more_than_asked(self, line: PtyPair, device: serial.Serial) -> None:
        """What is waiting is taken up to the caller's limit, the rest left for the next read."""
        port = serial_port(line.link_a, LinkCounters())
        port.send(b"ask")
        device.write(b"x" * 300)
        device.flush()
        first = port.read_some(TIMEOUT_S, 100)
        assert 1 <= len(first) <= 100
        port.close()

    def test_a_broken_port_is_closed_and_the_next_send_opens_it_again(
        self, line: PtyPair, device: serial.Serial
    ) -> None:
        """`broken` gives the protocol's link error naming the port and closes it; the next frame reopens it."""
        port = serial_port(line.link_a, LinkCounters())
        port.send(b"one")
        error = port.broken("unit 1", OSError(5, "Input/output error"))
        assert isinstance(error, ModbusLinkError)
        assert str(error) == (
            f"unit 1: serial port {line.link_a} failed ([Errno 5] Input/output error); "
            "it is reopened on the next request"
        )
        port.send(b"two")
        assert device.read(6) == b"onetwo"
        port.close()

    def test_a_missing_port_is_the_protocols_link_error_naming_it(self, tmp_path: Path) -> None:
        """The port that cannot open raises the protocol's link error with the path and the advice given."""
        port = serial_port(
            tmp_path / "absent", LinkCounters(), wording=LinkWording(TlsLinkError, "command", "check the gauge's cable")
        )
        with pytest.raises(TlsLinkError, match=rf"serial port {tmp_path / 'absent'}: cannot open .*; check the gauge"):
            port.send(b"x")

    @pytest.mark.parametrize(
        ("setting", "message"),
        [
            ({"parity": "X"}, r"parity 'X' is not one of 'N', 'E', 'O'"),
            ({"bytesize": 6}, r"bytesize 6 is not 7 or 8"),
            ({"stopbits": 3}, r"stopbits 3 is not 1 or 2"),
            ({"baudrate": 0}, r"baudrate 0 must be positive"),
        ],
    )
    def test_settings_are_checked_when_made(self, tmp_path: Path, setting: dict[str, object], message: str) -> None:
        """A setting no serial line has is refused with its value, before any port is opened."""
        with pytest.raises(ValueError, match=message):
            serial_port(tmp_path / "absent", LinkCounters(), **setting)


class Peer:
    """A TCP peer on 127.0.0.1: each connection in turn reads a request, gets its answer and is closed."""

    def __init__(self, *answers: bytes) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(5)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, args=(answers,), daemon=True)
        self._thread.start()

    def _serve(self, answers: tuple[bytes, ...]) -> None:
        for answer in answers:
            connection, _ = self._listener.accept()
            with connection:
                connection.recv(64)
                connection.sendall(answer)

    def close(self) -> None:
        self._thread.join(5)
        self._listener.close()


def tcp_connection(port: int, counters: LinkCounters) -> TcpConnection:
    return TcpConnection(
        "127.0.0.1",
        port,
        counters,
        timeout_s=TIMEOUT_S,
        wording=LinkWording(ModbusLinkError, "request", "check the address", peer="Modbus TCP"),
    )


class TestTcpConnection:
    def test_reads_are_bounded_by_the_size_asked_and_the_close_is_a_reset(self) -> None:
        """read_exactly takes what was asked, not what the peer sends; a closed connection raises a reset."""
        peer = Peer(b"0123456789" * 10)
        counters = LinkCounters()
        connection = tcp_connection(peer.port, counters)
        connection.send(b"ask")
        assert connection.read_exactly(7, time.monotonic() + TIMEOUT_S) == b"0123456"
        rest = b""
        with pytest.raises(ConnectionResetError):
            while len(rest) < 1000:
                chunk = connection.read_some(TIMEOUT_S, 10)
                assert len(chunk) <= 10
                rest += chunk
        assert rest == (b"0123456789" * 10)[7:]
        assert counters.snapshot() == LinkStatistics(bytes_sent=3, bytes_received=100)
        connection.close()
        peer.close()

    def test_a_lost_connection_is_closed_and_the_next_send_connects_again(self) -> None:
        """`lost` gives the protocol's link error naming the address, and drops the connection."""
        peer = Peer(b"", b"back")
        connection = tcp_connection(peer.port, LinkCounters())
        connection.send(b"ask")
        with pytest.raises(ConnectionResetError) as reset:
            connection.read_exactly(4, time.monotonic() + TIMEOUT_S)
        error = connection.lost("unit 1", reset.value)
        assert isinstance(error, ModbusLinkError)
        assert f"unit 1: connection to 127.0.0.1:{peer.port} lost" in str(error)
        connection.send(b"again")
        assert connection.read_exactly(4, time.monotonic() + TIMEOUT_S) == b"back"
        connection.close()
        peer.close()

    def test_a_refused_connect_is_the_protocols_link_error(self) -> None:
        """Nobody listening: the protocol's link error with the peer's name, address and advice."""
        port = free_loopback_port()
        connection = tcp_connection(port, LinkCounters())
        with pytest.raises(ModbusLinkError, match=rf"Modbus TCP 127.0.0.1:{port}: cannot connect .*check the address"):
            connection.send(b"x")

    def test_a_connect_short_of_descriptors_says_so_and_not_to_check_the_address(self) -> None:
        """A process at its limit of open files (too many lines for the service's LimitNOFILE): the connect, with or
        without waiting, and a host name's lookup fail with the limit and the fix in the message, not the advice
        for a wrong address."""
        script = """
import json, os, resource, sys
from drivers.errors import FieldLinkError
from drivers.modbus.master import TcpMaster
master = TcpMaster("127.0.0.1", int(sys.argv[1]), timeout_s=1.0)
named = TcpMaster("localhost", int(sys.argv[1]), timeout_s=1.0)
"127.0.0.1".encode("idna")  # as the agent's first connect has: the codec is imported on first use
open_now = len(os.listdir("/proc/self/fd")) - 1  # less the listing's own
resource.setrlimit(resource.RLIMIT_NOFILE, (open_now, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
said = []
for connect in (
    lambda: master.send_read(master.prepare(1, 3, 0, 1)),
    lambda: master.read_registers(1, 3, 0, 1),
    lambda: named.send_read(named.prepare(1, 3, 0, 1)),  # the name's lookup needs a descriptor of its own
):
    try:
        connect()
        said.append("connected")
    except FieldLinkError as error:
        said.append(str(error))
print(json.dumps(said))
"""
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            done = subprocess.run(
                [sys.executable, "-c", script, str(port)], capture_output=True, text=True, timeout=60, check=True
            )
        said = json.loads(done.stdout)
        assert len(said) == 3
        for message, host in zip(said, ("127.0.0.1", "127.0.0.1", "localhost"), strict=True):
            assert f"Modbus TCP {host}:{port}: cannot connect" in message, message
            assert "Too many open files" in message and "LimitNOFILE" in message, message
            assert "check the address" not in message, message
