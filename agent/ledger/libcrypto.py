"""The system's OpenSSL 3 libcrypto through ctypes, for both signing suites: loaded once, its functions declared
with their C types, its keys owned by Python objects and its error queue turned into messages.

Why ctypes and not a wheel: `hashlib` and `ssl` have loaded this libcrypto into the process already, so reaching
it costs a few hundred kilobytes, where `cryptography` brings an OpenSSL of its own (about 10 MB resident: see
docs/design.md, "Memory"). Debian 12's libcrypto.so.3 (package libssl3, on every Debian architecture) has
Ed25519, SM2 and SM3 at C speed, and ctypes reaches it without a compiler on the box. ctypes lets go of the GIL
for each call, so signatures made on several threads run side by side.

Theory of operation: a key is an EVP_PKEY held by a `Pkey`, freed with its Python object. Every signature or
check builds its own short-lived contexts, so keys can be shared by threads. An operation that fails raises the
caller's exception type with what was asked and the reasons OpenSSL queued, and leaves the queue empty.
"""

from __future__ import annotations

import ctypes
import functools
import weakref
from typing import Final, TypeVar

_BIO_CTRL_INFO: Final = 3
_REASON_BYTES: Final = 256


class LibcryptoError(Exception):
    """libcrypto refused an operation, or is not there; the message names what and says why."""


ErrorT = TypeVar("ErrorT", bound=Exception)


class Libcrypto:
    """The libcrypto functions the two suites need, declared with their C types (a wrong type would crash, not
    fail)."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL("libcrypto.so.3")
        except OSError as exc:
            raise LibcryptoError(
                f"OpenSSL 3's libcrypto.so.3 cannot be loaded ({exc}); install the Debian package libssl3"
            ) from exc
        p, i, size, lng, text = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_long, ctypes.c_char_p
        pp, psize = ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)
        for name, result, arguments in (
            ("ERR_get_error", ctypes.c_ulong, []),
            ("ERR_error_string_n", None, [ctypes.c_ulong, text, size]),
            ("BIO_new_mem_buf", p, [p, i]),
            ("BIO_s_mem", p, []),
            ("BIO_new", p, [p]),
            ("BIO_free", i, [p]),
            ("BIO_ctrl", lng, [p, i, lng, p]),
            ("PEM_read_bio_PrivateKey", p, [p, p, p, p]),
            ("PEM_read_bio_PUBKEY", p, [p, p, p, p]),
            ("PEM_write_bio_PKCS8PrivateKey", i, [p, p, p, p, i, p, p]),
            ("d2i_PUBKEY", p, [p, pp, lng]),
            ("i2d_PUBKEY", i, [p, pp]),
            ("EVP_PKEY_is_a", i, [p, text]),
            ("EVP_PKEY_get0_type_name", text, [p]),
            ("EVP_PKEY_free", None, [p]),
            ("EVP_PKEY_new_raw_private_key_ex", p, [p, text, text, p, size]),
            ("EVP_PKEY_new_raw_public_key_ex", p, [p, text, text, p, size]),
            ("EVP_PKEY_get_raw_public_key", i, [p, p, psize]),
            ("EVP_PKEY_CTX_new_from_name", p, [p, text, p]),
            ("EVP_PKEY_CTX_new", p, [p, p]),
            ("EVP_PKEY_CTX_free", None, [p]),
            ("EVP_PKEY_keygen_init", i, [p]),
            ("EVP_PKEY_generate", i, [p, pp]),
            ("EVP_PKEY_CTX_set1_id", i, [p, p, i]),
            ("EVP_MD_CTX_new", p, []),
            ("EVP_MD_CTX_free", None, [p]),
            ("EVP_MD_CTX_copy_ex", i, [p, p]),
            ("EVP_MD_CTX_set_pkey_ctx", None, [p, p]),
            ("EVP_sm3", p, []),
            ("EVP_DigestSignInit", i, [p, p, p, p, p]),
            ("EVP_DigestSign", i, [p, p, psize, p, size]),
            ("EVP_DigestVerifyInit", i, [p, p, p, p, p]),
            ("EVP_DigestVerify", i, [p, p, size, p, size]),
        ):
            function = getattr(lib, name)
            function.restype = result
            function.argtypes = arguments
        self.lib = lib

    def forget_errors(self) -> None:
        """A signature that does not verify leaves OpenSSL's reason queued; there it is an answer, not an error."""
        while self.lib.ERR_get_error():
            pass

    def error(self, what: str, kind: type[ErrorT]) -> ErrorT:
        """A `kind` error for `what`, with the reasons OpenSSL queued (and the queue emptied)."""
        reasons = []
        while code := self.lib.ERR_get_error():
            reason = ctypes.create_string_buffer(_REASON_BYTES)
            self.lib.ERR_error_string_n(code, reason, len(reason))
            reasons.append(reason.value.decode(errors="replace"))
        return kind(f"{what}: {'; '.join(reasons) or 'OpenSSL gave no reason'}")


@functools.cache
def libcrypto() -> Libcrypto:
    """The one binding of the process, made on first use."""
    return Libcrypto()


class Pkey:
    """An owned EVP_PKEY, freed with its Python object."""

    def __init__(self, handle: int | None, what: str, kind: type[Exception]) -> None:
        """Take ownership of `handle`; a null one (OpenSSL refused to make the key) raises `kind` for `what`."""
        lib = libcrypto()
        if not handle:
            raise lib.error(what, kind)
        self.handle = handle
        weakref.finalize(self, lib.lib.EVP_PKEY_free, handle)

    def is_a(self, type_name: bytes) -> bool:
        return bool(libcrypto().lib.EVP_PKEY_is_a(self.handle, type_name) == 1)

    def type_name(self) -> str:
        """OpenSSL's name of the key's type ("ED25519", "SM2", "EC", "RSA" ...), for error messages."""
        name: bytes | None = libcrypto().lib.EVP_PKEY_get0_type_name(self.handle)
        return name.decode(errors="replace") if name else "unknown"

    def spki_der(self, size: int) -> bytes:
        """The key's SubjectPublicKeyInfo DER, of the `size` bytes its type always has ("" if it is not)."""
        buffer = ctypes.create_string_buffer(size)
        cursor = ctypes.c_void_p(ctypes.addressof(buffer))
        written = libcrypto().lib.i2d_PUBKEY(self.handle, ctypes.byref(cursor))
        return buffer.raw if written == size else b""

    @classmethod
    def from_spki_der(cls, der: bytes, what: str, kind: type[Exception]) -> Pkey:
        cursor = ctypes.c_void_p(ctypes.cast(ctypes.c_char_p(der), ctypes.c_void_p).value)
        return cls(libcrypto().lib.d2i_PUBKEY(None, ctypes.byref(cursor), len(der)), what, kind)

    @classmethod
    def from_private_pem(
        cls, pem: bytes, kind: type[Exception], what: str = "not an unencrypted PEM private key"
    ) -> Pkey:
        """From an unencrypted PEM private key of any type OpenSSL reads (PKCS#8 or the type's own form); `kind`
        for `what` if it is not one.

        OpenSSL asks for a passphrase on the terminal when it meets an encrypted key and no callback is given:
        an empty passphrase is passed instead, so an encrypted key fails at once and never waits at a prompt."""
        return cls(_read_pem(pem, private=True), what, kind)

    @classmethod
    def from_public_pem(cls, pem: bytes, kind: type[Exception]) -> Pkey:
        """From a SubjectPublicKeyInfo PEM ('-----BEGIN PUBLIC KEY-----') of any type OpenSSL reads."""
        return cls(_read_pem(pem, private=False), "not a PEM public key ('-----BEGIN PUBLIC KEY-----')", kind)

    def private_pem(self, kind: type[Exception]) -> bytes:
        """PKCS#8 PEM, unencrypted: the key file's mode protects it."""
        lib = libcrypto()
        bio = lib.lib.BIO_new(lib.lib.BIO_s_mem())
        try:
            if lib.lib.PEM_write_bio_PKCS8PrivateKey(bio, self.handle, None, None, 0, None, None) != 1:
                raise lib.error(f"cannot write the {self.type_name()} private key", kind)
            data = ctypes.c_void_p()
            length = lib.lib.BIO_ctrl(bio, _BIO_CTRL_INFO, 0, ctypes.byref(data))
            return ctypes.string_at(data, length)
        finally:
            lib.lib.BIO_free(bio)


def _read_pem(pem: bytes, private: bool) -> int | None:
    lib = libcrypto().lib
    source = ctypes.create_string_buffer(pem, len(pem))
    no_passphrase = ctypes.create_string_buffer(b"")
    bio = lib.BIO_new_mem_buf(source, len(pem))
    try:
        read = lib.PEM_read_bio_PrivateKey if private else lib.PEM_read_bio_PUBKEY
        handle: int | None = read(bio, None, None, no_passphrase)
    finally:
        lib.BIO_free(bio)
    return handle
