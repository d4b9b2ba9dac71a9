"""A host name looked up without waiting: the resolver cannot be asked without blocking, and one that does not
answer (a station whose uplink is down, and its DNS server with it) holds the asker for tens of seconds. So the
lookup runs on a thread of its own, and says it has ended on a socket, which a caller that waits for many sockets
at once waits for beside the others."""

from __future__ import annotations

import contextlib
import socket
import threading

AddressInfo = tuple[
    socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]
]


class AddressLookup:
    """One lookup of `host`:`port` for a stream socket. `ready` turns readable when it has ended; `close` gives it
    up (the thread still ends when the resolver answers, and its answer is dropped)."""

    def __init__(self, host: str, port: int) -> None:
        self.ready, signal = socket.socketpair()
        self._result: list[AddressInfo] | OSError | None = None
        thread = threading.Thread(target=self._look_up, args=(host, port, signal), name=f"lookup-{host}", daemon=True)
        thread.start()

    def result(self) -> list[AddressInfo] | None:
        """The addresses, in the resolver's order, or None while the lookup runs; raises OSError for a name that
        does not resolve."""
        result = self._result
        if result is None:
            return None
        self.close()
        if isinstance(result, OSError):
            raise result
        return result

    def close(self) -> None:
        self.ready.close()

    def _look_up(self, host: str, port: int, signal: socket.socket) -> None:
        try:
            addresses: list[AddressInfo] = list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            self._result = addresses
        except OSError as error:
            self._result = error
        except UnicodeError as error:  # a name the IDNA codec refuses (an empty or over-long label)
            self._result = OSError(f"{host!r} is not a host name ({error})")
        with signal, contextlib.suppress(OSError):  # the lookup was given up, its `ready` closed
            signal.send(b"\0")
