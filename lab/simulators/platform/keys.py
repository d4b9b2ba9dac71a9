"""Station public keys: loaded from PEM files, named by their key id (`kid`).

A station may have more than one key (a key rotation leaves records signed with the old key in flight), so
each station maps kid -> key. The kid is computed here from the key itself, never taken on trust from a
file name or a message. A key is Ed25519 or (contract v1.2) SM2; an SM2 key's kid starts `sm2-`, and so names
the suite, and with it the hash of the chain, wherever the kid goes. `cryptography` reads the PEM files; the
signatures are checked by the platform's own bindings (simulators.platform.ed25519 and .sm2).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from simulators.platform.contract import station_id_problem
from simulators.platform.ed25519 import Ed25519KeyError, Ed25519PublicKey, LibsodiumError
from simulators.platform.sm2 import POINT_LENGTH, SM2_SPKI_HEAD, Sm2KeyError, Sm2PublicKey

StationPublicKey = Ed25519PublicKey | Sm2PublicKey
"""A key that verifies a station's records; both kinds raise InvalidSignature on a bad signature."""
SM2_KID_PREFIX = "sm2-"


class StationKeyError(ValueError):
    """A station key argument or file that cannot be used; the message says which and what to do."""


def key_id(public_key: StationPublicKey) -> str:
    """Ed25519: lowercase hex of the first 8 bytes of SHA-256 of the 32-byte raw public key. SM2: `sm2-` and
    the hex of the first 8 bytes of SM3 of the 65-byte uncompressed point."""
    if isinstance(public_key, Sm2PublicKey):
        sm3 = hashes.Hash(hashes.SM3())
        sm3.update(public_key.point)
        return SM2_KID_PREFIX + sm3.finalize()[:8].hex()
    return ed25519_key_id(public_key.raw)


def ed25519_key_id(raw: bytes) -> str:
    """The kid of the Ed25519 key whose 32 raw bytes are `raw` (a station's, or the platform's command key)."""
    return hashlib.sha256(raw).digest()[:8].hex()


def chain_digest(kid: str, canonical: bytes) -> str:
    """The hash the next record's `prev` holds, in the suite of the key `kid` that signed the record: SM3 for
    an SM2 key, SHA-256 for Ed25519. Lowercase hex either way."""
    if kid.startswith(SM2_KID_PREFIX):
        sm3 = hashes.Hash(hashes.SM3())
        sm3.update(canonical)
        return sm3.finalize().hex()
    return hashlib.sha256(canonical).hexdigest()


def public_key_from_raw(raw: bytes) -> StationPublicKey:
    """A key from the raw bytes a key_rotation carries: 32 for Ed25519, a 65-byte point for SM2."""
    if len(raw) == POINT_LENGTH:
        return Sm2PublicKey(raw)
    return Ed25519PublicKey(raw)


def load_public_key(path: Path) -> StationPublicKey:
    """An Ed25519 or SM2 public key from a PEM (SubjectPublicKeyInfo) file."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise StationKeyError(
            f"cannot read public key file {str(path)!r}: {error.strerror}; "
            "give the path of the station's PEM public key"
        ) from error
    return public_key_from_pem(data, str(path))


def public_key_from_pem(data: bytes, source: str = "the PEM") -> StationPublicKey:
    """An Ed25519 or SM2 public key from SubjectPublicKeyInfo PEM text; `source` names it in errors."""
    sm2_point = _sm2_point(data)
    if sm2_point is not None:
        try:
            return Sm2PublicKey(sm2_point)
        except Sm2KeyError as error:
            raise StationKeyError(f"{source!r}: {error}") from error
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise StationKeyError(
            f"{source!r} is not a PEM public key; give the station's public key as PEM "
            "('-----BEGIN PUBLIC KEY-----', SubjectPublicKeyInfo)"
        ) from error
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise StationKeyError(
            f"{source!r} holds a public key that is neither Ed25519 nor SM2 ({type(key).__name__}); "
            "station records are signed with one of those, so give the station's own public key"
        )
    try:
        return Ed25519PublicKey(key.public_bytes_raw())
    except (Ed25519KeyError, LibsodiumError) as error:
        raise StationKeyError(f"{source!r}: {error}") from error


def _sm2_point(pem: bytes) -> bytes | None:
    """The point of an SM2 SubjectPublicKeyInfo PEM, or None if the PEM holds something else."""
    lines = pem.decode("ascii", errors="replace").strip().splitlines()
    if len(lines) < 3 or lines[0] != "-----BEGIN PUBLIC KEY-----" or lines[-1] != "-----END PUBLIC KEY-----":
        return None
    try:
        der = base64.b64decode("".join(lines[1:-1]), validate=True)
    except binascii.Error:
        return None
    if len(der) != len(SM2_SPKI_HEAD) + POINT_LENGTH or not der.startswith(SM2_SPKI_HEAD):
        return None
    return der[len(SM2_SPKI_HEAD) :]


@dataclass(frozen=True, slots=True)
class StationKey:
    """One station's public key, as given on the command line (`ID=PUBKEY.pem`)."""

    station: str
    key: StationPublicKey

    @property
    def kid(self) -> str:
        return key_id(self.key)

    @classmethod
    def from_argument(cls, argument: str) -> StationKey:
        station, sep, path = argument.partition("=")
        if not sep or not path:
            raise StationKeyError(f"station {argument!r} is not of the form ID=PUBKEY.pem; e.g. ST-0001=keys/st1.pem")
        problem = station_id_problem(station)
        if problem is not None:
            raise StationKeyError(
                f"station id {station!r} cannot be used: {problem}; use the id from the station config"
            )
        return cls(station, load_public_key(Path(path)))


Keyring = Mapping[str, Mapping[str, StationPublicKey]]
"""station -> kid -> public key: everything the platform knows about who may sign what."""


def keyring(keys: Iterable[StationKey]) -> Keyring:
    """A read-only keyring from station keys; the same station may appear with several keys."""
    stations: dict[str, dict[str, StationPublicKey]] = {}
    for entry in keys:
        stations.setdefault(entry.station, {})[entry.kid] = entry.key
    return MappingProxyType({station: MappingProxyType(kids) for station, kids in stations.items()})
