"""`station-agent selftest`: passes on a good box (real Mosquitto, simulated devices on pty lines) and fails
clearly, with a fix, on each broken precondition."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import serial
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from installer_site import CONTROLLER, COUNTER, forecourt

from agent.cli import main
from agent.ledger.keys import generate_key_file
from agent.tools import box_checks
from agent.tools.box_checks import check_clock, check_status_dir
from agent.tools.checks import Check, Status
from agent.tools.selftest import run_selftest
from simulators.broker import BrokerTls, MosquittoBroker, free_loopback_port
from simulators.certificates import CertificateFiles, make_pki
from simulators.station import SimulatedStation


@pytest.fixture(scope="module")
def tty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("selftest")
    station: SimulatedStation
    with forecourt(workdir) as station:
        assert station.device_count > 0
        yield workdir / "tty"


def settings(tmp_path: Path, broker: str, tty: Path) -> dict[str, Any]:
    return {
        "station": {"id": "ST-SELF"},
        "keys": {"device_key": "keys/device.key"},
        "outbox": {"path": "state/outbox.sqlite", "max_bytes": 1024**2},
        "uplink": {"broker": broker, "ack_mode": "platform"},
        "status": {"path": "run/status.json"},
        "lines": [
            {
                "kind": "rtu",
                "name": "rs485",
                "port": str(tty / "rs485"),
                "timeout_ms": 100,
                "devices": [
                    {"name": "pc1", "unit": CONTROLLER, "profile": "sim-pump-controller"},
                    {"name": "pcm1", "unit": COUNTER, "profile": "sim-pulse-counter"},
                ],
            },
            {
                "kind": "tls",
                "name": "gauge",
                "port": str(tty / "gauge"),
                "timeout_ms": 500,
                "devices": [{"name": "tg1"}],
            },
        ],
        "dispensers": [
            {"id": "D1", "nozzles": [{"id": "D1-N1", "grade": "92", "controller": "pc1", "controller_nozzle": 1}]}
        ],
    }


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "agent.toml"
    path.write_bytes(tomli_w.dumps(document).encode())
    return path


@pytest.fixture
def box(tmp_path: Path, broker: MosquittoBroker, tty: Path) -> dict[str, Any]:
    """A good box's config (as a document to break); its key exists."""
    generate_key_file(tmp_path / "keys" / "device.key")
    return settings(tmp_path, broker.address, tty)


def run(tmp_path: Path, document: dict[str, Any]) -> dict[str, Check]:
    checks = run_selftest(write(tmp_path, document), synchronised=lambda: True, broker_timeout_s=3.0)
    return {check.name: check for check in checks}


def failures(checks: dict[str, Check]) -> dict[str, Check]:
    return {name: check for name, check in checks.items() if check.status == Status.FAIL}


class TestGoodBox:
    def test_every_check_passes(self, tmp_path: Path, box: dict[str, Any]) -> None:
        """Config, key, folders, disk, clock, both devices and the gauge, the broker and the ack subscription."""
        checks = run(tmp_path, box)
        assert {name: check.status for name, check in checks.items()} == {
            "config": Status.OK,
            "device key": Status.OK,
            "outbox dir": Status.OK,
            "status dir": Status.OK,
            "disk space": Status.OK,
            "clock": Status.OK,
            "device pc1": Status.OK,
            "device pcm1": Status.OK,
            "device tg1": Status.OK,
            "broker": Status.OK,
            "platform acks": Status.OK,
        }
        assert "subscribed to fsm/v1/ST-SELF/ack" in checks["platform acks"].detail
        assert "tank gauge (2 tanks)" in checks["device tg1"].detail

    def test_the_command_exits_0_and_prints_a_line_per_check(
        self, tmp_path: Path, box: dict[str, Any], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without NTP to ask here the clock is a warning, which does not fail the self-test."""
        assert main(["selftest", "--config", str(write(tmp_path, box)), "--json"]) == 0
        checks = json.loads(capsys.readouterr().out)
        assert {check["status"] for check in checks} <= {"OK", "WARN"}
        assert len(checks) == 11

    def test_broker_mode_does_not_subscribe_to_acks(self, tmp_path: Path, box: dict[str, Any]) -> None:
        box["uplink"]["ack_mode"] = "broker"
        checks = run(tmp_path, box)
        assert checks["broker"].status == Status.OK
        assert "platform acks" not in checks


class TestBrokenPreconditions:
    def test_missing_key(self, tmp_path: Path, box: dict[str, Any]) -> None:
        (tmp_path / "keys" / "device.key").unlink()
        failed = failures(run(tmp_path, box))
        assert list(failed) == ["device key"]
        assert "does not exist" in failed["device key"].detail
        assert failed["device key"].fix.startswith(f"station-agent keygen {tmp_path / 'keys' / 'device.key'}")

    def test_key_readable_by_others(self, tmp_path: Path, box: dict[str, Any]) -> None:
        key = tmp_path / "keys" / "device.key"
        key.chmod(0o644)
        failed = failures(run(tmp_path, box))
        assert list(failed) == ["device key"]
        assert failed["device key"].detail == f"{key} has mode 0644: others may read it"
        assert failed["device key"].fix == f"chmod 600 {key}"

    @pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away takes root")
    def test_key_of_another_user(self, tmp_path: Path, box: dict[str, Any]) -> None:
        key = tmp_path / "keys" / "device.key"
        os.chown(key, 4242, -1)
        failed = failures(run(tmp_path, box))
        assert list(failed) == ["device key"]
        assert "belongs to uid 4242" in failed["device key"].detail
        assert "chown station-agent" in failed["device key"].fix

    def test_bad_config(self, tmp_path: Path, box: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
        """An invalid config fails the first check, names the field, and the command exits 1."""
        box["station"]["timezone"] = "Mars/Olympus"
        path = write(tmp_path, box)
        assert main(["selftest", "--config", str(path)]) == 1
        out = capsys.readouterr().out
        assert out.startswith("FAIL  config")
        assert "station.timezone: found 'Mars/Olympus'" in out
        assert f"fix: correct it; station-agent check-config {path} lists each problem" in out

    def test_no_config_yet(self, tmp_path: Path) -> None:
        checks = run_selftest(tmp_path / "agent.toml", synchronised=lambda: True)
        assert [(check.name, check.status) for check in checks] == [("config", Status.FAIL), ("clock", Status.OK)]
        assert checks[0].fix == "write it with station-agent provision (or give --config)"

    def test_unreachable_broker(self, tmp_path: Path, box: dict[str, Any]) -> None:
        box["uplink"]["broker"] = f"127.0.0.1:{free_loopback_port()}"
        failed = failures(run(tmp_path, box))
        assert list(failed) == ["broker"]
        assert "Connection refused" in failed["broker"].detail
        assert "check uplink.broker" in failed["broker"].fix

    def test_dead_device(self, tmp_path: Path, box: dict[str, Any]) -> None:
        """A unit that never answers: its line, unit and the timeout, and where to look."""
        box["lines"][0]["devices"].append({"name": "pc9", "unit": 9, "profile": "sim-pump-controller"})
        failed = failures(run(tmp_path, box))
        assert list(failed) == ["device pc9"]
        assert failed["device pc9"].detail == "line rs485: unit 9 function 0x03 @ 0x00FC x3: no answer within 0.1 s"
        assert "station-agent scan --port" in failed["device pc9"].fix

    def test_a_port_that_is_not_there_fails_its_line_once(self, tmp_path: Path, box: dict[str, Any]) -> None:
        """No adapter: one failure for the line, not one per device on it."""
        box["lines"][0]["port"] = str(tmp_path / "ttyUSB9")
        failed = failures(run(tmp_path, box))
        assert list(failed) == ["line rs485"]
        assert f"serial port {tmp_path / 'ttyUSB9'}: cannot open" in failed["line rs485"].detail
        assert "ls /dev/serial/by-id" in failed["line rs485"].fix

    def test_a_port_held_by_the_running_agent_is_a_warning(
        self, tmp_path: Path, box: dict[str, Any], tty: Path
    ) -> None:
        """The agent locks its ports: the self-test says it could not look, and does not call the line broken."""
        with serial.Serial(str(tty / "gauge"), exclusive=True):
            checks = run(tmp_path, box)
        assert failures(checks) == {}
        assert checks["line gauge"].status == Status.WARN
        assert "held by another process (the running agent?)" in checks["line gauge"].detail
        assert "device tg1" not in checks

    def test_outbox_larger_than_the_disk(self, tmp_path: Path, box: dict[str, Any]) -> None:
        box["outbox"]["max_bytes"] = 1024**5
        failed = failures(run(tmp_path, box))
        assert list(failed) == ["disk space"]
        assert failed["disk space"].detail.startswith("outbox.max_bytes is 1073741824 MiB but its filesystem has")
        assert "set outbox.max_bytes to at most" in failed["disk space"].fix

    def test_unwritable_state_dir(self, tmp_path: Path, box: dict[str, Any]) -> None:
        """A state path that runs through a file cannot be made by any user, root included."""
        (tmp_path / "blocked").write_text("a file where a folder should be")
        box["outbox"]["path"] = "blocked/outbox.sqlite"
        failed = failures(run(tmp_path, box))
        assert list(failed) == ["outbox dir"]
        assert failed["outbox dir"].detail == f"{tmp_path / 'blocked'} is not a directory"
        assert failed["outbox dir"].fix.startswith(f"install -d -o station-agent {tmp_path / 'blocked'}")


class TestClock:
    def test_a_clock_never_set_fails(self) -> None:
        check = check_clock(datetime(1970, 1, 1, tzinfo=UTC), True)
        assert check.status == Status.FAIL
        assert "1970-01-01" in check.detail

    @pytest.mark.parametrize(
        ("synchronised", "status", "words"),
        [
            (True, Status.OK, "NTP synchronised"),
            (False, Status.WARN, "not synchronised"),
            (None, Status.WARN, "cannot"),
        ],
    )
    def test_ntp(self, synchronised: bool | None, status: Status, words: str) -> None:
        check = check_clock(datetime(2026, 11, 28, tzinfo=UTC), synchronised)
        assert check.status == status
        assert words in check.detail


def sign_csr(csr_file: Path, ca: CertificateFiles, cert_file: Path) -> None:
    """What the platform's CA does with the CSR that provision wrote: a client certificate for its key."""
    csr = x509.load_pem_x509_csr(csr_file.read_bytes())
    ca_cert = x509.load_pem_x509_certificate(ca.cert_file.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key_file.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


class TestMutualTls:
    def test_a_provisioned_box_reaches_a_broker_that_demands_its_certificate(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """provision's CSR, signed by the platform's CA, is what the box then connects with; until the
        certificate is installed, the self-test says which file is missing and what to do (and does not try the
        broker, which would call it a network problem); a provisioned box has nothing to poll yet, a failure."""
        pki = make_pki(tmp_path / "pki", "ST-TLS")
        tls = BrokerTls(pki.ca.cert_file, pki.server.cert_file, pki.server.key_file, require_certificate=True)
        with MosquittoBroker(tmp_path / "broker", tls=tls) as broker:
            config = tmp_path / "etc" / "agent.toml"
            provision = ["provision", "--config", str(config), "--state-dir", str(tmp_path / "var")]
            provision += ["--run-dir", str(tmp_path / "run"), "--station-id", "ST-TLS", "--timezone", "UTC"]
            provision += ["--broker", broker.address, "--ca-file", str(pki.ca.cert_file)]
            assert main(provision) == 0
            capsys.readouterr()

            before = {c.name: c for c in run_selftest(config, synchronised=lambda: True, broker_timeout_s=3.0)}
            assert list(failures(before)) == ["config", "tls files", "broker"]
            assert before["config"].detail.endswith("0 lines, 0 devices: nothing to poll")
            assert before["broker"].detail == f"{broker.address}: not tried, the TLS files are not right"
            assert before["tls files"].detail == (
                f"uplink.tls.cert_file {tmp_path / 'etc' / 'tls' / 'device.crt'} does not exist"
            )
            assert "install the certificate the platform signed" in before["tls files"].fix

            sign_csr(tmp_path / "etc" / "tls" / "device.csr", pki.ca, tmp_path / "etc" / "tls" / "device.crt")
            after = {c.name: c for c in run_selftest(config, synchronised=lambda: True, broker_timeout_s=3.0)}
            assert list(failures(after)) == ["config"]
            assert after["broker"].detail == f"{broker.address}: connected (TLS)"
            assert after["platform acks"].status == Status.OK

            # the same box without its certificate: the broker hangs up, and the fix names the setting
            document = settings(tmp_path, broker.address, tmp_path) | {"lines": [], "dispensers": []}
            document["station"]["allow_empty"] = True
            document["keys"]["device_key"] = str(tmp_path / "var" / "keys" / "device.key")
            document["uplink"]["tls"] = {"ca_file": str(pki.ca.cert_file)}
            anonymous = {c.name: c for c in run_selftest(write(tmp_path, document), broker_timeout_s=3.0)}
            assert anonymous["broker"].status == Status.FAIL
            assert "set uplink.tls.cert_file and key_file" in anonymous["broker"].fix


class TestWhatTheInstallerReads:
    def test_a_station_with_nothing_to_poll_fails(self, tmp_path: Path, box: dict[str, Any]) -> None:
        """A config allowed to be empty still fails the self-test when no line has a device: it would watch nothing."""
        box.update(lines=[], dispensers=[])
        box["station"]["allow_empty"] = True
        checks = run(tmp_path, box)
        assert checks["config"].status == Status.FAIL
        assert checks["config"].detail.endswith("station ST-SELF, 0 lines, 0 devices: nothing to poll")
        assert "station-agent scan" in checks["config"].fix

    def test_a_missing_ca_file_is_named_and_the_broker_not_blamed(self, tmp_path: Path, box: dict[str, Any]) -> None:
        """A CA file that is not there is a tls files failure naming it, not a network problem."""
        box["uplink"]["tls"] = {"ca_file": "tls/platform-ca.pem"}
        checks = run(tmp_path, box)
        missing = tmp_path / "tls" / "platform-ca.pem"
        assert checks["tls files"].detail == f"uplink.tls.ca_file {missing} does not exist"
        assert checks["tls files"].fix == "put the file there or correct uplink.tls.ca_file"
        assert checks["broker"].detail.endswith("not tried, the TLS files are not right")

    def test_a_ca_file_without_a_certificate_is_named(self, tmp_path: Path, box: dict[str, Any]) -> None:
        """A CA file that holds no PEM certificate (a DER copy, a key) names the file and the format wanted."""
        (tmp_path / "ca.pem").write_text("not a certificate\n")
        box["uplink"]["tls"] = {"ca_file": "ca.pem"}
        check = run(tmp_path, box)["tls files"]
        assert check.status == Status.FAIL
        assert check.detail.startswith(f"uplink.tls.ca_file {tmp_path / 'ca.pem'} holds no PEM certificate")
        assert "-----BEGIN CERTIFICATE-----" in check.fix

    def test_the_clock_is_shown_in_the_station_zone(self, tmp_path: Path, box: dict[str, Any]) -> None:
        """The clock line reads as the station's wall clock, with its zone named: 04:00 UTC is 12:00 in Shanghai."""
        box["station"]["timezone"] = "Asia/Shanghai"
        instant = datetime(2026, 3, 1, 4, 0, 0, tzinfo=UTC)
        checks = run_selftest(
            write(tmp_path, box), now=lambda: instant, synchronised=lambda: True, broker_timeout_s=3.0
        )
        (clock,) = [check for check in checks if check.name == "clock"]
        assert clock.detail == "2026-03-01 12:00:00 Asia/Shanghai (UTC+08:00), NTP synchronised"


def test_the_runtime_directory_before_the_first_start_is_no_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a fresh box the unit's runtime directory does not exist yet (systemd makes it at each start): the status
    dir check says so and passes; any other missing status folder that cannot be made still fails."""
    runtime = tmp_path / "run" / "station-agent"
    monkeypatch.setattr(box_checks, "RUNTIME_DIRECTORY", runtime)
    fresh = check_status_dir(runtime)
    assert fresh.status is Status.OK and "systemd" in fresh.detail
    (tmp_path / "file").write_text("")
    blocked = check_status_dir(tmp_path / "file" / "status")
    assert blocked.status is Status.FAIL
