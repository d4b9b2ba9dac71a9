"""The counters of a line's link, one set for every protocol: Modbus RTU, Modbus TCP and the TLS tank gauge.

A failure is counted by its protocol-neutral kind (`drivers.errors`), so a CRC error of a Modbus RTU answer and a
bad checksum of a TLS answer land in the same counter, and `status` reads one shape whatever the line speaks.

Counting is on the poll path, which runs many times a second (docs/design.md, "The cost of a poll"): the live
counters are plain integers in a slotted object, bumped by a method per outcome, and become the frozen
`LinkStatistics` only when a snapshot is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import FieldCorrupt, FieldError, FieldLinkError, FieldRefused, FieldTimeout


@dataclass(frozen=True, slots=True)
class LinkStatistics:
    """Counters since the link was made; every request ends as exactly one of `ok` or a failure kind."""

    requests: int = 0
    ok: int = 0
    """Requests answered as asked."""
    timeouts: int = 0
    """No answer: the device is off, misaddressed or cut off (or, on a TLS gauge, the security code is wrong)."""
    crc_errors: int = 0
    """Answers that arrived whole but fail their check: a Modbus RTU CRC or a TLS checksum (line noise)."""
    frame_errors: int = 0
    """Answers that cannot be the reply: cut short, garbled, too long, another unit's or another command's."""
    refusals: int = 0
    """The device understood and said no: a Modbus exception response, a TLS `9999FF1B` answer."""
    link_errors: int = 0
    """The port would not open or failed, the connection was refused or lost."""
    bytes_sent: int = 0
    bytes_received: int = 0


class LinkCounters:
    """The live counters behind `LinkStatistics`; only the thread that owns the link bumps them."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "crc_errors",
        "frame_errors",
        "link_errors",
        "ok",
        "refusals",
        "requests",
        "timeouts",
    )

    def __init__(self) -> None:
        self.requests = self.ok = self.bytes_sent = self.bytes_received = 0
        self.timeouts = self.crc_errors = self.frame_errors = self.refusals = self.link_errors = 0

    def answered(self) -> None:
        """A request ended well."""
        self.requests += 1
        self.ok += 1

    def failed(self, error: FieldError) -> None:
        """A request ended in `error`, counted under its kind; a kind this module does not know is a frame error,
        the answer that cannot be the reply."""
        self.requests += 1
        if isinstance(error, FieldTimeout):
            self.timeouts += 1
        elif isinstance(error, FieldCorrupt):
            self.crc_errors += 1
        elif isinstance(error, FieldRefused):
            self.refusals += 1
        elif isinstance(error, FieldLinkError):
            self.link_errors += 1
        else:
            self.frame_errors += 1

    def add(self, other: LinkCounters) -> None:
        """Take `other`'s counts into these (counts held back until it is known whose they are)."""
        self.requests += other.requests
        self.ok += other.ok
        self.timeouts += other.timeouts
        self.crc_errors += other.crc_errors
        self.frame_errors += other.frame_errors
        self.refusals += other.refusals
        self.link_errors += other.link_errors
        self.bytes_sent += other.bytes_sent
        self.bytes_received += other.bytes_received

    def snapshot(self) -> LinkStatistics:
        return LinkStatistics(
            self.requests,
            self.ok,
            self.timeouts,
            self.crc_errors,
            self.frame_errors,
            self.refusals,
            self.link_errors,
            self.bytes_sent,
            self.bytes_received,
        )
