"""The raw MQTT limit: a plain paho script that publishes given payloads at QoS 1 and waits for every PUBACK.

Run as its own process (`python -m bench.publisher PAYLOADS HOST PORT TOPIC INFLIGHT`), with nothing of the
agent imported, so that what it measures is paho, the broker and the loopback on this machine, and not the
benchmark's other threads. The payload file is a sequence of 4-byte big-endian lengths each followed by a
payload. It prints one JSON line: messages, bytes, seconds (from connect to the last PUBACK).
"""

from __future__ import annotations

import json
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

TIMEOUT_S = 120.0


def write_payloads(path: Path, payloads: list[bytes]) -> None:
    with path.open("wb") as handle:
        for payload in payloads:
            handle.write(struct.pack(">I", len(payload)))
            handle.write(payload)


def read_payloads(path: Path) -> list[bytes]:
    data = path.read_bytes()
    payloads, offset = [], 0
    while offset < len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        payloads.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return payloads


def publish_all(payloads: list[bytes], host: str, port: int, topic: str, inflight: int) -> dict[str, Any]:
    """Connect, publish every payload at QoS 1 with at most `inflight` unacknowledged, wait for all PUBACKs."""
    acked = 0
    done = threading.Event()
    connected = threading.Event()

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        connected.set()

    def on_publish(_c: mqtt.Client, _u: Any, _mid: int, _reason: Any, _p: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == len(payloads):
            done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-raw-publisher", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    client.on_connect = on_connect
    client.on_publish = on_publish
    started = time.perf_counter()
    client.connect(host, port, 30)
    client.loop_start()
    try:
        if not connected.wait(TIMEOUT_S):
            raise SystemExit(f"bench.publisher: no CONNACK from {host}:{port} within {TIMEOUT_S:g} s")
        for payload in payloads:
            client.publish(topic, payload, qos=1)
        finished = done.wait(TIMEOUT_S)
        seconds = time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()
    return {
        "messages": len(payloads),
        "acked": acked,
        "bytes": sum(len(payload) for payload in payloads),
        "seconds": seconds,
        "complete": finished,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print("usage: python -m bench.publisher PAYLOADS HOST PORT TOPIC INFLIGHT", file=sys.stderr)
        return 2
    path, host, port, topic, inflight = argv
    result = publish_all(read_payloads(Path(path)), host, int(port), topic, int(inflight))
    print(json.dumps(result), flush=True)
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
