"""An HJ 212 "platform" that takes frames and answers them badly.

Modes:
- `garbage`: answers each chunk it receives with random bytes (no `##`, no CRC);
- `bad-crc`: answers with a well-formed reply frame whose CRC is wrong;
- `trickle`: answers with an endless reply, one byte every `trickle_s`, that never ends its frame;
- `silent`: takes everything and never answers.

A data logger must neither crash nor flood its log on any of them, and must go back to sending when the
platform behaves again.
"""

from __future__ import annotations

import random
import socket
import threading
from typing import Literal

from simulators.serving import ServerError, TcpListener, TcpServing

Mode = Literal["garbage", "bad-crc", "trickle", "silent"]
MODES: tuple[Mode, ...] = ("garbage", "bad-crc", "trickle", "silent")

BAD_CRC_REPLY = b"##0048QN=20260101000000000;ST=91;CN=9014;PW=123456;MN=X;Flag=4;CP=&&&&FFFF\r\n"
"""A reply frame whose length field is right but whose CRC (FFFF) is not."""


class RudeHj212Error(ServerError):
    """The rude HJ 212 platform could not start or stop."""


class RudeHj212(TcpServing):
    listening_for = "the rude HJ 212 platform"

    def __init__(self, mode: Mode, host: str = "127.0.0.1", port: int = 0, trickle_s: float = 0.5) -> None:
        super().__init__()
        if mode not in MODES:
            raise RudeHj212Error(f"mode {mode!r} is not one of {', '.join(MODES)}")
        self._listener = TcpListener(host, port)
        self.mode = mode
        self.trickle_s = trickle_s
        self._random = random.Random(212)
        self._lock = threading.Lock()
        self.chunks_received = 0
        self.bytes_sent = 0

    def _error(self, message: str) -> Exception:
        return RudeHj212Error(message)

    def _serve_connection(self, connection: socket.socket) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    chunk = connection.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                with self._lock:
                    self.chunks_received += 1
                if self.mode == "trickle":
                    self._trickle(connection)
                    return
                answer = self._answer()
                if answer:
                    connection.sendall(answer)
                    with self._lock:
                        self.bytes_sent += len(answer)
        except OSError:
            return
        finally:
            self._listener.hang_up(connection)

    def _answer(self) -> bytes:
        if self.mode == "garbage":
            with self._lock:
                return self._random.randbytes(96).replace(b"#", b"?")
        if self.mode == "bad-crc":
            return BAD_CRC_REPLY
        return b""

    def _trickle(self, connection: socket.socket) -> None:
        """An answer that starts like a frame and never ends: one byte at a time, until the peer hangs up."""
        connection.sendall(b"##9999QN=")
        while not self._stopping.wait(self.trickle_s):
            connection.sendall(b"7")
            with self._lock:
                self.bytes_sent += 1
