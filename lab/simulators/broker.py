"""A throw-away Mosquitto broker on a free loopback port, for the demo and for tests.

Each broker gets its own directory and config file, listens on 127.0.0.1 only, and can be stopped and
started again on the same port, which is what the "broker restarted in the middle of a drain" tests need.
With `tls`, the one listener speaks TLS only (and, with `require_certificate`, mutual TLS), so a test cannot
pass by quietly falling back to plain MQTT; `simulators.certificates` makes the files it needs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType


class BrokerError(RuntimeError):
    """Mosquitto is missing or would not start."""


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """The files of a TLS listener: the CA that clients' certificates must chain to, and the broker's own pair.

    With `require_certificate`, a client without a certificate from `ca_file` is turned away before its CONNECT
    is read, and the certificate's common name becomes the MQTT user name (`use_identity_as_username`), which is
    how a platform ties a connection to a station.
    """

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = False

    def listener_lines(self) -> list[str]:
        """The mosquitto.conf lines for this listener, with absolute paths so the broker's cwd does not matter."""
        lines = [
            f"cafile {self.ca_file.resolve()}",
            f"certfile {self.cert_file.resolve()}",
            f"keyfile {self.key_file.resolve()}",
        ]
        if self.require_certificate:
            lines += ["require_certificate true", "use_identity_as_username true"]
        return lines


def _keep_starting_user() -> list[str]:
    """Mosquitto started as root drops to the 'mosquitto' user before it reads the TLS key, and that user can open
    neither a 0600 key owned by root nor a test's private temporary directory: "user root" keeps it as root."""
    return ["user root"] if os.geteuid() == 0 else []


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
    `tls=None` gives a plain MQTT listener; a `BrokerTls` makes the same listener TLS-only. `nodelay` sends each
    packet at once (Mosquitto's `set_tcp_nodelay`): by default the kernel holds a small packet back while the
    last one is unacknowledged, so a client that waits for each PUBACK can stall for the peer's delayed ACK
    (40 ms on Linux). Tests keep the default, as a platform's broker may; the benchmarks turn it on, so that a
    figure measures the code and not that stall.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        executable: str = "mosquitto",
        tls: BrokerTls | None = None,
        nodelay: bool = False,
    ) -> None:
        found = shutil.which(executable) or shutil.which(executable, path="/usr/sbin:/sbin")
        if found is None:
            raise BrokerError(
                f"{executable!r} not found: install it with 'apt-get install mosquitto' (make install does)"
            )
        self.executable = found
        self.workdir = workdir
        self.port = port if port is not None else free_loopback_port()
        self.host = "127.0.0.1"
        self.tls = tls
        self._process: subprocess.Popen[bytes] | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        lines = [
            *(_keep_starting_user() if tls is not None else []),
            f"listener {self.port} {self.host}",
            *(tls.listener_lines() if tls is not None else []),
            "allow_anonymous true",
            "persistence false",
            "max_inflight_messages 0",
            "max_queued_messages 100000",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            *(["set_tcp_nodelay true"] if nodelay else []),
        ]
        self.config_path.write_text("".join(f"{line}\n" for line in lines))

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

    def hang(self) -> None:
        """Freeze the broker (SIGSTOP), as a broker stuck on its disk or in a swap storm: its connections stay
        open and nothing is answered, no PUBACK, no PINGRESP, until `wake`."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def wake(self) -> None:
        """Let a hung broker go on where it stopped (SIGCONT)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self, kill: bool = False) -> None:
        """Stop the broker; kill=True drops it like a power cut instead of a clean shutdown."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)
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
