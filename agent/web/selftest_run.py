"""The self-test, run from the page: `station-agent selftest` in a child process, one at a time, with a timeout.

A child process rather than a call: the checks open ports, the broker and files, and whatever they hold or
leak ends with the child, never in the page's process; a check that hangs is killed at the timeout.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

MAX_OUTPUT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class SelftestOutcome:
    exit_code: int | None
    """None when it was stopped at the timeout."""
    output: str


class SelftestRunner:
    def __init__(self, config: Path, timeout_s: float = 90.0) -> None:
        self.config = config
        self.timeout_s = timeout_s
        self._running = threading.Lock()

    def run(self) -> SelftestOutcome | None:
        """The outcome, or None at once if a self-test is already running."""
        if not self._running.acquire(blocking=False):
            return None
        try:
            return self._run()
        finally:
            self._running.release()

    def _run(self) -> SelftestOutcome:
        command = [sys.executable, "-m", "agent.cli", "selftest", "--config", str(self.config)]
        try:
            done = subprocess.run(
                command, capture_output=True, timeout=self.timeout_s, stdin=subprocess.DEVNULL, check=False
            )
        except subprocess.TimeoutExpired as stopped:
            return SelftestOutcome(None, _text(stopped.stdout or b"") + _text(stopped.stderr or b""))
        return SelftestOutcome(done.returncode, _text(done.stdout) + _text(done.stderr))


def _text(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return raw[:MAX_OUTPUT_BYTES].decode("utf-8", "replace")
