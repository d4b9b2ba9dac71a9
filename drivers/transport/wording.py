"""How a protocol words its link's failures, so that the shared port and connection raise that protocol's error
with that protocol's words ("request" or "command", the adapter or the gauge's cable) and what to check."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import FieldLinkError


@dataclass(frozen=True, slots=True)
class LinkWording:
    error: type[FieldLinkError]
    """The protocol's link error, which the poller and the status know as a `FieldLinkError`."""
    exchange: str
    """What the protocol calls one exchange: the next one reopens the port or reconnects."""
    advice: str
    """What to check when the port will not open or the connection is refused."""
    peer: str = ""
    """The far end of a TCP connection as the messages name it ("Modbus TCP", "TLS gauge")."""
