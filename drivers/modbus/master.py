"""The thin I/O shell around the Modbus codecs: one master per line, one request in flight, no retries.

pymodbus is not used here: its synchronous client takes a frame with a bad CRC for garbage and keeps reading
until the timeout, so a CRC error looks like a timeout, and it does not read answers by their exact length. These
masters read exactly the bytes the answer must have, raise one error type per kind of failure (see `errors`) and
never retry on their own: the poller above owns retry budgets and back-off, and needs every failure reported as
it happened. The port or connection, the rules after a failure and the counters (`statistics()`, the snapshot
the status command reads) are the shared ones of `drivers.transport`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

from drivers.errors import FieldError
from drivers.modbus import rtu, tcp
from drivers.modbus.errors import (
    ModbusCrcError,
    ModbusError,
    ModbusFrameError,
    ModbusLinkError,
    ModbusTimeout,
    cut_short,
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
from drivers.transport.serial_port import PORT_FAILURES, SerialPort
from drivers.transport.statistics import LinkCounters, LinkStatistics
from drivers.transport.tcp_connection import Opening, TcpConnection
from drivers.transport.wording import LinkWording

SERIAL_WORDING = LinkWording(
    ModbusLinkError, "request", "check that the adapter is plugged in and the port path in the config"
)
TCP_WORDING = LinkWording(
    ModbusLinkError, "request", "check the address in the config and that the device is on", peer="Modbus TCP"
)

RequestT = TypeVar("RequestT", bound=Request)
ResultT = TypeVar("ResultT")


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

    def statistics(self) -> LinkStatistics:
        """A snapshot of the counters."""
        ...


class _Master(ABC):
    """Requests, accounting and the one-in-flight lock; subclasses move the bytes."""

    units: ClassVar[range]

    def __init__(self, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s {timeout_s} must be positive")
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._counts = LinkCounters()

    def read_registers(self, unit: int, function: int, address: int, count: int) -> tuple[int, ...]:
        return self._transact(unit, ReadRegistersRequest(function, address, count), decode_read_response)

    def write_registers(self, unit: int, address: int, values: Sequence[int]) -> None:
        self._transact(unit, WriteMultipleRequest(address, tuple(values)), check_write_response)

    def write_register(self, unit: int, address: int, value: int) -> None:
        self._transact(unit, WriteSingleRequest(address, value), check_write_response)

    def statistics(self) -> LinkStatistics:
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
            try:
                result = decode(request, self._exchange(unit, request, context), context)
            except ModbusError as error:
                counts.failed(error)
                raise
            counts.answered()
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
    the request leaving, plus the time its own bytes take on the line at `baudrate`. Between exchanges the
    line rests the RTU silence; after a timeout it is held for the late answer and after a broken answer
    flushed until quiet (`drivers.transport.serial_port`).
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
        self._silence_s = rtu.silence_s(baudrate)
        self._port = SerialPort(
            port,
            self._counts,
            baudrate=baudrate,
            bytesize=8,
            parity=parity,
            stopbits=stopbits,
            timeout_s=timeout_s,
            silence_s=self._silence_s,
            wording=SERIAL_WORDING,
        )
        self.port = self._port.path
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self._passed: dict[int, bytes] = {}
        """Each unit's last answer that passed the frame's checks (`_checked`)."""
        self._reads: dict[tuple[int, int, int, int], _RequestFrame] = {}
        """Each read asked, by (unit, function, address, count), made into its frame once (`_frame`)."""

    def _disconnect(self) -> None:
        self._port.close()

    def _exchange(self, unit: int, request: Request, context: Exchange) -> bytes:
        frame = self._frame(unit, request)
        port = self._port
        try:
            port.send(frame.adu)
            try:
                return self._receive(frame, unit, context)
            except ModbusTimeout:
                port.hold_after_timeout()
                raise
            except (ModbusCrcError, ModbusFrameError):
                port.flush_until_quiet()
                raise
            finally:
                port.rest(self._silence_s)
        except PORT_FAILURES as error:
            raise port.broken(str(context), error) from error

    def _frame(self, unit: int, request: Request) -> _RequestFrame:
        """The request's frame and what its answer must be. A read is made once and kept (a device's reads are
        the same every poll), up to `MAX_READS_KEPT` of them; a write is made every time."""
        if type(request) is not ReadRegistersRequest:
            return self._made(unit, request)
        key = (unit, request.function, request.address, request.count)
        frame = self._reads.get(key)
        if frame is None:
            if len(self._reads) >= MAX_READS_KEPT:
                self._reads.clear()
            frame = self._reads[key] = self._made(unit, request)
        return frame

    def _made(self, unit: int, request: Request) -> _RequestFrame:
        expected = rtu.expected_response_length(request.function, request.count)
        return _RequestFrame(
            rtu.encode_adu(unit, encode_request(request)),
            expected,
            self.timeout_s + rtu.frame_time_s(expected, self.baudrate),
        )

    def _receive(self, frame: _RequestFrame, unit: int, context: Exchange) -> bytes:
        """The answer's PDU, its frame checked (`_checked`). The answer is read as it comes up to the normal
        answer's length, which is one read once it is in whole; its length is known from its second byte (an
        exception answer is shorter), and whatever came after an exception answer is dropped, as the next
        request's flush would drop it."""
        port, expected = self._port, frame.answer_bytes
        deadline = time.monotonic() + frame.answer_within_s
        answer = port.read_at_least(2, expected, deadline)
        if not answer:
            raise ModbusTimeout(f"{context}: no answer within {self.timeout_s} s")
        total = rtu.response_length(answer[1], expected) if len(answer) >= 2 else expected
        if len(answer) < total:
            answer += port.read_exactly(total - len(answer), deadline)
            if len(answer) < total:
                raise cut_short(context, answer, total, self.timeout_s)
        return self._checked(answer[:total], unit, context)

    def _checked(self, answer: bytes, unit: int, context: Exchange) -> bytes:
        """The answer's PDU once its frame passes its checks (`rtu.decode_response_adu`: length, CRC, unit). An
        answer byte for byte the same as the unit's last one that passed passes them again, so its CRC is not worked
        out again: the CRC is a pure-Python loop over every byte, and an idle dispenser answers the same all day."""
        if answer == self._passed.get(unit):
            return answer[1 : -rtu.CRC_BYTES]
        pdu = rtu.decode_response_adu(answer, unit, context)
        self._passed[unit] = answer
        return pdu


MAX_READS_KEPT = 1024
"""Reads a serial master keeps made into frames; a station's devices ask a few dozen, a scan of the bus may ask
more, and the kept ones are dropped and made again then."""


@dataclass(frozen=True, slots=True)
class _RequestFrame:
    """A request as the RTU master sends it: the frame, its normal answer's length, and how long after the
    request is out that answer may take (the timeout plus its own time on the line)."""

    adu: bytes
    answer_bytes: int
    answer_within_s: float


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
        self._connection = TcpConnection(host, port, self._counts, timeout_s=timeout_s, wording=TCP_WORDING)
        self._transaction_id = 0

    def _disconnect(self) -> None:
        self._connection.close()

    def prepare(self, unit: int, function: int, address: int, count: int) -> tcp.PreparedRead:
        """A read worked out once, to be sent again and again (`send_read`): a device's planned read."""
        if unit not in self.units:
            raise ValueError(f"unit {unit} is outside {self.units.start}..{self.units.stop - 1}")
        return tcp.PreparedRead(unit, ReadRegistersRequest(function, address, count))

    def send_read(self, prepared: tcp.PreparedRead) -> PendingRead:
        """`read_registers` of a read prepared (`prepare`) by this master, without waiting: the request is sent
        (once connected) and its answer taken as its bytes arrive, by whoever waits for the socket
        (`PendingRead`)."""
        self._transaction_id = (self._transaction_id + 1) & 0xFFFF
        return PendingRead(self, self._transaction_id, prepared)

    def _exchange(self, unit: int, request: Request, context: Exchange) -> bytes:
        self._transaction_id = (self._transaction_id + 1) & 0xFFFF
        try:
            return self._exchange_on(self._transaction_id, unit, request, context)
        except ModbusError:
            self._connection.close()
            raise
        except OSError as error:
            raise self._connection.lost(str(context), error) from error

    def _exchange_on(self, transaction_id: int, unit: int, request: Request, context: Exchange) -> bytes:
        connection = self._connection
        connection.send(tcp.encode_adu(transaction_id, unit, encode_request(request)))
        deadline = time.monotonic() + self.timeout_s
        answer = tcp.Answer(transaction_id, unit, context)
        while (missing := answer.missing()) > 0:
            received = connection.read_exactly(missing, deadline)
            answer.feed(received)
            if len(received) < missing:
                raise answer.overdue(self.timeout_s)
        return answer.pdu()


class PendingRead:
    """One read on a Modbus TCP connection, in flight without blocking anyone.

    Whoever waits for many sockets at once waits until `socket` is ready for `writing` (a connect under way) or
    reading (an answer, or the end of the host name's lookup), or until `deadline` (`time.monotonic()`), then
    calls `ready()` or `overdue()`. The rules are those of a blocking read: the connect and the answer each have
    the master's timeout (a name's lookup has it too, and goes on past it for the next read), the header is
    checked before the PDU is read, and every failure is counted and drops the connection, so a late answer is
    never taken for the next one.
    """

    __slots__ = ("_answer", "_master", "_opening", "_prepared", "_transaction_id", "deadline", "socket", "writing")

    def __init__(self, master: TcpMaster, transaction_id: int, prepared: tcp.PreparedRead) -> None:
        self._master = master
        self._transaction_id = transaction_id
        self._prepared = prepared
        self._answer: tcp.Answer | None = None
        """The answer taken so far, once its first bytes were not the whole answer (`tcp.PreparedRead`)."""
        self.writing = False
        """Whether it waits for a connect (the socket to turn writable) rather than to read."""
        self._open(master._connection.open_without_waiting)

    def ready(self) -> tuple[int, ...] | None:
        """The socket is ready: the registers if the answer is now whole, else None (wait again, for `writing`
        as it now says); raises the ModbusError the exchange ended in."""
        master = self._master
        if self._opening != "connected":
            # the host's name is looked up: connect now; or the connect ended: connected, or under way to the
            # host's next address
            connection = master._connection
            self._open(connection.open_without_waiting if self._opening == "resolving" else connection.connected)
            return None
        answer = self._answer
        try:
            received = master._connection.receive_now(
                tcp.MAX_ADU_BYTES if answer is None else tcp.MAX_ADU_BYTES - answer.received()
            )
        except ModbusError as error:
            self._dropped(error)
            raise
        except OSError as error:
            raise self._lost(error) from error
        if answer is None:  # the whole answer, mostly, in one read
            registers = self._prepared.registers(self._transaction_id, received)
            if registers is not None:
                master._counts.answered()
                return registers
            answer = self._answer = self._new_answer()
        try:
            answer.feed(received)
        except ModbusError as error:
            self._dropped(error)
            raise
        if answer.missing() > 0:
            return None
        counts = master._counts
        try:
            registers = decode_read_response(self._prepared.request, answer.pdu(), self._exchange())
        except ModbusError as error:
            counts.failed(error)
            raise
        counts.answered()
        return registers

    def overdue(self) -> FieldError:
        """The deadline passed: the error to raise (the connect or the answer took too long); counted, and the
        connection dropped."""
        master = self._master
        if self._opening == "resolving":
            error: FieldError = master._connection.unresolved(str(self._exchange()), master.timeout_s)
        elif self.writing:
            error = master._connection.lost(
                str(self._exchange()), TimeoutError(f"no connection within {master.timeout_s} s")
            )
        else:
            error = (self._answer or self._new_answer()).overdue(master.timeout_s)
            master._connection.close()
        master._counts.failed(error)
        return error

    def _exchange(self) -> Exchange:
        """The read's name for messages."""
        return Exchange(self._prepared.request, self._prepared.unit)

    def _new_answer(self) -> tcp.Answer:
        return tcp.Answer(self._transaction_id, self._prepared.unit, self._exchange())

    def _open(self, step: Callable[[], tuple[socket.socket, Opening]]) -> None:
        """Take the connection as far as it goes without waiting (`step`: look it up, connect, or see the connect
        through) and wait for what it now waits for, with the timeout from now (each address's connect has its
        own, as in a blocking connect); once connected, send the request."""
        master = self._master
        try:
            self.socket, self._opening = step()
            if self._opening == "connected":
                master._connection.send_now(self._prepared.frame(self._transaction_id))
        except ModbusError as error:
            self._dropped(error)
            raise
        except OSError as error:
            raise self._lost(error) from error
        self.writing = self._opening == "connecting"
        self.deadline = time.monotonic() + master.timeout_s

    def _dropped(self, error: ModbusError) -> None:
        """The exchange failed in `error`: counted, and the connection dropped."""
        master = self._master
        master._connection.close()
        master._counts.failed(error)

    def _lost(self, error: OSError) -> FieldError:
        """The connection failed in `error`: the link error to raise, counted (the connection is dropped)."""
        master = self._master
        lost = master._connection.lost(str(self._exchange()), error)
        master._counts.failed(lost)
        return lost
