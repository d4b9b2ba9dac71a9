"""systemd's view of the agent: READY, WATCHDOG pings only while every loop works, STATUS and STOPPING, over a
real NOTIFY_SOCKET; the liveness verdict on fake loops, on a real poller whose thread dies or hangs, and on the
agent as a process under the unit's MemoryDenyWriteExecute; and log priorities for journald."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w
from notify_socket import NotifySocket
from support.waiting import wait_until

from agent.clock import SystemClock
from agent.containment import Boundary
from agent.field.events import FieldEvent
from agent.field.poller import LinePoller, PolledDevice, stop_all
from agent.ledger.keys import generate_key_file
from agent.pulse import Pulse
from agent.systemd_notify import SystemdNotifier
from agent.watchdog import Loop, ServiceWatchdog, Stall, judge
from drivers.errors import FieldTimeout
from drivers.readings import Reading
from simulators.broker import MosquittoBroker

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
UNDER_MDWE = f"""
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    sys.exit(97)
os.execv(sys.executable, [sys.executable, "-m", "agent.cli", *sys.argv[1:]])
"""
"""Runs the agent with write-or-execute memory enforced by the kernel (Linux 6.3+), as the unit's
MemoryDenyWriteExecute= does with seccomp: a library that needs W+X pages fails here as it would there."""


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[NotifySocket]:
    notify = NotifySocket(tmp_path / "notify")
    yield notify
    notify.close()


@dataclass
class FakeLoop:
    running: bool
    pulse: Pulse

    def alive(self) -> bool:
        return self.running


def promised(within_s: float) -> Pulse:
    pulse = Pulse()
    pulse.beat(within_s)
    return pulse


class TestLivenessVerdict:
    def test_loops_that_run_and_keep_their_promise_are_alive(self) -> None:
        """Running threads inside their promised wait, or late by less than the tolerance, are alive."""
        now = time.monotonic()
        loops: dict[str, Loop] = {"station": FakeLoop(True, promised(1)), "uplink": FakeLoop(True, promised(-20))}
        assert judge(loops, now, tolerance_s=30).alive

    def test_an_ended_thread_is_stalled_whatever_its_pulse(self) -> None:
        """A loop whose thread died is named, even though its last promise still holds."""
        loops: dict[str, Loop] = {"station": FakeLoop(True, promised(60)), "recorder": FakeLoop(False, promised(60))}
        verdict = judge(loops, time.monotonic(), tolerance_s=30)
        assert not verdict.alive
        assert verdict.stalled == (Stall("recorder", None),)
        assert str(verdict.stalled[0]) == "recorder: thread ended"

    def test_a_loop_late_beyond_the_tolerance_is_stalled(self) -> None:
        """Past its promise by more than the tolerance, a running loop counts as stuck, with how late it is."""
        loops: dict[str, Loop] = {"poller-rs485-1": FakeLoop(True, promised(10))}
        verdict = judge(loops, time.monotonic() + 10 + 31, tolerance_s=30)
        assert verdict.loops() == ("poller-rs485-1",)
        overdue = verdict.stalled[0].overdue_s
        assert overdue is not None and 30 < overdue < 32

    def test_a_pulse_is_not_overdue_while_its_promise_holds(self) -> None:
        pulse = promised(5)
        assert pulse.overdue_s(time.monotonic()) == 0.0
        assert 4.9 < pulse.overdue_s(time.monotonic() + 10) < 5.5


class TestNotifier:
    def test_fields_arrive_as_one_datagram_of_lines(self, manager: NotifySocket) -> None:
        notifier = SystemdNotifier(str(manager.path), None)
        notifier.notify(READY="1", STATUS="ok: all well")
        notifier.close()
        assert manager.drain() == [{"READY": "1", "STATUS": "ok: all well"}]

    def test_an_abstract_socket_address_is_spoken_to(self) -> None:
        """NOTIFY_SOCKET may start with '@': Linux's abstract namespace, no file at all."""
        name = f"station-agent-test-{os.getpid()}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind("\0" + name)
        listener.settimeout(2)
        try:
            SystemdNotifier(f"@{name}", None).notify(WATCHDOG="1")
            assert listener.recv(100) == b"WATCHDOG=1"
        finally:
            listener.close()

    def test_the_environment_decides_whether_this_process_is_watched(self) -> None:
        """WATCHDOG_USEC gives the period; a WATCHDOG_PID of another process means this one is not watched."""
        own = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"})
        assert own.enabled and own.watchdog_period_s == 30.0
        other = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
        assert SystemdNotifier.from_environment(other).watchdog_period_s is None
        outside = SystemdNotifier.from_environment({})
        assert not outside.enabled and outside.watchdog_period_s is None
        outside.notify(READY="1")

    def test_a_manager_that_went_away_costs_a_log_line_not_the_agent(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Pings to a socket nobody listens on raise nothing and make one warning naming the socket, not one
        a ping; once a manager listens there again, the next ping reaches it."""
        address = tmp_path / "nobody-listens"
        notifier = SystemdNotifier(str(address), 30.0)
        with caplog.at_level(logging.WARNING, logger="agent.systemd"):
            for _ in range(3):
                notifier.notify(WATCHDOG="1")
        warnings = [record for record in caplog.records if record.getMessage() == "systemd_notify_failed"]
        assert [getattr(record, "fields", {}).get("socket") for record in warnings] == [str(address)]
        manager = NotifySocket(address)
        try:
            notifier.notify(WATCHDOG="1")
            assert manager.drain() == [{"WATCHDOG": "1"}]
        finally:
            manager.close()
            notifier.close()


class _BrokenLink:
    def close(self) -> None:
        pass

    def statistics(self) -> None:
        return None


def _poller(read: PolledDevice, answer_timeout_s: float = 0.0, line: str = "rs485-1") -> LinePoller:
    def sink(_events: Sequence[FieldEvent]) -> None:
        pass

    boundary = Boundary(f"poller {line}", lambda _intent: None, SystemClock())
    return LinePoller(
        line, [read], _BrokenLink(), SystemClock(), sink, boundary=boundary, answer_timeout_s=answer_timeout_s
    )


class _ThreadEnds(BaseException):
    """Not an Exception: passes every containment boundary, as an interpreter exit does."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
class TestWatchdogOnRealLoops:
    """A real LinePoller: its thread is what dies or hangs, the pings are read from a real socket."""

    def test_no_ping_once_a_loop_thread_has_died(self, manager: NotifySocket) -> None:
        def read() -> Reading:
            if crash.is_set():
                raise _ThreadEnds("the loop cannot go on")
            raise FieldTimeout("no answer")

        crash = threading.Event()
        poller = _poller(PolledDevice("pc1", 1, 0.02, read))
        watchdog = ServiceWatchdog(SystemdNotifier(str(manager.path), 5.0))
        poller.start()
        try:
            assert watchdog.turn({"poller-rs485-1": poller}, "ok: all well").alive
            assert manager.seen("WATCHDOG", "1") == 1
            crash.set()
            wait_until(lambda: not poller.alive(), 5, "the poller thread to die")
            verdict = watchdog.turn({"poller-rs485-1": poller}, "ok: all well")
        finally:
            poller.stop()
        assert [str(stall) for stall in verdict.stalled] == ["poller-rs485-1: thread ended"]
        assert manager.seen("WATCHDOG", "1") == 1
        assert manager.messages[-1] == {"STATUS": "stalled: poller-rs485-1: thread ended"}

    def test_a_silent_device_waited_out_within_the_lines_timeout_is_no_stall(self, manager: NotifySocket) -> None:
        """A device that never answers costs each poll its tries, each the line's answer timeout (0.6 s here;
        up to 30 s on a tank gauge line): longer than the watchdog's period (0.2 s), yet within what the line's
        timeout allows, so the pings go on throughout (a slow line must not restart the agent)."""
        polls = threading.Event()

        def read() -> Reading:
            polls.set()
            time.sleep(0.6)  # the line's answer timeout, waited out
            raise FieldTimeout("no answer")

        poller = _poller(PolledDevice("pc1", 1, 0.02, read), answer_timeout_s=0.6)
        loops: dict[str, Loop] = {"poller-rs485-1": poller}
        watchdog = ServiceWatchdog(SystemdNotifier(str(manager.path), 0.2))
        poller.start()
        try:
            assert polls.wait(5)
            verdicts = []
            for _ in range(12):  # 2.4 s: more than two polls of two tries each
                time.sleep(0.2)
                verdicts.append(watchdog.turn(loops, "ok: all well").alive)
                manager.drain()  # as systemd reads each ping: a datagram socket's queue is short
        finally:
            poller.stop()
        assert all(verdicts), verdicts

    def test_a_hung_loop_stops_the_pings_and_a_recovered_one_resumes_them(self, manager: NotifySocket) -> None:
        """A device read that never returns holds the poller past its promise: after the tolerance (the
        watchdog period) the pings stop; when the read returns, they start again."""
        entered, release = threading.Event(), threading.Event()

        def read() -> Reading:
            entered.set()
            release.wait(10)
            raise FieldTimeout("no answer")

        poller = _poller(PolledDevice("pc1", 1, 0.02, read))
        loops: dict[str, Loop] = {"poller-rs485-1": poller}
        watchdog = ServiceWatchdog(SystemdNotifier(str(manager.path), 0.2))
        poller.start()
        try:
            assert entered.wait(5)
            wait_until(
                lambda: not judge(loops, time.monotonic(), tolerance_s=0.2).alive,
                5,
                "the hung poller to be late by more than the watchdog period",
            )
            assert not watchdog.turn(loops, "ok: all well").alive
            assert manager.seen("WATCHDOG") == 0
            release.set()
            wait_until(lambda: watchdog.turn(loops, "ok: all well").alive, 5, "the poller to turn again")
        finally:
            release.set()
            poller.stop()
        assert manager.seen("WATCHDOG", "1") == 1


def test_pollers_hung_on_dead_lines_stop_side_by_side() -> None:
    """Three lines whose reads hang: a stop of all of them keeps to one shared timeout (each told at once), not
    one timeout per line, and says that none ended; once the reads return, every thread ends."""
    release = threading.Event()
    entered = [threading.Event() for _ in range(3)]

    def hung(index: int) -> PolledDevice:
        def read() -> Reading:
            entered[index].set()
            release.wait(10)
            raise FieldTimeout("no answer")

        return PolledDevice(f"pc{index}", 1, 0.02, read)

    pollers = [_poller(hung(index), line=f"rs485-{index}") for index in range(3)]
    for poller in pollers:
        poller.start()
    try:
        assert all(event.wait(5) for event in entered)
        started = time.monotonic()
        ended = stop_all(pollers, 1.0)
        took_s = time.monotonic() - started
        assert ended == {f"poller-rs485-{index}": False for index in range(3)}
        assert took_s < 2.5, f"the stop took {took_s:.1f} s, one timeout per line"
    finally:
        release.set()
    assert all(poller.stop(5.0) for poller in pollers)


def _kernel_enforces_mdwe() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", UNDER_MDWE.replace("os.execv", "sys.exit(0) or os.execv")], check=False
    )
    return probe.returncode == 0


@pytest.fixture
def agent_config(tmp_path: Path, broker: MosquittoBroker) -> Path:
    """A station with no field lines: the station loop, recorder and uplink run, on a real broker."""
    generate_key_file(tmp_path / "keys" / "device.key")
    settings = {
        "station": {"id": "WD-0001", "allow_empty": True},
        "keys": {"device_key": "keys/device.key"},
        "outbox": {"path": "outbox.sqlite"},
        "uplink": {"broker": broker.address, "ack_mode": "broker"},
        "heartbeat": {"interval_s": 1},
        "status": {"path": "status.json", "socket": "status.sock", "interval_s": 0.2},
    }
    path = tmp_path / "agent.toml"
    path.write_bytes(tomli_w.dumps(settings).encode())
    return path


class TestAgentProcess:
    def test_a_running_agent_says_ready_pings_and_says_stopping(
        self, agent_config: Path, manager: NotifySocket, tmp_path: Path
    ) -> None:
        """As systemd starts it (NOTIFY_SOCKET, WATCHDOG_USEC, and W^X memory where the kernel can enforce it):
        READY=1 with a status line, WATCHDOG=1 at half the period while its loops run, STOPPING=1 on SIGTERM."""
        arguments = ["run", "--config", str(agent_config)]
        command = [sys.executable, "-c", UNDER_MDWE, *arguments]
        if not _kernel_enforces_mdwe():
            command = [sys.executable, "-m", "agent.cli", *arguments]
        environment = {**os.environ, "NOTIFY_SOCKET": str(manager.path), "WATCHDOG_USEC": "1000000"}
        log_path = tmp_path / "agent.log"
        with log_path.open("wb") as log:
            agent = subprocess.Popen(command, env=environment, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        try:
            wait_until(lambda: manager.seen("READY", "1") == 1, 20, "READY=1")
            started = time.monotonic()
            wait_until(lambda: manager.seen("WATCHDOG", "1") >= 3, 5, "three watchdog pings")
            elapsed = time.monotonic() - started
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(20) == 0
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait(10)
        assert elapsed < 2.0, f"a ping at least every 0.5 s expected, three took {elapsed:.2f} s"
        ready = next(message for message in manager.messages if "READY" in message)
        assert ready["STATUS"].startswith(("ok: uplink", "starting: ", "degraded: "))
        assert manager.seen("STOPPING", "1") == 1
        stopping_at = next(i for i, message in enumerate(manager.messages) if "STOPPING" in message)
        assert all("WATCHDOG" not in message for message in manager.messages[stopping_at:])
        assert "watchdog_withheld" not in log_path.read_text()


class TestJournal:
    def test_log_lines_carry_their_priority_only_into_the_journal_stream(self, tmp_path: Path) -> None:
        """Under systemd (stderr is the stream JOURNAL_STREAM names) each line starts with its syslog priority,
        which journald files the entry under; on any other stderr the lines stay plain JSON."""
        script = (
            "from agent.logs import configure, get_logger; configure('info', 'json');"
            "get_logger('t').warning('disk_low', free_mb=5); get_logger('t').error('outbox_unwritable')"
        )
        lines: dict[bool, list[str]] = {}
        for journal in (True, False):
            path = tmp_path / f"stderr-{journal}.log"
            with path.open("wb") as stderr:
                status = os.fstat(stderr.fileno())
                stream = f"{status.st_dev}:{status.st_ino}" if journal else f"{status.st_dev}:{status.st_ino + 1}"
                environment = {**os.environ, "JOURNAL_STREAM": stream}
                subprocess.run([sys.executable, "-c", script], stderr=stderr, env=environment, check=True, timeout=30)
            lines[journal] = path.read_text().splitlines()
        assert [line[:4] for line in lines[True]] == ["<4>{", "<3>{"]
        assert [line[:2] for line in lines[False]] == ['{"', '{"']
