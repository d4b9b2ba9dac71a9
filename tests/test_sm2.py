"""The SM2 suite (contract v1.2): SM3 and SM2 against the standards' published examples and the `openssl` command
line, key files, the chain hash by suite, SM2-signed platform commands, and a station that rotates from Ed25519
to SM2 and back with a chain the reference store and audit accept."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from station_rig import STATION
from support.waiting import wait_until

from agent.cli import main
from agent.clock import SystemClock
from agent.commands.envelope import Command, Limits, Refused, check_envelope
from agent.commands.platform_key import load_platform_key
from agent.config import ConfigError
from agent.config_validation import load_config
from agent.contract.records import HeartbeatBody, parse_ts
from agent.ledger.anchor import AnchorKeeper, anchor_path
from agent.ledger.chain import ChainHead, seal
from agent.ledger.keys import KeySpec, generate_key_file, load_key_file
from agent.ledger.opening import open_outbox
from agent.ledger.recorder import Recorder
from agent.ledger.settings import OutboxSection
from agent.ledger.sm2 import Sm2PrivateKey, Sm2PublicKey
from agent.ledger.suites import Suite, sm3_hex
from simulators.platform.audit import audit
from simulators.platform.keys import StationKey, keyring, load_public_key
from simulators.platform.rotation import announced_key
from simulators.platform.sm2 import Sm2PublicKey as PlatformSm2Key
from simulators.platform.store import Store
from simulators.platform.verify import verify_message

# GB/T 32918.5-2017 (GM/T 0003.5-2012) Annex A.2: the signature example on the recommended curve.
SAMPLE_PRIVATE = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
SAMPLE_POINT = bytes.fromhex(
    "04"
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
SAMPLE_MESSAGE = b"message digest"
SAMPLE_SIGNATURE = bytes.fromhex(
    "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
    "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
)
DEFAULT_ID = "1234567812345678"
NOW_MS = 1_795_000_000_000


def _sample_private_pem() -> bytes:
    """The sample private key as PKCS#8 (RFC 5208 around RFC 5915 without the public key), DER built by hand."""
    ec_private = bytes.fromhex("302502010104") + bytes([32]) + SAMPLE_PRIVATE
    algorithm = bytes.fromhex("301306072a8648ce3d020106082a811ccf5501822d")
    body = bytes.fromhex("020100") + algorithm + bytes([0x04, len(ec_private)]) + ec_private
    der = bytes([0x30, len(body)]) + body
    return b"-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(der) + b"-----END PRIVATE KEY-----\n"


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True, timeout=30).stdout


def _raw(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


class TestPublishedExamples:
    def test_sm3_of_abc_and_of_the_64_byte_example_are_the_standards(self) -> None:
        """GB/T 32905-2016 Annex A: SM3("abc") and SM3("abcd" * 16), as published and as `openssl dgst` gives."""
        assert sm3_hex(b"abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        assert sm3_hex(b"abcd" * 16) == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        assert _openssl("dgst", "-sm3", "-r", data=b"abc").split()[0].decode() == sm3_hex(b"abc")

    def test_the_standards_sample_signature_verifies_on_both_sides(self) -> None:
        """The Annex A.2 signature of "message digest" under the default ID verifies with the agent's binding
        and the reference receiver's; a changed message or signature does not."""
        assert Sm2PublicKey(SAMPLE_POINT).verify(SAMPLE_SIGNATURE, SAMPLE_MESSAGE)
        PlatformSm2Key(SAMPLE_POINT).verify(SAMPLE_SIGNATURE, SAMPLE_MESSAGE)
        assert not Sm2PublicKey(SAMPLE_POINT).verify(SAMPLE_SIGNATURE, b"message digesT")
        flipped = SAMPLE_SIGNATURE[:-1] + bytes([SAMPLE_SIGNATURE[-1] ^ 1])
        assert not Sm2PublicKey(SAMPLE_POINT).verify(flipped, SAMPLE_MESSAGE)
        assert not Sm2PublicKey(SAMPLE_POINT).verify(SAMPLE_SIGNATURE, SAMPLE_MESSAGE, b"ALICE123@YAHOO.COM")

    def test_the_sample_private_key_gives_the_published_public_key_and_signs_verifiably(self) -> None:
        """Loading the sample d yields the published point; what it signs verifies with the published key."""
        private = Sm2PrivateKey.from_pem(_sample_private_pem())
        assert private.public_point == SAMPLE_POINT
        signature = private.sign(SAMPLE_MESSAGE)
        assert len(signature) == 64 and signature != private.sign(SAMPLE_MESSAGE)  # randomized, as SM2 is
        assert Sm2PublicKey(SAMPLE_POINT).verify(signature, SAMPLE_MESSAGE)


class TestOpensslInterop:
    def test_what_the_agent_signs_the_openssl_command_line_verifies(self, tmp_path: Path) -> None:
        """A device key file read by `openssl`: its public key is the agent's, and the agent's r || s, as DER,
        verifies with `openssl pkeyutl` under SM3 and the default ID (and fails under another ID)."""
        key = generate_key_file(tmp_path / "device.key", KeySpec(Suite.SM2))
        assert (tmp_path / "device.key").stat().st_mode & 0o777 == 0o600
        public_pem = _openssl("pkey", "-in", str(tmp_path / "device.key"), "-pubout").decode()
        assert public_pem == key.public_pem()
        (tmp_path / "pub.pem").write_text(public_pem)
        (tmp_path / "data").write_bytes(b'{"seq":1}')
        (tmp_path / "sig.der").write_bytes(_der(key.sign(b'{"seq":1}')))
        verify = ["pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", str(tmp_path / "pub.pem")]
        files = ["-in", str(tmp_path / "data"), "-sigfile", str(tmp_path / "sig.der")]
        assert b"Signature Verified Successfully" in _openssl(*verify, "-pkeyopt", f"distid:{DEFAULT_ID}", *files)
        with pytest.raises(subprocess.CalledProcessError):
            _openssl(*verify, "-pkeyopt", "distid:another-id", *files)

    def test_what_openssl_signs_both_bindings_verify(self, tmp_path: Path) -> None:
        """A key made and a signature made by `openssl` (DER, as r || s) verify with the agent's binding and the
        reference receiver's, each with the ID it was made under."""
        _openssl("genpkey", "-algorithm", "SM2", "-out", str(tmp_path / "k.pem"))
        (tmp_path / "pub.pem").write_bytes(_openssl("pkey", "-in", str(tmp_path / "k.pem"), "-pubout"))
        message = b"station record bytes"
        (tmp_path / "m").write_bytes(message)
        for distinguishing_id in (DEFAULT_ID, "ST-0001@fsm"):
            der = _openssl(
                *("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", str(tmp_path / "k.pem")),
                *("-pkeyopt", f"distid:{distinguishing_id}", "-in", str(tmp_path / "m")),
            )
            signature = _raw(der)
            platform_key = load_public_key(tmp_path / "pub.pem")
            assert isinstance(platform_key, PlatformSm2Key)
            agent_key = Sm2PublicKey(platform_key.point)
            assert agent_key.verify(signature, message, distinguishing_id.encode())
            assert agent_key.verify(signature, message) == (distinguishing_id == DEFAULT_ID)
            PlatformSm2Key(platform_key.point, distinguishing_id.encode()).verify(signature, message)


class TestKeysAndChain:
    def test_an_sm2_key_file_loads_with_its_suite_and_kid(self, tmp_path: Path) -> None:
        """keygen's file reads back as SM2 with kid `sm2-` + SM3(point)[:8], the same kid the receiver computes."""
        key = generate_key_file(tmp_path / "device.key", KeySpec(Suite.SM2))
        loaded = load_key_file(tmp_path / "device.key")
        assert loaded.suite is Suite.SM2 and loaded.kid == key.kid
        assert key.kid == "sm2-" + hashes_sm3(key.public_raw)[:16] and len(key.public_raw) == 65
        (tmp_path / "pub.pem").write_text(key.public_pem())
        assert StationKey("ST-0001", load_public_key(tmp_path / "pub.pem")).kid == key.kid

    def test_sm2_records_chain_by_sm3_and_verify_at_the_reference_receiver(self, tmp_path: Path) -> None:
        """Sealed with an SM2 key: each prev is the SM3 of the record before, and the receiver accepts all."""
        key = generate_key_file(tmp_path / "device.key", KeySpec(Suite.SM2))
        beat = HeartbeatBody(interval_s=60, uptime_s=0, uplink="online", unacked=0, devices_online=0, devices_total=0)
        records, head = seal([beat.intent(NOW_MS + i) for i in range(3)], ChainHead.genesis(), STATION, key)
        parsed = [json.loads(record.canonical) for record in records]
        assert parsed[1]["prev"] == hashes_sm3(records[0].canonical) and head.digest == hashes_sm3(records[2].canonical)
        (tmp_path / "pub.pem").write_text(key.public_pem())
        message = {
            "kid": key.kid,
            "records": [
                {"record": p, "sig": base64.b64encode(r.sig).decode()} for p, r in zip(parsed, records, strict=True)
            ],
        }
        keys = {key.kid: load_public_key(tmp_path / "pub.pem")}
        verdict = verify_message(json.dumps(message).encode(), STATION, keys)
        assert verdict.rejections == () and [r.digest for r in verdict.accepted] == [r.digest for r in records]


def hashes_sm3(data: bytes) -> str:
    """SM3 from `cryptography`, not through the suite module under test."""
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


class TestSm2Commands:
    def test_a_command_signed_by_an_sm2_platform_key_with_openssl_is_obeyed_and_a_tampered_one_refused(
        self, tmp_path: Path
    ) -> None:
        """The platform key file may be SM2: an envelope signed by `openssl` under that key checks out; the same
        envelope with a changed field is refused as bad_signature."""
        _openssl("genpkey", "-algorithm", "SM2", "-out", str(tmp_path / "platform.key"))
        (tmp_path / "platform.pem").write_bytes(_openssl("pkey", "-in", str(tmp_path / "platform.key"), "-pubout"))
        keys = load_platform_key(tmp_path / "platform.pem")
        (kid,) = keys
        assert kid.startswith("sm2-")
        envelope: dict[str, Any] = {
            "id": "c-1",
            "cmd": "ping",
            "args": {},
            "issued": "2026-11-18T08:00:00.000Z",
            "expires": "2026-11-18T08:01:00.000Z",
            "station": STATION,
            "kid": kid,
        }
        (tmp_path / "signed").write_bytes(rfc8785.dumps(envelope))
        der = _openssl(
            *("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", str(tmp_path / "platform.key")),
            *("-pkeyopt", f"distid:{DEFAULT_ID}", "-in", str(tmp_path / "signed")),
        )
        envelope["sig"] = base64.b64encode(_raw(der)).decode()
        limits = Limits(max_skew_ms=30_000, max_lifetime_ms=3_600_000, max_bytes=16_384)
        now_ms = parse_ts("2026-11-18T08:00:30.000Z")
        command = check_envelope(json.dumps(envelope).encode(), STATION, keys, now_ms, limits)
        assert isinstance(command, Command) and command.kid == kid
        tampered = check_envelope(json.dumps({**envelope, "cmd": "status"}).encode(), STATION, keys, now_ms, limits)
        assert isinstance(tampered, Refused) and tampered.reason.value == "bad_signature"


class TestRotationAcrossSuites:
    def test_a_station_rotates_from_ed25519_to_sm2_and_back_with_its_chain_unbroken(self, tmp_path: Path) -> None:
        """Ed25519 records, a rotation to SM2 (signed by the Ed25519 key), SM2 records, a rotation back (signed
        by the SM2 key), Ed25519 records: the reference store, learning each key from its key_rotation record,
        accepts every record with no chain break, and the audit agrees from the stored evidence alone."""
        key_path = tmp_path / "keys" / "device.key"
        first = generate_key_file(key_path)
        outbox_path = tmp_path / "outbox.sqlite"
        kids = [first.kid, *(_run_then_rotate(key_path, outbox_path, target) for target in (Suite.SM2, Suite.ED25519))]
        assert kids[1].startswith("sm2-") and not kids[2].startswith("sm2-")
        with closing(sqlite3.connect(outbox_path)) as db:
            rows = db.execute("SELECT kid, canonical, sig FROM record ORDER BY seq").fetchall()
        assert {row[0] for row in rows} == set(kids)

        registered = keyring([StationKey(STATION, load_public_key(_public_pem(tmp_path, first.public_pem())))])
        known = dict(registered[STATION])
        with Store(tmp_path / "platform.sqlite") as store:
            for kid, canonical, sig in rows:
                item = {"record": json.loads(canonical), "sig": base64.b64encode(sig).decode()}
                verdict = verify_message(json.dumps({"kid": kid, "records": [item]}).encode(), STATION, known)
                assert verdict.rejections == (), verdict.rejections
                store.ingest(STATION, verdict)
                learned = announced_key(bytes(canonical), kid)
                if learned is not None:
                    known[learned[0]] = learned[1]
            report = store.station_report(STATION)
        assert report.ok and report.chain_breaks == () and report.gaps == () and report.upto == len(rows)
        assert list(known) == kids
        audited = audit(tmp_path / "platform.sqlite", registered).station(STATION)
        assert audited.ok and audited.chain_breaks == () and audited.upto == len(rows)
        rotation = json.loads(rows[3][1])
        after = json.loads(rows[4][1])
        assert (
            rotation["body"]["new_kid"] == kids[1] and len(base64.b64decode(rotation["body"]["new_public_key"])) == 65
        )
        assert after["prev"] == _sha256(rows[3][1]) and json.loads(rows[5][1])["prev"] == hashes_sm3(rows[4][1])


def _run_then_rotate(key_path: Path, outbox_path: Path, target: Suite) -> str:
    """One run of the ledger as the agent runs it: three records, a rotation to a key of `target`, three more
    records by the new key; returns the new kid."""
    key = load_key_file(key_path)
    opened = open_outbox(
        outbox_path, 64 * 1024**2, key, station=STATION, anchor_file=anchor_path(key_path), now_ms=NOW_MS, config=None
    )
    keeper = AnchorKeeper(anchor_path(key_path), opened.anchor)
    settings = OutboxSection(path=outbox_path)
    recorder = Recorder(
        opened.outbox, STATION, key, settings, SystemClock(), key_path=key_path, anchor=keeper, key_spec=KeySpec(target)
    )
    recorder.start()
    beat = HeartbeatBody(interval_s=60, uptime_s=0, uplink="online", unacked=0, devices_online=0, devices_total=0)
    for index in range(3):
        recorder.submit(beat.intent(NOW_MS + index))
    rotated = recorder.rotate_key(None).result(timeout=10)
    for index in range(3):
        recorder.submit(beat.intent(NOW_MS + 10 + index))
    wait_until(lambda: recorder.head.seq >= rotated.seq + 3, 10, "the records after the rotation")
    recorder.stop()
    opened.outbox.close()
    return rotated.new_kid


def _public_pem(folder: Path, pem: str) -> Path:
    path = folder / "station.pem"
    path.write_text(pem)
    return path


def _sha256(data: bytes) -> str:
    return _openssl("dgst", "-sha256", "-r", data=data).split()[0].decode()


class TestInstaller:
    def test_keygen_with_suite_sm2_makes_a_private_sm2_key_openssl_reads(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`keygen --suite sm2` writes a 0600 PKCS#8 key that `openssl` reads as SM2, and prints its kid."""
        key_file = tmp_path / "device.key"
        assert main(["keygen", str(key_file), "--suite", "sm2"]) == 0
        out = capsys.readouterr().out
        key = load_key_file(key_file)
        assert key.suite is Suite.SM2 and f"kid: {key.kid}" in out and "suite: sm2" in out
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert b"ASN1 OID: SM2" in _openssl("pkey", "-in", str(key_file), "-noout", "-text")

    def test_provision_with_suite_sm2_configures_sm2_and_keeps_the_tls_key_p256(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`provision --suite sm2`: the config says suite sm2, the device key is SM2, the sheet names its suite
        and kid; the TLS request stays P-256 (brokers take it)."""
        argv = [
            *("provision", "--config", str(tmp_path / "etc" / "agent.toml"), "--state-dir", str(tmp_path / "var")),
            *("--run-dir", str(tmp_path / "run"), "--station-id", "CQ-YB-0042", "--timezone", "Asia/Shanghai"),
            *("--broker", "mqtt.example.city:8883", "--suite", "sm2", "--json"),
        ]
        assert main(argv) == 0
        sheet = json.loads(capsys.readouterr().out)
        config = load_config(tmp_path / "etc" / "agent.toml").config
        key = load_key_file(config.keys.device_key)
        assert (config.keys.suite, key.suite, sheet["suite"], sheet["kid"]) == ("sm2", Suite.SM2, "sm2", key.kid)
        csr = x509.load_pem_x509_csr(sheet["tls"]["csr_pem"].encode())
        public = csr.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"

    def test_a_bad_suite_or_id_is_refused_naming_the_field(self, tmp_path: Path) -> None:
        """`[keys] suite` must be ed25519 or sm2, and `sm2_id` printable ASCII; each error names its field."""
        base = '[station]\nid = "ST-1"\n[uplink]\nbroker = "127.0.0.1:1883"\n[keys]\n'
        for line, field in (('suite = "rsa"', "keys.suite"), ('sm2_id = "有 ID"', "keys.sm2_id")):
            (tmp_path / "agent.toml").write_text(base + line + "\n")
            with pytest.raises(ConfigError) as caught:
                load_config(tmp_path / "agent.toml")
            assert any(field in str(problem) for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("algorithm", ["ed25519", "SM2"])
def test_an_encrypted_key_is_refused_at_once_even_at_a_terminal(tmp_path: Path, algorithm: str) -> None:
    """OpenSSL would ask for a passphrase on the terminal: under a pseudo-terminal the load fails at once with the
    agent's own message instead of waiting at a prompt."""
    plain, encrypted = tmp_path / "plain.key", tmp_path / "device.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", algorithm, "-out", str(plain)], check=True, timeout=30)
    subprocess.run(
        ["openssl", "pkey", "-in", str(plain), "-aes256", "-passout", "pass:secret", "-out", str(encrypted)],
        check=True,
        timeout=30,
    )
    encrypted.chmod(0o600)
    load = f"from pathlib import Path; from agent.ledger.keys import load_key_file; load_key_file(Path('{encrypted}'))"
    done = subprocess.run(
        ["script", "-qec", f'{sys.executable} -c "{load}"', "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert "is not an unencrypted PEM private key" in done.stdout
    assert "pass phrase" not in done.stdout.lower()
