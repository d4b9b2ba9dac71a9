"""Child processes of a benchmark: started in their own session, waited for by what they print, stopped by PID.

Every child is stopped when its `with` block ends, whatever happened inside: SIGTERM to its PID, then SIGKILL
if it has not ended within the grace period. Nothing here looks processes up by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from simulators.broker import MosquittoBroker

STOP_GRACE_S = 20.0
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
"""Children start here, so that `python -m bench.watcher` finds this package wherever the run was started."""


class ChildError(RuntimeError):
    """A child process ended early or did not get ready; the message names its log file."""


class Child:
    """A running child process whose stdout and stderr go to one log file."""

    def __init__(
        self, name: str, argv: list[str], log_path: Path, cwd: Path = PACKAGE_ROOT, env: Mapping[str, str] | None = None
    ) -> None:
        """`env`: variables set for the child on top of this process's environment."""
        self.name = name
        self.log_path = log_path
        self.started_at = time.monotonic()
        environment = None if env is None else {**os.environ, **env}
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=environment,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_for_output(self, text: str, timeout_s: float) -> None:
        """Return once `text` is in the log; raise ChildError if the child ends first or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if not self.alive():
                raise ChildError(
                    f"{self.name} ended (exit {self.process.returncode}) before '{text}'; see {self.log_path}"
                )
            time.sleep(0.02)
        raise ChildError(f"{self.name} did not print '{text}' within {timeout_s:g} s; see {self.log_path}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after the grace period; returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_GRACE_S)
        return self.process.returncode


@contextmanager
def child(
    name: str, argv: list[str], log_path: Path, cwd: Path = PACKAGE_ROOT, env: Mapping[str, str] | None = None
) -> Iterator[Child]:
    running = Child(name, argv, log_path, cwd, env)
    try:
        yield running
    finally:
        running.stop()


def python_module(module: str, *args: str) -> list[str]:
    """argv running `module` with this interpreter, the way the demo starts the agent and the simulators."""
    return [sys.executable, "-m", module, *args]


@contextmanager
def broker(workdir: Path) -> Iterator[MosquittoBroker]:
    """A fresh Mosquitto on a free loopback port, stopped at the end; it sends each packet at once, so that no
    figure (and no raw limit) waits out a delayed ACK that a small packet was held back for."""
    with MosquittoBroker(workdir / "broker", nodelay=True) as running:
        yield running


@contextmanager
def platform_receiver(workdir: Path, address: str, station: str, public_pem: str, timeout_s: float) -> Iterator[Child]:
    """`station-sim platform` as its own process, returned once it is subscribed (so nothing is missed)."""
    key_path = workdir / f"{station}.pub"
    key_path.write_text(public_pem)
    argv = python_module(
        "simulators.cli",
        "platform",
        "--broker",
        address,
        "--db",
        str(workdir / "platform.sqlite"),
        "--station",
        f"{station}={key_path}",
    )
    with child("platform receiver", argv, workdir / "platform.log") as running:
        running.wait_for_output("platform.started", timeout_s)
        yield running


@contextmanager
def watcher(workdir: Path, host: str, port: int, topic: str, timeout_s: float) -> Iterator[Child]:
    """The independent subscriber (`bench.watcher`), returned once its subscription is in place."""
    with child("watcher", python_module("bench.watcher", host, str(port), topic), workdir / "watcher.log") as running:
        running.wait_for_output("ready", timeout_s)
        yield running
