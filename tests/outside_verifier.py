"""A verifier written from the contract page alone: outside code that shares nothing with the agent's signing
path or the reference platform, so that a bug there cannot hide on both sides."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key


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
