"""What can go wrong talking to a field device, whatever the protocol: the poller acts on these kinds.

A timeout means a device that is off, misaddressed or cut off; a corrupt answer (bad CRC, bad checksum) means
noise or a line fault; a frame error means a device that answers, but not to what was asked; a link error is
a missing adapter or a refused connection; a refusal is the device saying no (an exception response, an
unknown command). Each protocol's errors derive from these, so that line health and device health are
judged the same way for Modbus devices and tank gauges.
"""

from __future__ import annotations


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
