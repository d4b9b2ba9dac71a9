"""A clean stop is one in which every loop ended: only then is the clean-stop mark written, by the recorder as its
last act, and a stop with a loop that hangs leaves the outbox marked running, so the next start says unclean_stop.

The agent runs in this process (its stop path is what is tested), on a real Mosquitto, a real SQLite outbox and,
for the hanging devices, a real TCP listener that takes the connection and never answers."""

from __future__ import annotations

import json
import logging
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from support.waiting import wait_until

from agent.daemon import Agent
from agent.ledger.keys import generate_key_file
from agent.ledger.outbox import Outbox
from agent.setup import prepare
from simulators.broker import MosquittoBroker

HANG_TIMEOUT_MS = 30_000
"""Longer than a poller's stop waits (5 s): a read that takes this long keeps the poller's thread."""


def agent_config(workdir: Path, broker: MosquittoBroker, lines: list[dict[str, Any]]) -> Path:
    """An agent in `workdir` with these lines; the key is made on first use and kept after."""
    if not (workdir / "keys" / "device.key").exists():
        generate_key_file(workdir / "keys" / "device.key")
    settings: dict[str, Any] = {
        "station": {"id": "STOP-0001", "allow_empty": True},
        "keys": {"device_key": "keys/device.key"},
        "outbox": {"path": "outbox.sqlite"},
        # No platform listens here: with the broker's PUBACK as the ack, a stop does not spend the uplink's few
        # seconds of grace waiting for platform acks that cannot come.
        "uplink": {"broker": broker.address, "ack_mode": "broker"},
        "status": {"path": "status.json", "socket": "status.sock", "interval_s": 0.2},
        "logging": {"format": "json", "level": "info"},
        "lines": lines,
    }
    path = workdir / "agent.toml"
    path.write_bytes(tomli_w.dumps(settings).encode())
    return path


def run_until(config: Path, started: threading.Event | None = None, *, ready: Path) -> None:
    """Runs the agent in a thread until `ready` (its status file) exists, then waits for `started` if given,
    and stops it."""
    stop = threading.Event()
    agent = Agent(prepare(config))
    runner = threading.Thread(target=agent.run, args=(stop,), name="agent-under-test")
    runner.start()
    try:
        wait_until(ready.exists, 20, "the agent to write its status")
        if started is not None:
            assert started.wait(10), "the poller never reached the device"
    finally:
        stop.set()
        runner.join(60)
    assert not runner.is_alive()


def meta_running(outbox_path: Path) -> str | None:
    outbox = Outbox(outbox_path, 8 * 1024 * 1024)
    try:
        return outbox.meta("running")
    finally:
        outbox.close()


def event_kinds(outbox_path: Path) -> list[str]:
    outbox = Outbox(outbox_path, 8 * 1024 * 1024)
    try:
        return [json.loads(c)["body"].get("kind", "") for c in outbox.canonical_since("event", 0)]
    finally:
        outbox.close()


def test_a_normal_stop_leaves_the_clean_mark(tmp_path: Path, broker: MosquittoBroker) -> None:
    """Every loop ended: the outbox says running=0, and the next start records no unclean_stop."""
    config = agent_config(tmp_path, broker, [])
    run_until(config, ready=tmp_path / "status.json")
    assert meta_running(tmp_path / "outbox.sqlite") == "0"
    (tmp_path / "status.json").unlink()
    run_until(config, ready=tmp_path / "status.json")
    assert "unclean_stop" not in event_kinds(tmp_path / "outbox.sqlite")


def stop_beside_a_device_that_never_answers(
    tmp_path: Path, broker: MosquittoBroker, caplog: pytest.LogCaptureFixture, line: dict[str, Any]
) -> list[Any]:
    """Runs the agent with `line`, whose endpoint takes the connection and the first request and answers nothing,
    and stops it once the request is in; returns the loops each `loops_not_ended` named."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(20)
        config = agent_config(tmp_path, broker, [{**line, "port": listener.getsockname()[1]}])
        asked = threading.Event()
        held: list[socket.socket] = []

        def hang() -> None:
            """Takes the poller's connection and its first request, and answers nothing."""
            connection, _ = listener.accept()
            held.append(connection)
            connection.settimeout(20)
            if connection.recv(256):
                asked.set()

        device = threading.Thread(target=hang, name="hanging-device")
        device.start()
        with caplog.at_level(logging.INFO, logger="agent"):
            run_until(config, asked, ready=tmp_path / "status.json")
        device.join(20)
        for connection in held:
            connection.close()
    return [getattr(r, "fields", {}).get("loops") for r in caplog.records if r.getMessage() == "loops_not_ended"]


def test_a_poller_stuck_on_a_hanging_gauge_leaves_no_clean_mark(
    tmp_path: Path, broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A tank gauge that takes the request and never answers holds its line's poller past its stop (a gauge's
    read waits for its answer): the stop names the poller, the outbox stays marked running, and the next start
    records unclean_stop."""
    gauge = {"name": "tg1", "poll_interval_ms": 1000}
    line = {"kind": "tls_tcp", "name": "tls-1", "host": "127.0.0.1", "timeout_ms": HANG_TIMEOUT_MS, "devices": [gauge]}
    stuck = stop_beside_a_device_that_never_answers(tmp_path, broker, caplog, line)
    assert stuck == [["poller-tls-1"]]
    assert meta_running(tmp_path / "outbox.sqlite") == "1"
    (tmp_path / "status.json").unlink()
    run_until(agent_config(tmp_path, broker, []), ready=tmp_path / "status.json")
    assert event_kinds(tmp_path / "outbox.sqlite").count("unclean_stop") == 1


def test_a_modbus_tcp_device_that_never_answers_does_not_hold_the_stop(
    tmp_path: Path, broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """The Modbus TCP lines' thread waits for answers without blocking on any: a device that never answers is given
    up at the stop, every loop ends, and the outbox gets its clean-stop mark."""
    device = {"name": "pc1", "unit": 1, "profile": "sim-pump-controller", "poll_interval_ms": 100}
    line = {"kind": "tcp", "name": "tcp-1", "host": "127.0.0.1", "timeout_ms": HANG_TIMEOUT_MS, "devices": [device]}
    assert stop_beside_a_device_that_never_answers(tmp_path, broker, caplog, line) == []
    assert meta_running(tmp_path / "outbox.sqlite") == "0"
