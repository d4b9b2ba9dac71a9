"""The fields inside a TLS answer's data: fixed-width ASCII, read left to right, without I/O.

Numbers come three ways: decimal digits (tank numbers, delivery counts), hex digits (field counts, status
bits, alarm counts) and eight hex digits holding the bits of an IEEE-754 single-precision float, most
significant first ("ASCII Hex IEEE float": `42C80000` is 100.0). Dates are `YYMMDDHHmm` on the gauge's own
clock. A gauge that has no valid data for a device fills the device's numbers with question marks; a float
field of question marks reads as None. NaN and infinity are passed on as they came: whether a value can be
true is for `units` to judge, which reports it as the device fault it is rather than as a missing tank.
"""

from __future__ import annotations

import struct
from datetime import datetime

from drivers.veeder_root.errors import TlsFrameError

FLOAT_CHARS = 8
DATETIME_CHARS = 10
UNAVAILABLE = "?"
_HEX_DIGITS = frozenset("0123456789ABCDEFabcdef")


def encode_float(value: float) -> str:
    """Eight uppercase hex digits of `value` as an IEEE-754 single; OverflowError if it does not fit one."""
    return struct.pack(">f", value).hex().upper()


def encode_datetime(moment: datetime) -> str:
    """`YYMMDDHHmm`, the gauge's date format (years 2000-2099)."""
    if not 2000 <= moment.year <= 2099:
        raise ValueError(f"year {moment.year} does not fit YY (2000..2099)")
    return moment.strftime("%y%m%d%H%M")


class FieldReader:
    """Reads the fields of one answer's data in order; every error names the field and where it was."""

    def __init__(self, data: bytes, context: str) -> None:
        try:
            self._text = data.decode("ascii")
        except UnicodeDecodeError as error:
            raise TlsFrameError(f"{context}: data is not ASCII at character {error.start}") from error
        self._at = 0
        self.context = context

    @property
    def exhausted(self) -> bool:
        return self._at >= len(self._text)

    def take(self, width: int, what: str) -> str:
        """The next `width` characters; TlsFrameError if the data ends first."""
        start = self._at
        chunk = self._text[start : start + width]
        if len(chunk) < width:
            raise TlsFrameError(
                f"{self.context}: data ends at character {len(self._text)} inside {what} "
                f"(needs {width} from {start}): answer cut short"
            )
        self._at += width
        return chunk

    def decimal(self, width: int, what: str) -> int:
        chunk = self.take(width, what)
        if not chunk.isdigit():
            raise self._bad(what, chunk, "decimal digits")
        return int(chunk)

    def hexadecimal(self, width: int, what: str) -> int:
        chunk = self.take(width, what)
        if not set(chunk) <= _HEX_DIGITS:
            raise self._bad(what, chunk, "hex digits")
        return int(chunk, 16)

    def single(self, what: str) -> float | None:
        """An ASCII-hex IEEE float (NaN and infinity included), or None for a field of question marks."""
        chunk = self.take(FLOAT_CHARS, what)
        if chunk == UNAVAILABLE * FLOAT_CHARS:
            return None
        if not set(chunk) <= _HEX_DIGITS:
            raise self._bad(what, chunk, "eight hex digits of an IEEE-754 float")
        value: float = struct.unpack(">f", bytes.fromhex(chunk))[0]
        return value

    def moment(self, what: str) -> datetime:
        chunk = self.take(DATETIME_CHARS, what)
        try:
            if not chunk.isdigit():
                raise ValueError(chunk)
            return datetime.strptime(chunk, "%y%m%d%H%M")
        except ValueError:
            raise self._bad(what, chunk, "a date and time YYMMDDHHmm") from None

    def _bad(self, what: str, chunk: str, expected: str) -> TlsFrameError:
        where = self._at - len(chunk)
        return TlsFrameError(f"{self.context}: {what} is {chunk!r} at character {where}, not {expected}")
