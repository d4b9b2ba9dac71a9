"""The service manager's end of sd_notify, for tests that run the agent as systemd would."""

from __future__ import annotations

import socket
from pathlib import Path


class NotifySocket:
    """The service manager's end: a datagram socket bound in tmp, as systemd binds /run/systemd/notify."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        self._socket.settimeout(0.05)
        self.messages: list[dict[str, str]] = []

    def drain(self) -> list[dict[str, str]]:
        """Every message waiting now, each as its KEY=value fields."""
        new: list[dict[str, str]] = []
        while True:
            try:
                data = self._socket.recv(4096)
            except TimeoutError:
                break
            new.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        self.messages.extend(new)
        return new

    def seen(self, key: str, value: str | None = None) -> int:
        self.drain()
        return sum(1 for message in self.messages if key in message and value in (None, message[key]))

    def close(self) -> None:
        self._socket.close()
