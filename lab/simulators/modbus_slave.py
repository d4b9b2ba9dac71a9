"""Modbus slaves in software, on a pty (RTU) or a loopback socket (TCP), with faults that can be switched on.

They are the other side of `drivers.modbus`, built from the same codecs, and behave the way field devices do
where that matters to a master: an RTU slave keeps silent on a frame with a bad CRC or for another unit, answers
an unsupported function with exception 1 and a missing register with exception 2. Faults (`SlaveFaults`) are
plain mutable values read at every request, so a test or the demo can kill, slow or corrupt one unit while the
others on the same line keep answering.
"""

from __future__ import annotations

import os
import random
import socket
import termios
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import serial

from drivers.modbus import rtu, tcp
from drivers.modbus.errors import ExceptionCode, ModbusError, ModbusExceptionResponse
from drivers.modbus.pdu import (
    FunctionCode,
    ReadRegistersRequest,
    Request,
    WriteMultipleRequest,
    WriteSingleRequest,
    decode_request,
    encode_exception_response,
    encode_read_response,
    encode_write_response,
)
from simulators.serving import POLL_S, DeviceServer, ServerError, TcpListener, TcpServing

PTY_GAP_FLOOR_S = 0.02
"""Shortest silence that ends a frame of unknown length on a pty: socat and the scheduler can pause a few ms
inside one frame, far longer than 3.5 characters at a high baud rate."""


class IllegalAddress(LookupError):
    """Raised by a register bank for a register it does not have; the slave answers exception 2."""


class RegisterBank(Protocol):
    """The registers of one simulated unit."""

    def read(self, function: int, address: int, count: int) -> list[int]:
        """`count` registers from `address` on, from the holding (0x03) or input (0x04) table.

        Raises IllegalAddress if any of them does not exist.
        """
        ...

    def write(self, address: int, values: Sequence[int]) -> None:
        """Store holding registers from `address` on; raises IllegalAddress (nothing written) if one is missing."""
        ...


class RegisterMap:
    """A register bank kept in two dicts, safe to update from the simulation while a server reads it.

    Only registers that were set exist; reading or writing any other answers exception 2, as a device does
    outside its register map.
    """

    def __init__(
        self, holding: Mapping[int, int] | None = None, input_registers: Mapping[int, int] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._tables: dict[int, dict[int, int]] = {
            FunctionCode.READ_HOLDING_REGISTERS: {},
            FunctionCode.READ_INPUT_REGISTERS: {},
        }
        for function, registers in (
            (FunctionCode.READ_HOLDING_REGISTERS, holding or {}),
            (FunctionCode.READ_INPUT_REGISTERS, input_registers or {}),
        ):
            for address, value in registers.items():
                self.set(function, address, [value])

    def set(self, function: int, address: int, values: Sequence[int]) -> None:
        """Create or change registers in the holding (0x03) or input (0x04) table, as the device itself would."""
        table = self._table(function)
        for offset, value in enumerate(values):
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"register 0x{address + offset:04X} value {value} does not fit 16 bits (0..65535)")
        with self._lock:
            table.update(zip(range(address, address + len(values)), values, strict=True))

    def read(self, function: int, address: int, count: int) -> list[int]:
        table = self._table(function)
        with self._lock:
            self._require(table, function, address, count)
            return [table[register] for register in range(address, address + count)]

    def write(self, address: int, values: Sequence[int]) -> None:
        table = self._tables[FunctionCode.READ_HOLDING_REGISTERS]
        with self._lock:
            self._require(table, FunctionCode.READ_HOLDING_REGISTERS, address, len(values))
            table.update(zip(range(address, address + len(values)), values, strict=True))

    def _table(self, function: int) -> dict[int, int]:
        try:
            return self._tables[function]
        except KeyError:
            raise ValueError(f"function 0x{function:02X} has no register table: use 0x03 or 0x04") from None

    @staticmethod
    def _require(table: dict[int, int], function: int, address: int, count: int) -> None:
        missing = [register for register in range(address, address + count) if register not in table]
        if missing:
            kind = "holding" if function == FunctionCode.READ_HOLDING_REGISTERS else "input"
            raise IllegalAddress(f"{kind} register 0x{missing[0]:04X} does not exist")


@dataclass(slots=True)
class SlaveFaults:
    """What is wrong with one unit right now; read at every request, so change it while the server runs.

    `dead`: never answers. `delay_s`: answers this late. `garble_rate`: share of answers replaced by random
    bytes. `corrupt_crc_rate`: share of answers sent with their CRC flipped (RTU only: TCP has no CRC).
    `stuck`: registers (address -> value, either table) that read that value whatever the device holds: a
    transmitter in fault. `0x7FC0` in the high word of an f32 reads NaN, `0x7F80, 0x0000` infinity, `0xFFFF`
    in the high word of a u32 or u64 a huge number (see `poison_words`).
    """

    dead: bool = False
    delay_s: float = 0.0
    corrupt_crc_rate: float = 0.0
    garble_rate: float = 0.0
    stuck: dict[int, int] = field(default_factory=dict)


#: Register words that read as a value no sensor can give, by name, for a point's first registers (high word
#: first): what `SlaveFaults.stuck` and the `stuck_register` fault put there.
POISON_WORDS: dict[str, tuple[int, ...]] = {
    "nan": (0x7FC0, 0x0000),
    "inf": (0x7F80, 0x0000),
    "-inf": (0xFF80, 0x0000),
    "huge_f32": (0x7F7F, 0xFFFF),
    "huge_u64": (0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF),
}


def poison_words(kind: str, address: int) -> dict[int, int]:
    """`SlaveFaults.stuck` for a point at `address` that reads `kind` (a key of POISON_WORDS)."""
    return {address + offset: word for offset, word in enumerate(POISON_WORDS[kind])}


@dataclass(frozen=True, slots=True)
class SlaveStatistics:
    """What a slave server saw and did since it was made."""

    requests: int = 0
    answers: int = 0
    exceptions: int = 0
    damaged_answers: int = 0
    silent: int = 0
    ignored_other_unit: int = 0
    ignored_bad_frames: int = 0


class SlaveServerError(ServerError):
    """A slave server could not start or stop."""


def _execute(bank: RegisterBank, request: Request, stuck: Mapping[int, int]) -> bytes:
    match request:
        case ReadRegistersRequest(function, address, count):
            registers = tuple(bank.read(function, address, count))
            if len(registers) != count:
                raise ValueError(f"bank returned {len(registers)} registers for a read of {count}")
            if stuck:
                registers = tuple(stuck.get(address + i, value) for i, value in enumerate(registers))
            return encode_read_response(function, registers)
        case WriteSingleRequest(address, value):
            bank.write(address, (value,))
            return encode_write_response(request)
        case WriteMultipleRequest(address, values):
            bank.write(address, values)
            return encode_write_response(request)


class _SlaveServer(DeviceServer):
    """Units, faults and statistics shared by the RTU and the TCP server."""

    def __init__(self, banks: Mapping[int, RegisterBank], faults: Mapping[int, SlaveFaults] | None, seed: int) -> None:
        if not banks:
            raise ValueError("no units to serve: give at least one unit id -> register bank")
        unknown = sorted(set(faults or {}) - set(banks))
        if unknown:
            raise ValueError(f"faults given for units {unknown} that have no register bank")
        super().__init__()
        self.banks = dict(banks)
        self.faults = {unit: SlaveFaults() for unit in self.banks} | dict(faults or {})
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._statistics = SlaveStatistics()

    def statistics(self) -> SlaveStatistics:
        return self._statistics

    def _error(self, message: str) -> Exception:
        return SlaveServerError(message)

    def _count(self, counter: str) -> None:
        with self._lock:
            self._statistics = replace(self._statistics, **{counter: getattr(self._statistics, counter) + 1})

    def _chance(self, rate: float) -> bool:
        with self._lock:
            return self._random.random() < rate

    def _random_bytes(self, longest: int) -> bytes:
        with self._lock:
            return self._random.randbytes(self._random.randint(1, longest))

    def _respond(self, unit: int, pdu: bytes) -> bytes | None:
        """The answer PDU for `unit`, or None when it keeps silent (another unit's frame, or dead)."""
        bank = self.banks.get(unit)
        if bank is None:
            self._count("ignored_other_unit")
            return None
        self._count("requests")
        faults = self.faults[unit]
        if faults.dead:
            self._count("silent")
            return None
        try:
            answer = _execute(bank, decode_request(pdu), dict(faults.stuck))
        except ModbusExceptionResponse as refusal:
            answer = encode_exception_response(refusal.function, refusal.code)
        except IllegalAddress:
            answer = encode_exception_response(pdu[0], ExceptionCode.ILLEGAL_DATA_ADDRESS)
        except ModbusError:
            self._count("ignored_bad_frames")
            return None
        except Exception:
            answer = encode_exception_response(pdu[0], ExceptionCode.SERVER_DEVICE_FAILURE)
        self._count("exceptions" if answer[0] & 0x80 else "answers")
        if faults.delay_s > 0:
            self._stopping.wait(faults.delay_s)
        return answer

    def _damage(self, faults: SlaveFaults, adu: bytes, crc_bytes: int) -> bytes:
        """The ADU as the faults let it leave: garbled, CRC-flipped (when the frame has a CRC) or intact."""
        if self._chance(faults.garble_rate):
            self._count("damaged_answers")
            return self._random_bytes(len(adu))
        if crc_bytes and self._chance(faults.corrupt_crc_rate):
            self._count("damaged_answers")
            return adu[:-crc_bytes] + bytes(byte ^ 0xFF for byte in adu[-crc_bytes:])
        return adu


class RtuSlaveServer(_SlaveServer):
    """Modbus RTU slaves for several unit ids on one pty (or a real serial port).

    Frames are cut by the request length each supported function implies, checked by CRC, and otherwise ended by
    line silence. With `emulate_line_timing` every answer is held for the time the exchange would take on a
    real line at `baudrate` (request and answer at 11 bits per byte, plus 3.5 characters of silence), since a
    pty moves bytes instantly; bus-efficiency benchmarks need that. The port is reopened if it goes away, so the
    line can be unplugged (`PtyPair.stop`) and plugged back while the server runs.
    """

    def __init__(
        self,
        port_path: str | os.PathLike[str],
        banks: Mapping[int, RegisterBank],
        baudrate: int = 9600,
        *,
        faults: Mapping[int, SlaveFaults] | None = None,
        seed: int = 0,
        emulate_line_timing: bool = False,
    ) -> None:
        super().__init__(banks, faults, seed)
        self.port_path = os.fspath(port_path)
        self.baudrate = baudrate
        self.emulate_line_timing = emulate_line_timing
        self.frame_gap_s = max(rtu.silence_s(baudrate), PTY_GAP_FLOOR_S)
        self._port: Any = None

    def _open(self) -> None:
        try:
            self._port = serial.Serial(self.port_path, baudrate=self.baudrate, timeout=POLL_S)
        except (OSError, ValueError) as error:
            raise SlaveServerError(f"cannot open {self.port_path} for the RTU slave: {error}") from error

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            port.close()

    def _serve(self) -> None:
        pending = b""
        last_byte_at = time.monotonic()
        while not self._stopping.is_set():
            try:
                chunk = self._read_chunk()
                now = time.monotonic()
                if chunk:
                    pending += chunk
                    last_byte_at = now
                pending = self._answer_complete_frames(pending)
                if pending and not chunk and now - last_byte_at >= self.frame_gap_s:
                    self._answer(pending)
                    pending = b""
            except (OSError, termios.error):
                pending = b""
                self._reopen()

    def _read_chunk(self) -> bytes:
        port = self._port
        chunk: bytes = port.read(1)
        if chunk:
            chunk += port.read(port.in_waiting)
        return chunk

    def _reopen(self) -> None:
        """Wait for the port to come back after it failed (the pty pair was stopped) and open it again."""
        self._close()
        while not self._stopping.wait(5 * POLL_S):
            try:
                self._open()
            except SlaveServerError:
                continue
            return

    def _answer_complete_frames(self, pending: bytes) -> bytes:
        while (length := rtu.request_adu_length(pending)) is not None and len(pending) >= length:
            self._answer(pending[:length])
            pending = pending[length:]
        return pending

    def _answer(self, frame: bytes) -> None:
        try:
            unit, pdu = rtu.decode_adu(frame)
        except ModbusError:
            self._count("ignored_bad_frames")
            return
        answer = self._respond(unit, pdu)
        if answer is None:
            return
        adu = self._damage(self.faults[unit], rtu.encode_adu(unit, answer), rtu.CRC_BYTES)
        if self.emulate_line_timing:
            wire_time_s = rtu.frame_time_s(len(frame) + len(adu), self.baudrate) + rtu.silence_s(self.baudrate)
            self._stopping.wait(wire_time_s)
        self._port.write(adu)


class TcpSlaveServer(_SlaveServer, TcpServing):
    """Modbus TCP slaves for several unit ids behind one listening socket, one thread per connection.

    `port=0` picks a free port; read `port` (or `address`) after `start()`.
    """

    listening_for = "the TCP slave"

    def __init__(
        self,
        banks: Mapping[int, RegisterBank],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        faults: Mapping[int, SlaveFaults] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(banks, faults, seed)
        self._listener = TcpListener(host, port)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def _serve_connection(self, connection: socket.socket) -> None:
        try:
            self._answer_requests(connection)
        except OSError:
            return
        finally:
            self._listener.hang_up(connection)

    def _answer_requests(self, connection: socket.socket) -> None:
        while (head := self._receive(connection, tcp.MBAP_BYTES)) is not None:
            try:
                header = tcp.decode_header(head)
            except ModbusError:
                self._count("ignored_bad_frames")
                return
            pdu = self._receive(connection, header.pdu_length)
            if pdu is None:
                return
            answer = self._respond(header.unit, pdu)
            if answer is not None:
                adu = tcp.encode_adu(header.transaction_id, header.unit, answer)
                connection.sendall(self._damage(self.faults[header.unit], adu, crc_bytes=0))

    def _receive(self, connection: socket.socket, size: int) -> bytes | None:
        """Exactly `size` bytes, or None once the peer hangs up or the server stops."""
        received = b""
        while len(received) < size and not self._stopping.is_set():
            try:
                chunk = connection.recv(size - len(received))
            except TimeoutError:
                continue
            if not chunk:
                return None
            received += chunk
        return received if len(received) == size else None
