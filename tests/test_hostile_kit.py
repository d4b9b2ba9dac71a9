"""The hostile peers behave as documented, checked with outside clients (paho, mosquitto_sub, raw sockets)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.waiting import wait_until

from simulators.broker import MosquittoBroker
from simulators.hostile import poison
from simulators.hostile.link import FlakyLink
from simulators.hostile.rude_broker import RudeBroker, connack
from simulators.hostile.rude_hj212 import RudeHj212

DEADLINE_S = 10.0


def _paho(host: str, port: int, protocol: int = mqtt.MQTTv311) -> tuple[mqtt.Client, threading.Event, list[int]]:
    connected = threading.Event()
    disconnects: list[int] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kit-test", protocol=protocol)
    client.on_connect = lambda *_: connected.set()
    client.on_disconnect = lambda *_: disconnects.append(1)
    client.connect(host, port)
    return client, connected, disconnects


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_rude_broker_accepts_then_hangs_up(protocol: int) -> None:
    """connack-close: paho sees its CONNECT accepted, then the connection lost; the CONNECT is counted."""
    with RudeBroker("connack-close") as broker:
        client, connected, disconnects = _paho(broker.host, broker.port, protocol)
        client.loop_start()
        try:
            assert connected.wait(DEADLINE_S)
            wait_until(lambda: bool(disconnects), DEADLINE_S, "the disconnect")
        finally:
            client.loop_stop()
        assert len(broker.connects()) >= 1


def test_connack_bytes_follow_the_protocol_version() -> None:
    """MQTT 3.1.1's CONNACK has two bytes after the length, MQTT 5's a third (the empty property length)."""
    assert connack(4) == bytes([0x20, 0x02, 0x00, 0x00])
    assert connack(5) == bytes([0x20, 0x03, 0x00, 0x00, 0x00])


def test_rude_broker_junk_is_not_a_connack() -> None:
    """junk: a raw CONNECT gets bytes that are not a CONNACK, then the connection closes."""
    connect = bytes([0x10, 0x0C, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x3C, 0x00, 0x00])
    with RudeBroker("junk") as broker, socket.create_connection((broker.host, broker.port), timeout=5) as sock:
        sock.sendall(connect)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        assert answer and answer[:2] != bytes([0x20, 0x02])
        assert len(broker.connects()) == 1


def test_flaky_link_carries_mqtt_and_drops_on_cut(private_broker: MosquittoBroker) -> None:
    """Through the link a client connects to the real broker; a cut drops it and refuses until restore."""
    with FlakyLink((private_broker.host, private_broker.port)) as link:
        client, connected, disconnects = _paho(link.host, link.port)
        client.loop_start()
        try:
            assert connected.wait(DEADLINE_S)
            assert link.cut() >= 1
            wait_until(lambda: bool(disconnects), DEADLINE_S, "the drop to reach the client")
            with socket.create_connection((link.host, link.port), timeout=5) as sock:
                assert sock.recv(16) == b""  # turned away while down
            link.restore()
            connected.clear()
            client.reconnect()
            assert connected.wait(DEADLINE_S)
        finally:
            client.disconnect()
            client.loop_stop()
        assert link.cuts == 1 and link.refused >= 1 and link.connections >= 2


def test_retained_poison_reaches_an_outside_subscriber(private_broker: MosquittoBroker) -> None:
    """A retained poison ack is what mosquitto_sub (an outside client) then receives, byte for byte."""
    payload = poison.CATALOGUE["huge-int"].make(0)
    poison.publish(private_broker.host, private_broker.port, "fsm/v1/S1/ack", payload, retain=True)
    received = subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            private_broker.host,
            "-p",
            str(private_broker.port),
            "-t",
            "fsm/v1/S1/ack",
            "-C",
            "1",
            "-W",
            "10",
        ],
        capture_output=True,
        check=True,
        timeout=20,
    ).stdout
    assert received.rstrip(b"\n") == payload


def test_poison_catalogue_is_what_it_says() -> None:
    """Each named poison breaks what it claims to: digits, depth, size, JSON validity."""
    assert len(poison.CATALOGUE["huge-int"].make(0)) > 5000
    assert poison.CATALOGUE["deep"].make(0) == b"[" * 100_000
    assert len(poison.CATALOGUE["oversized"].make(1_000_000)) == 1_000_000
    with pytest.raises(ValueError):
        json.loads(poison.CATALOGUE["not-json"].make(0))
    with pytest.raises(ValueError, match="integer string conversion"):
        json.loads(poison.CATALOGUE["huge-int"].make(0))
    assert json.loads(poison.CATALOGUE["wrong-type"].make(0)) == {"upto": "12"}


@pytest.mark.parametrize("mode", ["garbage", "bad-crc"])
def test_rude_hj212_answers_every_frame_badly(mode: str) -> None:
    """garbage and bad-crc answer each frame with bytes an HJ 212 logger must refuse."""
    with RudeHj212(mode) as peer, socket.create_connection((peer.host, peer.port), timeout=5) as sock:
        sock.sendall(b"##0010QN=1;CP=&&&&ABCD\r\n")
        answer = sock.recv(4096)
        assert answer
        if mode == "garbage":
            assert b"##" not in answer
        else:
            assert answer.startswith(b"##") and answer.endswith(b"FFFF\r\n")


def test_rude_hj212_trickle_never_ends_a_frame() -> None:
    """trickle: the answer keeps coming a byte at a time and never ends its frame."""
    with (
        RudeHj212("trickle", trickle_s=0.01) as peer,
        socket.create_connection((peer.host, peer.port), timeout=5) as sock,
    ):
        sock.sendall(b"##0010QN=1;CP=&&&&ABCD\r\n")
        received = b""
        deadline = time.monotonic() + 2.0
        while len(received) < 30 and time.monotonic() < deadline:
            received += sock.recv(64)
        assert received.startswith(b"##9999QN=") and b"\r\n" not in received and len(received) >= 30


def test_cli_broker_prints_its_counts_as_json() -> None:
    """`station-sim hostile broker --duration` listens, counts a CONNECT, and ends with one JSON line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.cli", "hostile", "broker", "--duration", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "listening on 127.0.0.1:" in line
    port = int(line.rsplit(":", 1)[1])
    client, connected, _ = _paho("127.0.0.1", port)
    client.loop_start()
    try:
        assert connected.wait(DEADLINE_S)
    finally:
        client.loop_stop()
    out, _ = process.communicate(timeout=20)
    summary = json.loads(out.strip().splitlines()[-1])
    assert process.returncode == 0 and summary["mode"] == "connack-close" and summary["connects"] >= 1


def test_cli_poison_refuses_an_unknown_kind_with_json() -> None:
    """A usage error exits 2 with one JSON line naming the fix."""
    done = subprocess.run(
        [sys.executable, "-m", "simulators.cli", "hostile", "poison", "arsenic"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "poison list" in json.loads(done.stdout)["error"]
