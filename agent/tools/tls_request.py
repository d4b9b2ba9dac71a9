"""The box's TLS identity for the broker: a P-256 key of its own and a certificate signing request.

Why P-256 and not Ed25519: Mosquitto, the brokers platforms run and the CAs that sign device certificates
all take ECDSA P-256 over TLS 1.2 and 1.3, while Ed25519 certificates work only over TLS 1.3 with recent
OpenSSL on both ends, and many CAs will not issue them.

Why a key apart from the device key: the device key is the station's identity in its records for as long as
the chain lives, rotated only by a record it signs itself; the TLS key is an access credential that the
platform's PKI renews and revokes on its own schedule. Keeping them apart means a certificate renewal never
touches the chain, a TLS key copied off for a broker proxy cannot forge records, and no key signs for two
protocols.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class TlsRequestError(Exception):
    """The TLS key cannot be read or made."""


@dataclass(frozen=True, slots=True)
class TlsRequest:
    """The CSR (PEM) and what identifies its key: SHA-256 of the SubjectPublicKeyInfo, as pinning uses it."""

    csr_pem: str
    key_sha256: str
    key_created: bool


def _spki_sha256(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _tls_key(path: Path) -> tuple[ec.EllipticCurvePrivateKey, bool]:
    """The key at `path`, or a new one written there with O_EXCL and mode 0600; True if it was made now."""
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise TlsRequestError(f"TLS key {path} cannot be used ({exc}); move it away to make a new one") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TlsRequestError(f"TLS key {path} holds a {type(key).__name__}, not an EC key")
        return key, False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    return key, True


def make_tls_request(key_path: Path, csr_path: Path, station_id: str) -> TlsRequest:
    """Make (or reuse) the TLS key and write a CSR for it naming the station as its common name, which is
    what a broker with `use_identity_as_username` takes as the MQTT user name."""
    key, created = _tls_key(key_path)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, station_id)]))
        .sign(key, hashes.SHA256())
    )
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    csr_path.parent.mkdir(parents=True, exist_ok=True)
    csr_path.write_text(pem)
    return TlsRequest(pem, _spki_sha256(key.public_key()), created)


def read_tls_request(csr_path: Path) -> TlsRequest:
    """The CSR provision wrote, read back for a re-printed sheet (its key is not touched)."""
    try:
        csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise TlsRequestError(f"the CSR {csr_path} cannot be read ({exc}); run provision again to write it") from exc
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TlsRequestError(f"the CSR {csr_path} is not for an EC key; run provision again to write it")
    return TlsRequest(csr.public_bytes(serialization.Encoding.PEM).decode(), _spki_sha256(key), key_created=False)
