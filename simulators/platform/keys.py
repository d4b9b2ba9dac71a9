"""Station public keys: loaded from PEM files, named by their key id (`kid`).

A station may have more than one key (a key rotation leaves records signed with the old key in flight), so
each station maps kid -> key. The kid is computed here from the key itself, never taken on trust from a
file name or a message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from simulators.platform.contract import station_id_problem


class StationKeyError(ValueError):
    """A station key argument or file that cannot be used; the message says which and what to do."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """Lowercase hex of the first 8 bytes of SHA-256 of the 32-byte raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:8].hex()


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM (SubjectPublicKeyInfo) file."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise StationKeyError(
            f"cannot read public key file {str(path)!r}: {error.strerror}; "
            "give the path of the station's PEM public key"
        ) from error
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as error:
        raise StationKeyError(
            f"{str(path)!r} is not a PEM public key; give the station's public key as PEM "
            "('-----BEGIN PUBLIC KEY-----', SubjectPublicKeyInfo)"
        ) from error
    if not isinstance(key, Ed25519PublicKey):
        raise StationKeyError(
            f"{str(path)!r} holds a public key that is not Ed25519 ({type(key).__name__}); "
            "station records are signed with Ed25519, so give the station's Ed25519 public key"
        )
    return key


@dataclass(frozen=True, slots=True)
class StationKey:
    """One station's public key, as given on the command line (`ID=PUBKEY.pem`)."""

    station: str
    key: Ed25519PublicKey

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


Keyring = Mapping[str, Mapping[str, Ed25519PublicKey]]
"""station -> kid -> public key: everything the platform knows about who may sign what."""


def keyring(keys: Iterable[StationKey]) -> Keyring:
    """A read-only keyring from station keys; the same station may appear with several keys."""
    stations: dict[str, dict[str, Ed25519PublicKey]] = {}
    for entry in keys:
        stations.setdefault(entry.station, {})[entry.kid] = entry.key
    return MappingProxyType({station: MappingProxyType(kids) for station, kids in stations.items()})
