"""One error type per way a Modbus exchange can fail, because the caller acts differently on each.

A timeout means the device is off or the wire is cut; a CRC error means noise, a bad termination or a second
master on the line; a frame error means a device that answers but not to what was asked; an exception response
is a configuration mistake (a register or function the device does not have) or a busy device; a link error is
a missing adapter or a refused connection. Alarms and retry budgets key on these types, so the codecs and the
masters raise exactly one of them for every failure, with the unit, the request and the offending value in the
message.
"""

from __future__ import annotations

from enum import IntEnum

from drivers.errors import FieldCorrupt, FieldError, FieldFrameError, FieldLinkError, FieldRefused, FieldTimeout


class ExceptionCode(IntEnum):
    """Exception codes a Modbus server answers with (Modbus Application Protocol V1.1b3, section 7)."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    SERVER_DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    SERVER_DEVICE_BUSY = 0x06
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_FAILED = 0x0B


def exception_name(code: int) -> str:
    """The standard name of an exception code in words, or "unknown exception" for codes outside the spec."""
    try:
        return ExceptionCode(code).name.lower().replace("_", " ")
    except ValueError:
        return "unknown exception"


class ModbusError(FieldError):
    """Any failed Modbus exchange; catch this to treat every failure alike."""


class ModbusTimeout(ModbusError, FieldTimeout):
    """No answer began within the response timeout: the unit is off, misaddressed or the line is cut."""


class ModbusCrcError(ModbusError, FieldCorrupt):
    """An RTU frame arrived whole but its CRC does not match its bytes: noise or a line fault."""


class ModbusFrameError(ModbusError, FieldFrameError):
    """An answer that cannot be the reply to the request: cut short, wrong unit, function, length or echo."""


def cut_short(context: object, answer: bytes, expected: int, timeout_s: float) -> ModbusFrameError:
    """An answer of which only `answer` arrived, of the `expected` bytes, within the timeout."""
    return ModbusFrameError(
        f"{context}: answer cut short, {len(answer)} of {expected} bytes ({answer.hex(' ')}) "
        f"within the {timeout_s} s timeout"
    )


class ModbusLinkError(ModbusError, FieldLinkError):
    """The serial port cannot be opened or used, or the TCP connection is refused or lost."""


class ModbusExceptionResponse(ModbusError, FieldRefused):
    """The unit understood the request and refused it with an exception code.

    Servers raise it too (from `decode_request` or a register bank) to say which exception to answer with.
    """

    def __init__(self, function: int, code: int, context: str = "") -> None:
        self.function = function & 0x7F
        self.code = code
        prefix = f"{context}: " if context else ""
        super().__init__(f"{prefix}exception 0x{code:02X} ({exception_name(code)}) to function 0x{self.function:02X}")

    @property
    def name(self) -> str:
        """The exception's standard name, e.g. "illegal data address"."""
        return exception_name(self.code)
