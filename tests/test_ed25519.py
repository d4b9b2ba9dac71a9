"""The Ed25519 binding (agent/ledger/ed25519.py through agent/ledger/libcrypto.py) against things it does not
share code with: the published test vectors of RFC 8032, `cryptography` (which signed the records and wrote the
key files before), and the `openssl` command line. Ed25519 is deterministic, so "the same" means byte for byte.
SM3 and SM2's DER signature form, which left `cryptography` at the same time, are pinned here the same way."""

from __future__ import annotations

import hashlib
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import ed25519 as outside
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ledger.ed25519 import Ed25519Error, Ed25519PrivateKey, Ed25519PublicKey
from agent.ledger.keys import DeviceKey, KeyFileError, generate_key_file, load_key_file
from agent.ledger.sm2 import ORDER, Sm2Error, der_signature, raw_signature
from agent.ledger.suites import PublicKey, PublicKeyError, Suite, sm3_hex

# RFC 8032, section 7.1 "Test Vectors for Ed25519": TEST 1, TEST 2 and TEST 3 (secret key, public key, message,
# signature), https://www.rfc-editor.org/rfc/rfc8032#section-7.1
RFC8032_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]

seeds = st.binary(min_size=32, max_size=32)
messages = st.binary(max_size=2048)


def _outside_verifies(public_raw: bytes, signature: bytes, data: bytes) -> bool:
    try:
        outside.Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
    except InvalidSignature:
        return False
    return True


def _old_key_file(path: Path, key: outside.Ed25519PrivateKey) -> Path:
    """A key file as the agent wrote it with `cryptography` (keygen before this binding): PKCS#8 PEM, mode 0600."""
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)
    return path


def _openssl(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], capture_output=True, check=True, timeout=30).stdout


class TestPublishedVectors:
    @pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032_VECTORS)
    def test_rfc8032_vectors_give_the_published_public_key_and_signature(
        self, secret: str, public: str, message: str, signature: str
    ) -> None:
        """Each RFC 8032 section 7.1 secret key gives the published public key and signature, which verifies;
        the same signature over another message or with a bit flipped does not."""
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
        data, expected = bytes.fromhex(message), bytes.fromhex(signature)
        assert key.public_raw.hex() == public
        assert key.sign(data) == expected
        verifier = Ed25519PublicKey(bytes.fromhex(public))
        assert verifier.verify(expected, data)
        assert not verifier.verify(expected, data + b"\x00")
        assert not verifier.verify(bytes([expected[0] ^ 1]) + expected[1:], data)


class TestSameAsCryptography:
    @settings(max_examples=300, deadline=None)
    @given(seeds, messages)
    def test_signatures_and_public_keys_are_byte_identical(self, seed: bytes, data: bytes) -> None:
        """For any seed and message, the public key and the signature are `cryptography`'s, byte for byte."""
        ours, theirs = Ed25519PrivateKey.from_private_bytes(seed), outside.Ed25519PrivateKey.from_private_bytes(seed)
        assert ours.public_raw == theirs.public_key().public_bytes_raw()
        assert ours.sign(data) == theirs.sign(data)

    @settings(max_examples=300, deadline=None)
    @given(seeds, messages, st.integers(min_value=0, max_value=511), st.booleans())
    def test_verify_agrees_on_good_and_tampered_signatures(
        self, seed: bytes, data: bytes, bit: int, tamper_message: bool
    ) -> None:
        """A good signature verifies on both sides; one bit changed in the signature (or a byte added to the
        message) fails on both."""
        signer = outside.Ed25519PrivateKey.from_private_bytes(seed)
        public_raw, signature = signer.public_key().public_bytes_raw(), signer.sign(data)
        assert Ed25519PublicKey(public_raw).verify(signature, data)
        if tamper_message:
            data += b"\x01"
        else:
            flipped = bytearray(signature)
            flipped[bit // 8] ^= 1 << (bit % 8)
            signature = bytes(flipped)
        assert Ed25519PublicKey(public_raw).verify(signature, data) is _outside_verifies(public_raw, signature, data)
        assert not _outside_verifies(public_raw, signature, data)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(min_size=32, max_size=32), st.binary(max_size=80), messages)
    def test_verify_agrees_on_arbitrary_keys_and_signatures(
        self, public_raw: bytes, signature: bytes, data: bytes
    ) -> None:
        """Any 32 bytes as a key (most are no point on the curve) and any bytes as a signature (of any length):
        the verdict is `cryptography`'s, and never an exception."""
        assert Ed25519PublicKey(public_raw).verify(signature, data) is _outside_verifies(public_raw, signature, data)

    def test_a_signature_with_s_not_reduced_is_refused_on_both_sides(self) -> None:
        """RFC 8032 section 5.1.7 refuses S >= L; adding L to a good S is the classic malleability: both refuse."""
        order_l = 2**252 + 27742317777372353535851937790883648493
        signer = outside.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
        signature = signer.sign(b"record")
        malleated = signature[:32] + (int.from_bytes(signature[32:], "little") + order_l).to_bytes(32, "little")
        public_raw = signer.public_key().public_bytes_raw()
        assert not Ed25519PublicKey(public_raw).verify(malleated, b"record")
        assert not _outside_verifies(public_raw, malleated, b"record")

    def test_pems_are_byte_identical(self) -> None:
        """The private key's PKCS#8 PEM and the public key's SubjectPublicKeyInfo PEM are `cryptography`'s."""
        seed = bytes(range(100, 132))
        theirs = outside.Ed25519PrivateKey.from_private_bytes(seed)
        key = DeviceKey.from_private(Ed25519PrivateKey.from_private_bytes(seed))
        assert key.private_pem() == theirs.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        assert key.public_pem().encode() == theirs.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def test_a_key_made_by_cryptography_signs_through_the_binding(self) -> None:
        """A `cryptography` key handed to DeviceKey (as tests and tools do) becomes the binding's key of the same
        seed: same kid, same signatures."""
        theirs = outside.Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
        key = DeviceKey.from_private(theirs)
        assert isinstance(key.private, Ed25519PrivateKey)
        assert key.public_raw == theirs.public_key().public_bytes_raw()
        assert key.sign(b"heartbeat") == theirs.sign(b"heartbeat")

    def test_threads_signing_at_once_make_the_same_signatures(self) -> None:
        """One key shared by threads (the Signer's pool does that) signs each message as one thread would."""
        key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
        payloads = [f"record {n}".encode() for n in range(400)]
        expected = [outside.Ed25519PrivateKey.from_private_bytes(bytes(range(32))).sign(p) for p in payloads]
        results: dict[int, list[bytes]] = {}

        def sign_all(worker: int) -> None:
            results[worker] = [key.sign(payload) for payload in payloads]

        workers = [threading.Thread(target=sign_all, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [results.get(n) for n in range(4)] == [expected] * 4


class TestKeyFiles:
    def test_a_key_file_written_by_cryptography_loads_and_signs_the_same(self, tmp_path: Path) -> None:
        """A key file from before this binding (cryptography's PKCS#8 PEM) loads with the same kid and signs
        byte for byte as `cryptography` does with it."""
        theirs = outside.Ed25519PrivateKey.generate()
        key = load_key_file(_old_key_file(tmp_path / "device.key", theirs))
        assert key.suite is Suite.ED25519
        assert key.public_raw == theirs.public_key().public_bytes_raw()
        assert key.kid == hashlib.sha256(key.public_raw).hexdigest()[:16]
        for data in (b"", b"x", bytes(range(256)) * 9):
            assert key.sign(data) == theirs.sign(data)

    def test_a_new_key_file_is_what_cryptography_reads_and_would_write(self, tmp_path: Path) -> None:
        """keygen's file loads in `cryptography` as an Ed25519 key with the same public key, and `cryptography`
        writes that key back to the same bytes."""
        path = tmp_path / "device.key"
        key = generate_key_file(path)
        theirs = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(theirs, outside.Ed25519PrivateKey)
        assert theirs.public_key().public_bytes_raw() == key.public_raw
        assert path.read_bytes() == theirs.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        assert load_key_file(path).sign(b"x") == theirs.sign(b"x")

    def test_a_key_of_another_type_is_named(self, tmp_path: Path) -> None:
        """An RSA or a P-256 key file is refused, naming its type and the two suites."""
        for name, other in (
            ("rsa", rsa.generate_private_key(65537, 2048)),
            ("p256", ec.generate_private_key(ec.SECP256R1())),
        ):
            path = tmp_path / f"{name}.key"
            path.write_bytes(
                other.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            path.chmod(0o600)
            with pytest.raises(KeyFileError, match=r"holds an? (RSA|EC) key, neither an Ed25519 nor an SM2 key"):
                load_key_file(path)

    def test_a_truncated_key_file_is_not_a_pem_private_key(self, tmp_path: Path) -> None:
        """A key file cut short names the file and what it is not."""
        path = _old_key_file(tmp_path / "device.key", outside.Ed25519PrivateKey.generate())
        path.write_bytes(path.read_bytes()[:40])
        with pytest.raises(KeyFileError, match=f"device key {path} is not an unencrypted PEM private key"):
            load_key_file(path)

    def test_a_seed_of_the_wrong_length_is_refused(self) -> None:
        """A private key is 32 bytes; anything else says so."""
        with pytest.raises(Ed25519Error, match="32 bytes, not 31"):
            Ed25519PrivateKey.from_private_bytes(bytes(31))


class TestPublicKeys:
    def test_a_public_pem_reads_as_cryptography_reads_it(self) -> None:
        """cryptography's SubjectPublicKeyInfo PEM, even with text around it (which it accepts), gives the key."""
        theirs = outside.Ed25519PrivateKey.generate().public_key()
        pem = theirs.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        for text in (pem, b"platform key, issued 2026\n" + pem + b"\n", pem.replace(b"\n", b"\r\n")):
            assert PublicKey.from_pem(text) == PublicKey(Suite.ED25519, theirs.public_bytes_raw())

    def test_bad_public_keys_say_what_they_are(self) -> None:
        """Not a PEM, a P-256 key, a raw key of the wrong length: each refused with a message saying which."""
        with pytest.raises(PublicKeyError, match=r"not a PEM public key \('-----BEGIN PUBLIC KEY-----'\)"):
            PublicKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
        pem = p256.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        with pytest.raises(PublicKeyError, match="a EC key, neither Ed25519 nor SM2"):
            PublicKey.from_pem(pem)
        with pytest.raises(PublicKeyError, match="32 bytes, not 33"):
            PublicKey.from_raw(Suite.ED25519, bytes(33))


class TestOpensslCommandLine:
    def test_openssl_verifies_what_the_agent_signs(self, tmp_path: Path) -> None:
        """`openssl pkeyutl -verify -rawin` accepts the agent's signature with its public PEM, and refuses it
        over another message."""
        key = generate_key_file(tmp_path / "device.key")
        (tmp_path / "public.pem").write_text(key.public_pem())
        (tmp_path / "message").write_bytes(b'{"seq":1,"station":"ST-1"}')
        (tmp_path / "other").write_bytes(b'{"seq":2,"station":"ST-1"}')
        (tmp_path / "sig").write_bytes(key.sign((tmp_path / "message").read_bytes()))
        verify = ["pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "public.pem"), "-rawin"]
        assert b"Signature Verified Successfully" in _openssl(
            *verify, "-in", str(tmp_path / "message"), "-sigfile", str(tmp_path / "sig")
        )
        refused = subprocess.run(
            ["openssl", *verify, "-in", str(tmp_path / "other"), "-sigfile", str(tmp_path / "sig")],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert refused.returncode != 0

    def test_the_agent_loads_openssls_key_and_verifies_its_signature(self, tmp_path: Path) -> None:
        """A key made by `openssl genpkey`, its signature by `openssl pkeyutl -sign -rawin`: the agent loads the
        key file, signs the same bytes, and verifies openssl's signature with openssl's public PEM."""
        key_path, message = tmp_path / "device.key", tmp_path / "message"
        _openssl("genpkey", "-algorithm", "ed25519", "-out", str(key_path))
        key_path.chmod(0o600)
        message.write_bytes(bytes(range(256)) * 3)
        signature = _openssl("pkeyutl", "-sign", "-inkey", str(key_path), "-rawin", "-in", str(message))
        public = PublicKey.from_pem(_openssl("pkey", "-in", str(key_path), "-pubout"))
        key = load_key_file(key_path)
        assert public == key.public
        assert public.verify(signature, message.read_bytes())
        assert key.sign(message.read_bytes()) == signature


class TestSm3AndSm2Der:
    @settings(max_examples=200, deadline=None)
    @given(messages)
    def test_sm3_is_cryptographys(self, data: bytes) -> None:
        """SM3 through hashlib is `cryptography`'s SM3 for any message."""
        outside_sm3 = hashes.Hash(hashes.SM3())
        outside_sm3.update(data)
        assert sm3_hex(data) == outside_sm3.finalize().hex()

    @settings(max_examples=500, deadline=None)
    @given(st.integers(min_value=1, max_value=ORDER - 1), st.integers(min_value=1, max_value=ORDER - 1))
    def test_der_signatures_are_cryptographys_both_ways(self, r: int, s: int) -> None:
        """SEQUENCE {r, s} is written as `cryptography` writes it and read back to the same r || s."""
        der = encode_dss_signature(r, s)
        assert der_signature(r, s) == der
        assert raw_signature(der) == r.to_bytes(32, "big") + s.to_bytes(32, "big")
        assert decode_dss_signature(der_signature(r, s)) == (r, s)

    @pytest.mark.parametrize(
        "der",
        [
            b"",
            bytes.fromhex("3006020101020101ff"),  # a byte after the sequence
            bytes.fromhex("300602010102"),  # cut short
            bytes.fromhex("300702020001020101"),  # r written with a leading zero it does not need
            bytes.fromhex("3006020100020101"),  # r = 0
            bytes.fromhex("3006040101020101"),  # an OCTET STRING where r should be
        ],
    )
    def test_der_that_is_not_a_minimal_signature_is_refused(self, der: bytes) -> None:
        """Anything but the exact minimal DER of r, s in [1, n - 1] is an error naming the bytes."""
        with pytest.raises(Sm2Error, match="not DER SEQUENCE"):
            raw_signature(der)
