"""SM2 signature checks (SM3, with the distinguishing ID) for the reference receiver, through OpenSSL 3's libcrypto.

The platform side keeps its own binding, apart from the agent's, so that a mistake in one is caught by the
other (and by the `openssl` command line in the tests). It only verifies. A key is built from the 65-byte
uncompressed point; a signature arrives as the contract's raw `r || s` (32 bytes each, big-endian) and is
given to OpenSSL as the DER `SEQUENCE {r, s}` it expects. `verify` raises InvalidSignature as `cryptography`'s
Ed25519 keys do, so the receiver treats keys of both suites alike; ctypes lets go of the GIL during each call,
so ThreadedVerifier spreads SM2 checks over cores too.
"""

from __future__ import annotations

import ctypes
import weakref
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

DEFAULT_DISTINGUISHING_ID: Final = b"1234567812345678"
SM2_SPKI_HEAD: Final = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
"""A SubjectPublicKeyInfo up to the point: id-ecPublicKey, curve 1.2.156.10197.1.301, BIT STRING of 66 bytes."""
POINT_LENGTH: Final = 65
CURVE_ORDER: Final = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)


class Sm2KeyError(ValueError):
    """Bytes that are not an SM2 public point, or no libcrypto.so.3 to check them with."""


def _libcrypto() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libcrypto.so.3")
    except OSError as error:
        raise Sm2KeyError(f"SM2 needs OpenSSL 3 ({error}); install the Debian package libssl3") from error
    handle, integer, size = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    signatures: dict[str, tuple[type | None, list[type]]] = {
        "ERR_clear_error": (None, []),
        "d2i_PUBKEY": (handle, [handle, ctypes.POINTER(handle), ctypes.c_long]),
        "EVP_PKEY_is_a": (integer, [handle, ctypes.c_char_p]),
        "EVP_PKEY_free": (None, [handle]),
        "EVP_PKEY_CTX_new": (handle, [handle, handle]),
        "EVP_PKEY_CTX_free": (None, [handle]),
        "EVP_PKEY_CTX_set1_id": (integer, [handle, handle, integer]),
        "EVP_MD_CTX_new": (handle, []),
        "EVP_MD_CTX_free": (None, [handle]),
        "EVP_MD_CTX_set_pkey_ctx": (None, [handle, handle]),
        "EVP_sm3": (handle, []),
        "EVP_DigestVerifyInit": (integer, [handle, handle, handle, handle, handle]),
        "EVP_DigestVerify": (integer, [handle, handle, size, handle, size]),
    }
    for name, (result, arguments) in signatures.items():
        function = getattr(lib, name)
        function.restype = result
        function.argtypes = arguments
    return lib


_LIB: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _LIB  # noqa: PLW0603 - loaded once, when the first SM2 key is met
    if _LIB is None:
        _LIB = _libcrypto()
    return _LIB


class Sm2PublicKey:
    """A station's (or a platform's) SM2 public key, checked to be a point on the curve when it is made."""

    def __init__(self, point: bytes, distinguishing_id: bytes = DEFAULT_DISTINGUISHING_ID) -> None:
        if len(point) != POINT_LENGTH or point[:1] != b"\x04":
            raise Sm2KeyError(f"an SM2 public key is a 65-byte uncompressed point (0x04, x, y), got {len(point)} bytes")
        lib = _lib()
        der = SM2_SPKI_HEAD + point
        reader = ctypes.c_void_p(ctypes.cast(ctypes.c_char_p(der), ctypes.c_void_p).value)
        pkey = lib.d2i_PUBKEY(None, ctypes.byref(reader), len(der))
        if not pkey:
            lib.ERR_clear_error()
            raise Sm2KeyError(f"{point.hex()[:16]}... is not a point on the SM2 curve")
        weakref.finalize(self, lib.EVP_PKEY_free, pkey)
        if lib.EVP_PKEY_is_a(pkey, b"SM2") != 1:
            raise Sm2KeyError("OpenSSL does not read the point as an SM2 key")
        self._pkey = pkey
        self.point = point
        self.distinguishing_id = distinguishing_id

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise InvalidSignature unless `signature` (raw r || s) is this key's SM2 signature of `data`."""
        if not self._verifies(signature, data):
            raise InvalidSignature

    def _verifies(self, signature: bytes, data: bytes) -> bool:
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        if len(signature) != 64 or not (0 < r < CURVE_ORDER and 0 < s < CURVE_ORDER):
            return False
        der = encode_dss_signature(r, s)
        lib = _lib()
        key_context, digest_context = lib.EVP_PKEY_CTX_new(self._pkey, None), lib.EVP_MD_CTX_new()
        try:
            ready = bool(key_context and digest_context)
            ready = ready and lib.EVP_PKEY_CTX_set1_id(key_context, self.distinguishing_id, len(self.distinguishing_id))
            if ready:
                lib.EVP_MD_CTX_set_pkey_ctx(digest_context, key_context)
                ready = lib.EVP_DigestVerifyInit(digest_context, None, lib.EVP_sm3(), None, self._pkey) == 1
            verdict = ready and lib.EVP_DigestVerify(digest_context, der, len(der), data, len(data)) == 1
        finally:
            lib.EVP_MD_CTX_free(digest_context)
            lib.EVP_PKEY_CTX_free(key_context)
        if not verdict:
            lib.ERR_clear_error()
        return bool(verdict)
