"""The two signing suites of contract v1.2: Ed25519 with SHA-256, and SM2 with SM3 (GB/T 32918, GB/T 32905).

A suite fixes three things for the records a key signs: the signature, the hash of a record's canonical bytes
(what the next record's `prev` holds) and the form of the key id. The kid names its suite (`sm2-` and 16 hex
digits, or 16 bare hex digits for Ed25519), so every place that already carries a kid (the records message,
the outbox row, the chain anchor, a key_rotation body, a command envelope) knows the suite as well, and an
Ed25519 station's messages stay byte for byte those of v1.0. docs/contract.md, "Contract v1.2", says why.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from agent.ledger import ed25519
from agent.ledger.libcrypto import Pkey
from agent.ledger.sm2_params import DEFAULT_ID, POINT_BYTES, SPKI_PREFIX


class Suite(StrEnum):
    ED25519 = "ed25519"
    SM2 = "sm2"


SM2_KID_PREFIX: Final = "sm2-"
ED25519_KEY_BYTES: Final = ed25519.KEY_BYTES
_SPKI_PREFIXES: Final = {Suite.ED25519: ed25519.SPKI_PREFIX, Suite.SM2: SPKI_PREFIX}


def sm3_hex(data: bytes) -> str:
    """Lowercase hex SM3 (GB/T 32905) of `data`, from the system's OpenSSL through `hashlib`."""
    return hashlib.new("sm3", data).hexdigest()


def digest_hex(suite: Suite, data: bytes) -> str:
    """The suite's hash of a record's canonical bytes, in lowercase hex: SHA-256 or SM3, 64 digits either way."""
    if suite is Suite.SM2:
        return sm3_hex(data)
    return hashlib.sha256(data).hexdigest()


def suite_of_kid(kid: str) -> Suite:
    """The suite a key id names (`sm2-...` or bare hex, which is Ed25519 as in contract v1.0)."""
    return Suite.SM2 if kid.startswith(SM2_KID_PREFIX) else Suite.ED25519


def record_digest(kid: str, canonical: bytes) -> str:
    """The digest the next record's `prev` holds, for a record signed by `kid`: the signer's suite decides."""
    return digest_hex(suite_of_kid(kid), canonical)


def kid_of(suite: Suite, public_raw: bytes) -> str:
    """Ed25519: hex of the first 8 bytes of SHA-256 of the 32-byte key (v1.0). SM2: `sm2-`, then hex of the
    first 8 bytes of SM3 of the 65-byte uncompressed point."""
    if suite is Suite.SM2:
        return SM2_KID_PREFIX + sm3_hex(public_raw)[:16]
    return hashlib.sha256(public_raw).digest()[:8].hex()


class PublicKeyError(ValueError):
    """Public key bytes or a PEM that is not a key of either suite; the message says what it is instead."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A public key of either suite, with its kid; `verify` is the suite's check over the signed bytes."""

    suite: Suite
    raw: bytes
    sm2_id: bytes = DEFAULT_ID

    @property
    def kid(self) -> str:
        return kid_of(self.suite, self.raw)

    def verify(self, signature: bytes, data: bytes) -> bool:
        if self.suite is Suite.SM2:
            from agent.ledger.sm2 import Sm2PublicKey  # noqa: PLC0415 - the binding loads only for SM2 keys

            return Sm2PublicKey(self.raw).verify(signature, data, self.sm2_id)
        return ed25519.Ed25519PublicKey(self.raw).verify(signature, data)

    def pem(self) -> str:
        """SubjectPublicKeyInfo PEM, what `openssl pkey -pubin` and the platform read: in either suite the DER is a
        fixed head and the raw key, in base64 lines of 64 characters."""
        body = base64.b64encode(_SPKI_PREFIXES[self.suite] + self.raw).decode()
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"

    @classmethod
    def from_raw(cls, suite: Suite, raw: bytes, sm2_id: bytes = DEFAULT_ID) -> PublicKey:
        """Checked raw bytes: 32 for Ed25519, a 65-byte point on SM2's curve for SM2."""
        if suite is Suite.SM2:
            from agent.ledger.sm2 import Sm2Error, Sm2PublicKey  # noqa: PLC0415 - the binding loads only for SM2 keys

            try:
                Sm2PublicKey(raw)
            except Sm2Error as exc:
                raise PublicKeyError(f"not an SM2 public key: {exc}") from exc
        elif len(raw) != ED25519_KEY_BYTES:
            raise PublicKeyError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
        return cls(suite, raw, sm2_id)

    @classmethod
    def from_pem(cls, pem: bytes, sm2_id: bytes = DEFAULT_ID) -> PublicKey:
        """From a SubjectPublicKeyInfo PEM of either suite, read by OpenSSL."""
        key = Pkey.from_public_pem(pem, PublicKeyError)
        if key.is_a(b"ED25519"):
            return cls(Suite.ED25519, ed25519.raw_public(key))
        spki = key.spki_der(len(SPKI_PREFIX) + POINT_BYTES) if key.is_a(b"SM2") else b""
        if not spki.startswith(SPKI_PREFIX):
            raise PublicKeyError(f"a {key.type_name()} key, neither Ed25519 nor SM2")
        return cls.from_raw(Suite.SM2, spki[len(SPKI_PREFIX) :], sm2_id)
