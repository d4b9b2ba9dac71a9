"""A throw-away Mosquitto broker on a free loopback port, for the demo and for tests.

Each broker gets its own directory and config file, listens on 127.0.0.1 only, and can be stopped and
started again on the same port, which is what the "broker restarted in the middle of a drain" tests need.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType


class BrokerError(RuntimeError):
    """Mosquitto is missing or would not start."""


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    """True once something accepts TCP connections on host:port, False after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class MosquittoBroker:
    """A Mosquitto process on 127.0.0.1:port with anonymous access and no persistence across restarts.

    Persistence is off on purpose: a restarted broker forgets sessions and queued messages, which is the
    harsher case for the agent (it must re-send everything the platform has not acknowledged).
    """

    def __init__(self, workdir: Path, port: int | None = None, executable: str = "mosquitto") -> None:
        found = shutil.which(executable) or shutil.which(executable, path="/usr/sbin:/sbin")
        if found is None:
            raise BrokerError(
                f"{executable!r} not found: install it with 'apt-get install mosquitto' (make install does)"
            )
        self.executable = found
        self.workdir = workdir
        self.port = port if port is not None else free_loopback_port()
        self.host = "127.0.0.1"
        self._process: subprocess.Popen[bytes] | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_inflight_messages 0\n"
            "max_queued_messages 100000\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self.executable, "-c", str(self.config_path)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        if not wait_for_port(self.host, self.port, timeout_s):
            self.stop()
            raise BrokerError(f"mosquitto did not listen on {self.address} within {timeout_s}s; see {self.log_path}")

    def stop(self, kill: bool = False) -> None:
        """Stop the broker; kill=True drops it like a power cut instead of a clean shutdown."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
