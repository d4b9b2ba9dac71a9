"""What every simulated device server shares, whatever its protocol: a serving thread and its workers that start
and stop together, and for TCP the listening socket with the connections it accepted.

A stop must leave nothing running, or a test that stops a device to simulate a dead one would still be
answered by a thread it forgot; so `stop` joins every thread within one deadline and says which ones hung.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, ClassVar, Self

POLL_S = 0.01
"""How often a server thread looks up from a blocking read to check whether it is being stopped."""


class ServerError(RuntimeError):
    """A simulated device server could not start or stop; the message says why."""


class DeviceServer(ABC):
    """The life cycle of a server: `start` opens the port or socket (its errors surface there) and serves in a
    thread of its own; `stop` ends that thread and every worker it spawned, then closes what was opened."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stopping.clear()
        self._open()
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop serving and join every thread within `timeout_s`; raise ServerError (or the subclass's) if one
        hangs. The serving thread is joined first: once it has ended, no new worker can appear."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        threads = [self._thread] if self._thread is not None else []
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        threads += self._workers
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._thread, self._workers = None, []
        self._close()
        hung = [thread.name for thread in threads if thread.is_alive()]
        if hung:
            raise self._error(f"threads {hung} did not stop within {timeout_s} s")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _spawn_worker(self, target: Callable[..., None], name: str, *args: Any) -> None:
        """Start a helper thread of the serving thread (only it may call this), joined by `stop`."""
        self._workers = [worker for worker in self._workers if worker.is_alive()]
        worker = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._workers.append(worker)
        worker.start()

    def _error(self, message: str) -> Exception:
        """The error this server raises; subclasses name their protocol's."""
        return ServerError(message)

    @abstractmethod
    def _open(self) -> None:
        """Open the port or socket, raising the server's error with the reason."""

    @abstractmethod
    def _close(self) -> None:
        """Close what `_open` opened; called once the serving threads have ended."""

    @abstractmethod
    def _serve(self) -> None:
        """Serve until `_stopping` is set, looking up at least every POLL_S."""


class TcpServing(DeviceServer):
    """The TCP half of a device server: one listener (set `_listener` in `__init__`), a worker thread per
    connection, each served by `_serve_connection`. Mixed in after the protocol's own server class."""

    _listener: TcpListener
    listening_for: ClassVar[str] = "the simulator"
    """Named in the error when the address is taken."""

    @property
    def host(self) -> str:
        return self._listener.host

    @property
    def port(self) -> int:
        """The port listened on; a free one is picked for 0 and known after `start()`."""
        return self._listener.port

    def _open(self) -> None:
        try:
            self._listener.open()
        except OSError as error:
            raise self._error(f"cannot listen on {self.host}:{self.port} for {self.listening_for}: {error}") from error

    def _close(self) -> None:
        self._listener.close()

    def _serve(self) -> None:
        for connection, peer in self._listener.accepted(self._stopping):
            self._spawn_worker(self._serve_connection, f"{type(self).__name__} {peer}", connection)

    @abstractmethod
    def _serve_connection(self, connection: socket.socket) -> None:
        """Answer on one connection until it closes or the server stops."""


class TcpListener:
    """A listening socket on `host:port` (`port=0` picks a free one, read `port` after `open`) and the
    connections it accepted, so that closing it hangs up on every client."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def open(self) -> None:
        """Listen; OSError with the reason if the address is taken or not ours."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError:
            listener.close()
            raise
        listener.listen()
        self.port = listener.getsockname()[1]
        self._socket = listener

    def close(self) -> None:
        listener, self._socket = self._socket, None
        if listener is not None:
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            connection.close()

    def accepted(self, stopping: threading.Event) -> Iterator[tuple[socket.socket, Any]]:
        """Each new connection and its peer, until `stopping` is set; a connection times out its reads after
        POLL_S, so that the worker serving it can look up too."""
        listener = self._socket
        while listener is not None and not stopping.is_set():
            readable, _, _ = select.select([listener], [], [], POLL_S)
            if not readable:
                continue
            connection, peer = listener.accept()
            connection.settimeout(POLL_S)
            with self._lock:
                self._connections.add(connection)
            yield connection, peer

    def hang_up_all(self) -> int:
        """Close every accepted connection but keep listening (a link that drops); how many were closed."""
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            connection.close()
        return len(connections)

    def hang_up(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)
        connection.close()
