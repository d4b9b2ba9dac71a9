"""The thin I/O shell around the TLS codec: one client per gauge, one command in flight, no retries.

A TLS gauge is alone on its RS-232 port (the protocol has no addresses) or behind a TCP port (10001 on TLS
consoles with a network card). The client sends a command, reads the answer up to ETX and hands it to the
codec, raising exactly one error type per kind of failure (see `errors`); retries and back-off belong to the
poller, which needs every failure as it happened. Answers have no length field and a full inventory of
sixteen tanks takes over a second at 9600 baud, so the timeout bounds the wait for the first byte and every
pause inside the answer, not the whole answer.

After a failure the serial client keeps the line quiet for a while (a late answer is dropped with the rest
of the input before the next command) and the TCP client drops the connection, so a late answer can never
be read as the answer to a later command. Each client keeps counters for `statistics()`.
"""

from __future__ import annotations

import os
import socket
import termios
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, tzinfo
from typing import Any, TypeVar

import serial

from drivers.readings import TankGaugeReading
from drivers.veeder_root.errors import (
    TlsChecksumError,
    TlsCommandRefused,
    TlsError,
    TlsFrameError,
    TlsLinkError,
    TlsTimeout,
)
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

ReportT = TypeVar("ReportT")

QUIET_S = 0.02
"""Silence taken as "the rest of a broken answer has arrived" (USB serial adapters pause up to 16 ms)."""


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """Counters since the client was made; every command ends as exactly one of ok or a failure kind."""

    requests: int = 0
    ok: int = 0
    timeouts: int = 0
    checksum_errors: int = 0
    frame_errors: int = 0
    refusals: int = 0
    link_errors: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


_FAILURE_COUNTERS: tuple[tuple[type[TlsError], str], ...] = (
    (TlsTimeout, "timeouts"),
    (TlsChecksumError, "checksum_errors"),
    (TlsCommandRefused, "refusals"),
    (TlsFrameError, "frame_errors"),
    (TlsLinkError, "link_errors"),
)


def _failure_counter(error: TlsError) -> str:
    return next((name for kind, name in _FAILURE_COUNTERS if isinstance(error, kind)), "frame_errors")


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
        self._statistics = ClientStatistics()

    def request(self, function: str, tank: int = 0) -> bytes:
        """The data of the gauge's answer to `function` for `tank` (0: every tank), checksum checked and the
        echoed command removed: what the report decoders take."""
        command = Command(function, tank)
        with self._lock:
            self._count("requests")
            try:
                data = decode_response(self._exchange(encode_command(command, self.security_code), command), command)
            except TlsError as error:
                self._count(_failure_counter(error))
                raise
            self._count("ok")
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

    def statistics(self) -> ClientStatistics:
        return self._statistics

    def close(self) -> None:
        """Release the port or connection; the next command opens it again."""
        with self._lock:
            self._disconnect()

    def _count(self, counter: str, amount: int = 1) -> None:
        self._statistics = replace(self._statistics, **{counter: getattr(self._statistics, counter) + amount})

    def _read_answer(self, read: Callable[[float], bytes], command: Command) -> bytes:
        """Bytes up to ETX, each chunk within `timeout_s` of the last one; `read(timeout)` returns b"" on a
        timeout. Bytes after the ETX mean the answer is not the one asked for (or two answers ran together)."""
        context = command.text
        answer = b""
        while ETX not in answer:
            chunk = read(self.timeout_s)
            if not chunk:
                if not answer:
                    raise TlsTimeout(f"{context}: no answer within {self.timeout_s} s")
                raise TlsFrameError(
                    f"{context}: answer cut short after {len(answer)} bytes ({answer[-20:]!r}), "
                    f"nothing more within {self.timeout_s} s"
                )
            self._count("bytes_received", len(chunk))
            answer += chunk
            if len(answer) > self.max_answer_bytes:
                raise TlsFrameError(f"{context}: answer longer than {self.max_answer_bytes} bytes without ETX")
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
        if parity not in ("N", "E", "O"):
            raise ValueError(f"parity {parity!r} is not one of 'N', 'E', 'O'")
        if bytesize not in (7, 8):
            raise ValueError(f"bytesize {bytesize} is not 7 or 8")
        if stopbits not in (1, 2):
            raise ValueError(f"stopbits {stopbits} is not 1 or 2")
        if baudrate <= 0:
            raise ValueError(f"baudrate {baudrate} must be positive")
        self.port = os.fspath(port)
        self.baudrate = baudrate
        self.parity = parity
        self.bytesize = bytesize
        self.stopbits = stopbits
        self._serial: Any = None
        self._line_free_at = 0.0

    def _open(self) -> Any:
        if self._serial is None:
            try:
                self._serial = serial.Serial(
                    port=self.port,
                    baudrate=self.baudrate,
                    bytesize=self.bytesize,
                    parity=self.parity,
                    stopbits=self.stopbits,
                    timeout=0,
                    exclusive=True,
                )
            except (OSError, ValueError) as error:
                raise TlsLinkError(
                    f"serial port {self.port}: cannot open ({error}); "
                    "check that the gauge's cable is plugged in and the port path in the config"
                ) from error
        return self._serial

    def _disconnect(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            port.close()

    def _exchange(self, frame: bytes, command: Command) -> bytes:
        port = self._open()
        try:
            return self._exchange_on(port, frame, command)
        except (OSError, termios.error) as error:
            self._disconnect()
            raise TlsLinkError(
                f"{command.text}: serial port {self.port} failed ({error}); it is reopened on the next command"
            ) from error

    def _exchange_on(self, port: Any, frame: bytes, command: Command) -> bytes:
        delay_s = self._line_free_at - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)
        port.reset_input_buffer()
        port.write(frame)
        port.flush()
        self._count("bytes_sent", len(frame))

        def read(timeout_s: float) -> bytes:
            port.timeout = timeout_s
            chunk: bytes = port.read(max(1, port.in_waiting))
            return chunk

        try:
            answer = self._read_answer(read, command)
        except TlsTimeout:
            # A slow gauge may still answer: keep the line for it a while, so that its late answer lands in
            # the input dropped before the next command instead of passing for that command's answer.
            self._line_free_at = time.monotonic() + self.timeout_s
            raise
        except TlsFrameError:
            self._flush_until_quiet(port)
            raise
        return answer

    def _flush_until_quiet(self, port: Any) -> None:
        """Let the rest of a broken answer arrive and drop it, so it cannot pass for the next answer."""
        deadline = time.monotonic() + self.timeout_s
        port.timeout = QUIET_S
        while time.monotonic() < deadline:
            dropped = port.read(max(1, port.in_waiting))
            if not dropped:
                break
            self._count("bytes_received", len(dropped))
        port.reset_input_buffer()


class TlsTcpClient(TlsClient):
    """A TLS gauge on the network, connected on first use and reconnected after any failure: a connection
    that timed out or carried a broken answer is dropped rather than reused."""

    def __init__(
        self, host: str, port: int = 10001, timeout_s: float = 2.0, security_code: str = "", *, zone: tzinfo = UTC
    ) -> None:
        super().__init__(timeout_s, security_code, zone)
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._socket is None:
            try:
                self._socket = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            except OSError as error:
                raise TlsLinkError(
                    f"TLS gauge {self.host}:{self.port}: cannot connect ({error}); "
                    "check the address in the config and that the gauge's network card is on"
                ) from error
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._socket

    def _disconnect(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def _exchange(self, frame: bytes, command: Command) -> bytes:
        sock = self._connect()

        def read(timeout_s: float) -> bytes:
            sock.settimeout(timeout_s)
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                return b""
            if not chunk:
                raise ConnectionResetError("closed by the gauge")
            return chunk

        try:
            sock.sendall(frame)
            self._count("bytes_sent", len(frame))
            return self._read_answer(read, command)
        except TlsError:
            self._disconnect()
            raise
        except OSError as error:
            self._disconnect()
            raise TlsLinkError(
                f"{command.text}: connection to {self.host}:{self.port} lost ({error}); reconnecting on the next "
                "command"
            ) from error
