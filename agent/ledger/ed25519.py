"""Ed25519 signatures (RFC 8032) through the system's libcrypto (agent/ledger/libcrypto.py).

Why not `cryptography`, which signed the records until now: its own OpenSSL costs the agent about 10 MB of its
40 MB budget, and the system's libcrypto, loaded by `hashlib` anyway, has the same Ed25519 (docs/design.md,
"Memory"). Ed25519 is deterministic, so the signatures are the same bytes either way, and the key file keeps
the same form: an unencrypted PKCS#8 PEM (RFC 8410), which OpenSSL reads and writes for both.

A private key is its 32-byte seed (RFC 8032, section 5.1.5); the public key is 32 bytes as well.
"""

from __future__ import annotations

import ctypes
import secrets
import weakref
from typing import Final

from agent.ledger.libcrypto import LibcryptoError, Pkey, libcrypto

KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
SPKI_PREFIX: Final = bytes.fromhex("302a300506032b6570032100")
"""DER of an Ed25519 SubjectPublicKeyInfo up to its key (RFC 8410, section 4: the algorithm id-Ed25519,
1.3.101.112, without parameters, and a 33-byte BIT STRING): a public key and its SPKI convert by concatenation."""
_TYPE: Final = b"ED25519"


class Ed25519Error(LibcryptoError):
    """libcrypto refused an Ed25519 key or operation; the message names what and says why."""


class Ed25519PrivateKey:
    """An Ed25519 private key; `sign` gives the 64-byte signature.

    Each signature starts from a copy of a context set up once for the key: copying skips OpenSSL's look-up of
    the algorithm that setting up does, about 3.5 µs of a 50 µs signature here, and every signature still has a
    context of its own, so threads can share the key."""

    def __init__(self, pkey: Pkey) -> None:
        if not pkey.is_a(_TYPE):
            raise Ed25519Error(f"a {pkey.type_name()} key, not an Ed25519 one")
        self._pkey = pkey
        self.public_raw = raw_public(pkey)
        lib = libcrypto()
        self._template = lib.lib.EVP_MD_CTX_new()
        if not self._template:
            raise lib.error("cannot allocate an Ed25519 context", Ed25519Error)
        weakref.finalize(self, lib.lib.EVP_MD_CTX_free, self._template)
        if lib.lib.EVP_DigestSignInit(self._template, None, None, None, pkey.handle) != 1:
            raise lib.error("cannot set up Ed25519 signing", Ed25519Error)

    @classmethod
    def generate(cls) -> Ed25519PrivateKey:
        """A new key from 32 bytes of the system's CSPRNG, which is all an Ed25519 private key is."""
        return cls.from_private_bytes(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_private_bytes(cls, seed: bytes) -> Ed25519PrivateKey:
        """From the 32-byte seed (RFC 8032's "private key")."""
        if len(seed) != KEY_BYTES:
            raise Ed25519Error(f"an Ed25519 private key is {KEY_BYTES} bytes, not {len(seed)}")
        handle = libcrypto().lib.EVP_PKEY_new_raw_private_key_ex(None, _TYPE, None, seed, len(seed))
        return cls(Pkey(handle, "cannot make an Ed25519 key", Ed25519Error))

    def private_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted, as `cryptography` and `openssl genpkey` write it."""
        return self._pkey.private_pem(Ed25519Error)

    def sign(self, data: bytes) -> bytes:
        """The Ed25519 signature of `data`: 64 bytes, the same for the same key and data."""
        lib = libcrypto()
        md_ctx = lib.lib.EVP_MD_CTX_new()
        try:
            signature = ctypes.create_string_buffer(SIGNATURE_BYTES)
            length = ctypes.c_size_t(SIGNATURE_BYTES)
            if (
                not md_ctx
                or lib.lib.EVP_MD_CTX_copy_ex(md_ctx, self._template) != 1
                or lib.lib.EVP_DigestSign(md_ctx, signature, ctypes.byref(length), data, len(data)) != 1
            ):
                raise lib.error("Ed25519 signing failed", Ed25519Error)
        finally:
            lib.lib.EVP_MD_CTX_free(md_ctx)
        return signature.raw[: length.value]


class Ed25519PublicKey:
    """An Ed25519 public key from its 32 bytes; `verify` says whether a signature is good."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_BYTES:
            raise Ed25519Error(f"an Ed25519 public key is {KEY_BYTES} bytes, not {len(raw)}")
        handle = libcrypto().lib.EVP_PKEY_new_raw_public_key_ex(None, _TYPE, None, raw, len(raw))
        self._pkey = Pkey(handle, "cannot make an Ed25519 public key", Ed25519Error)
        self.raw = raw

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether `signature` is this key's Ed25519 signature of `data` (anything malformed is simply not)."""
        lib = libcrypto()
        md_ctx = lib.lib.EVP_MD_CTX_new()
        try:
            if not md_ctx or lib.lib.EVP_DigestVerifyInit(md_ctx, None, None, None, self._pkey.handle) != 1:
                raise lib.error("cannot set up an Ed25519 check", Ed25519Error)
            verdict: int = lib.lib.EVP_DigestVerify(md_ctx, signature, len(signature), data, len(data))
        finally:
            lib.lib.EVP_MD_CTX_free(md_ctx)
        if verdict != 1:
            lib.forget_errors()
        return verdict == 1


def raw_public(pkey: Pkey) -> bytes:
    """The 32 bytes of an Ed25519 key's public half (of a private key, or of a public key OpenSSL read)."""
    raw = ctypes.create_string_buffer(KEY_BYTES)
    length = ctypes.c_size_t(KEY_BYTES)
    lib = libcrypto()
    if lib.lib.EVP_PKEY_get_raw_public_key(pkey.handle, raw, ctypes.byref(length)) != 1 or length.value != KEY_BYTES:
        raise lib.error("cannot read the Ed25519 public key", Ed25519Error)
    return raw.raw
