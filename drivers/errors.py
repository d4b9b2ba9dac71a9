"""What can go wrong talking to a field device, whatever the protocol: the poller acts on these kinds.

A timeout means a device that is off, misaddressed or cut off; a corrupt answer (bad CRC, bad checksum) means
noise or a line fault; a frame error means a device that answers, but not to what was asked; a link error is
a missing adapter or a refused connection; a refusal is the device saying no (an exception response, an
unknown command). Each protocol's errors derive from these, so that line health and device health are
judged the same way for Modbus devices and tank gauges. A device that answers well-formed frames holding values
that cannot be true (NaN, infinity, out of range) is none of these: `DeviceValueFault`.
"""

from __future__ import annotations

from drivers.readings import Reading, ValueFault


class FieldError(Exception):
    """Any failed exchange with a field device."""


class FieldTimeout(FieldError):
    """No answer in time."""


class FieldCorrupt(FieldError):
    """An answer arrived whole but fails its check (CRC, checksum)."""


class FieldFrameError(FieldError):
    """An answer that cannot be the reply to the request."""


class FieldLinkError(FieldError):
    """The port or connection is not there."""


class FieldRefused(FieldError):
    """The device understood and refused."""


class DeviceValueFault(Exception):
    """The device answered, but with values that cannot be true (`faults`): a device fault, not a line fault.

    Not a `FieldError`: the exchange itself went well, so the device stays online and the line healthy. A
    device whose answer holds several readings (a gauge's tanks) gives the sane part as `partial`."""

    def __init__(self, faults: tuple[ValueFault, ...], partial: Reading | None = None) -> None:
        self.faults = faults
        self.partial = partial
        first = faults[0]
        where = "" if first.register is None else f" at register 0x{first.register:04X}"
        more = f" (and {len(faults) - 1} more)" if len(faults) > 1 else ""
        super().__init__(f"{first.point}{where} reads {first.raw_hex}: {first.reason}{more}")
