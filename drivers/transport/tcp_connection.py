"""A TCP connection as the field protocols use it: connected on first use, dropped after any failure.

A connection that timed out or carried a broken answer is closed rather than reused (`lost`), so a late answer
can never be read as the answer to a later request; the next request connects again. Reads are bounded by the
caller's size as well as its deadline, so a peer that talks without end costs at most what the caller asked for.

The same connection can be used without waiting (`open_without_waiting`, `connected`, `send_now`, `receive_now`),
by a caller that waits for many sockets at once and must never block on one: the connect is then started and
finished when the socket turns writable, and a host name is looked up on a thread of its own first
(drivers/transport/lookup.py), its end waited for like the connect.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import Literal

from drivers.errors import FieldLinkError
from drivers.transport.lookup import AddressInfo, AddressLookup
from drivers.transport.statistics import LinkCounters
from drivers.transport.wording import LinkWording

Opening = Literal["connected", "connecting", "resolving"]
"""Where a connection opened without waiting stands."""
OUT_OF_DESCRIPTORS = (
    "the agent is at its limit of open files (a socket a line, more while lines reconnect): raise LimitNOFILE "
    "in its service (systemctl edit station-agent) or serve fewer lines"
)
"""The advice for a connect that found no descriptor free: no address or device is at fault."""


class TcpConnection:
    """One TCP connection to `host`:`port`, with TCP_NODELAY (a request is one small segment, sent at once).

    `timeout_s` bounds the connect; `wording` is how the protocol's link errors are worded.
    """

    def __init__(
        self,
        host: str,
        port: int,
        counters: LinkCounters,
        *,
        timeout_s: float,
        wording: LinkWording,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._counters = counters
        self._wording = wording
        self._socket: socket.socket | None = None
        self._lookup: AddressLookup | None = None
        """The host name's lookup under way, for a connection opened without waiting."""
        self._untried: list[AddressInfo] = []
        """The host's addresses not tried yet by the connect under way."""

    def send(self, frame: bytes) -> None:
        """Connect if need be and send `frame` whole."""
        self._connect().sendall(frame)
        self._counters.bytes_sent += len(frame)

    def read_exactly(self, size: int, deadline: float) -> bytes:
        """Up to `size` bytes, fewer if the `time.monotonic()` deadline passes first; ConnectionResetError if the
        peer closes the connection."""
        sock = self._connect()
        received = b""
        while len(received) < size:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                break
            sock.settimeout(remaining_s)
            try:
                received += self._taken(sock.recv(size - len(received)))
            except TimeoutError:
                break
        return received

    def read_some(self, timeout_s: float, max_bytes: int) -> bytes:
        """What has arrived, at least one byte and at most `max_bytes`, or b"" after `timeout_s` of silence;
        ConnectionResetError if the peer closes the connection."""
        sock = self._connect()
        sock.settimeout(timeout_s)
        try:
            return self._taken(sock.recv(max_bytes))
        except TimeoutError:
            return b""

    def open_without_waiting(self) -> tuple[socket.socket, Opening]:
        """The socket to wait for, not blocking, and what for: `connected` (send now); `connecting`: the connect
        ends when the socket turns writable (then ask `connected`); `resolving`: the host is a name being looked up,
        and the socket (the lookup's) turns readable when it has ended (then call this again)."""
        if self._socket is not None:
            if self._socket.gettimeout() != 0.0:  # a blocking read used it last
                self._socket.setblocking(False)
            return self._socket, "connected"
        addresses = self._addresses_without_waiting()
        if addresses is None:
            assert self._lookup is not None
            return self._lookup.ready, "resolving"
        self._untried = addresses
        return self._connect_next(OSError(f"no address for {self.host}"))

    def unresolved(self, context: str, timeout_s: float) -> FieldLinkError:
        """The link error for a host name still being looked up after `timeout_s`; the lookup goes on, and the
        next request takes its answer (a slow resolver is waited for across requests, never asked twice at once)."""
        wording = self._wording
        return wording.error(
            f"{context}: {self.host} not looked up within {timeout_s} s (the lookup goes on); {wording.advice}"
        )

    def connected(self) -> tuple[socket.socket, Opening]:
        """After a connect under way turned the socket writable: the socket, `connected`; or, if that connect
        failed and the host has another address, the connect to that one under way (as `open_without_waiting`
        says it); raises the link error once no address is left."""
        sock = self._current()
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if not code:
            self._untried = []
            return sock, "connected"
        self._socket = None
        sock.close()
        return self._connect_next(OSError(code, os.strerror(code)))

    def send_now(self, frame: bytes) -> None:
        """Send a small frame on a connected socket that is not blocking; a frame the socket cannot take whole at
        once is a connection in trouble (BlockingIOError)."""
        sent = self._current().send(frame)
        self._counters.bytes_sent += sent
        if sent < len(frame):
            raise BlockingIOError(errno.EWOULDBLOCK, f"only {sent} of {len(frame)} bytes could be sent")

    def receive_now(self, max_bytes: int) -> bytes:
        """What has arrived, at most `max_bytes` (b"" if nothing yet); ConnectionResetError if the peer closed."""
        try:
            chunk = self._current().recv(max_bytes)
        except BlockingIOError:
            return b""
        return self._taken(chunk)

    def lost(self, context: str, error: OSError) -> FieldLinkError:
        """The protocol's link error for a connection that failed during `context`; it is closed and made again
        on the next exchange."""
        self.close()
        return self._wording.error(
            f"{context}: connection to {self.host}:{self.port} lost ({error}); reconnecting on the next "
            f"{self._wording.exchange}"
        )

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
        self._untried = []
        lookup, self._lookup = self._lookup, None
        if lookup is not None:
            lookup.close()

    def _connect_next(self, failure: OSError) -> tuple[socket.socket, Opening]:
        """Start the connect to the next address not tried yet, as a blocking connect tries each in turn (a name
        may resolve to ::1 first for a device that listens on IPv4 only); one that fails at once gives way to the
        next. Raises the link error, with the last failure, once none is left."""
        while self._untried:
            family, kind, protocol, _, address = self._untried.pop(0)
            try:
                sock = socket.socket(family, kind, protocol)
            except OSError as error:
                failure = error
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex(address)
            if code in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                self._socket = sock
                return sock, "connected" if code == 0 else "connecting"
            sock.close()
            failure = OSError(code, os.strerror(code))
        raise self._cannot_connect(failure) from failure

    def _connect(self) -> socket.socket:
        if self._socket is None:
            try:
                self._socket = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            except OSError as error:
                raise self._cannot_connect(error) from error
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._socket

    def _taken(self, chunk: bytes) -> bytes:
        """A chunk `recv` gave, counted; an empty one is the peer's close."""
        if not chunk:
            raise ConnectionResetError("closed by the peer")
        self._counters.bytes_received += len(chunk)
        return chunk

    def _addresses_without_waiting(self) -> list[AddressInfo] | None:
        """The host's addresses; None while its name is looked up (an address needs no resolver and is taken at
        once)."""
        try:
            numeric: list[AddressInfo] = list(
                socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
            )
            return numeric
        except socket.gaierror:
            pass  # a name
        if self._lookup is None:
            try:
                self._lookup = AddressLookup(self.host, self.port)
            except OSError as error:  # no descriptor for its socket pair
                raise self._cannot_connect(error) from error
        try:
            addresses = self._lookup.result()
        except OSError as error:
            self._lookup = None
            raise self._cannot_connect(error) from error
        if addresses is not None:
            self._lookup = None
        return addresses

    def _current(self) -> socket.socket:
        """The socket opened without waiting; a connection closed meanwhile is one lost."""
        if self._socket is None:
            raise ConnectionResetError("the connection was closed")
        return self._socket

    def _cannot_connect(self, error: OSError) -> FieldLinkError:
        """The link error for a connect that failed; one that failed for want of a descriptor is the box's limit,
        not the address or the device, and says so."""
        wording = self._wording
        advice = OUT_OF_DESCRIPTORS if error.errno in (errno.EMFILE, errno.ENFILE) else wording.advice
        return wording.error(f"{wording.peer} {self.host}:{self.port}: cannot connect ({error}); {advice}")
