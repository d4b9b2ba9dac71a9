"""An MQTT listener that is not a broker: it takes the client's CONNECT and then misbehaves.

Modes:
- `connack-close`: answers CONNACK "accepted" (in the client's protocol version) and hangs up at once, the way
  a broker that takes the session over, or a load balancer in front of a dead broker, does. A client that
  reconnects at once after every such session hammers it; one that backs off after short sessions does not.
- `junk`: answers the CONNECT with random bytes and hangs up.
- `silent`: accepts and never answers, until the client gives up.

It counts the CONNECTs it saw, with their times, so a test can tell how hard a client came back.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from typing import Literal

from simulators.serving import ServerError, TcpListener, TcpServing

Mode = Literal["connack-close", "junk", "silent"]
MODES: tuple[Mode, ...] = ("connack-close", "junk", "silent")

MAX_CONNECT_BYTES = 65536
"""A CONNECT longer than this is not read to its end: the connection is dropped."""


class RudeBrokerError(ServerError):
    """The rude broker could not start or stop."""


def connack(protocol_level: int) -> bytes:
    """CONNACK "accepted, no session present": MQTT 3.1.1 has two bytes of variable header, MQTT 5 a third,
    the (empty) property length."""
    return b"\x20\x03\x00\x00\x00" if protocol_level == 5 else b"\x20\x02\x00\x00"


def read_connect(connection: socket.socket, deadline: float) -> int | None:
    """Read one CONNECT packet; its protocol level (4 for 3.1.1, 5 for MQTT 5), or None if it was not one."""
    buffer = b""
    while time.monotonic() < deadline:
        try:
            chunk = connection.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return None
        if not chunk:
            return None
        buffer += chunk
        parsed = _parse_connect(buffer)
        if parsed is not None or len(buffer) > MAX_CONNECT_BYTES:
            return parsed
    return None


def _parse_connect(buffer: bytes) -> int | None:
    if not buffer or buffer[0] != 0x10:
        return None
    length, multiplier, index = 0, 1, 1
    while index < len(buffer) and index <= 4:
        byte = buffer[index]
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        index += 1
        if not byte & 0x80:
            break
    else:
        return None
    body = buffer[index : index + length]
    if len(body) < length or len(body) < 7:
        return None
    name_length = int.from_bytes(body[0:2], "big")
    return body[2 + name_length] if len(body) > 2 + name_length else None


class RudeBroker(TcpServing):
    listening_for = "the rude broker"

    def __init__(self, mode: Mode, host: str = "127.0.0.1", port: int = 0, seed: int = 0) -> None:
        super().__init__()
        if mode not in MODES:
            raise RudeBrokerError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        self._listener = TcpListener(host, port)
        self.mode = mode
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._connects: list[float] = []

    def connects(self) -> list[float]:
        """Monotonic times of the CONNECTs seen so far."""
        with self._lock:
            return list(self._connects)

    def _error(self, message: str) -> Exception:
        return RudeBrokerError(message)

    def _serve_connection(self, connection: socket.socket) -> None:
        try:
            level = read_connect(connection, time.monotonic() + 10.0)
            if level is None:
                return
            with self._lock:
                self._connects.append(time.monotonic())
            if self.mode == "connack-close":
                connection.sendall(connack(level))
            elif self.mode == "junk":
                with self._lock:
                    junk = self._random.randbytes(64)
                connection.sendall(junk)
            else:
                while not self._stopping.is_set():
                    try:
                        if not connection.recv(4096):
                            return
                    except TimeoutError:
                        continue
        except OSError:
            return
        finally:
            self._listener.hang_up(connection)
