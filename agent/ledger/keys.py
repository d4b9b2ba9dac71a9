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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from agent.ledger.ed25519 import Ed25519PrivateKey
from agent.ledger.libcrypto import LibcryptoError, Pkey
from agent.ledger.sm2_params import DEFAULT_ID
from agent.ledger.suites import PublicKey, Suite, digest_hex

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519 as cryptography_ed25519

    from agent.ledger.sm2 import Sm2PrivateKey

_CRYPTOGRAPHY_ED25519 = "cryptography.hazmat.primitives.asymmetric.ed25519"


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
    def from_private(
        cls,
        private: Ed25519PrivateKey | Sm2PrivateKey | cryptography_ed25519.Ed25519PrivateKey,
        sm2_id: bytes = DEFAULT_ID,
    ) -> DeviceKey:
        """The device key of a private key of either suite; an Ed25519 key made with `cryptography` (as tests and
        tools make theirs) is taken by its seed, so that every Ed25519 signature goes through one binding."""
        own = _own_binding(private)
        if isinstance(own, Ed25519PrivateKey):
            public = PublicKey(Suite.ED25519, own.public_raw)
        else:
            public = PublicKey(Suite.SM2, own.public_point, sm2_id)
        return cls(own, public, public.kid)

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
        """Unencrypted PKCS#8 PEM in either suite (the file's mode protects it)."""
        return self.private.private_pem()


def _own_binding(
    private: Ed25519PrivateKey | Sm2PrivateKey | cryptography_ed25519.Ed25519PrivateKey,
) -> Ed25519PrivateKey | Sm2PrivateKey:
    """`private`, or the same Ed25519 key in this package's binding if `cryptography` made it. The check looks
    in sys.modules: a caller that made such a key has loaded `cryptography`, and the agent itself never does."""
    foreign = sys.modules.get(_CRYPTOGRAPHY_ED25519)
    if foreign is not None and isinstance(private, foreign.Ed25519PrivateKey):
        return Ed25519PrivateKey.from_private_bytes(private.private_bytes_raw())
    return cast("Ed25519PrivateKey | Sm2PrivateKey", private)


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
    pkey = Pkey.from_private_pem(data, KeyFileError, f"device key {path} is not an unencrypted PEM private key")
    try:
        if pkey.is_a(b"ED25519"):
            return DeviceKey.from_private(Ed25519PrivateKey(pkey))
        if pkey.is_a(b"SM2"):
            from agent.ledger.sm2 import Sm2PrivateKey  # noqa: PLC0415 - the binding loads only for SM2 keys

            return DeviceKey.from_private(Sm2PrivateKey(pkey), sm2_id)
    except LibcryptoError as exc:
        raise KeyFileError(f"device key {path} cannot be used: {exc}") from exc
    raise KeyFileError(f"device key {path} holds a {pkey.type_name()} key, neither an Ed25519 nor an SM2 key")
