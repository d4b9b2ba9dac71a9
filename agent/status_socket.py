"""The local socket `station-agent status` asks: each connection gets the latest snapshot as JSON, then EOF.

The main loop prepares the bytes (`offer`) and the server thread only copies them out, so a slow or stuck
reader costs the server a bounded wait and the agent nothing. The socket is a Unix stream socket with mode
0660: who may ask is settled by the file's group, not by a port anyone on the network can reach. The thread
sleeps until a reader connects or the stop is asked (a byte on a pipe of its own): an idle server that looked
for its stop five times a second cost as much CPU as a fifth of the main thread's status turn.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import time
from pathlib import Path

from agent.logs import LogTally, get_logger

log = get_logger("agent.status_socket")

SOCKET_MODE = 0o660
SEND_TIMEOUT_S = 2.0
"""A reader that takes longer than this for a few kilobytes is dropped, so the next one is not kept waiting."""
STOP_WAIT_S = 1.0
"""How long a stop waits for the server thread beyond a reader's send."""
QUEUE_FULL_PAUSE_S = 0.01
"""How long a reader that found the agent's queue of readers full waits before it tries again."""
ACCEPT_PAUSE_S = 1.0
"""The pause after a failed accept (no file descriptor free, say) before the next try."""


class StatusSocketBusy(Exception):
    """The socket's path is taken: another process answers on it (a second agent?), or it is not a socket."""


class StatusSocketServer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._payload = b""
        self._stopping = threading.Event()
        self._failures = LogTally()
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_read, self._wake_write = -1, -1
        """The pipe the stop writes a byte to, so that the waiting thread ends at once."""
        self._thread = threading.Thread(target=self._serve, name="status-socket", daemon=True)

    def start(self) -> None:
        """Bind the socket (taking over a stale one a dead agent left behind) and start answering.

        Raises StatusSocketBusy if a live process answers on it, OSError if it cannot be made."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and not self.path.is_socket():
            raise StatusSocketBusy(f"{self.path} exists and is not a socket; status.socket must name a free path")
        if _answers(self.path):
            raise StatusSocketBusy(f"{self.path}: another process answers on it; is a second agent running?")
        self.path.unlink(missing_ok=True)
        with contextlib.ExitStack() as undo:  # a start that fails (no descriptor free, say) leaves nothing behind
            listener = undo.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            listener.bind(str(self.path))
            undo.callback(self.path.unlink, missing_ok=True)
            os.chmod(self.path, SOCKET_MODE)
            listener.listen(8)
            listener.setblocking(False)
            wake_read, wake_write = os.pipe()
            undo.callback(os.close, wake_read)
            undo.callback(os.close, wake_write)
            selector = undo.enter_context(selectors.DefaultSelector())
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake_read, selectors.EVENT_READ)
            undo.pop_all()
        self._listener, self._selector, self._wake_read, self._wake_write = listener, selector, wake_read, wake_write
        self._thread.start()

    def offer(self, payload: bytes) -> None:
        """The snapshot to give from now on; safe from any thread (one reference assignment)."""
        self._payload = payload

    def stop(self) -> None:
        """Stop answering and remove the socket, so that `status` says the agent is not running."""
        self._stopping.set()
        if self._wake_write >= 0:
            os.write(self._wake_write, b"x")
        if self._thread.is_alive():
            self._thread.join(SEND_TIMEOUT_S + STOP_WAIT_S)
        if self._listener is not None:
            self._listener.close()
            self.path.unlink(missing_ok=True)
            self._listener = None
        if self._selector is not None and not self._thread.is_alive():
            self._selector.close()
            os.close(self._wake_read)
            os.close(self._wake_write)
            self._selector, self._wake_read, self._wake_write = None, -1, -1

    def _serve(self) -> None:
        assert self._listener is not None and self._selector is not None
        while not self._stopping.is_set():
            self._selector.select()  # a reader connecting, or the stop's byte
            if self._stopping.is_set():
                return
            try:
                connection, _ = self._listener.accept()
            except BlockingIOError:
                continue  # the reader went away before it was taken
            except OSError as exc:
                if self._stopping.is_set():
                    return
                # Out of file descriptors (EMFILE), buffers or memory for a moment: staff must still be able to
                # ask later, so the loop waits and goes on rather than ending the thread for good.
                count = self._failures.note(time.monotonic())
                if count is not None:
                    log.error("status_socket_failed", path=str(self.path), error=str(exc), count=count)
                self._stopping.wait(ACCEPT_PAUSE_S)
                continue
            with connection:
                connection.settimeout(SEND_TIMEOUT_S)
                try:
                    connection.sendall(self._payload)
                except OSError as exc:
                    log.debug("status_reader_dropped", error=str(exc))


def _answers(path: Path) -> bool:
    if not path.is_socket():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def ask(path: Path, timeout_s: float = 5.0) -> bytes:
    """The snapshot the agent at `path` gives; raises OSError (FileNotFoundError, ConnectionRefusedError, ...)
    when no agent answers there. Empty when the agent has not finished its first second."""
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout_s)
        while True:
            try:
                client.connect(str(path))
                break
            except BlockingIOError:
                # The agent's queue of readers is full (a burst of them): with a timeout set, a Unix socket's
                # connect fails at once rather than wait for room, so the reader waits its turn here.
                if time.monotonic() >= deadline:
                    raise
                time.sleep(QUEUE_FULL_PAUSE_S)
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
