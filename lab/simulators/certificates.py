"""Throw-away X.509 certificates for TLS tests: a CA, a broker certificate and a device certificate.

They are made at run time and never committed, so no private key ever sits in a repository and nothing expires
in the middle of a release. The broker certificate names 127.0.0.1 and localhost in its subjectAltName (IP and
DNS), because clients check the name they dialled against it; the device certificate carries the station id as
its common name, which is what a broker with `use_identity_as_username` takes as the user name. Private keys are
written with mode 0600 from the start, as a real key would be.

The same helper serves suppliers' CI: `python -m simulators.certificates DIR` writes a full set and prints the
paths, ready for a Mosquitto listener and for the agent's `[uplink.tls]` section.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
VALID_DAYS = 30
_BACKDATE = datetime.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    """A PEM certificate and the PEM private key that goes with it."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class Pki:
    """Everything a TLS test needs: the CA that signed both sides, the broker's pair and the device's pair."""

    ca: CertificateFiles
    server: CertificateFiles
    client: CertificateFiles


def make_ca(
    directory: Path, name: str = "ca", common_name: str = "station-agent throw-away CA", valid_days: int = VALID_DAYS
) -> CertificateFiles:
    """A self-signed CA written to `directory/{name}.crt` and `{name}.key`; a second call makes an unrelated CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(common_name)
    builder = (
        _builder(subject, subject, key.public_key(), valid_days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return _write(directory, name, builder.sign(key, hashes.SHA256()), key)


def issue_certificate(
    ca: CertificateFiles,
    directory: Path,
    name: str,
    common_name: str,
    *,
    role: Literal["server", "client"],
    hosts: Sequence[str] = (),
    valid_days: int = VALID_DAYS,
) -> CertificateFiles:
    """A certificate signed by `ca`, for a TLS server (with `hosts` as IP or DNS subjectAltNames) or a client.

    Raises ValueError when a server certificate gets no hosts, since no client could then verify it.
    """
    if role == "server" and not hosts:
        raise ValueError(f"server certificate {name!r} has no hosts; pass e.g. hosts={LOOPBACK_HOSTS!r}")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_file.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key_file.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"CA key {ca.key_file} is not an EC key; make the CA with make_ca()")
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if role == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(_name(common_name), ca_cert.subject, key.public_key(), valid_days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
    return _write(directory, name, builder.sign(ca_key, hashes.SHA256()), key)


def make_pki(directory: Path, client_common_name: str = "S1", hosts: Sequence[str] = LOOPBACK_HOSTS) -> Pki:
    """A fresh CA with a broker certificate for `hosts` and a device certificate named `client_common_name`."""
    ca = make_ca(directory)
    server = issue_certificate(ca, directory, "server", "station-agent test broker", role="server", hosts=hosts)
    client = issue_certificate(ca, directory, "client", client_common_name, role="client")
    return Pki(ca=ca, server=server, client=client)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, valid_days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=valid_days))
    )


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(
    directory: Path, name: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> CertificateFiles:
    directory.mkdir(parents=True, exist_ok=True)
    files = CertificateFiles(cert_file=directory / f"{name}.crt", key_file=directory / f"{name}.key")
    files.cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _write_private(
        files.key_file,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return files


def _write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only, even if a looser file of that name was there before."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.certificates",
        description="Write a throw-away CA, a broker certificate and a device certificate (PEM) for TLS tests.",
    )
    parser.add_argument("directory", type=Path, help="where to write ca.*, server.* and client.*")
    parser.add_argument("--client-cn", default="S1", help="the device certificate's common name (the station id)")
    parser.add_argument(
        "--host",
        action="append",
        dest="hosts",
        help=f"a name or IP the broker certificate is valid for; repeatable (default: {' '.join(LOOPBACK_HOSTS)})",
    )
    args = parser.parse_args(argv)
    pki = make_pki(args.directory, args.client_cn, tuple(args.hosts or LOOPBACK_HOSTS))
    for role, files in (("ca", pki.ca), ("server", pki.server), ("client", pki.client)):
        print(f"{role}_cert={files.cert_file}")
        print(f"{role}_key={files.key_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
