"""Ed25519 signature checks for the reference receiver, through the system's libsodium (ctypes).

Why libsodium: a platform checks every record a station signs, and the check is most of the receiver's work on
a record. libsodium's `crypto_sign_ed25519_verify_detached` takes about half of OpenSSL 3.0's time for the same
check on the same machine (docs/benchmarks.md, "The full path"). It is the Debian package libsodium23 (on every
Debian architecture); ctypes reaches it without a compiler or a wheel, and lets go of the GIL for each call, so
ThreadedVerifier spreads the checks over cores. The agent signs through OpenSSL, so the two sides are
independent implementations: a mistake in one is caught by the other.

libsodium is no laxer than OpenSSL here: besides the equation, it refuses an S that is not below the group
order (a malleable spelling of the same signature), an R or a public key of small order, and a public key that
is not the canonical encoding of a point. A key is built from its 32 raw bytes; `verify` raises
InvalidSignature as `cryptography`'s keys do, so the receiver treats keys of both suites alike.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Final

from cryptography.exceptions import InvalidSignature

PUBLIC_KEY_LENGTH: Final = 32
SIGNATURE_LENGTH: Final = 64
LIBRARY: Final = "libsodium.so.23"


class Ed25519KeyError(ValueError):
    """Bytes that are not an Ed25519 public key."""


class LibsodiumError(RuntimeError):
    """No libsodium to check signatures with; the message names the package that brings it."""


@functools.cache
def _libsodium() -> ctypes.CDLL:
    """The library, initialised once; a missing one is refused with the package that brings it."""
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError as error:
        raise LibsodiumError(
            f"Ed25519 checks need libsodium ({error}); install the Debian package libsodium23"
        ) from error
    lib.sodium_init.restype = ctypes.c_int
    lib.sodium_init.argtypes = []
    verify = lib.crypto_sign_ed25519_verify_detached
    verify.restype = ctypes.c_int
    verify.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p]
    if lib.sodium_init() < 0:
        raise LibsodiumError(f"{LIBRARY} did not initialise (sodium_init failed); reinstall libsodium23")
    return lib


def require_libsodium() -> None:
    """Raise LibsodiumError unless Ed25519 signatures can be checked: a station registered with an SM2 key may
    rotate to an Ed25519 one at any time, so a receiver needs libsodium whatever keys it starts with."""
    _libsodium()


class Ed25519PublicKey:
    """A station's Ed25519 public key (its 32 raw bytes), checking signatures with libsodium."""

    __slots__ = ("_verify", "raw")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != PUBLIC_KEY_LENGTH:
            raise Ed25519KeyError(f"an Ed25519 public key is {PUBLIC_KEY_LENGTH} bytes, got {len(raw)}")
        self.raw = bytes(raw)
        self._verify = _libsodium().crypto_sign_ed25519_verify_detached

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise InvalidSignature unless `signature` is this key's Ed25519 signature of `data`."""
        if len(signature) != SIGNATURE_LENGTH or self._verify(signature, data, len(data), self.raw) != 0:
            raise InvalidSignature
