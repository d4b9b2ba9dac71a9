"""A serial line in software: two pseudo-terminals joined by socat, one end per side.

Devices on RS-485 are simulated on a real tty so that the agent opens, configures and reads it exactly as it
would an adapter; nothing in the agent can tell. socat makes the pair and the two symlinks the sides open;
the links exist only while socat runs, which is also how a test unplugs the line (stop) and plugs it back
(start).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


class SerialLineError(RuntimeError):
    """socat is missing, or the pty pair did not come up."""


class PtyPair:
    """A socat-joined pair of ptys reachable at `link_a` and `link_b` while running.

    Bytes written to one end come out of the other, unchanged and instantly: line timing is the business of
    whoever writes (see `RtuSlaveServer(emulate_line_timing=True)`). Baud rate and parity set on either end are
    accepted and ignored.
    """

    def __init__(
        self, link_a: str | os.PathLike[str], link_b: str | os.PathLike[str], executable: str = "socat"
    ) -> None:
        found = shutil.which(executable)
        if found is None:
            raise SerialLineError(
                f"{executable!r} not found: install it with 'apt-get install socat' (make install does)"
            )
        self.executable = found
        self.link_a = Path(link_a)
        self.link_b = Path(link_b)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 5.0) -> None:
        """Start socat and return once both links exist; raise SerialLineError after `timeout_s`."""
        if self.running:
            return
        for link in (self.link_a, self.link_b):
            if link.exists() or link.is_symlink():
                raise SerialLineError(f"{link} already exists: another line uses it, or remove the stale link")
        with tempfile.TemporaryFile(prefix="socat-") as log:
            self._process = subprocess.Popen(
                [
                    self.executable,
                    "-d",
                    "-d",
                    f"pty,raw,echo=0,link={self.link_a}",
                    f"pty,raw,echo=0,link={self.link_b}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            deadline = time.monotonic() + timeout_s
            while not (self.link_a.exists() and self.link_b.exists()):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log.seek(0)
                    output = log.read().decode(errors="replace").strip() or "no output"
                    raise SerialLineError(
                        f"socat did not create {self.link_a} and {self.link_b} within {timeout_s} s: {output}"
                    )
                time.sleep(0.01)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop socat; the links disappear, so to both sides the line is unplugged."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        if process is not None:
            for link in (self.link_a, self.link_b):
                if link.is_symlink():
                    link.unlink()

    def __enter__(self) -> PtyPair:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
