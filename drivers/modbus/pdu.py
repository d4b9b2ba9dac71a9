"""Modbus PDUs for the register functions the station's devices speak, as values and bytes, without I/O.

Theory of operation: a request is a frozen value that refuses to exist out of range, and `encode_request`
turns it into bytes; a server turns bytes back into a request with `decode_request`, which raises the
exception response the server must answer with when the bytes ask for something it cannot do. A response
cannot be read without its request (a read response does not repeat the address or the count), so the
master's decoders take the request and check the answer against it, byte count and echo included.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from drivers.modbus.errors import ExceptionCode, ModbusExceptionResponse, ModbusFrameError

MAX_READ_COUNT = 125
MAX_WRITE_COUNT = 123
ADDRESS_SPACE = 0x10000
EXCEPTION_FLAG = 0x80


class FunctionCode(IntEnum):
    """The register functions this driver speaks (Modbus Application Protocol V1.1b3, section 6)."""

    READ_HOLDING_REGISTERS = 0x03
    READ_INPUT_REGISTERS = 0x04
    WRITE_SINGLE_REGISTER = 0x06
    WRITE_MULTIPLE_REGISTERS = 0x10


READ_FUNCTIONS = frozenset({FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS})


def _check_read_function(function: int) -> None:
    if function not in READ_FUNCTIONS:
        raise ValueError(f"function 0x{function:02X} does not read registers: use 0x03 (holding) or 0x04 (input)")


def _check_count(count: int, max_count: int) -> None:
    if not 1 <= count <= max_count:
        raise ValueError(f"count {count} is outside 1..{max_count}: larger blocks take several requests")


def _check_span(address: int, count: int, max_count: int) -> None:
    _check_count(count, max_count)
    if address < 0 or address + count > ADDRESS_SPACE:
        raise ValueError(f"address 0x{address:04X} with count {count} runs outside registers 0x0000..0xFFFF")


def _check_register(value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"register value {value} does not fit 16 bits unsigned (0..65535)")


@dataclass(frozen=True, slots=True)
class ReadRegistersRequest:
    """Read `count` holding (0x03) or input (0x04) registers from `address` on."""

    function: int
    address: int
    count: int

    def __post_init__(self) -> None:
        _check_read_function(self.function)
        _check_span(self.address, self.count, MAX_READ_COUNT)


@dataclass(frozen=True, slots=True)
class WriteSingleRequest:
    """Write one holding register (0x06)."""

    address: int
    value: int
    function: ClassVar[int] = FunctionCode.WRITE_SINGLE_REGISTER

    def __post_init__(self) -> None:
        _check_span(self.address, 1, 1)
        _check_register(self.value)

    @property
    def count(self) -> int:
        return 1


@dataclass(frozen=True, slots=True)
class WriteMultipleRequest:
    """Write consecutive holding registers from `address` on (0x10)."""

    address: int
    values: tuple[int, ...]
    function: ClassVar[int] = FunctionCode.WRITE_MULTIPLE_REGISTERS

    def __post_init__(self) -> None:
        _check_span(self.address, len(self.values), MAX_WRITE_COUNT)
        for value in self.values:
            _check_register(value)

    @property
    def count(self) -> int:
        return len(self.values)


WriteRequest = WriteSingleRequest | WriteMultipleRequest
Request = ReadRegistersRequest | WriteRequest


def describe(request: Request, unit: int | None = None) -> str:
    """Name an exchange for messages, e.g. "unit 3 function 0x03 @ 0x0100 x10"."""
    prefix = "" if unit is None else f"unit {unit} "
    return f"{prefix}function 0x{request.function:02X} @ 0x{request.address:04X} x{request.count}"


@dataclass(frozen=True, slots=True)
class Exchange:
    """An exchange's name for messages, written out only when a message needs it: a master names every
    request it sends, and nearly all of them never fail."""

    request: Request
    unit: int | None = None

    def __str__(self) -> str:
        return describe(self.request, self.unit)


Context = str | Exchange
"""What prefixes a codec's error messages: a text, or the exchange it belongs to."""


def encode_request(request: Request) -> bytes:
    """The request PDU: function code and data, without unit or checksum."""
    match request:
        case ReadRegistersRequest(function, address, count):
            return struct.pack(">BHH", function, address, count)
        case WriteSingleRequest(address, value):
            return struct.pack(">BHH", request.function, address, value)
        case WriteMultipleRequest(address, values):
            count = len(values)
            return struct.pack(f">BHHB{count}H", request.function, address, count, 2 * count, *values)


def _refuse(function: int, code: ExceptionCode, why: str) -> ModbusExceptionResponse:
    return ModbusExceptionResponse(function, code, f"request {why}")


def _unpack_fields(function: int, body: bytes, layout: str) -> tuple[int, ...]:
    expected = struct.calcsize(layout)
    if len(body) != expected:
        raise _refuse(function, ExceptionCode.ILLEGAL_DATA_VALUE, f"has {len(body)} data bytes, expected {expected}")
    return struct.unpack(layout, body)


def _check_requested_span(function: int, address: int, count: int, max_count: int) -> None:
    if not 1 <= count <= max_count:
        raise _refuse(function, ExceptionCode.ILLEGAL_DATA_VALUE, f"count {count} is outside 1..{max_count}")
    if address + count > ADDRESS_SPACE:
        raise _refuse(
            function, ExceptionCode.ILLEGAL_DATA_ADDRESS, f"address 0x{address:04X} x{count} runs past 0xFFFF"
        )


def _decode_read(function: int, body: bytes) -> Request:
    address, count = _unpack_fields(function, body, ">HH")
    _check_requested_span(function, address, count, MAX_READ_COUNT)
    return ReadRegistersRequest(function, address, count)


def _decode_write_single(function: int, body: bytes) -> Request:
    address, value = _unpack_fields(function, body, ">HH")
    return WriteSingleRequest(address, value)


def _decode_write_multiple(function: int, body: bytes) -> Request:
    address, count, byte_count = _unpack_fields(function, body[:5], ">HHB")
    _check_requested_span(function, address, count, MAX_WRITE_COUNT)
    if byte_count != 2 * count or len(body) != 5 + byte_count:
        raise _refuse(
            function,
            ExceptionCode.ILLEGAL_DATA_VALUE,
            f"byte count {byte_count} with {len(body) - 5} value bytes does not fit count {count}",
        )
    return WriteMultipleRequest(address, struct.unpack(f">{count}H", body[5:]))


_REQUEST_DECODERS: dict[int, Callable[[int, bytes], Request]] = {
    FunctionCode.READ_HOLDING_REGISTERS: _decode_read,
    FunctionCode.READ_INPUT_REGISTERS: _decode_read,
    FunctionCode.WRITE_SINGLE_REGISTER: _decode_write_single,
    FunctionCode.WRITE_MULTIPLE_REGISTERS: _decode_write_multiple,
}


def decode_request(pdu: bytes) -> Request:
    """The request a server received.

    Raises ModbusExceptionResponse carrying the exception the server must answer with (illegal function,
    illegal data value for a malformed body or count, illegal data address past 0xFFFF), and ModbusFrameError
    for an empty PDU, which has no function to answer to.
    """
    if not pdu:
        raise ModbusFrameError("empty request PDU: no function code to answer to")
    function, body = pdu[0], pdu[1:]
    decoder = _REQUEST_DECODERS.get(function)
    if decoder is None:
        raise _refuse(function, ExceptionCode.ILLEGAL_FUNCTION, "is not supported")
    return decoder(function, body)


def encode_read_response(function: int, registers: tuple[int, ...]) -> bytes:
    """The response PDU to a register read: function, byte count, registers big-endian."""
    _check_read_function(function)
    _check_count(len(registers), MAX_READ_COUNT)
    for value in registers:
        _check_register(value)
    count = len(registers)
    return struct.pack(f">BB{count}H", function, 2 * count, *registers)


def encode_write_response(request: WriteRequest) -> bytes:
    """The response PDU to a write: the whole request for 0x06, its address and count for 0x10."""
    return encode_request(request)[:5]


def encode_exception_response(function: int, code: int) -> bytes:
    """The exception response PDU: the function with its high bit set, then the exception code."""
    return bytes((function | EXCEPTION_FLAG, code))


def _check_function(request: Request, pdu: bytes, context: Context) -> None:
    if not pdu:
        raise ModbusFrameError(f"{context}: empty response PDU")
    if pdu[0] == request.function | EXCEPTION_FLAG:
        if len(pdu) != 2:
            raise ModbusFrameError(f"{context}: exception response of {len(pdu)} bytes, expected 2")
        raise ModbusExceptionResponse(request.function, pdu[1], str(context))
    if pdu[0] != request.function:
        raise ModbusFrameError(f"{context}: answer has function 0x{pdu[0]:02X}")


def decode_read_response(request: ReadRegistersRequest, pdu: bytes, context: Context = "") -> tuple[int, ...]:
    """The registers in the answer to `request`.

    Raises ModbusExceptionResponse for an exception answer and ModbusFrameError when the function, the byte
    count or the length does not fit the request. `context` prefixes messages (default: the request).
    """
    context = context or describe(request)
    _check_function(request, pdu, context)
    expected_bytes = 2 * request.count
    if len(pdu) < 2 or pdu[1] != expected_bytes:
        byte_count = pdu[1] if len(pdu) >= 2 else "missing"
        raise ModbusFrameError(f"{context}: byte count {byte_count}, expected {expected_bytes}")
    if len(pdu) != 2 + expected_bytes:
        raise ModbusFrameError(f"{context}: response PDU of {len(pdu)} bytes, expected {2 + expected_bytes}")
    return struct.unpack(f">{request.count}H", pdu[2:])


def check_write_response(request: WriteRequest, pdu: bytes, context: Context = "") -> None:
    """Return when `pdu` is the echo that confirms `request`.

    Raises ModbusExceptionResponse for an exception answer and ModbusFrameError when the echo differs.
    """
    context = context or describe(request)
    _check_function(request, pdu, context)
    expected = encode_write_response(request)
    if pdu != expected:
        raise ModbusFrameError(f"{context}: echo {pdu.hex(' ')} differs from {expected.hex(' ')}")
