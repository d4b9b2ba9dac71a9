"""SM2 signatures with SM3 (GB/T 32918.2, GM/T 0003.2) through the system's OpenSSL 3 libcrypto.

Why a binding of our own: the `cryptography` wheel offers SM3 but no SM2 signatures; Debian 12's libcrypto.so.3
has both, at C speed, reached through agent/ledger/libcrypto.py. The measurements that chose it are in
docs/design.md ("SM2: which implementation").

Theory of operation: a key is an OpenSSL EVP_PKEY of type SM2, kept for the object's life. Every signature or
check builds its own short-lived EVP_MD_CTX with SM3 and the distinguishing ID (the "Z" of the standard), so
keys can be shared by threads. Signatures cross this module's boundary as raw `r || s`, 32 bytes each,
big-endian (see docs/contract.md, v1.2): OpenSSL's DER `SEQUENCE {r, s}` never leaves it.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Final

from agent.ledger.libcrypto import LibcryptoError, Pkey, libcrypto
from agent.ledger.sm2_params import DEFAULT_ID, POINT_BYTES, SPKI_PREFIX

SIGNATURE_BYTES: Final = 64
ORDER: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
"""n, the order of the base point (GB/T 32918.5): r and s of a signature lie in [1, n - 1]."""
_DER_SIGNATURE_MAX: Final = 72
_SEQUENCE, _INTEGER = 0x30, 0x02


class Sm2Error(LibcryptoError):
    """libcrypto refused an SM2 operation, or is not there; the message names what and says why."""


def _sm2_pkey(pkey: Pkey, what: str) -> Pkey:
    if not pkey.is_a(b"SM2"):
        raise Sm2Error(f"{what}: the key is not on the SM2 curve (sm2p256v1)")
    return pkey


@functools.cache
def _sm3() -> int:
    """OpenSSL's SM3 digest, fetched once (it is a constant of the library)."""
    sm3: int = libcrypto().lib.EVP_sm3()
    return sm3


def _digest_context(pkey: Pkey, distinguishing_id: bytes, verify: bool) -> tuple[int, int]:
    """(EVP_MD_CTX, EVP_PKEY_CTX) ready to sign or verify with SM3 and the ID; the caller frees both."""
    lib = libcrypto()
    pkey_ctx = lib.lib.EVP_PKEY_CTX_new(pkey.handle, None)
    md_ctx = lib.lib.EVP_MD_CTX_new()
    if not pkey_ctx or not md_ctx:
        _free(md_ctx, pkey_ctx)
        raise lib.error("cannot allocate an SM2 context", Sm2Error)
    initialise = lib.lib.EVP_DigestVerifyInit if verify else lib.lib.EVP_DigestSignInit
    identified = lib.lib.EVP_PKEY_CTX_set1_id(pkey_ctx, distinguishing_id, len(distinguishing_id)) == 1
    lib.lib.EVP_MD_CTX_set_pkey_ctx(md_ctx, pkey_ctx)
    if not identified or initialise(md_ctx, None, _sm3(), None, pkey.handle) != 1:
        _free(md_ctx, pkey_ctx)
        raise lib.error("cannot set up SM2 with SM3 and the distinguishing ID", Sm2Error)
    return md_ctx, pkey_ctx


def _free(md_ctx: int | None, pkey_ctx: int | None) -> None:
    """The MD context does not own a PKEY context given to it by EVP_MD_CTX_set_pkey_ctx: both are freed."""
    lib = libcrypto().lib
    lib.EVP_MD_CTX_free(md_ctx)
    lib.EVP_PKEY_CTX_free(pkey_ctx)


def der_signature(r: int, s: int) -> bytes:
    """DER of `SEQUENCE {INTEGER r, INTEGER s}` (X.690), what OpenSSL takes: each integer in the fewest bytes,
    with a leading zero when its top bit is set. r, s < n < 2**256 keep every length below 128, so each length
    is one byte."""
    integers = b"".join(_der_integer(value) for value in (r, s))
    return bytes((_SEQUENCE, len(integers))) + integers


def _der_integer(value: int) -> bytes:
    content = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return bytes((_INTEGER, len(content))) + content


def raw_signature(der: bytes) -> bytes:
    """`r || s` (32 bytes each) from OpenSSL's DER signature; Sm2Error unless it is exactly what `der_signature`
    writes for r and s in [1, n - 1] (OpenSSL writes no other form): re-encoding checks tags, lengths and
    minimality at once."""
    try:
        r_end = 4 + der[3]
        r, s = int.from_bytes(der[4:r_end], "big"), int.from_bytes(der[r_end + 2 : r_end + 2 + der[r_end + 1]], "big")
    except IndexError:
        r = s = 0
    if not (0 < r < ORDER and 0 < s < ORDER) or der_signature(r, s) != der:
        raise Sm2Error(f"OpenSSL gave an SM2 signature that is not DER SEQUENCE {{r, s}}: {der.hex()}")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class Sm2PrivateKey:
    """An SM2 private key; `sign` gives raw `r || s`."""

    def __init__(self, pkey: Pkey) -> None:
        self._pkey = _sm2_pkey(pkey, "not an SM2 private key")
        spki = pkey.spki_der(len(SPKI_PREFIX) + POINT_BYTES)
        if not spki.startswith(SPKI_PREFIX):
            raise libcrypto().error("the SM2 public key has no uncompressed point", Sm2Error)
        self.public_point = spki[len(SPKI_PREFIX) :]

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        lib = libcrypto()
        ctx = lib.lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        handle = ctypes.c_void_p()
        try:
            if not ctx or lib.lib.EVP_PKEY_keygen_init(ctx) != 1 or lib.lib.EVP_PKEY_generate(ctx, handle) != 1:
                raise lib.error("cannot generate an SM2 key", Sm2Error)
        finally:
            lib.lib.EVP_PKEY_CTX_free(ctx)
        return cls(Pkey(handle.value, "cannot generate an SM2 key", Sm2Error))

    @classmethod
    def from_pem(cls, pem: bytes) -> Sm2PrivateKey:
        """From an unencrypted PEM private key (PKCS#8 or SEC 1); Sm2Error if it is anything else."""
        return cls(Pkey.from_private_pem(pem, Sm2Error))

    def private_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: the file mode protects it, as it does the Ed25519 key."""
        return self._pkey.private_pem(Sm2Error)

    def sign(self, data: bytes, distinguishing_id: bytes = DEFAULT_ID) -> bytes:
        """SM2 signature of `data` (hashed with SM3 after Z of the ID and key): 64 bytes, `r || s`."""
        lib = libcrypto()
        md_ctx, pkey_ctx = _digest_context(self._pkey, distinguishing_id, verify=False)
        try:
            der = ctypes.create_string_buffer(_DER_SIGNATURE_MAX)
            length = ctypes.c_size_t(len(der))
            if lib.lib.EVP_DigestSign(md_ctx, der, ctypes.byref(length), data, len(data)) != 1:
                raise lib.error("SM2 signing failed", Sm2Error)
        finally:
            _free(md_ctx, pkey_ctx)
        return raw_signature(der.raw[: length.value])


class Sm2PublicKey:
    """An SM2 public key from its uncompressed point; `verify` takes raw `r || s`."""

    def __init__(self, point: bytes) -> None:
        if len(point) != POINT_BYTES or point[0] != 4:
            raise Sm2Error(f"an SM2 public key is 65 bytes starting 0x04 (uncompressed), not {point[:4].hex()}...")
        what = "not a point on SM2's curve"
        self._pkey = _sm2_pkey(Pkey.from_spki_der(SPKI_PREFIX + point, what, Sm2Error), what)
        self.point = point

    def verify(self, signature: bytes, data: bytes, distinguishing_id: bytes = DEFAULT_ID) -> bool:
        """Whether `signature` (raw `r || s`) is this key's SM2 signature of `data` under the ID."""
        if len(signature) != SIGNATURE_BYTES:
            return False
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        if not (0 < r < ORDER and 0 < s < ORDER):
            return False
        der = der_signature(r, s)
        lib = libcrypto()
        md_ctx, pkey_ctx = _digest_context(self._pkey, distinguishing_id, verify=True)
        try:
            verdict: int = lib.lib.EVP_DigestVerify(md_ctx, der, len(der), data, len(data))
        finally:
            _free(md_ctx, pkey_ctx)
        if verdict != 1:
            lib.forget_errors()
        return verdict == 1
