"""A TCP relay that can drop: the agent connects to it as to its broker, and it carries the bytes both ways to
the real broker until told to cut.

A cut closes every connection it carries at once and turns new ones away (accepted, then closed at once: what a
mobile link that has lost its cell looks like from the gateway) until `restore`. `delay_s` holds each chunk that
long before passing it on, in both directions, for a slow link.
"""

from __future__ import annotations

import select
import socket
import threading
import time

from simulators.serving import POLL_S, ServerError, TcpListener, TcpServing

CHUNK_BYTES = 65536


class FlakyLinkError(ServerError):
    """The relay could not start or stop."""


class FlakyLink(TcpServing):
    listening_for = "the flaky link"

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1", port: int = 0, delay_s: float = 0.0) -> None:
        super().__init__()
        self._listener = TcpListener(host, port)
        self._upstream = upstream
        self.delay_s = delay_s
        self._up = threading.Event()
        self._up.set()
        self._lock = threading.Lock()
        self.connections = 0
        self.refused = 0
        self.cuts = 0

    @property
    def up(self) -> bool:
        return self._up.is_set()

    def cut(self) -> int:
        """Drop every carried connection and refuse new ones until `restore`; how many were dropped."""
        self._up.clear()
        with self._lock:
            self.cuts += 1
        return self._listener.hang_up_all()

    def restore(self) -> None:
        self._up.set()

    def _error(self, message: str) -> Exception:
        return FlakyLinkError(message)

    def _serve_connection(self, connection: socket.socket) -> None:
        if not self._up.is_set():
            with self._lock:
                self.refused += 1
            self._listener.hang_up(connection)
            return
        try:
            upstream = socket.create_connection(self._upstream, timeout=2.0)
        except OSError:
            self._listener.hang_up(connection)
            return
        with self._lock:
            self.connections += 1
        try:
            self._carry(connection, upstream)
        finally:
            upstream.close()
            self._listener.hang_up(connection)

    def _carry(self, agent_side: socket.socket, broker_side: socket.socket) -> None:
        peers = {agent_side: broker_side, broker_side: agent_side}
        while not self._stopping.is_set() and self._up.is_set():
            try:
                readable, _, _ = select.select(list(peers), [], [], POLL_S)
            except (OSError, ValueError):
                return  # a cut closed a socket under us
            for source in readable:
                try:
                    chunk = source.recv(CHUNK_BYTES)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                if self.delay_s:
                    time.sleep(self.delay_s)
                try:
                    peers[source].sendall(chunk)
                except OSError:
                    return
