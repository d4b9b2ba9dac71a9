"""One error type per way an exchange with a Veeder-Root TLS tank gauge can fail, because the caller acts
differently on each.

Each derives from the protocol-neutral kind in `drivers.errors`, as the Modbus errors do, so a poller judges
line and device health the same way for gauges and Modbus devices by catching those kinds:

- `TlsTimeout` (a `FieldTimeout`, like `ModbusTimeout`): no answer. The gauge is off, the cable is cut, or the
  security code is wrong (a TLS console keeps silent then). Counts toward "device silent".
- `TlsChecksumError` (a `FieldCorrupt`, like `ModbusCrcError`): an answer arrived whole but its checksum is
  wrong: line noise.
- `TlsFrameError` (a `FieldFrameError`, like `ModbusFrameError`): an answer cut short, garbled, or to another
  command.
- `TlsLinkError` (a `FieldLinkError`, like `ModbusLinkError`): the serial port cannot be opened, or the TCP
  connection is refused or lost.
- `TlsCommandRefused` (a `FieldRefused`, like `ModbusExceptionResponse`): the gauge answered `9999FF1B`, it
  does not know the command: a configuration matter, not worth retrying.

Each message names the command, the value found and what to check.
"""

from __future__ import annotations

from drivers.errors import FieldCorrupt, FieldError, FieldFrameError, FieldLinkError, FieldRefused, FieldTimeout


class TlsError(FieldError):
    """Any failed exchange with a TLS gauge; catch this to treat every failure alike."""


class TlsTimeout(TlsError, FieldTimeout):
    """No answer began within the timeout: the gauge is off, the line is cut, or the security code is wrong."""


class TlsChecksumError(TlsError, FieldCorrupt):
    """An answer arrived whole (SOH to ETX) but its checksum does not match its characters: line noise."""


class TlsFrameError(TlsError, FieldFrameError):
    """An answer that cannot be the reply to the command: cut short, garbled, or echoing another command."""


class TlsLinkError(TlsError, FieldLinkError):
    """The serial port cannot be opened or used, or the TCP connection is refused or lost."""


class TlsCommandRefused(TlsError, FieldRefused):
    """The gauge answered `<SOH>9999FF1B<ETX>`: it does not understand the command it was sent."""

    def __init__(self, command: str) -> None:
        self.command = command
        super().__init__(
            f"the gauge refused command {command!r} (answered 9999); check that the gauge supports it "
            "and that it is set to computer format"
        )
