"""SM2 signatures with SM3 (GB/T 32918.2, GM/T 0003.2) through the system's OpenSSL 3 libcrypto.

Why a binding of our own: the `cryptography` wheel offers SM3 but no SM2 signatures; Debian 12's libcrypto.so.3
(package libssl3, on every Debian architecture) has both, at C speed, and ctypes reaches it without a compiler
on the box. The measurements that chose it are in docs/design.md ("SM2: which implementation").

Theory of operation: a key is an OpenSSL EVP_PKEY of type SM2, kept for the object's life. Every signature or
check builds its own short-lived EVP_MD_CTX with SM3 and the distinguishing ID (the "Z" of the standard), so
keys can be shared by threads; ctypes lets go of the GIL for each call, so verifications run side by side.
Signatures cross this module's boundary as raw `r || s`, 32 bytes each, big-endian (see docs/contract.md, v1.2):
OpenSSL's DER `SEQUENCE {r, s}` never leaves it.
"""

from __future__ import annotations

import ctypes
import weakref
from typing import Final

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from agent.ledger.sm2_params import DEFAULT_ID, POINT_BYTES, SPKI_PREFIX

SIGNATURE_BYTES: Final = 64
ORDER: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
"""n, the order of the base point (GB/T 32918.5): r and s of a signature lie in [1, n - 1]."""
_DER_SIGNATURE_MAX: Final = 72
_BIO_CTRL_INFO: Final = 3


class Sm2Error(Exception):
    """libcrypto refused an SM2 operation, or is not there; the message names what and says why."""


class _Lib:
    """The few libcrypto functions SM2 needs, declared with their C types (a wrong type would crash, not fail)."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL("libcrypto.so.3")
        except OSError as exc:
            raise Sm2Error(
                f"OpenSSL 3's libcrypto.so.3 cannot be loaded ({exc}); install the Debian package libssl3"
            ) from exc
        p, i, size, lng = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_long
        pp = ctypes.POINTER(ctypes.c_void_p)
        self.lib = lib
        for name, result, arguments in (
            ("ERR_get_error", ctypes.c_ulong, []),
            ("ERR_error_string_n", None, [ctypes.c_ulong, ctypes.c_char_p, size]),
            ("BIO_new_mem_buf", p, [p, i]),
            ("BIO_s_mem", p, []),
            ("BIO_new", p, [p]),
            ("BIO_free", i, [p]),
            ("BIO_ctrl", lng, [p, i, lng, p]),
            ("PEM_read_bio_PrivateKey", p, [p, p, p, p]),
            ("PEM_write_bio_PKCS8PrivateKey", i, [p, p, p, p, i, p, p]),
            ("d2i_PUBKEY", p, [p, pp, lng]),
            ("i2d_PUBKEY", i, [p, pp]),
            ("EVP_PKEY_is_a", i, [p, ctypes.c_char_p]),
            ("EVP_PKEY_free", None, [p]),
            ("EVP_PKEY_CTX_new_from_name", p, [p, ctypes.c_char_p, p]),
            ("EVP_PKEY_CTX_new", p, [p, p]),
            ("EVP_PKEY_CTX_free", None, [p]),
            ("EVP_PKEY_keygen_init", i, [p]),
            ("EVP_PKEY_generate", i, [p, pp]),
            ("EVP_PKEY_CTX_set1_id", i, [p, p, i]),
            ("EVP_MD_CTX_new", p, []),
            ("EVP_MD_CTX_free", None, [p]),
            ("EVP_MD_CTX_set_pkey_ctx", None, [p, p]),
            ("EVP_sm3", p, []),
            ("EVP_DigestSignInit", i, [p, p, p, p, p]),
            ("EVP_DigestSign", i, [p, p, ctypes.POINTER(size), p, size]),
            ("EVP_DigestVerifyInit", i, [p, p, p, p, p]),
            ("EVP_DigestVerify", i, [p, p, size, p, size]),
        ):
            function = getattr(lib, name)
            function.restype = result
            function.argtypes = arguments
        self.sm3 = lib.EVP_sm3()

    def forget_errors(self) -> None:
        """A signature that does not verify leaves OpenSSL's reason queued; here it is an answer, not an error."""
        while self.lib.ERR_get_error():
            pass

    def error(self, what: str) -> Sm2Error:
        """An Sm2Error for `what`, with the reason OpenSSL queued (and the queue emptied)."""
        reasons = []
        while code := self.lib.ERR_get_error():
            text = ctypes.create_string_buffer(256)
            self.lib.ERR_error_string_n(code, text, len(text))
            reasons.append(text.value.decode(errors="replace"))
        return Sm2Error(f"{what}: {'; '.join(reasons) or 'OpenSSL gave no reason'}")


_loaded: _Lib | None = None


def _lib() -> _Lib:
    """libcrypto, loaded on first use: an Ed25519 station never needs it."""
    global _loaded  # noqa: PLW0603 - one binding per process, made when first needed
    if _loaded is None:
        _loaded = _Lib()
    return _loaded


class _Pkey:
    """An owned EVP_PKEY of type SM2, freed with its Python object."""

    def __init__(self, handle: int | None, what: str) -> None:
        lib = _lib()
        if not handle:
            raise lib.error(what)
        self.handle = handle
        weakref.finalize(self, lib.lib.EVP_PKEY_free, handle)
        if lib.lib.EVP_PKEY_is_a(handle, b"SM2") != 1:
            raise Sm2Error(f"{what}: the key is not on the SM2 curve (sm2p256v1)")

    def point(self) -> bytes:
        """The uncompressed public point, read off the key's SubjectPublicKeyInfo."""
        lib = _lib().lib
        buffer = ctypes.create_string_buffer(len(SPKI_PREFIX) + POINT_BYTES)
        cursor = ctypes.c_void_p(ctypes.addressof(buffer))
        written = lib.i2d_PUBKEY(self.handle, ctypes.byref(cursor))
        der = buffer.raw[:written]
        if written != len(buffer) or not der.startswith(SPKI_PREFIX):
            raise _lib().error("the SM2 public key has no uncompressed point")
        return der[len(SPKI_PREFIX) :]


def _digest_context(pkey: _Pkey, distinguishing_id: bytes, verify: bool) -> tuple[int, int]:
    """(EVP_MD_CTX, EVP_PKEY_CTX) ready to sign or verify with SM3 and the ID; the caller frees both."""
    lib = _lib()
    pkey_ctx = lib.lib.EVP_PKEY_CTX_new(pkey.handle, None)
    md_ctx = lib.lib.EVP_MD_CTX_new()
    if not pkey_ctx or not md_ctx:
        _free(md_ctx, pkey_ctx)
        raise lib.error("cannot allocate an SM2 context")
    initialise = lib.lib.EVP_DigestVerifyInit if verify else lib.lib.EVP_DigestSignInit
    identified = lib.lib.EVP_PKEY_CTX_set1_id(pkey_ctx, distinguishing_id, len(distinguishing_id)) == 1
    lib.lib.EVP_MD_CTX_set_pkey_ctx(md_ctx, pkey_ctx)
    if not identified or initialise(md_ctx, None, lib.sm3, None, pkey.handle) != 1:
        _free(md_ctx, pkey_ctx)
        raise lib.error("cannot set up SM2 with SM3 and the distinguishing ID")
    return md_ctx, pkey_ctx


def _free(md_ctx: int | None, pkey_ctx: int | None) -> None:
    """The MD context does not own a PKEY context given to it by EVP_MD_CTX_set_pkey_ctx: both are freed."""
    lib = _lib().lib
    lib.EVP_MD_CTX_free(md_ctx)
    lib.EVP_PKEY_CTX_free(pkey_ctx)


class Sm2PrivateKey:
    """An SM2 private key; `sign` gives raw `r || s`."""

    def __init__(self, pkey: _Pkey) -> None:
        self._pkey = pkey
        self.public_point = pkey.point()

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        lib = _lib()
        ctx = lib.lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        handle = ctypes.c_void_p()
        try:
            if not ctx or lib.lib.EVP_PKEY_keygen_init(ctx) != 1 or lib.lib.EVP_PKEY_generate(ctx, handle) != 1:
                raise lib.error("cannot generate an SM2 key")
        finally:
            lib.lib.EVP_PKEY_CTX_free(ctx)
        return cls(_Pkey(handle.value, "cannot generate an SM2 key"))

    @classmethod
    def from_pem(cls, pem: bytes) -> Sm2PrivateKey:
        """From an unencrypted PEM private key (PKCS#8 or SEC 1); Sm2Error if it is anything else.

        OpenSSL asks for a passphrase on the terminal when it meets an encrypted key and no callback is given:
        an empty passphrase is passed instead, so an encrypted key fails at once and never waits at a prompt."""
        lib = _lib()
        source = ctypes.create_string_buffer(pem, len(pem))
        no_passphrase = ctypes.create_string_buffer(b"")
        bio = lib.lib.BIO_new_mem_buf(source, len(pem))
        try:
            handle = lib.lib.PEM_read_bio_PrivateKey(bio, None, None, no_passphrase)
        finally:
            lib.lib.BIO_free(bio)
        return cls(_Pkey(handle, "not an unencrypted PEM SM2 private key"))

    def private_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: the file mode protects it, as it does the Ed25519 key."""
        lib = _lib()
        bio = lib.lib.BIO_new(lib.lib.BIO_s_mem())
        try:
            if lib.lib.PEM_write_bio_PKCS8PrivateKey(bio, self._pkey.handle, None, None, 0, None, None) != 1:
                raise lib.error("cannot write the SM2 private key")
            data = ctypes.c_void_p()
            length = lib.lib.BIO_ctrl(bio, _BIO_CTRL_INFO, 0, ctypes.byref(data))
            return ctypes.string_at(data, length)
        finally:
            lib.lib.BIO_free(bio)

    def sign(self, data: bytes, distinguishing_id: bytes = DEFAULT_ID) -> bytes:
        """SM2 signature of `data` (hashed with SM3 after Z of the ID and key): 64 bytes, `r || s`."""
        lib = _lib()
        md_ctx, pkey_ctx = _digest_context(self._pkey, distinguishing_id, verify=False)
        try:
            der = ctypes.create_string_buffer(_DER_SIGNATURE_MAX)
            length = ctypes.c_size_t(len(der))
            if lib.lib.EVP_DigestSign(md_ctx, der, ctypes.byref(length), data, len(data)) != 1:
                raise lib.error("SM2 signing failed")
        finally:
            _free(md_ctx, pkey_ctx)
        r, s = decode_dss_signature(der.raw[: length.value])
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class Sm2PublicKey:
    """An SM2 public key from its uncompressed point; `verify` takes raw `r || s`."""

    def __init__(self, point: bytes) -> None:
        if len(point) != POINT_BYTES or point[0] != 4:
            raise Sm2Error(f"an SM2 public key is 65 bytes starting 0x04 (uncompressed), not {point[:4].hex()}...")
        der = SPKI_PREFIX + point
        cursor = ctypes.c_void_p(ctypes.cast(ctypes.c_char_p(der), ctypes.c_void_p).value)
        self._der = der
        self._pkey = _Pkey(_lib().lib.d2i_PUBKEY(None, ctypes.byref(cursor), len(der)), "not a point on SM2's curve")
        self.point = point

    def verify(self, signature: bytes, data: bytes, distinguishing_id: bytes = DEFAULT_ID) -> bool:
        """Whether `signature` (raw `r || s`) is this key's SM2 signature of `data` under the ID."""
        if len(signature) != SIGNATURE_BYTES:
            return False
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        if not (0 < r < ORDER and 0 < s < ORDER):
            return False
        der = encode_dss_signature(r, s)
        lib = _lib()
        md_ctx, pkey_ctx = _digest_context(self._pkey, distinguishing_id, verify=True)
        try:
            verdict: int = lib.lib.EVP_DigestVerify(md_ctx, der, len(der), data, len(data))
        finally:
            _free(md_ctx, pkey_ctx)
        if verdict != 1:
            lib.forget_errors()
        return verdict == 1
