"""The device's signing key, of either suite (agent/ledger/suites.py): made once on the gateway, never leaves
it, identified by its `kid`.

The private key file is created with O_EXCL and mode 0600, so `keygen` can never overwrite the key that
signed a station's history, and no other user of the box can read it. Both suites keep it as an unencrypted
PKCS#8 PEM; which suite a file holds is read from the file, never from the config, so a station whose config
names another suite goes on signing with the key it has until a rotation replaces it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.ledger.sm2_params import DEFAULT_ID
from agent.ledger.suites import PublicKey, Suite, digest_hex

if TYPE_CHECKING:
    from agent.ledger.sm2 import Sm2PrivateKey


class KeyFileError(Exception):
    """A key file that is missing, unreadable, of the wrong kind, or that would be overwritten."""


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new device key is to be: its suite and, for SM2, the distinguishing ID it signs with."""

    suite: Suite = Suite.ED25519
    sm2_id: bytes = DEFAULT_ID

    @classmethod
    def of(cls, suite: str, sm2_id: str) -> KeySpec:
        """From the config's `[keys] suite` and `sm2_id` (already checked there)."""
        return cls(Suite(suite), sm2_id.encode("ascii"))

    def generate(self) -> DeviceKey:
        if self.suite is Suite.SM2:
            from agent.ledger.sm2 import Sm2PrivateKey  # noqa: PLC0415 - the binding loads only for SM2 keys

            return DeviceKey.from_private(Sm2PrivateKey.generate(), self.sm2_id)
        return DeviceKey.from_private(Ed25519PrivateKey.generate())


@dataclass(frozen=True, slots=True)
class DeviceKey:
    private: Ed25519PrivateKey | Sm2PrivateKey
    public: PublicKey
    kid: str

    @classmethod
    def from_private(cls, private: Ed25519PrivateKey | Sm2PrivateKey, sm2_id: bytes = DEFAULT_ID) -> DeviceKey:
        if isinstance(private, Ed25519PrivateKey):
            raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            public = PublicKey(Suite.ED25519, raw)
        else:
            public = PublicKey(Suite.SM2, private.public_point, sm2_id)
        return cls(private, public, public.kid)

    @property
    def suite(self) -> Suite:
        return self.public.suite

    @property
    def public_raw(self) -> bytes:
        """What a key_rotation record carries: Ed25519's 32 bytes, or SM2's 65-byte uncompressed point."""
        return self.public.raw

    def sign(self, data: bytes) -> bytes:
        """64 bytes in either suite: Ed25519's signature, or SM2's `r || s` over SM3 with the ID."""
        if isinstance(self.private, Ed25519PrivateKey):
            return self.private.sign(data)
        return self.private.sign(data, self.public.sm2_id)

    def verify(self, signature: bytes, data: bytes) -> bool:
        return self.public.verify(signature, data)

    def digest(self, canonical: bytes) -> str:
        """The hash of a record this key signs, which the next record's `prev` holds."""
        return digest_hex(self.public.suite, canonical)

    def public_pem(self) -> str:
        return self.public.pem()

    def private_pem(self) -> bytes:
        if isinstance(self.private, Ed25519PrivateKey):
            return self.private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        return self.private.private_pem()


def generate_key_file(path: Path, spec: KeySpec | None = None) -> DeviceKey:
    """Make a new device key at `path` (mode 0600); refuse if anything is there already."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = (spec or KeySpec()).generate()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(
            f"{path} already exists; a device key is never overwritten, because it signed this station's "
            "records. Move it away yourself if you really mean to replace it."
        ) from exc
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key.private_pem())
        handle.flush()
        os.fsync(handle.fileno())
    return key


def load_key_file(path: Path, sm2_id: bytes = DEFAULT_ID) -> DeviceKey:
    """Read the device key (either suite), with an error that says what to do when it cannot be used."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"device key {path} does not exist; create it with 'station-agent keygen {path}'") from exc
    except PermissionError as exc:
        raise KeyFileError(
            f"device key {path} cannot be read by this user (uid {os.getuid()}); "
            "it must belong to the service user with mode 0600"
        ) from exc
    except OSError as exc:
        raise KeyFileError(f"device key {path} cannot be read: {exc.strerror}") from exc
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(f"device key {path} has mode {mode:04o}, readable by others; fix with 'chmod 600 {path}'")
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        from agent.ledger.sm2 import Sm2Error, Sm2PrivateKey  # noqa: PLC0415 - the binding loads only for SM2 keys

        try:
            return DeviceKey.from_private(Sm2PrivateKey.from_pem(data), sm2_id)
        except Sm2Error:
            raise KeyFileError(f"device key {path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"device key {path} holds a {type(private).__name__}, neither an Ed25519 nor an SM2 key")
    return DeviceKey.from_private(private)
