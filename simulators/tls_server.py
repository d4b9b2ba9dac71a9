"""A simulated tank gauge on a serial line (a pty) and on TCP: the thin I/O shells around `TankGauge.answer`.

A TLS console frames commands by their fixed length (SOH, the security code if one is set, six characters)
and starts over at every SOH, so a half-sent command is forgotten by the next; bytes outside a command are
ignored. The `slow` fault delays each answer here, in real seconds; everything else is the gauge's business.
The serial server reopens its port if it goes away, so the line can be unplugged (`PtyPair.stop`) and
plugged back while it runs; the TCP server takes any number of connections, one thread each.
"""

from __future__ import annotations

import os
import select
import socket
import termios
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import serial

from drivers.veeder_root.frame import SOH, command_length
from simulators.modbus_slave import SlaveServerError
from simulators.tank_gauge import TankGauge

POLL_S = 0.01
"""How often a server thread looks up from a blocking read to check whether it is being stopped."""


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


class _TlsServer(ABC):
    """The gauge, the simulated clock, and the serving thread's life cycle."""

    def __init__(self, gauge: TankGauge, clock: Callable[[], float]) -> None:
        self.gauge = gauge
        self.clock = clock
        self._length = command_length(gauge.security_code)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Open the port or socket (errors surface here) and serve in a thread of its own."""
        if self.running:
            return
        self._stopping.clear()
        self._open()
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop serving and join every thread; TlsServerError if one does not stop within `timeout_s`."""
        self._stopping.set()
        threads = [self._thread] if self._thread is not None else []
        for thread in [*threads, *self._workers]:
            thread.join(timeout_s)
        hung = [thread.name for thread in [*threads, *self._workers] if thread.is_alive()]
        self._thread, self._workers = None, []
        self._close()
        if hung:
            raise TlsServerError(f"threads {hung} did not stop within {timeout_s} s")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

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

    @abstractmethod
    def _open(self) -> None:
        """Open the port or socket, raising TlsServerError with the reason."""

    @abstractmethod
    def _close(self) -> None:
        """Close what `_open` opened; called once the serving threads have ended."""

    @abstractmethod
    def _serve(self) -> None:
        """Serve until `_stopping` is set, looking up at least every POLL_S."""


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


class TlsTcpServer(_TlsServer):
    """The gauge behind a listening socket, one thread per connection; `port=0` picks a free port (read
    `port` after `start()`)."""

    def __init__(self, gauge: TankGauge, clock: Callable[[], float], host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(gauge, clock)
        self.host = host
        self.port = port
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def _open(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError as error:
            listener.close()
            raise TlsServerError(f"cannot listen on {self.host}:{self.port} for the tank gauge: {error}") from error
        listener.listen()
        self.port = listener.getsockname()[1]
        self._listener = listener

    def _close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            connection.close()

    def _serve(self) -> None:
        listener = self._listener
        while listener is not None and not self._stopping.is_set():
            readable, _, _ = select.select([listener], [], [], POLL_S)
            if not readable:
                continue
            connection, peer = listener.accept()
            with self._lock:
                self._connections.add(connection)
            self._workers = [worker for worker in self._workers if worker.is_alive()]
            worker = threading.Thread(
                target=self._serve_connection, args=(connection,), name=f"TlsTcpServer {peer}", daemon=True
            )
            self._workers.append(worker)
            worker.start()

    def _serve_connection(self, connection: socket.socket) -> None:
        connection.settimeout(POLL_S)
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
            with self._lock:
                self._connections.discard(connection)
            connection.close()
