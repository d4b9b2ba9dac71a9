"""`station-sim platform` and `station-sim platform-audit` as a supplier runs them: processes, files, exit codes."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from support.waiting import wait_until
from test_platform_signer import StationClient, TinySigner

from agent.ledger.keys import KeySpec, generate_key_file
from agent.ledger.suites import Suite
from simulators import cli
from simulators.broker import MosquittoBroker
from simulators.platform import ed25519
from simulators.platform.cli import parse_broker
from simulators.platform.store import Store
from simulators.platform.verify import verify_message

STATION = "ST-0001"


@pytest.fixture
def signer() -> TinySigner:
    return TinySigner(STATION)


@pytest.fixture
def key_file(tmp_path: Path, signer: TinySigner) -> Path:
    path = tmp_path / "st1.pem"
    path.write_bytes(signer.pem())
    return path


def station_sim(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "simulators.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str], timeout_s: float = 15.0) -> tuple[int, dict[str, Any], str]:
    """Exit code, the report from the last stdout line, and stderr."""
    stdout, stderr = process.communicate(timeout=timeout_s)
    lines = stdout.strip().splitlines()
    assert lines, f"no report on stdout; stderr: {stderr}"
    return process.returncode, json.loads(lines[-1]), stderr


def wait_for_file(path: Path, process: subprocess.Popen[str], timeout_s: float = 10.0) -> None:
    wait_until(lambda: path.exists() or process.poll() is not None, timeout_s, f"{path.name} to be written")
    assert path.exists(), f"exited early: {process.communicate()}"


def test_platform_runs_until_sigterm_writes_the_report_and_audit_agrees(
    broker: MosquittoBroker, tmp_path: Path, key_file: Path, signer: TinySigner
) -> None:
    """Records are acked while it runs, the report file is kept current, and the final report is the last line."""
    prefix = f"t{uuid.uuid4().hex[:8]}/v1"
    db, report_file = tmp_path / "platform.sqlite", tmp_path / "report.json"
    process = station_sim(
        "platform",
        *("--broker", broker.address, "--db", str(db), "--station", f"{STATION}={key_file}"),
        *("--prefix", prefix, "--report", str(report_file), "--client-id", f"cli-{prefix}"),
    )
    try:
        wait_for_file(report_file, process)
        station = StationClient(broker, prefix, STATION)
        chain = signer.chain(5)
        station.publish("records", signer.message(chain[:2]))
        station.publish("records", signer.message(chain[2:]))
        assert station.wait_acks(2) == [{"upto": 2}, {"upto": 5}]
        station.close()
    finally:
        process.send_signal(signal.SIGTERM)
    code, report, _ = finish(process)
    assert code == 0
    assert report["ok"] is True
    assert report["stations"][STATION]["upto"] == 5
    assert json.loads(report_file.read_text()) == report
    assert not list(tmp_path.glob(".*.partial"))

    audited = station_sim("platform-audit", "--db", str(db), "--station", f"{STATION}={key_file}")
    code, again, _ = finish(audited)
    assert (code, again) == (0, report)


def test_platform_for_n_seconds_exits_1_when_not_ok(
    broker: MosquittoBroker, tmp_path: Path, key_file: Path, signer: TinySigner
) -> None:
    """--seconds stops it by itself; a gap makes the report not ok and the exit code 1."""
    prefix = f"t{uuid.uuid4().hex[:8]}/v1"
    report_file = tmp_path / "report.json"
    process = station_sim(
        "platform",
        *("--broker", broker.address, "--db", str(tmp_path / "p.sqlite"), "--station", f"{STATION}={key_file}"),
        *("--prefix", prefix, "--report", str(report_file), "--seconds", "2", "--mqtt", "3.1.1"),
        *("--client-id", f"cli-{prefix}"),
    )
    wait_for_file(report_file, process)
    station = StationClient(broker, prefix, STATION)
    station.publish("records", signer.message(signer.chain(3)[2:]))
    assert station.wait_acks(1) == [{"upto": 0}]
    station.close()
    code, report, _ = finish(process)
    assert code == 1
    assert report["stations"][STATION]["gaps"] == [[1, 2]]


def test_platform_audit_exits_1_on_a_tampered_database(tmp_path: Path, key_file: Path, signer: TinySigner) -> None:
    """An audit finds a stored record changed after the fact."""
    db = tmp_path / "p.sqlite"
    with Store(db) as store:
        verdict = verify_message(signer.message(signer.chain(2)), STATION, {signer.kid: signer.platform_key()})
        store.ingest(STATION, verdict)
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE records SET sig = ? WHERE seq = 1", (signer.sign(signer.chain(2)[1]),))
    code, report, stderr = finish(station_sim("platform-audit", "--db", str(db), "--station", f"{STATION}={key_file}"))
    assert code == 1
    assert report["stations"][STATION]["bad_signatures"] == 1
    assert "platform.audit_rejected" in stderr


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Exit code and the one line on stderr, which says on stdout what the JSON error line says."""
    code = cli.main(list(args))
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert captured.err.strip() == f"station-sim {args[0]}: {error}"
    return code, captured.err.strip()


def test_missing_key_file_is_one_clear_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Exit 2 and one line naming the file and what to give."""
    missing = tmp_path / "nope.pem"
    code, err = _run(capsys, "platform-audit", "--db", "x", "--station", f"{STATION}={missing}")
    assert code == 2
    assert err == (
        f"station-sim platform-audit: cannot read public key file {str(missing)!r}: "
        "No such file or directory; give the path of the station's PEM public key"
    )


def test_bad_pem_is_one_clear_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A file that is not PEM is named, with the expected header."""
    bad = tmp_path / "bad.pem"
    bad.write_text("hello\n")
    code, err = _run(capsys, "platform", "--db", "x", "--station", f"{STATION}={bad}")
    assert code == 2
    assert err.startswith(f"station-sim platform: {str(bad)!r} is not a PEM public key;")
    assert "-----BEGIN PUBLIC KEY-----" in err


@pytest.mark.parametrize("suite", [Suite.ED25519, Suite.SM2])
def test_without_libsodium_the_receiver_and_the_audit_refuse_to_start_naming_the_package(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suite: Suite
) -> None:
    """No libsodium on the box: both commands exit 2 at once with one line naming libsodium23 (and the Ed25519
    key file it was needed for), rather than run with records they cannot check; a station registered with an
    SM2 key too, as it may rotate to an Ed25519 one at any time."""
    key_file = tmp_path / "st1.pem"
    key_file.write_text(generate_key_file(tmp_path / "device.key", KeySpec(suite)).public_pem())
    monkeypatch.setattr(ed25519, "LIBRARY", "libsodium-absent.so.0")
    ed25519._libsodium.cache_clear()
    try:
        for command in ("platform", "platform-audit"):
            code, err = _run(capsys, command, "--db", str(tmp_path / "p.sqlite"), "--station", f"{STATION}={key_file}")
            assert code == 2
            assert "install the Debian package libsodium23" in err
            assert ("st1.pem" in err) == (suite is Suite.ED25519)
    finally:
        ed25519._libsodium.cache_clear()


def test_key_of_another_algorithm_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Only Ed25519 keys can check station signatures."""
    other = tmp_path / "ec.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    code, err = _run(capsys, "platform", "--db", "x", "--station", f"{STATION}={other}")
    assert code == 2
    assert "ec.pem' holds a public key that is neither Ed25519 nor SM2" in err


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("ST-0001", "is not of the form ID=PUBKEY.pem"),
        ("ST/1={key}", "station id 'ST/1' cannot be used: it contains '/'"),
    ],
)
def test_bad_station_argument_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], key_file: Path, argument: str, message: str
) -> None:
    """The station argument is ID=PUBKEY.pem with an id that can be a topic level."""
    code, err = _run(capsys, "platform", "--db", "x", "--station", argument.format(key=key_file))
    assert code == 2
    assert message in err


@pytest.mark.parametrize("broker", ["localhost", "localhost:0", "localhost:http", ":1883", "host:70000"])
def test_bad_broker_address_is_one_clear_line(capsys: pytest.CaptureFixture[str], key_file: Path, broker: str) -> None:
    """The broker is HOST:PORT."""
    code, err = _run(capsys, "platform", "--broker", broker, "--db", "x", "--station", f"{STATION}={key_file}")
    assert code == 2
    assert err == f"station-sim platform: --broker {broker!r} is not HOST:PORT; give e.g. 127.0.0.1:1883"


def test_ipv6_broker_address_is_accepted() -> None:
    """An IPv6 host goes in brackets."""
    assert parse_broker("[::1]:1883") == ("::1", 1883)
