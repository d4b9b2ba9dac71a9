"""Modbus RTU framing and line timing (Modbus over Serial Line V1.02), without I/O.

RTU frames carry no length and no delimiter: a frame ends where the line falls silent for 3.5 character
times, and its CRC is the only proof it arrived whole. Waiting for silence costs time on a 9600-baud line, so
both sides work out lengths from the function code instead (the master knows what answer to expect, a slave
knows how long each request it supports is) and keep silence only as the fallback and as the gap between
frames.
"""

from __future__ import annotations

from drivers.modbus.errors import ModbusCrcError, ModbusFrameError
from drivers.modbus.pdu import EXCEPTION_FLAG, READ_FUNCTIONS, Context, FunctionCode

CRC_BYTES = 2
MIN_ADU_BYTES = 4
MAX_ADU_BYTES = 256
"""The longest RTU frame (Modbus over Serial Line V1.02, 2.5.1.1): unit, 253 bytes of PDU, CRC."""
EXCEPTION_ADU_BYTES = 5
BITS_PER_CHARACTER = 11
FAST_BAUDRATE = 19200
FAST_SILENCE_S = 0.00175

_CRC_POLYNOMIAL = 0xA001


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC_POLYNOMIAL if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of `data`: reflected polynomial 0xA001, initial value 0xFFFF, no final xor.

    On the wire the low byte goes first: `crc16(frame).to_bytes(2, "little")`.
    """
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def encode_adu(unit: int, pdu: bytes) -> bytes:
    """The RTU frame: unit, PDU, CRC low byte first."""
    if not 0 <= unit <= 0xFF:
        raise ValueError(f"unit {unit} does not fit one byte (0..255; RTU slaves use 1..247)")
    frame = bytes((unit,)) + pdu
    return frame + crc16(frame).to_bytes(CRC_BYTES, "little")


def decode_adu(adu: bytes, context: Context = "frame") -> tuple[int, bytes]:
    """The unit and the PDU of a whole RTU frame, once its CRC checks out.

    Raises ModbusFrameError for a frame shorter than unit, function and CRC or longer than 256 bytes (checked
    before anything else is read of it), and ModbusCrcError when the CRC
    does not match; `context` prefixes the message (e.g. the exchange it belongs to).
    """
    if len(adu) < MIN_ADU_BYTES:
        raise ModbusFrameError(f"{context}: {len(adu)} bytes ({adu.hex(' ')}) is shorter than a frame")
    if len(adu) > MAX_ADU_BYTES:
        raise ModbusFrameError(f"{context}: {len(adu)} bytes is longer than an RTU frame ({MAX_ADU_BYTES})")
    received = int.from_bytes(adu[-CRC_BYTES:], "little")
    computed = crc16(adu[:-CRC_BYTES])
    if received != computed:
        raise ModbusCrcError(f"{context}: CRC 0x{received:04X} != computed 0x{computed:04X}")
    return adu[0], adu[1:-CRC_BYTES]


def decode_response_adu(adu: bytes, unit: int, context: Context) -> bytes:
    """The PDU of a master's received frame, once its CRC checks out and it comes from `unit`."""
    answered_unit, pdu = decode_adu(adu, context)
    if answered_unit != unit:
        raise ModbusFrameError(f"{context}: answer comes from unit {answered_unit}")
    return pdu


def expected_response_length(function: int, count: int) -> int:
    """Bytes in a normal RTU answer to `function` for `count` registers (an exception answer has 5)."""
    if function in READ_FUNCTIONS:
        return 1 + 2 + 2 * count + CRC_BYTES
    if function in (FunctionCode.WRITE_SINGLE_REGISTER, FunctionCode.WRITE_MULTIPLE_REGISTERS):
        return 1 + 5 + CRC_BYTES
    raise ValueError(f"function 0x{function:02X} is not one this driver speaks: no response length known")


def response_length(function_byte: int, expected: int) -> int:
    """Bytes to read in all once the answer's function byte is in: 5 for an exception, else `expected`."""
    return EXCEPTION_ADU_BYTES if function_byte & EXCEPTION_FLAG else expected


def request_adu_length(head: bytes) -> int | None:
    """Bytes in the request frame that starts with `head`, or None while it cannot be told from `head`.

    None comes back while `head` is too short to hold the length and for functions this driver does not
    speak; a slave frames those by line silence instead.
    """
    if len(head) < 2:
        return None
    function = head[1]
    if function in READ_FUNCTIONS or function == FunctionCode.WRITE_SINGLE_REGISTER:
        return 1 + 5 + CRC_BYTES
    if function == FunctionCode.WRITE_MULTIPLE_REGISTERS and len(head) >= 7:
        return 1 + 6 + head[6] + CRC_BYTES
    return None


def character_time_s(baudrate: int) -> float:
    """Time one character takes on the line: 11 bits (start, 8 data, parity or second stop, stop)."""
    if baudrate <= 0:
        raise ValueError(f"baudrate {baudrate} must be positive")
    return BITS_PER_CHARACTER / baudrate


def frame_time_s(byte_count: int, baudrate: int) -> float:
    """Time `byte_count` characters take on the line, back to back."""
    return byte_count * character_time_s(baudrate)


def silence_s(baudrate: int) -> float:
    """The silence that ends a frame: 3.5 character times, fixed at 1.75 ms above 19200 baud."""
    if baudrate > FAST_BAUDRATE:
        return FAST_SILENCE_S
    return 3.5 * character_time_s(baudrate)
