"""An outside MQTT subscriber: a plain paho client that shares nothing with the agent's uplink."""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators.broker import MosquittoBroker

SUBACK_TIMEOUT_S = 10.0


class Wiretap:
    """Keeps every records message of a station exactly as it came.

    The constructor returns only once the broker has acknowledged the subscription (its SUBACK): a message
    published after that reaches the tap, so a test that starts the agent next misses nothing."""

    def __init__(self, broker: MosquittoBroker, station: str, prefix: str = "fsm/v1") -> None:
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"wiretap-{station}")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        self._client.subscribe(f"{prefix}/{station}/records", qos=1)
        if not subscribed.wait(SUBACK_TIMEOUT_S):
            self.close()
            raise AssertionError(f"no SUBACK in {SUBACK_TIMEOUT_S:g} s from {broker.address}; see {broker.log_path}")

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._messages.append(json.loads(message.payload))

    def _received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)

    def signatures(self) -> dict[int, str]:
        return {item["record"]["seq"]: item["sig"] for message in self._received() for item in message["records"]}

    def records(self) -> list[dict[str, Any]]:
        """Every distinct record seen, by seq (re-sends are byte-identical, so the last copy is as good)."""
        by_seq = {item["record"]["seq"]: item["record"] for message in self._received() for item in message["records"]}
        return [by_seq[seq] for seq in sorted(by_seq)]

    def has_seqs(self, count: int) -> bool:
        """Whether records 1..count have all come by."""
        return set(range(1, count + 1)) <= set(self.signatures())

    def close(self) -> None:
        """Disconnected first: the network thread then ends at once, where loop_stop alone waits out its select
        (up to a second)."""
        self._client.disconnect()
        self._client.loop_stop()
