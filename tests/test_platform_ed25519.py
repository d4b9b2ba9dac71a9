"""The reference platform's Ed25519 checks (libsodium through ctypes) against what it shares no code with: RFC 8032's
published vectors, the `openssl` command line, and the agent's signing (OpenSSL through its own binding); and its
refusals: a flipped bit, a malleated S, keys and signatures of the wrong length, no libsodium at all."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519 as outside
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ledger.keys import KeySpec
from simulators.platform import ed25519
from simulators.platform.ed25519 import Ed25519KeyError, Ed25519PublicKey, LibsodiumError
from simulators.platform.keys import StationKeyError, key_id, public_key_from_pem, public_key_from_raw
from simulators.platform.signatures import verifies

# RFC 8032, section 7.1 "Test Vectors for Ed25519": TEST 1, TEST 2, TEST 3 and TEST SHA(abc) (public key,
# message, signature), https://www.rfc-editor.org/rfc/rfc8032#section-7.1
RFC8032_VECTORS = [
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        # SHA-512("abc")
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
]
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
"""L, the order of Ed25519's base point (RFC 8032, section 5.1)."""


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True, timeout=30).stdout


def _flip(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


@pytest.mark.parametrize(("public", "message", "signature"), RFC8032_VECTORS)
def test_rfc8032_vectors_verify_and_a_flipped_bit_anywhere_does_not(public: str, message: str, signature: str) -> None:
    """Each published signature verifies with its published key; one bit flipped in R, in S or in the message
    (its first and last bits) makes it fail."""
    key, data, sig = Ed25519PublicKey(bytes.fromhex(public)), bytes.fromhex(message), bytes.fromhex(signature)
    key.verify(sig, data)
    for bit in (0, 255, 256, 511):
        assert not verifies(key, _flip(sig, bit), data)
    if data:
        for bit in (0, len(data) * 8 - 1):
            assert not verifies(key, sig, _flip(data, bit))
    assert not verifies(key, sig, data + b"\x00")


def test_what_openssl_signs_the_platform_verifies_with_the_key_file_openssl_wrote(tmp_path: Path) -> None:
    """A key made and a record signed by `openssl` (genpkey, pkeyutl -rawin): the public PEM loads as the station's
    key, its kid is SHA-256 of the raw key openssl prints, and the signature verifies; another's does not."""
    _openssl("genpkey", "-algorithm", "ed25519", "-out", str(tmp_path / "k.pem"))
    public_pem = _openssl("pkey", "-in", str(tmp_path / "k.pem"), "-pubout")
    public_der = _openssl("pkey", "-in", str(tmp_path / "k.pem"), "-pubout", "-outform", "DER")
    record = b'{"body":{"kind":"heartbeat"},"prev":"' + b"0" * 64 + b'","seq":1}'
    (tmp_path / "record").write_bytes(record)
    signature = _openssl(
        "pkeyutl", "-sign", "-rawin", "-inkey", str(tmp_path / "k.pem"), "-in", str(tmp_path / "record")
    )
    key = public_key_from_pem(public_pem)
    assert isinstance(key, Ed25519PublicKey)
    assert key.raw == public_der[-32:]
    assert key_id(key) == hashlib.sha256(public_der[-32:]).hexdigest()[:16]
    key.verify(signature, record)
    assert not verifies(key, signature, record.replace(b"heartbeat", b"heartbeaT"))
    assert not verifies(
        public_key_from_raw(outside.Ed25519PrivateKey.generate().public_key().public_bytes_raw()), signature, record
    )


def test_a_malleated_s_is_refused_though_the_equation_still_holds() -> None:
    """S + L satisfies the verification equation as S does ([S + L]B = [S]B); the platform refuses it, as
    OpenSSL (through `cryptography`) does, so that a signature has one spelling."""
    public, message, signature = (bytes.fromhex(part) for part in RFC8032_VECTORS[1])
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s + GROUP_ORDER).to_bytes(32, "little")
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey(public).verify(malleated, message)
    with pytest.raises(InvalidSignature):
        outside.Ed25519PublicKey.from_public_bytes(public).verify(malleated, message)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_a_key_of_the_wrong_length_is_refused_naming_the_length(length: int) -> None:
    """An Ed25519 key is 32 bytes; anything else is refused when the key is made, not at the first check."""
    with pytest.raises(Ed25519KeyError, match=f"32 bytes, got {length}"):
        Ed25519PublicKey(bytes(length))


@pytest.mark.parametrize("cut", [b"", b"\x00", b"\x01" * 63, b"\x01" * 65])
def test_a_signature_of_the_wrong_length_is_a_failed_check_not_a_crash(cut: bytes) -> None:
    """libsodium reads 64 bytes from the pointer it is given: a shorter or longer signature never reaches it."""
    public, message, signature = (bytes.fromhex(part) for part in RFC8032_VECTORS[0])
    assert not verifies(Ed25519PublicKey(public), cut, message)
    assert not verifies(Ed25519PublicKey(public), signature + b"\x00", message)


def test_a_small_order_key_is_refused_whatever_it_is_shown() -> None:
    """The identity point as a key (order 1) passes the equation with R = identity and S = 0 for every message
    (OpenSSL 3.0 accepts that "signature"); libsodium refuses keys and R of small order."""
    identity = (1).to_bytes(32, "little")
    forged = identity + bytes(32)
    assert not verifies(Ed25519PublicKey(identity), forged, b"any message")


@settings(max_examples=60, deadline=None)
@given(message=st.binary(max_size=1024), bit=st.integers(min_value=0, max_value=511))
def test_the_agents_signatures_verify_and_agree_with_openssl(message: bytes, bit: int) -> None:
    """What the agent signs (OpenSSL, its own binding) verifies here; with a bit flipped it fails here and
    in `cryptography` alike."""
    signature = AGENT_KEY.sign(message)
    key = public_key_from_pem(AGENT_KEY.public_pem().encode())
    assert verifies(key, signature, message)
    damaged = _flip(signature, bit)
    reference = outside.Ed25519PublicKey.from_public_bytes(AGENT_KEY.public_raw)
    try:
        reference.verify(damaged, message)
        openssl_says = True
    except InvalidSignature:
        openssl_says = False
    assert verifies(key, damaged, message) is openssl_says is False


def test_without_libsodium_a_key_is_refused_with_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """A box without libsodium gets a clear refusal when the station's key is loaded, naming libsodium23, and
    never a receiver that accepts records unchecked."""
    pem = AGENT_KEY.public_pem().encode()
    monkeypatch.setattr(ed25519, "LIBRARY", "libsodium-absent.so.0")
    ed25519._libsodium.cache_clear()
    try:
        with pytest.raises(LibsodiumError, match="install the Debian package libsodium23"):
            Ed25519PublicKey(bytes(32))
        with pytest.raises(StationKeyError, match="libsodium23"):
            public_key_from_pem(pem, "st1.pem")
    finally:
        ed25519._libsodium.cache_clear()


AGENT_KEY = KeySpec().generate()
