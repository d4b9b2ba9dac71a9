"""The thin I/O shell around the Modbus codecs: one master per line, one request in flight, no retries.

pymodbus is not used here: its synchronous client takes a frame with a bad CRC for garbage and keeps reading
until the timeout, so a CRC error looks like a timeout, and it does not read answers by their exact length. These
masters read exactly the bytes the answer must have, raise one error type per kind of failure (see `errors`) and
never retry on their own: the poller above owns retry budgets and back-off, and needs every failure reported as
it happened. Each master keeps counters for `statistics()`, the snapshot the status command reads.
"""

from __future__ import annotations

import os
import socket
import termios
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol, TypeVar

import serial

from drivers.modbus import rtu, tcp
from drivers.modbus.errors import (
    ModbusCrcError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusLinkError,
    ModbusTimeout,
)
from drivers.modbus.pdu import (
    Exchange,
    ReadRegistersRequest,
    Request,
    WriteMultipleRequest,
    WriteSingleRequest,
    check_write_response,
    decode_read_response,
    encode_request,
)

USB_SERIAL_LATENCY_S = 0.02
"""Shortest silence taken as "the line is quiet": USB serial adapters hand bytes over in bursts up to 16 ms apart
(the FTDI latency timer), so a shorter pause may be the middle of a frame."""

RequestT = TypeVar("RequestT", bound=Request)
ResultT = TypeVar("ResultT")


@dataclass(frozen=True, slots=True)
class MasterStatistics:
    """Counters since the master was made; every request ends as exactly one of ok or a failure kind."""

    requests: int = 0
    ok: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    exceptions: int = 0
    frame_errors: int = 0
    link_errors: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


_FAILURE_COUNTERS: tuple[tuple[type[ModbusError], str], ...] = (
    (ModbusTimeout, "timeouts"),
    (ModbusCrcError, "crc_errors"),
    (ModbusExceptionResponse, "exceptions"),
    (ModbusFrameError, "frame_errors"),
    (ModbusLinkError, "link_errors"),
)


def _failure_counter(error: ModbusError) -> str:
    return next((name for kind, name in _FAILURE_COUNTERS if isinstance(error, kind)), "frame_errors")


class _Counts:
    """The live counters: plain integers bumped on every request, made into the frozen MasterStatistics only
    when asked. A request costs a few additions, not a new dataclass per counter."""

    __slots__ = tuple(counter.name for counter in fields(MasterStatistics))

    def __init__(self) -> None:
        self.requests = self.ok = self.bytes_sent = self.bytes_received = 0
        self.timeouts = self.crc_errors = self.exceptions = self.frame_errors = self.link_errors = 0

    def snapshot(self) -> MasterStatistics:
        return MasterStatistics(**{name: getattr(self, name) for name in self.__slots__})


class ModbusMaster(Protocol):
    """What a poller needs from a Modbus line, serial or TCP."""

    def read_registers(self, unit: int, function: int, address: int, count: int) -> tuple[int, ...]:
        """Read `count` registers with function 0x03 (holding) or 0x04 (input)."""
        ...

    def write_registers(self, unit: int, address: int, values: Sequence[int]) -> None:
        """Write consecutive holding registers with function 0x10."""
        ...

    def write_register(self, unit: int, address: int, value: int) -> None:
        """Write one holding register with function 0x06, for devices without 0x10."""
        ...

    def close(self) -> None:
        """Release the port or connection; the next request opens it again."""
        ...

    def statistics(self) -> MasterStatistics:
        """A snapshot of the counters."""
        ...


def _cut_short(context: Exchange, answer: bytes, expected: int, timeout_s: float) -> ModbusFrameError:
    return ModbusFrameError(
        f"{context}: answer cut short, {len(answer)} of {expected} bytes ({answer.hex(' ')}) "
        f"within the {timeout_s} s timeout"
    )


class _Master(ABC):
    """Requests, accounting and the one-in-flight lock; subclasses move the bytes."""

    units: ClassVar[range]

    def __init__(self, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s {timeout_s} must be positive")
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._counts = _Counts()

    def read_registers(self, unit: int, function: int, address: int, count: int) -> tuple[int, ...]:
        return self._transact(unit, ReadRegistersRequest(function, address, count), decode_read_response)

    def write_registers(self, unit: int, address: int, values: Sequence[int]) -> None:
        self._transact(unit, WriteMultipleRequest(address, tuple(values)), check_write_response)

    def write_register(self, unit: int, address: int, value: int) -> None:
        self._transact(unit, WriteSingleRequest(address, value), check_write_response)

    def statistics(self) -> MasterStatistics:
        return self._counts.snapshot()

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    def _transact(
        self, unit: int, request: RequestT, decode: Callable[[RequestT, bytes, Exchange], ResultT]
    ) -> ResultT:
        if unit not in self.units:
            raise ValueError(f"unit {unit} is outside {self.units.start}..{self.units.stop - 1}")
        context = Exchange(request, unit)
        counts = self._counts
        with self._lock:
            counts.requests += 1
            try:
                result = decode(request, self._exchange(unit, request, context), context)
            except ModbusError as error:
                failure = _failure_counter(error)
                setattr(counts, failure, getattr(counts, failure) + 1)
                raise
            counts.ok += 1
            return result

    @abstractmethod
    def _exchange(self, unit: int, request: Request, context: Exchange) -> bytes:
        """Send the request and return the answer's PDU, its envelope checked."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Close the port or connection, if open."""


class SerialRtuMaster(_Master):
    """Modbus RTU over a serial port (RS-485 adapter), opened on first use and reopened after a failure.

    The port may not exist yet (a USB adapter not plugged in, a simulator not started): each request then
    raises ModbusLinkError and the next one tries again. The answer must be complete within `timeout_s` of
    the request leaving, plus the time its own bytes take on the line at `baudrate`.
    """

    units: ClassVar[range] = range(1, 248)

    def __init__(
        self,
        port: str | os.PathLike[str],
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        timeout_s: float = 0.5,
    ) -> None:
        super().__init__(timeout_s)
        if parity not in ("N", "E", "O"):
            raise ValueError(f"parity {parity!r} is not one of 'N', 'E', 'O'")
        if stopbits not in (1, 2):
            raise ValueError(f"stopbits {stopbits} is not 1 or 2")
        if baudrate <= 0:
            raise ValueError(f"baudrate {baudrate} must be positive")
        self.port = os.fspath(port)
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self._silence_s = rtu.silence_s(baudrate)
        self._quiet_s = max(self._silence_s, USB_SERIAL_LATENCY_S)
        self._serial: Any = None
        self._line_free_at = 0.0

    def _open(self) -> Any:
        if self._serial is None:
            try:
                self._serial = serial.Serial(
                    port=self.port,
                    baudrate=self.baudrate,
                    bytesize=8,
                    parity=self.parity,
                    stopbits=self.stopbits,
                    timeout=0,
                    exclusive=True,
                )
            except (OSError, ValueError) as error:
                raise ModbusLinkError(
                    f"serial port {self.port}: cannot open ({error}); "
                    "check that the adapter is plugged in and the port path in the config"
                ) from error
        return self._serial

    def _disconnect(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            port.close()

    def _exchange(self, unit: int, request: Request, context: Exchange) -> bytes:
        adu = rtu.encode_adu(unit, encode_request(request))
        expected = rtu.expected_response_length(request.function, request.count)
        port = self._open()
        try:
            return self._exchange_on(port, unit, adu, expected, context)
        except (OSError, termios.error) as error:
            self._disconnect()
            raise ModbusLinkError(
                f"{context}: serial port {self.port} failed ({error}); it is reopened on the next request"
            ) from error

    def _exchange_on(self, port: Any, unit: int, adu: bytes, expected: int, context: Exchange) -> bytes:
        self._wait_for_silence()
        port.reset_input_buffer()
        port.write(adu)
        port.flush()
        self._counts.bytes_sent += len(adu)
        quiet_s = self._silence_s
        try:
            return rtu.decode_response_adu(self._receive(port, expected, context), unit, context)
        except ModbusTimeout:
            # A slow unit may still answer: keep the line for it a while, so that its late answer lands in
            # the input discarded before the next request instead of passing for another unit's answer.
            quiet_s = self.timeout_s
            raise
        except (ModbusCrcError, ModbusFrameError):
            self._flush_until_quiet(port)
            raise
        finally:
            self._line_free_at = time.monotonic() + quiet_s

    def _wait_for_silence(self) -> None:
        delay_s = self._line_free_at - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)

    def _receive(self, port: Any, expected: int, context: Exchange) -> bytes:
        deadline = time.monotonic() + self.timeout_s + rtu.frame_time_s(expected, self.baudrate)
        answer = self._read_until(port, 2, deadline)
        if not answer:
            raise ModbusTimeout(f"{context}: no answer within {self.timeout_s} s")
        total = rtu.response_length(answer[1], expected) if len(answer) == 2 else expected
        answer += self._read_until(port, total - len(answer), deadline)
        if len(answer) < total:
            raise _cut_short(context, answer, total, self.timeout_s)
        return answer

    def _read_until(self, port: Any, size: int, deadline: float) -> bytes:
        received = b""
        while len(received) < size:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                break
            port.timeout = remaining_s
            received += port.read(size - len(received))
        self._counts.bytes_received += len(received)
        return received

    def _flush_until_quiet(self, port: Any) -> None:
        """Let the rest of a broken answer arrive and drop it, so it cannot pass for the next answer."""
        deadline = time.monotonic() + self.timeout_s
        port.timeout = self._quiet_s
        while time.monotonic() < deadline:
            dropped = port.read(max(1, port.in_waiting))
            if not dropped:
                break
            self._counts.bytes_received += len(dropped)
        port.reset_input_buffer()


class TcpMaster(_Master):
    """Modbus TCP to one device or gateway, connected on first use and reconnected after any failure.

    After a timeout or a broken answer the connection is dropped rather than reused, so a late answer can never
    be taken for the answer to a later request; transaction ids and units are checked on every answer.
    """

    units: ClassVar[range] = range(256)

    def __init__(self, host: str, port: int = 502, timeout_s: float = 1.0) -> None:
        super().__init__(timeout_s)
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None
        self._transaction_id = 0

    def _connect(self) -> socket.socket:
        if self._socket is None:
            try:
                self._socket = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            except OSError as error:
                raise ModbusLinkError(
                    f"Modbus TCP {self.host}:{self.port}: cannot connect ({error}); "
                    "check the address in the config and that the device is on"
                ) from error
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._socket

    def _disconnect(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def _exchange(self, unit: int, request: Request, context: Exchange) -> bytes:
        self._transaction_id = (self._transaction_id + 1) & 0xFFFF
        sock = self._connect()
        try:
            return self._exchange_on(sock, self._transaction_id, unit, request, context)
        except ModbusError:
            self._disconnect()
            raise
        except OSError as error:
            self._disconnect()
            raise ModbusLinkError(
                f"{context}: connection to {self.host}:{self.port} lost ({error}); reconnecting on the next request"
            ) from error

    def _exchange_on(
        self, sock: socket.socket, transaction_id: int, unit: int, request: Request, context: Exchange
    ) -> bytes:
        adu = tcp.encode_adu(transaction_id, unit, encode_request(request))
        sock.sendall(adu)
        self._counts.bytes_sent += len(adu)
        deadline = time.monotonic() + self.timeout_s
        head = self._recv_until(sock, tcp.MBAP_BYTES, deadline)
        if not head:
            raise ModbusTimeout(f"{context}: no answer within {self.timeout_s} s")
        if len(head) < tcp.MBAP_BYTES:
            raise _cut_short(context, head, tcp.MBAP_BYTES, self.timeout_s)
        header = tcp.decode_header(head, context)
        if header.transaction_id != transaction_id:
            raise ModbusFrameError(
                f"{context}: answer has transaction id {header.transaction_id}, expected {transaction_id}"
            )
        if header.unit != unit:
            raise ModbusFrameError(f"{context}: answer comes from unit {header.unit}")
        pdu = self._recv_until(sock, header.pdu_length, deadline)
        if len(pdu) < header.pdu_length:
            raise _cut_short(context, head + pdu, tcp.MBAP_BYTES + header.pdu_length, self.timeout_s)
        return pdu

    def _recv_until(self, sock: socket.socket, size: int, deadline: float) -> bytes:
        received = b""
        while len(received) < size:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                break
            sock.settimeout(remaining_s)
            try:
                chunk = sock.recv(size - len(received))
            except TimeoutError:
                break
            if not chunk:
                raise ConnectionResetError("closed by the server")
            received += chunk
            self._counts.bytes_received += len(chunk)
        return received
