"""The envelope of the Veeder-Root TLS serial protocol in "computer format", without I/O.

Theory of operation: a command is `SOH`, the gauge's six-character security code if one is set, and a
six-character command (a four-character function such as `i201` and a two-digit tank, `00` for all). The
answer is `SOH`, the same command, the data, `&&`, four hex digits of checksum, `ETX`; the checksum is the
16-bit two's complement of the sum of every character before it, SOH and `&&` included, so that the sum of
those characters and the checksum is 0 modulo 65536. A command the gauge does not know is answered with
`SOH 9999 FF1B ETX` ("FF1B" being the checksum of `SOH 9999`, without `&&`). Answers carry no length: they
end at ETX, which never occurs inside one (the data is printable ASCII).

Per the manual, the checksum is taken over the characters "after the parity bit (if enabled) has been
cleared", so `decode_response` clears bit 7 of every byte first: a gauge set to 7 data bits with parity
can be read through a port opened at 8 data bits without parity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.veeder_root.errors import TlsChecksumError, TlsCommandRefused, TlsFrameError

SOH = b"\x01"
ETX = b"\x03"
TERMINATOR = b"&&"
CHECKSUM_CHARS = 4
COMMAND_CHARS = 6
SECURITY_CODE_CHARS = 6
REFUSAL = b"9999"

_FUNCTION = re.compile(r"[is][0-9A-Z]{3}")
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def checksum(characters: bytes) -> int:
    """The 16-bit two's complement of the byte sum of `characters`: what makes their sum 0 modulo 65536."""
    return -sum(characters) & 0xFFFF


def _sealed(body: bytes) -> bytes:
    return body + b"%04X" % checksum(body) + ETX


ERROR_ANSWER = _sealed(SOH + REFUSAL)
"""The gauge's answer to a command it does not recognise: `<SOH>9999FF1B<ETX>`."""


@dataclass(frozen=True, slots=True)
class Command:
    """An inquiry or setting command: function code (`i201`) and tank number (0 = every tank)."""

    function: str
    tank: int = 0

    def __post_init__(self) -> None:
        if not _FUNCTION.fullmatch(self.function):
            raise ValueError(
                f"function {self.function!r} is not a computer-format function code: 'i' (inquiry) or 's' (set) "
                "and three characters, e.g. 'i201'"
            )
        if not 0 <= self.tank <= 99:
            raise ValueError(f"tank {self.tank} is outside 0..99 (0 asks for every tank)")

    @property
    def text(self) -> str:
        """The six characters on the wire, e.g. `i20100`."""
        return f"{self.function}{self.tank:02d}"


def check_security_code(security_code: str) -> None:
    """ValueError unless the code is empty or six printable ASCII characters, as a gauge takes it."""
    if security_code and (len(security_code) != SECURITY_CODE_CHARS or not _PRINTABLE.fullmatch(security_code)):
        raise ValueError(
            f"security code {security_code!r} must be empty or exactly {SECURITY_CODE_CHARS} printable "
            "ASCII characters, as set on the gauge"
        )


def encode_command(command: Command, security_code: str = "") -> bytes:
    """The command frame: SOH, the security code if the gauge has one, the six-character command."""
    check_security_code(security_code)
    return SOH + security_code.encode("ascii") + command.text.encode("ascii")


def command_length(security_code: str = "") -> int:
    """Bytes in an inquiry frame for a gauge with this security code: 7, or 13 with a code."""
    check_security_code(security_code)
    return 1 + len(security_code) + COMMAND_CHARS


def decode_command(frame: bytes, security_code: str = "") -> Command | None:
    """The command in an inquiry frame a gauge received, or None if the gauge must keep silent.

    A gauge with a security code ignores commands without that code. Raises TlsFrameError for a frame that
    does not start with SOH or has not the length of an inquiry; a command the gauge cannot parse is refused
    by the caller with ERROR_ANSWER.
    """
    expected = command_length(security_code)
    if len(frame) != expected or not frame.startswith(SOH):
        raise TlsFrameError(f"command frame {frame!r}: expected SOH and {expected - 1} characters")
    text = frame[1:].decode("ascii", errors="replace")
    if text[: len(security_code)] != security_code:
        return None
    command = text[len(security_code) :]
    tank = command[4:]
    if not tank.isdigit() or not _FUNCTION.fullmatch(command[:4]):
        raise TlsFrameError(f"command {command!r}: not a function code and a two-digit tank")
    return Command(command[:4], int(tank))


def encode_response(command: Command, data: bytes) -> bytes:
    """The answer frame: SOH, the command echoed, the data, `&&`, the checksum, ETX."""
    if not _PRINTABLE.fullmatch(data.decode("ascii", errors="replace")) or b"&&" in data:
        raise ValueError(f"response data must be printable ASCII without '&&', got {data[:40]!r}")
    return _sealed(SOH + command.text.encode("ascii") + data + TERMINATOR)


def decode_response(frame: bytes, command: Command) -> bytes:
    """The data of the answer to `command`, from SOH to ETX inclusive, once its checksum checks out.

    Raises TlsCommandRefused for the error answer, TlsChecksumError when a whole frame's checksum does not
    match, and TlsFrameError for anything else that is not a whole answer to this command.
    """
    context = command.text
    frame = bytes(byte & 0x7F for byte in frame)
    if len(frame) < 2 or not frame.startswith(SOH) or not frame.endswith(ETX):
        raise TlsFrameError(f"{context}: answer {frame[:40]!r} does not run from SOH to ETX")
    if frame[1:5] == REFUSAL and len(frame) == len(ERROR_ANSWER) and _HEX4.fullmatch(frame[5:9]):
        _check_sum(frame[:5], frame[5:9], context)
        raise TlsCommandRefused(command.text)
    trailer = frame[-(len(TERMINATOR) + CHECKSUM_CHARS + 1) : -1]
    if not trailer.startswith(TERMINATOR) or not _HEX4.fullmatch(trailer[len(TERMINATOR) :]):
        raise TlsFrameError(f"{context}: answer ends {frame[-12:]!r}, not '&&', four hex digits and ETX")
    _check_sum(frame[: -CHECKSUM_CHARS - 1], trailer[len(TERMINATOR) :], context)
    echoed = frame[1 : 1 + COMMAND_CHARS]
    if echoed != command.text.encode("ascii"):
        raise TlsFrameError(f"{context}: the answer is to {echoed.decode('ascii', errors='replace')!r}")
    return frame[1 + COMMAND_CHARS : -(len(TERMINATOR) + CHECKSUM_CHARS + 1)]


def _check_sum(characters: bytes, received_hex: bytes, context: str) -> None:
    received = int(received_hex, 16)
    if (sum(characters) + received) & 0xFFFF:
        raise TlsChecksumError(f"{context}: checksum {received:04X} != computed {checksum(characters):04X}")
