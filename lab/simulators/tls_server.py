"""A simulated tank gauge on a serial line (a pty) and on TCP: the thin I/O shells around `TankGauge.answer`.

A TLS console frames commands by their fixed length (SOH, the security code if one is set, six characters)
and starts over at every SOH, so a half-sent command is forgotten by the next; bytes outside a command are
ignored. The `slow` fault delays each answer here, in real seconds; everything else is the gauge's business.
The serial server reopens its port if it goes away, so the line can be unplugged (`PtyPair.stop`) and
plugged back while it runs; the TCP server takes any number of connections, one thread each.
"""

from __future__ import annotations

import os
import socket
import termios
from collections.abc import Callable
from typing import Any

import serial

from drivers.veeder_root.frame import SOH, command_length
from simulators.modbus_slave import SlaveServerError
from simulators.serving import POLL_S, DeviceServer, TcpListener, TcpServing
from simulators.tank_gauge import TankGauge


class TlsServerError(SlaveServerError):
    """A gauge server could not start or stop; a SlaveServerError, so whoever handles a device server that
    cannot open handles this one too."""


def split_commands(pending: bytes, length: int) -> tuple[list[bytes], bytes]:
    """The complete command frames at the start of `pending`, and what is left to complete.

    Bytes before an SOH are dropped, and an SOH inside a frame starts it over, as a console does."""
    frames: list[bytes] = []
    while (start := pending.find(SOH)) >= 0:
        pending = pending[start:]
        restart = pending.find(SOH, 1, length)
        if restart > 0:
            pending = pending[restart:]
            continue
        if len(pending) < length:
            return frames, pending
        frames.append(pending[:length])
        pending = pending[length:]
    return frames, b""


class _TlsServer(DeviceServer):
    """The gauge and the simulated clock it answers by."""

    def __init__(self, gauge: TankGauge, clock: Callable[[], float]) -> None:
        super().__init__()
        self.gauge = gauge
        self.clock = clock
        self._length = command_length(gauge.security_code)

    def _error(self, message: str) -> Exception:
        return TlsServerError(message)

    def _answers(self, pending: bytes) -> tuple[list[bytes], bytes]:
        """The gauge's answers to the complete commands in `pending` (late if it is slow), and the rest."""
        frames, rest = split_commands(pending, self._length)
        answers: list[bytes] = []
        for frame in frames:
            answer = self.gauge.answer(frame, self.clock())
            if answer is not None:
                if self.gauge.link.delay_s > 0:
                    self._stopping.wait(self.gauge.link.delay_s)
                answers.append(answer)
        return answers, rest


class TlsSerialServer(_TlsServer):
    """The gauge on a serial port: in the simulators, the device end of a `PtyPair`."""

    def __init__(self, port_path: str | os.PathLike[str], gauge: TankGauge, clock: Callable[[], float]) -> None:
        super().__init__(gauge, clock)
        self.port_path = os.fspath(port_path)
        self._port: Any = None

    def _open(self) -> None:
        try:
            self._port = serial.Serial(self.port_path, baudrate=9600, timeout=POLL_S)
        except (OSError, ValueError) as error:
            raise TlsServerError(f"cannot open {self.port_path} for the tank gauge: {error}") from error

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            port.close()

    def _serve(self) -> None:
        pending = b""
        while not self._stopping.is_set():
            try:
                chunk: bytes = self._port.read(max(1, self._port.in_waiting))
                if not chunk:
                    continue
                answers, pending = self._answers(pending + chunk)
                for answer in answers:
                    self._port.write(answer)
            except (OSError, termios.error):
                pending = b""
                self._reopen()

    def _reopen(self) -> None:
        """Wait for the port to come back after it failed (the pty pair was stopped) and open it again."""
        self._close()
        while not self._stopping.wait(5 * POLL_S):
            try:
                self._open()
            except TlsServerError:
                continue
            return


class TlsTcpServer(_TlsServer, TcpServing):
    """The gauge behind a listening socket, one thread per connection; `port=0` picks a free port (read
    `port` after `start()`)."""

    listening_for = "the tank gauge"

    def __init__(self, gauge: TankGauge, clock: Callable[[], float], host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(gauge, clock)
        self._listener = TcpListener(host, port)

    def _serve_connection(self, connection: socket.socket) -> None:
        pending = b""
        try:
            while not self._stopping.is_set():
                try:
                    chunk = connection.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                answers, pending = self._answers(pending + chunk)
                for answer in answers:
                    connection.sendall(answer)
        except OSError:
            return
        finally:
            self._listener.hang_up(connection)
