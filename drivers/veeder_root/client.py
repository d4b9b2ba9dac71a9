"""The thin I/O shell around the TLS codec: one client per gauge, one command in flight, no retries.

A TLS gauge is alone on its RS-232 port (the protocol has no addresses) or behind a TCP port (10001 on TLS
consoles with a network card). The client sends a command, reads the answer up to ETX and hands it to the
codec, raising exactly one error type per kind of failure (see `errors`); retries and back-off belong to the
poller, which needs every failure as it happened. Answers have no length field and a full inventory of
sixteen tanks takes over a second at 9600 baud, so the timeout bounds the wait for the first byte and every
pause inside the answer, not the whole answer.

After a failure the serial client keeps the line quiet for a while (a late answer is dropped with the rest
of the input before the next command) and the TCP client drops the connection, so a late answer can never
be read as the answer to a later command. The port or connection, those rules and the counters
(`statistics()`) are the shared ones of `drivers.transport`, as under the Modbus masters.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from datetime import UTC, tzinfo
from typing import TypeVar

from drivers.readings import TankGaugeReading
from drivers.transport.serial_port import PORT_FAILURES, SerialPort
from drivers.transport.statistics import LinkCounters, LinkStatistics
from drivers.transport.tcp_connection import TcpConnection
from drivers.transport.wording import LinkWording
from drivers.veeder_root.errors import TlsCommandRefused, TlsError, TlsFrameError, TlsLinkError, TlsTimeout
from drivers.veeder_root.frame import ETX, Command, check_security_code, decode_response, encode_command
from drivers.veeder_root.reports import (
    ALARMS,
    DELIVERIES,
    INVENTORY,
    decode_alarms,
    decode_deliveries,
    decode_inventory,
)
from drivers.veeder_root.units import gauge_reading

MAX_ANSWER_BYTES = 65_536
"""Longest answer accepted by default (`max_answer_bytes`), checked as it arrives, so a gauge that never ends
its answer costs at most this much memory: a delivery report of 99 tanks with 10 deliveries each is about
100 kB of which no station has more than a tenth; anything longer is a line gone wrong."""

MIN_ANSWER_PACE_BYTES_PER_S = 60.0
"""The slowest an answer may come in once it has begun: half of what the slowest TLS setting (1200 baud, ten
bits a character) carries. An answer later than a timeout plus its length at this pace is not a gauge answering
but a line that trickles (noise on a floating bus, a device talking out of turn): each byte within the timeout
of the last, it would otherwise hold the line until MAX_ANSWER_BYTES, hours at a byte a second."""

ReportT = TypeVar("ReportT")

SERIAL_WORDING = LinkWording(
    TlsLinkError, "command", "check that the gauge's cable is plugged in and the port path in the config"
)
TCP_WORDING = LinkWording(
    TlsLinkError, "command", "check the address in the config and that the gauge's network card is on", peer="TLS gauge"
)

READ_CHUNK_BYTES = 4096
"""Most bytes taken from the port or socket at once; `max_answer_bytes` is checked after each chunk."""


class TlsClient(ABC):
    """Commands, accounting and the one-in-flight lock; subclasses move the bytes. `zone` is the time zone
    the gauge's clock is set to (the station's), which turns its delivery times into UTC."""

    def __init__(
        self,
        timeout_s: float,
        security_code: str = "",
        zone: tzinfo = UTC,
        *,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s {timeout_s} must be positive")
        if max_answer_bytes < 16:
            raise ValueError(f"max_answer_bytes {max_answer_bytes} cannot hold an answer")
        self.max_answer_bytes = max_answer_bytes
        check_security_code(security_code)
        self.timeout_s = timeout_s
        self.security_code = security_code
        self.zone = zone
        self._lock = threading.Lock()
        self._counts = LinkCounters()

    def request(self, function: str, tank: int = 0) -> bytes:
        """The data of the gauge's answer to `function` for `tank` (0: every tank), checksum checked and the
        echoed command removed: what the report decoders take."""
        command = Command(function, tank)
        with self._lock:
            try:
                data = decode_response(self._exchange(encode_command(command, self.security_code), command), command)
            except TlsError as error:
                self._counts.failed(error)
                raise
            self._counts.answered()
            return data

    def read_gauge(
        self, tanks: Collection[int] = (), *, deliveries: bool = True, alarms: bool = True
    ) -> TankGaugeReading:
        """Inventory (i201), and unless switched off the delivery history (i202) and active alarms (i205) of
        every tank, in three commands; kept to the tanks in `tanks` when it is not empty.

        The inventory is the one report a gauge must give; a refusal of either optional one (the console has
        it switched off, or its firmware lacks it) is named in the reading's `refused`, not raised."""
        inventory = decode_inventory(self.request(INVENTORY))
        refused: list[str] = []
        history = self._optional(DELIVERIES, decode_deliveries, refused) if deliveries else None
        active = self._optional(ALARMS, decode_alarms, refused) if alarms else None
        return gauge_reading(inventory, history, active, tanks, self.zone, refused=tuple(refused))

    def _optional(self, function: str, decode: Callable[[bytes], ReportT], refused: list[str]) -> ReportT | None:
        try:
            return decode(self.request(function))
        except TlsCommandRefused:
            refused.append(function)
            return None

    def statistics(self) -> LinkStatistics:
        return self._counts.snapshot()

    def close(self) -> None:
        """Release the port or connection; the next command opens it again."""
        with self._lock:
            self._disconnect()

    def _read_answer(self, read: Callable[[float], bytes], command: Command) -> bytes:
        """Bytes up to ETX, each chunk within `timeout_s` of the last one and the whole at no slower than
        MIN_ANSWER_PACE_BYTES_PER_S after the first timeout; `read(timeout)` returns b"" on a timeout. Bytes
        after the ETX mean the answer is not the one asked for (or two answers ran together)."""
        context = command.text
        answer = b""
        started = time.monotonic()
        while ETX not in answer:
            chunk = read(self.timeout_s)
            if not chunk:
                if not answer:
                    raise TlsTimeout(f"{context}: no answer within {self.timeout_s} s")
                raise TlsFrameError(
                    f"{context}: answer cut short after {len(answer)} bytes ({answer[-20:]!r}), "
                    f"nothing more within {self.timeout_s} s"
                )
            answer += chunk
            if len(answer) > self.max_answer_bytes:
                raise TlsFrameError(f"{context}: answer longer than {self.max_answer_bytes} bytes without ETX")
            elapsed_s = time.monotonic() - started
            if elapsed_s > self.timeout_s + len(answer) / MIN_ANSWER_PACE_BYTES_PER_S:
                raise TlsFrameError(
                    f"{context}: answer trickles in ({len(answer)} bytes in {elapsed_s:.1f} s, slower than "
                    f"{MIN_ANSWER_PACE_BYTES_PER_S:g} bytes/s) and is given up: noise on the line or a device "
                    "talking out of turn; check the line's wiring and termination"
                )
        end = answer.index(ETX) + 1
        if end < len(answer):
            raise TlsFrameError(f"{context}: {answer[end : end + 20]!r} came after the answer's ETX")
        return answer

    @abstractmethod
    def _exchange(self, frame: bytes, command: Command) -> bytes:
        """Send the command frame and return the answer frame, SOH to ETX."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Close the port or connection, if open."""


class TlsSerialClient(TlsClient):
    """A TLS gauge on a serial port (RS-232, or RS-485 through a converter), opened on first use and reopened
    after a failure of the port. TLS consoles default to 9600 baud, 7 data bits, odd parity on many sites;
    set `bytesize` and `parity` to what the console's communication setup says."""

    def __init__(
        self,
        port: str | os.PathLike[str],
        baudrate: int = 9600,
        parity: str = "N",
        timeout_s: float = 2.0,
        security_code: str = "",
        *,
        bytesize: int = 8,
        stopbits: int = 1,
        zone: tzinfo = UTC,
    ) -> None:
        super().__init__(timeout_s, security_code, zone)
        self._port = SerialPort(
            port,
            self._counts,
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
            timeout_s=timeout_s,
            wording=SERIAL_WORDING,
        )
        self.port = self._port.path
        self.baudrate = baudrate
        self.parity = parity
        self.bytesize = bytesize
        self.stopbits = stopbits

    def _disconnect(self) -> None:
        self._port.close()

    def _exchange(self, frame: bytes, command: Command) -> bytes:
        port = self._port
        try:
            port.send(frame)
            try:
                return self._read_answer(lambda timeout_s: port.read_some(timeout_s, READ_CHUNK_BYTES), command)
            except TlsTimeout:
                port.hold_after_timeout()
                raise
            except TlsFrameError:
                port.flush_until_quiet()
                raise
        except PORT_FAILURES as error:
            raise port.broken(command.text, error) from error


class TlsTcpClient(TlsClient):
    """A TLS gauge on the network, connected on first use and reconnected after any failure: a connection
    that timed out or carried a broken answer is dropped rather than reused."""

    def __init__(
        self, host: str, port: int = 10001, timeout_s: float = 2.0, security_code: str = "", *, zone: tzinfo = UTC
    ) -> None:
        super().__init__(timeout_s, security_code, zone)
        self.host = host
        self.port = port
        self._connection = TcpConnection(host, port, self._counts, timeout_s=timeout_s, wording=TCP_WORDING)

    def _disconnect(self) -> None:
        self._connection.close()

    def _exchange(self, frame: bytes, command: Command) -> bytes:
        connection = self._connection
        try:
            connection.send(frame)
            return self._read_answer(lambda timeout_s: connection.read_some(timeout_s, READ_CHUNK_BYTES), command)
        except TlsError:
            connection.close()
            raise
        except OSError as error:
            raise connection.lost(command.text, error) from error
