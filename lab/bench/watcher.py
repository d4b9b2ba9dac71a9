"""An independent witness on the wire: a plain paho subscriber that notes when each live record goes by.

Run as its own process (`python -m bench.watcher HOST PORT TOPIC`), so that it neither slows the agent nor
trusts it. For every records message it prints one line per live marker in it (a heartbeat record, whose
`uptime_s` is the marker's number): `MONOTONIC_NS NUMBER`. CLOCK_MONOTONIC is one clock for every process of
the machine, so the benchmark can subtract its own submission times. It prints `ready` once subscribed, and
ends on SIGTERM or after its time limit.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

LIMIT_S = 600.0
_MARKER = re.compile(rb'"type":"heartbeat"')
_NUMBER = re.compile(rb'"uptime_s":(\d+)')


def markers(payload: bytes) -> list[int]:
    """The marker numbers in a records message; only heartbeat records carry `uptime_s`."""
    if _MARKER.search(payload) is None:
        return []
    return [int(number) for number in _NUMBER.findall(payload)]


def watch(host: str, port: int, topic: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        client.subscribe(topic, qos=1)

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, _reasons: Any, _p: Any) -> None:
        print("ready", flush=True)

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        seen_ns = time.monotonic_ns()
        for number in markers(bytes(message.payload)):
            print(f"{seen_ns} {number}", flush=True)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-watcher", protocol=MQTTProtocolVersion.MQTTv5)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, 30)
    client.loop_start()
    try:
        stop.wait(LIMIT_S)
    finally:
        client.disconnect()
        client.loop_stop()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m bench.watcher HOST PORT TOPIC", file=sys.stderr)
        return 2
    watch(argv[0], int(argv[1]), argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
