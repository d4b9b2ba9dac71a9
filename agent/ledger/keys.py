"""The device's Ed25519 key: made once on the gateway, never leaves it, identified by its `kid`.

The private key file is created with O_EXCL and mode 0600, so `keygen` can never overwrite the key that
signed a station's history, and no other user of the box can read it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class KeyFileError(Exception):
    """A key file that is missing, unreadable, of the wrong kind, or that would be overwritten."""


def kid_of(public_raw: bytes) -> str:
    """The contract's key id: lowercase hex of the first 8 bytes of SHA-256 of the 32-byte raw public key."""
    return hashlib.sha256(public_raw).digest()[:8].hex()


@dataclass(frozen=True, slots=True)
class DeviceKey:
    private: Ed25519PrivateKey
    public_raw: bytes
    kid: str

    @classmethod
    def from_private(cls, private: Ed25519PrivateKey) -> DeviceKey:
        public_raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(private, public_raw, kid_of(public_raw))

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def public_pem(self) -> str:
        return public_pem(self.private.public_key())


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def generate_key_file(path: Path) -> DeviceKey:
    """Make a new device key at `path` (mode 0600); refuse if anything is there already."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = DeviceKey.from_private(Ed25519PrivateKey.generate())
    pem = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(
            f"{path} already exists; a device key is never overwritten, because it signed this station's "
            "records. Move it away yourself if you really mean to replace it."
        ) from exc
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    return key


def load_key_file(path: Path) -> DeviceKey:
    """Read the device key, with an error that says what to do when it cannot be used."""
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
        raise KeyFileError(f"device key {path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"device key {path} holds a {type(private).__name__}, not an Ed25519 key")
    return DeviceKey.from_private(private)
