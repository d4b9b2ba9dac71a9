"""`station-agent status` over the agent's local socket: the server, the command's words and exit codes, and
a real agent answering it (and driving its LED) from start to stop."""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from station_rig import StationRig
from status_sample import fault_status, offline_status, sample_status, starting_status
from support.waiting import wait_until
from test_led import fake_led, seen

from agent import cli, start_failure
from agent.cli import main
from agent.status import AgentStatus, status_json
from agent.status_socket import StatusSocketBusy, StatusSocketServer, ask
from agent.status_text import not_running
from simulators.broker import MosquittoBroker


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StatusSocketServer]:
    running = StatusSocketServer(tmp_path / "run" / "status.sock")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def run_failing(config: Path, runtime: Path) -> subprocess.CompletedProcess[str]:
    """`station-agent run` with this config, under systemd's runtime directory `runtime`; it is to fail."""
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
        env={**os.environ, "RUNTIME_DIRECTORY": str(runtime)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestServer:
    def test_each_connection_gets_the_latest_snapshot_then_eof(self, server: StatusSocketServer) -> None:
        """The server gives whatever the main loop offered last, whole, and closes."""
        assert ask(server.path) == b""
        server.offer(b'{"n":1}')
        assert ask(server.path) == b'{"n":1}'
        server.offer(b'{"n":2}')
        assert [ask(server.path) for _ in range(3)] == [b'{"n":2}'] * 3

    def test_the_socket_is_for_the_agents_group_only(self, server: StatusSocketServer) -> None:
        assert stat.S_ISSOCK(server.path.stat().st_mode)
        assert stat.S_IMODE(server.path.stat().st_mode) == 0o660

    def test_a_reader_that_never_reads_holds_up_nobody(self, server: StatusSocketServer) -> None:
        """A client that connects and sits there does not keep the next one waiting, nor the agent's offers."""
        server.offer(b"x" * 50_000)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
            idle.connect(str(server.path))
            server.offer(b"fresh")
            assert ask(server.path, timeout_s=2.0) == b"fresh"

    def test_a_stale_socket_is_taken_over_and_a_live_one_is_not(self, tmp_path: Path) -> None:
        """A socket a killed agent left behind is replaced; one a live process answers on is refused."""
        path = tmp_path / "status.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
            dead.bind(str(path))
        first = StatusSocketServer(path)
        first.start()
        try:
            first.offer(b"first")
            with pytest.raises(StatusSocketBusy, match="another process answers"):
                StatusSocketServer(path).start()
            assert ask(path) == b"first"
        finally:
            first.stop()

    def test_a_path_that_is_not_a_socket_is_left_alone(self, tmp_path: Path) -> None:
        path = tmp_path / "status.json"
        path.write_text("{}")
        with pytest.raises(StatusSocketBusy, match="not a socket"):
            StatusSocketServer(path).start()
        assert path.read_text() == "{}"

    def test_a_failed_accept_does_not_end_the_answering(self, server: StatusSocketServer) -> None:
        """The box runs out of file descriptors for a moment (accept fails with EMFILE, twice, for the reader that
        is waiting): the server waits and answers it afterwards, instead of leaving `status` without an answer
        until the agent restarts."""

        class Exhausted:
            def __init__(self, listener: socket.socket) -> None:
                self.listener, self.failures = listener, 0

            def accept(self) -> tuple[socket.socket, Any]:
                if self.failures < 2:
                    self.failures += 1
                    raise OSError(errno.EMFILE, "Too many open files")
                return self.listener.accept()

            def close(self) -> None:
                self.listener.close()

        assert server._listener is not None
        exhausted = Exhausted(server._listener)
        server._listener = exhausted  # type: ignore[assignment]
        server.offer(b'{"health": "ok"}')
        assert ask(server.path, timeout_s=10.0) == b'{"health": "ok"}'
        assert exhausted.failures == 2

    def test_a_reader_waits_its_turn_while_the_queue_of_readers_is_full(self, tmp_path: Path) -> None:
        """More readers at once than the queue holds (a script asking in a loop, a burst of connections that
        vanish): `status` waits for room up to its timeout rather than say at once that no agent runs."""
        path = tmp_path / "busy.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))
            listener.listen(0)
            listener.settimeout(10.0)
            queued: list[socket.socket] = []
            for _ in range(16):
                waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                waiting.setblocking(False)
                try:
                    waiting.connect(str(path))
                except BlockingIOError:
                    waiting.close()
                    break
                queued.append(waiting)
            else:
                pytest.fail("the listener's queue never filled")
            answers: list[bytes] = []
            errors: list[OSError] = []

            def asking() -> None:
                try:
                    answers.append(ask(path, timeout_s=10.0))
                except OSError as exc:
                    errors.append(exc)

            reader = threading.Thread(target=asking)
            reader.start()
            time.sleep(0.3)  # the reader meets the full queue first
            for _ in range(len(queued) + 1):
                if errors:
                    break
                connection, _ = listener.accept()
                with connection:
                    connection.sendall(b'{"n":1}')
            reader.join(10.0)
            for waiting in queued:
                waiting.close()
        assert (answers, errors) == ([b'{"n":1}'], [])

    def test_restarts_and_repeated_stops_leave_no_descriptor_behind(self, tmp_path: Path) -> None:
        """A server stopped before it started, started and stopped twice over, twenty times in one process: each
        answers while it runs, and the process holds the same descriptors at the end as at the start."""
        before = sorted(os.listdir("/proc/self/fd"))
        StatusSocketServer(tmp_path / "never.sock").stop()
        for n in range(20):
            running = StatusSocketServer(tmp_path / "status.sock")
            running.start()
            running.offer(b'{"n":%d}' % n)
            assert ask(running.path) == b'{"n":%d}' % n
            running.stop()
            running.stop()
            assert not running._thread.is_alive() and not running.path.exists()
        assert sorted(os.listdir("/proc/self/fd")) == before

    def test_a_start_short_of_descriptors_leaves_none_behind(self, tmp_path: Path) -> None:
        """The process runs out of file descriptors part way through the start (the socket made, its wake-up
        pipe or selector not): the start fails with OSError and leaves neither a descriptor nor a socket file
        that nobody answers on; with enough of them it starts."""
        script = """
import json, os, resource, sys
from pathlib import Path
from agent.status_socket import StatusSocketServer
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
results = []
for spare in range(6):
    server = StatusSocketServer(Path(sys.argv[1]) / f"s{spare}.sock")
    before = sorted(os.listdir("/proc/self/fd"))
    held = []
    for _ in range(64):
        try:
            held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            break
    for descriptor in held[:spare]:
        os.close(descriptor)
    try:
        server.start()
        started = True
    except OSError:
        started = False
    for descriptor in held[spare:]:
        os.close(descriptor)
    if started:
        server.stop()
    left = sorted(set(os.listdir("/proc/self/fd")) - set(before))
    results.append({"spare": spare, "started": started, "left": left, "socket": server.path.exists()})
print(json.dumps(results))
"""
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
        )
        results = json.loads(done.stdout)
        assert [r["spare"] for r in results if not r["started"]][:1] == [0]
        assert results[-1]["started"]
        assert [r for r in results if r["left"] or r["socket"]] == []

    def test_stop_removes_the_socket(self, server: StatusSocketServer) -> None:
        """After a stop nothing answers, which is how `status` tells that the agent is not running."""
        server.stop()
        assert not server._thread.is_alive()
        assert not server.path.exists()
        with pytest.raises(FileNotFoundError):
            ask(server.path)


class TestStatusCommand:
    @pytest.mark.parametrize(
        ("status", "code", "headline"),
        [
            (sample_status(), 0, "ALL WELL"),
            (offline_status(), 1, "BUFFERING"),
            (fault_status(), 2, "NEEDS SOMEONE"),
            (starting_status(), 5, "STARTING"),
        ],
    )
    def test_plain_words_and_exit_codes(
        self,
        server: StatusSocketServer,
        capsys: pytest.CaptureFixture[str],
        status: AgentStatus,
        code: int,
        headline: str,
    ) -> None:
        """0 all well, 1 offline but buffering, 2 needs someone, 5 starting; the words start with the verdict."""
        server.offer(status_json(status))
        assert main(["status", "--socket", str(server.path), "--lang", "en"]) == code
        out = capsys.readouterr().out
        assert out.startswith(headline) and "What to do:" in out

    def test_the_station_language_is_the_default(
        self, server: StatusSocketServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A station in China is answered in Chinese unless --lang says otherwise."""
        server.offer(status_json(fault_status()))
        assert main(["status", "--socket", str(server.path)]) == 2
        assert capsys.readouterr().out.startswith("需要处理")

    def test_json_is_the_snapshot_as_the_agent_gave_it(
        self, server: StatusSocketServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.offer(status_json(fault_status()))
        assert main(["status", "--socket", str(server.path), "--json"]) == 2
        document = json.loads(capsys.readouterr().out)
        assert document["health"] == "fault"
        assert document["alarms"][0]["subject"] == "D01-N2"
        assert document["backlog"] == {"records": 0, "oldest_ts": None, "oldest_age_s": None}

    def test_agent_not_running(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """No socket: exit 3 and words that say so and how to start it."""
        assert main(["status", "--socket", str(tmp_path / "none.sock")]) == 3
        out = capsys.readouterr().out
        assert out.startswith("The station agent is not running")
        assert "sudo systemctl start station-agent" in out
        assert main(["status", "--socket", str(tmp_path / "none.sock"), "--json"]) == 3
        document = json.loads(capsys.readouterr().out)
        assert document["health"] == "stopped"
        assert [problem["kind"] for problem in document["problems"]] == ["agent_not_running"]

    def test_agent_not_running_in_chinese_says_what_to_do_without_english_error_text(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A Chinese station is told in Chinese that no sales are recorded, how to start the agent and whom to call;
        the socket and the error's code only on a last technical line, no English errno text."""
        sock = tmp_path / "none.sock"
        assert main(["status", "--socket", str(sock), "--lang", "zh_CN"]) == 3
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == "监管程序没有运行，现在不记录销售。"
        said = "".join(line.strip() for line in lines[1:-1])
        assert "sudo systemctl start station-agent" in said and "安装商或技术支持" in said
        assert lines[-1] == f"技术信息：{sock} 无应答（ENOENT）。"
        assert str(sock) not in "".join(lines[:-1])
        assert "No such file" not in "\n".join(lines) and "Errno" not in "\n".join(lines)

    def test_a_socket_staff_may_not_open_is_not_a_stopped_agent(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Permission denied says how to ask (the station-agent group, sudo), not that the agent is down."""
        said = not_running("en", tmp_path / "status.sock", PermissionError(13, "Permission denied"), None)
        assert said.startswith("You may not ask the station agent") and "station-agent group" in said
        assert "not running" not in said and said.endswith("(EACCES).")

    def test_staff_learn_why_the_last_start_failed(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`run` with a wrong config leaves a group-readable note in the runtime directory (the field's name, never
        its value, which may be a password), and `status` shows it, in Chinese and English, while nothing runs."""
        config = tmp_path / "agent.toml"
        config.write_text(
            '[station]\nid = "ST-1"\ntimezone = "Asia/Shanghai"\nallow_empty = true\n'
            '[uplink]\nbroker = "127.0.0.1:1883"\npassword = 987654\n'
        )
        runtime = tmp_path / "run"
        runtime.mkdir()
        done = run_failing(config, runtime)
        assert done.returncode == 2, done.stderr
        note = runtime / "last-start-failure"
        assert stat.S_IMODE(note.stat().st_mode) & 0o047 == 0o040  # the group reads it, others do not
        when, kind, detail = note.read_text().rstrip("\n").split("\t")
        assert (kind, detail) == ("config", "uplink.password") and "987654" not in note.read_text()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0800", when), when  # the station's time
        sock = str(runtime / "status.sock")
        assert main(["status", "--socket", sock, "--lang", "zh_CN"]) == 3
        chinese = "".join(capsys.readouterr().out.split())
        assert f"上次在{when[:16].replace(' ', '')}" in chinese and "原因：配置文件有误（uplink.password）" in chinese
        assert main(["status", "--socket", sock, "--lang", "en"]) == 3
        english = " ".join(capsys.readouterr().out.split())
        assert "because its configuration has a mistake (uplink.password)" in english
        assert main(["status", "--socket", sock, "--json"]) == 3
        detail = json.loads(capsys.readouterr().out)["problems"][0]["detail"]
        assert detail.endswith(f"it last stopped at {when}: config: uplink.password")

    def test_a_config_nested_past_the_parser_is_a_config_error_not_a_crash(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A config of 100,000 nested arrays (a file gone wrong, or written to hurt): `run` exits 2 with the
        TOML problem and leaves the note (config, syntax), and `status` reading the same config for the station's
        language still answers, where both died of the parser's RecursionError."""
        config = tmp_path / "agent.toml"
        config.write_text('[station]\nid = "ST-1"\ntimezone = "Asia/Shanghai"\nx = ' + "[" * 100_000)
        runtime = tmp_path / "run"
        runtime.mkdir()
        done = run_failing(config, runtime)
        assert done.returncode == 2 and "nested too deep" in done.stderr, done.stderr[-500:]
        _, kind, detail = (runtime / "last-start-failure").read_text().rstrip("\n").split("\t")
        assert (kind, detail) == ("config", "(syntax)")
        monkeypatch.setattr(cli, "DEFAULT_CONFIG", config)
        assert main(["status", "--socket", str(tmp_path / "none.sock")]) == 3
        assert "not running" in capsys.readouterr().out

    def test_a_broken_default_config_still_gives_the_stations_language(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The config that made the start fail cannot be validated, but it still says the station is in China:
        staff asking `status` are answered in Chinese (the zone read leniently), not in English."""
        config = tmp_path / "agent.toml"
        config.write_text('[station]\nid = "ST-1"\ntimezone = "Asia/Shanghai"\n[heartbeat]\ninterval_s = -2\n')
        monkeypatch.setattr(cli, "DEFAULT_CONFIG", config)
        assert main(["status", "--socket", str(tmp_path / "none.sock")]) == 3
        assert capsys.readouterr().out.startswith("监管程序没有运行")
        assert start_failure.station_words(config).language == "zh_CN"
        config.write_text('[station]\nlocale = "en"\ntimezone = "Asia/Shanghai"\n')
        assert start_failure.station_words(config).language == "en"
        config.write_text('[station]\ntimezone = "Mars/Olympus"\n[[[')
        assert start_failure.station_words(config) == start_failure.StationWords(None, None)

    def test_agent_still_starting(self, server: StatusSocketServer, capsys: pytest.CaptureFixture[str]) -> None:
        """Before the first snapshot: exit 5 (starting), in words or as JSON."""
        assert main(["status", "--socket", str(server.path)]) == 5
        assert "starting" in capsys.readouterr().out
        assert main(["status", "--socket", str(server.path), "--json"]) == 5
        assert json.loads(capsys.readouterr().out) == {"health": "starting", "problems": []}

    def test_an_answer_it_cannot_read(self, server: StatusSocketServer, capsys: pytest.CaptureFixture[str]) -> None:
        server.offer(b'{"health": "ok"}')
        assert main(["status", "--socket", str(server.path)]) == 4
        assert "not a status this version understands" in capsys.readouterr().err
        assert main(["status", "--socket", str(server.path), "--json"]) == 4
        assert json.loads(capsys.readouterr().out)["health"] == "unknown"

    def test_the_socket_comes_from_the_config(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--config finds the socket the agent was told to serve (relative to the config file)."""
        config = tmp_path / "agent.toml"
        config.write_text(
            '[station]\nid = "ST-1"\nallow_empty = true\n'
            '[uplink]\nbroker = "127.0.0.1:1"\n[status]\nsocket = "run/status.sock"\n'
        )
        running = StatusSocketServer(tmp_path / "run" / "status.sock")
        running.start()
        try:
            running.offer(status_json(sample_status()))
            assert main(["status", "--config", str(config)]) == 0
        finally:
            running.stop()
        assert main(["status", "--config", str(config)]) == 3
        assert main(["status", "--config", str(tmp_path / "missing.toml")]) == 4
        assert "missing.toml" in capsys.readouterr().err


@pytest.mark.slow
class TestRunningAgent:
    def test_answers_status_and_drives_the_led_from_start_to_stop(
        self, tmp_path: Path, private_broker: MosquittoBroker, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A real agent on simulated devices and a real broker: status says all well with its lines, sales and
        backlog, the LED is steady green; without the broker it says offline (exit 1) and the LED blinks;
        once stopped the LED is dark and status says the agent is not running."""
        leds = tmp_path / "leds"
        green, red = fake_led(leds, "status:green"), fake_led(leds, "status:red")
        rig = StationRig(
            tmp_path,
            private_broker,
            agent={
                "status": {"socket": "status.sock"},
                "led": {"enabled": True, "green": "status:green", "red": "status:red", "leds_dir": str(leds)},
            },
        )
        command = ["status", "--config", str(rig.config_path)]
        try:
            assert main(command) == 3
            rig.simulated.start()
            rig.platform.start()
            rig.start_agent()

            def answer() -> dict[str, Any]:
                try:
                    document = ask(tmp_path / "status.sock")
                except OSError:
                    return {}
                return json.loads(document) if document else {}

            wait_until(lambda: bool((now := answer()).get("last_sales")) and now["health"] == "ok", 20, "a sale")
            capsys.readouterr()
            assert main(command) == 0
            text = capsys.readouterr().out
            assert "ALL WELL" in text and "Devices    4 of 4 answering" in text
            assert "Last sale  D0" in text
            assert (lit(green), lit(red)) == (("none", "255"), ("none", "0"))

            rig.broker.stop(kill=True)
            wait_until(lambda: answer().get("health") == "degraded", 15, "the agent to notice the broker is gone")
            wait_until(lambda: seen(green)["trigger"] == "timer", 5, "the green LED to blink")
            assert lit(red) == ("none", "0")
            wait_until(lambda: answer().get("backlog", {}).get("records", 0) > 0, 10, "records to wait on the box")
            assert main([*command, "--json"]) == 1
            printed = capsys.readouterr().out.splitlines()[-1]  # the platform, in this process, logs to stdout too
            assert json.loads(printed)["backlog"]["oldest_age_s"] is not None

            assert rig.stop_agent() == 0
            assert (lit(green), lit(red)) == (("none", "0"), ("none", "0"))
            assert not (tmp_path / "status.sock").exists()
            assert main(command) == 3
        finally:
            rig.close()

    def test_a_status_file_that_cannot_be_written_is_said_once_and_the_socket_still_answers(
        self, tmp_path: Path, private_broker: MosquittoBroker
    ) -> None:
        """The status file's directory is a plain file (as good as a full or broken /run): every turn fails to write
        it, the log says so once rather than every turn, and `status` still gets its answer over the socket."""
        (tmp_path / "blocked").write_text("not a directory")
        rig = StationRig(
            tmp_path,
            private_broker,
            agent={"status": {"path": "blocked/status.json", "socket": "status.sock", "interval_s": 0.05}},
        )
        try:
            rig.start_agent()

            def answered() -> bool:
                try:
                    return bool(ask(tmp_path / "status.sock"))
                except OSError:
                    return False

            wait_until(answered, 20, "the agent to answer on its socket")
            time.sleep(0.75)  # fifteen more turns, each failing to write the file
            assert answered()
            assert rig.stop_agent() == 0
            said = [line for line in rig.agent_log().splitlines() if "status_not_written" in line]
            assert len(said) == 1 and "blocked" in said[0]
        finally:
            rig.close()

    def test_all_well_waits_for_the_platform_to_confirm_this_run(
        self, tmp_path: Path, private_broker: MosquittoBroker
    ) -> None:
        """With the broker up and no platform acking: `starting` at first, `degraded` once records wait longer than
        twice ack_timeout_s (1.5 s here, so 3 s), never ALL WELL;
        `ok` only after the platform confirms."""
        rig = StationRig(tmp_path, private_broker, agent={"uplink": {"ack_timeout_s": 1.5}})
        seen_health: list[str] = []

        def health() -> str:
            now = str(rig.status().get("health", ""))
            if now and (not seen_health or seen_health[-1] != now):
                seen_health.append(now)
            return now

        try:
            rig.simulated.start()
            rig.start_agent()
            wait_until(lambda: health() == "starting", 15, "the agent to say it is starting")
            assert [p["kind"] for p in rig.status()["problems"]] == ["platform_awaiting"]
            wait_until(lambda: health() == "degraded", 20, "the missing confirmation to count")
            problems = rig.status()["problems"]
            assert [p["kind"] for p in problems] == ["platform_unconfirmed"] and problems[0]["size"] > 0
            rig.platform.start()
            wait_until(lambda: health() == "ok", 30, "the platform to confirm")
            assert seen_health == ["starting", "degraded", "ok"]
            assert rig.stop_agent() == 0
        finally:
            rig.close()


def lit(directory: Path) -> tuple[str, str]:
    """An LED's trigger and brightness: what shows, whatever blink times are left in its files."""
    files = seen(directory)
    return files["trigger"], files["brightness"]


class TestStartFailureNote:
    def test_a_note_is_one_printable_line_and_a_clean_start_removes_it(self, tmp_path: Path) -> None:
        """record writes one bounded, printable line that read gives back; clear removes it; a note another hand
        wrote (a kind it does not know) or a symlink in its place is not read."""
        start_failure.record(tmp_path, "startup", "outbox refused\x1b[31m;\nrun recover " + "x" * 500)
        failure = start_failure.read(tmp_path)
        assert failure is not None and failure.kind == "startup"
        assert failure.detail.startswith("outbox refused [31m; run recover x") and len(failure.detail) == 160
        start_failure.clear(tmp_path)
        assert start_failure.read(tmp_path) is None
        (tmp_path / "last-start-failure").write_text("2026-12-07 14:03:22 +0800\tpassword\thunter2\n")
        assert start_failure.read(tmp_path) is None
        (tmp_path / "last-start-failure").unlink()
        (tmp_path / "elsewhere").write_text("2026-12-07 14:03:22 +0800\tconfig\tx\n")
        (tmp_path / "last-start-failure").symlink_to(tmp_path / "elsewhere")
        assert start_failure.read(tmp_path) is None
