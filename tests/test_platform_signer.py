"""A tiny station written from the contract page alone, for the platform tests, and the checks that pin it.

The platform tests must not build their records with the code they test, or a shared mistake would pass on
both sides. So this module signs with `rfc8785` and `cryptography` directly, and its own tests pin it to bytes
worked out by hand (with `printf | sha256sum`), not to anything the platform computes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simulators.broker import MosquittoBroker
from simulators.platform.keys import StationPublicKey, public_key_from_pem

ZEROS = "0" * 64
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
"""The secret key of RFC 8032, section 7.1, test 1; its public key is d75a9801...0751 1a."""


def canonical(record: dict[str, Any]) -> bytes:
    return bytes(rfc8785.dumps(record))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TinySigner:
    """A station's key and a hash chain of its records, built the way the contract page says."""

    def __init__(self, station: str = "ST-0001", secret: bytes | None = None) -> None:
        self.station = station
        self.key = Ed25519PrivateKey.from_private_bytes(secret) if secret else Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.kid = hashlib.sha256(raw).digest()[:8].hex()

    def pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def platform_key(self) -> StationPublicKey:
        """The public key as the platform loads it from the station's PEM file."""
        return public_key_from_pem(self.pem())

    def record(
        self, seq: int, prev: str, body: dict[str, Any] | None = None, type_: str = "heartbeat"
    ) -> dict[str, Any]:
        millis = seq % 1000
        return {
            "v": 1,
            "station": self.station,
            "seq": seq,
            "ts": f"2026-11-27T08:{seq // 60000 % 60:02d}:{seq // 1000 % 60:02d}.{millis:03d}Z",
            "type": type_,
            "body": {"n": seq} if body is None else body,
            "prev": prev,
        }

    def chain(self, count: int) -> list[dict[str, Any]]:
        """Records 1..count, each linked to the one before."""
        records: list[dict[str, Any]] = []
        prev = ZEROS
        for seq in range(1, count + 1):
            records.append(self.record(seq, prev))
            prev = sha256_hex(canonical(records[-1]))
        return records

    def sign(self, record: dict[str, Any]) -> str:
        return base64.b64encode(self.key.sign(canonical(record))).decode("ascii")

    def item(self, record: dict[str, Any]) -> dict[str, Any]:
        return {"record": record, "sig": self.sign(record)}

    def message(self, records: list[dict[str, Any]]) -> bytes:
        return json.dumps({"kid": self.kid, "records": [self.item(record) for record in records]}).encode()


class StationClient:
    """The station's MQTT side: publishes payloads on its topics and collects the acks sent back."""

    def __init__(self, broker: MosquittoBroker, prefix: str, station: str) -> None:
        self.prefix = prefix
        self.station = station
        self.acks: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-station-{uuid.uuid4().hex[:8]}")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        self._client.subscribe(f"{prefix}/{station}/ack", qos=1)
        assert subscribed.wait(5), f"no SUBACK from the broker at {broker.address}"

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.acks.append(json.loads(message.payload))
            self._changed.notify_all()

    def publish(self, kind: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish on `{prefix}/{station}/{kind}`, waiting for the broker's PUBACK."""
        info = self._client.publish(f"{self.prefix}/{self.station}/{kind}", payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=5)

    def wait_acks(self, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """The acks, once at least `count` have come (fails after timeout_s)."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.acks) >= count, timeout=timeout_s), (
                f"{len(self.acks)} acks came within {timeout_s} s, expected {count}: {self.acks}"
            )
            return list(self.acks)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def test_signer_canonical_bytes_and_prev_are_those_worked_out_by_hand() -> None:
    """The signer's record 1 canonicalises to the literal below, whose SHA-256 was computed outside Python."""
    signer = TinySigner("ST-0001")
    record = signer.record(1, ZEROS, body={"uptime_s": 60, "note": "油站", "interval_s": 60})
    record["ts"] = "2026-11-27T08:15:02.113Z"
    expected = (
        '{"body":{"interval_s":60,"note":"油站","uptime_s":60},'
        '"prev":"0000000000000000000000000000000000000000000000000000000000000000",'
        '"seq":1,"station":"ST-0001","ts":"2026-11-27T08:15:02.113Z","type":"heartbeat","v":1}'
    ).encode()
    assert canonical(record) == expected
    assert sha256_hex(expected) == "b3777dcb2a8bf857e818d4331b5655e7aa0ed8316665e719d924d4e074918a65"


def test_signer_kid_of_the_rfc8032_key_is_worked_out_by_hand() -> None:
    """kid = first 8 bytes of SHA-256 of the raw public key d75a9801..., by `xxd -r -p | sha256sum`."""
    assert TinySigner(secret=RFC8032_SECRET).kid == "21fe31dfa154a261"


def test_signer_chain_links_each_record_to_the_one_before() -> None:
    """Record k's prev is the SHA-256 of record k-1's canonical bytes; record 1's is 64 zeros."""
    records = TinySigner().chain(3)
    assert [record["prev"] for record in records] == [
        ZEROS,
        sha256_hex(canonical(records[0])),
        sha256_hex(canonical(records[1])),
    ]
