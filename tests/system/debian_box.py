"""A Debian 12 box with systemd as PID 1, booted in a container, and the one way the system test talks to it.

The box is `systemd-nspawn -b --private-network --register=no --keep-unit` on a copy of the cached root
(tests/system/prepare.sh): no network but its own loopback, and no machined or system bus needed on the host.

The command channel is `nsenter --target LEADER --all`, LEADER being the container's PID 1 as the host sees it
(the nspawn process's child). Why this one:
- a second `systemd-nspawn` cannot enter a running container (it would boot another one on the same root,
  which the root's lock refuses), and `machinectl shell` needs machined and a system bus the host does not have;
- a runner inside the box (a unit reading commands from a bound folder or FIFO) is one more thing that can break
  in exactly the cases the test provokes (reboots, a hung box) and hides exit codes behind a protocol;
- nsenter runs each step synchronously in the box's mount, PID, network, UTS and IPC namespaces, with the real
  exit code, stdout and stderr, and nothing to install in the box. The commands it runs are outside the box's
  cgroups, which is why everything long-lived (the agent, the broker, the simulators, the receiver) is started
  by the box's own systemd (`systemctl`, `systemd-run`), never by nsenter; whatever nsenter leaves behind dies
  with the box's PID namespace when the box powers off.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

BOOT_TIMEOUT_S = 60.0
POWEROFF_TIMEOUT_S = 60.0
BOX_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "TERM": "dumb",
    "SYSTEMD_COLORS": "0",
    "SYSTEMD_PAGER": "",
    "DEBIAN_FRONTEND": "noninteractive",
}


def _in_own_pid_namespace(pid: str) -> bool:
    """True once `pid` runs in a PID namespace other than ours: nspawn's child before that is still nspawn."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


class BoxError(AssertionError):
    """A command in the box failed, or the box did not boot or power off in time."""


class DebianBox:
    """One booted container; `boot()` and `poweroff()` may repeat (a reboot is a poweroff and a boot)."""

    def __init__(self, root: Path, binds_ro: dict[Path, str], console_log: Path) -> None:
        self.root = root
        self._binds_ro = binds_ro
        self._console_log = console_log
        self._nspawn: subprocess.Popen[bytes] | None = None
        self._leader: int | None = None

    # -- life -------------------------------------------------------------------------------------------------

    def boot(self) -> None:
        """Start the container and return once its systemd says the boot is done (running or degraded)."""
        assert self._nspawn is None or self._nspawn.poll() is not None, "the box is already running"
        command = [
            "systemd-nspawn",
            f"--directory={self.root}",
            "--boot",
            "--private-network",
            "--register=no",
            "--keep-unit",
            "--console=read-only",
            "--machine=station-box",
            *(f"--bind-ro={host}:{inside}" for host, inside in self._binds_ro.items()),
        ]
        with self._console_log.open("ab") as console:
            self._nspawn = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait_booted()
        except BaseException:
            self.poweroff()
            raise

    def _wait_booted(self) -> None:
        self._leader = self._wait_leader()
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        state = ""
        while time.monotonic() < deadline:
            state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.2)
        raise BoxError(f"the box did not finish booting within {BOOT_TIMEOUT_S} s (state {state!r})")

    def _wait_leader(self) -> int:
        """The container's PID 1 as the host sees it: the nspawn process's only child."""
        assert self._nspawn is not None
        children = Path(f"/proc/{self._nspawn.pid}/task/{self._nspawn.pid}/children")
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._nspawn.poll() is not None:
                raise BoxError(f"systemd-nspawn exited with {self._nspawn.returncode}; see {self._console_log}")
            pids = children.read_text().split() if children.exists() else []
            if pids and _in_own_pid_namespace(pids[0]):
                return int(pids[0])
            time.sleep(0.05)
        raise BoxError(f"no container process under systemd-nspawn within {BOOT_TIMEOUT_S} s")

    @property
    def running(self) -> bool:
        return self._nspawn is not None and self._nspawn.poll() is None

    def poweroff(self) -> None:
        """`systemctl poweroff` in the box and wait for nspawn to exit; SIGTERM, then SIGKILL, if it does not."""
        if not self.running:
            return
        assert self._nspawn is not None
        try:
            if self._leader is None:
                raise BoxError("no leader to ask")
            self.run(["systemctl", "poweroff"], check=False, timeout_s=10)
        except (BoxError, subprocess.TimeoutExpired):
            self._nspawn.send_signal(signal.SIGTERM)  # nspawn asks the box's init to halt
        try:
            self._nspawn.wait(POWEROFF_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._nspawn.send_signal(signal.SIGTERM)  # nspawn asks the box's init to halt
            try:
                self._nspawn.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self._nspawn.pid, signal.SIGKILL)
                self._nspawn.wait(10)
            raise BoxError(f"the box did not power off within {POWEROFF_TIMEOUT_S} s") from None
        finally:
            self._leader = None

    # -- commands ---------------------------------------------------------------------------------------------

    def run(
        self,
        command: Sequence[str],
        *,
        check: bool = True,
        input_text: str | None = None,
        timeout_s: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` in the box as root, with a clean environment; raise BoxError on a non-zero exit if `check`."""
        if self._leader is None:
            raise BoxError("the box is not running")
        env = [f"{name}={value}" for name, value in BOX_ENV.items()]
        full = ["nsenter", f"--target={self._leader}", "--all", "env", "-i", *env, *command]
        result = subprocess.run(full, input=input_text, capture_output=True, text=True, timeout=timeout_s, check=False)
        if check and result.returncode != 0:
            raise BoxError(
                f"in the box: {' '.join(command)} exited {result.returncode}\n"
                f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
            )
        return result

    def sh(self, script: str, *, check: bool = True, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
        return self.run(["sh", "-ec", script], check=check, timeout_s=timeout_s)

    def write(self, inside: str, text: str, mode: str = "0644") -> None:
        """Write a file in the box, through the box: its /run and /tmp are its own, not the root's folders."""
        self.run(["install", "-D", "-m", mode, "/dev/stdin", inside], input_text=text)

    def path(self, inside: str) -> Path:
        """The host's path of a file in the box's root (for reading reports the box writes; never under /run)."""
        return self.root / inside.lstrip("/")

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """`systemctl show` of the box's unit, as a dict."""
        out = self.run(["systemctl", "show", unit, *(f"--property={name}" for name in properties)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
