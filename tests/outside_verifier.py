"""A verifier written from the contract page alone, and a wiretap: outside code that shares nothing with the
agent's signing path or the reference platform, so that a bug there cannot hide on both sides."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import paho.mqtt.client as mqtt
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from paho.mqtt.enums import CallbackAPIVersion

from simulators.broker import MosquittoBroker


def independent_verify(
    station: str, records: list[dict[str, Any]], signatures: dict[int, str], public_pem: bytes
) -> None:
    """Check the contract: keys, seq 1..N, prev = SHA-256 of the previous canonical bytes, Ed25519 over them."""
    key = load_pem_public_key(public_pem)
    assert isinstance(key, Ed25519PublicKey)
    previous = "0" * 64
    for expected_seq, record in enumerate(records, start=1):
        assert sorted(record) == ["body", "prev", "seq", "station", "ts", "type", "v"]
        assert record["seq"] == expected_seq and record["v"] == 1 and record["station"] == station
        assert record["prev"] == previous
        canonical = rfc8785.dumps(record)
        key.verify(base64.b64decode(signatures[record["seq"]], validate=True), canonical)
        previous = hashlib.sha256(canonical).hexdigest()


class Wiretap:
    """An outside MQTT subscriber that keeps every records message of a station exactly as it came."""

    def __init__(self, broker: MosquittoBroker, station: str, prefix: str = "fsm/v1") -> None:
        self.messages: list[dict[str, Any]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"wiretap-{station}")
        self.client.on_message = lambda _c, _u, message: self.messages.append(json.loads(message.payload))
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"{prefix}/{station}/records", qos=1)
        self.client.loop_start()

    def signatures(self) -> dict[int, str]:
        return {item["record"]["seq"]: item["sig"] for message in self.messages for item in message["records"]}

    def records(self) -> list[dict[str, Any]]:
        """Every distinct record seen, by seq (re-sends are byte-identical, so the last copy is as good)."""
        by_seq = {item["record"]["seq"]: item["record"] for message in self.messages for item in message["records"]}
        return [by_seq[seq] for seq in sorted(by_seq)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
