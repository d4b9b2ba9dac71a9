"""`station-agent provision`: a config that check-config accepts, a device key that is never replaced, a CSR
signed by a TLS key of its own, and a commissioning sheet the platform's registry can read."""

from __future__ import annotations

import json
import os
import pwd
import re
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.cli import main
from agent.config_validation import load_config
from agent.ledger.keys import load_key_file
from agent.tools.dialogue import Answers, DialogueError, complete, system_timezone


def flags(root: Path, *extra: str) -> list[str]:
    return [
        "provision",
        "--config",
        str(root / "etc" / "agent.toml"),
        "--state-dir",
        str(root / "var"),
        "--run-dir",
        str(root / "run"),
        "--station-id",
        "CQ-YB-0042",
        "--name",
        "Yubei No. 42",
        "--timezone",
        "Asia/Shanghai",
        "--broker",
        "mqtt.example.city:8883",
        *extra,
    ]


DEVICES = ("--port", "/dev/ttyUSB0", "--device", "pc1:1:sim-pump-controller", "--device", "ps21:21:sim-pressure-sensor")


@pytest.fixture
def sheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[dict[str, Any]]:
    assert main([*flags(tmp_path, *DEVICES, "--gauge-port", "/dev/ttyS2"), "--json"]) == 0
    yield json.loads(capsys.readouterr().out)


class TestFirstProvisioning:
    def test_check_config_accepts_the_config(
        self, tmp_path: Path, sheet: dict[str, Any], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The file loads with the answers given, the RS-485 devices, the gauge and mutual TLS."""
        path = tmp_path / "etc" / "agent.toml"
        assert main(["check-config", str(path)]) == 0
        config = load_config(path).config
        assert (config.station.id, config.station.name, config.station.timezone) == (
            "CQ-YB-0042",
            "Yubei No. 42",
            "Asia/Shanghai",
        )
        assert config.uplink.broker == "mqtt.example.city:8883"
        assert [(line.kind, [device.name for device in line.devices]) for line in config.lines] == [
            ("rtu", ["pc1", "ps21"]),
            ("tls", ["tg1"]),
        ]
        assert config.uplink.tls is not None
        assert config.uplink.tls.key_file == tmp_path / "var" / "keys" / "tls.key"
        assert config.keys.device_key == tmp_path / "var" / "keys" / "device.key"
        assert config.outbox.path == tmp_path / "var" / "outbox.sqlite"
        assert (config.status.path, config.status.socket) == (
            tmp_path / "run" / "status.json",
            tmp_path / "run" / "status.sock",
        )

    def test_the_sheet_names_the_device_key(self, tmp_path: Path, sheet: dict[str, Any]) -> None:
        """kid, public key and fingerprint are those of the key file made now, mode 0600."""
        key_file = tmp_path / "var" / "keys" / "device.key"
        key = load_key_file(key_file)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert (sheet["kid"], sheet["public_key_pem"], sheet["key_created"]) == (key.kid, key.public_pem(), True)
        assert sheet["public_key_sha256"].startswith(key.kid)
        assert sheet["station"] == "CQ-YB-0042"
        assert sheet["config_sha256"] == load_config(tmp_path / "etc" / "agent.toml").sha256
        assert sheet["lines"][0]["devices"] == [
            {"name": "pc1", "unit": 1, "profile": "sim-pump-controller"},
            {"name": "ps21", "unit": 21, "profile": "sim-pressure-sensor"},
        ]

    def test_the_csr_is_signed_by_a_separate_p256_tls_key(self, tmp_path: Path, sheet: dict[str, Any]) -> None:
        csr = x509.load_pem_x509_csr((tmp_path / "etc" / "tls" / "device.csr").read_bytes())
        assert csr.is_signature_valid
        assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CQ-YB-0042"
        tls_key_file = tmp_path / "var" / "keys" / "tls.key"
        tls_key = serialization.load_pem_private_key(tls_key_file.read_bytes(), password=None)
        assert isinstance(tls_key, ec.EllipticCurvePrivateKey)
        assert isinstance(tls_key.curve, ec.SECP256R1)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        assert csr.public_key().public_bytes(serialization.Encoding.DER, spki) == tls_key.public_key().public_bytes(
            serialization.Encoding.DER, spki
        )
        assert stat.S_IMODE(tls_key_file.stat().st_mode) == 0o600
        assert sheet["tls"]["csr_pem"] == (tmp_path / "etc" / "tls" / "device.csr").read_text()

    def test_the_text_sheets_time_is_the_stations(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The sheet's header gives the time as the station's clock shows it, with the zone named (not UTC), so
        that it reads like the papers it is filed with; `sheet` later says the same."""
        assert main(flags(tmp_path, "--no-tls")) == 0
        header = capsys.readouterr().out.splitlines()[0]
        found = re.fullmatch(r"COMMISSIONING SHEET  station CQ-YB-0042  Yubei No\. 42  (.+) Asia/Shanghai", header)
        assert found is not None, header
        shown = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
        assert abs(shown - datetime.now(UTC)) < timedelta(minutes=2)
        assert main(["sheet", "--config", str(tmp_path / "etc" / "agent.toml")]) == 0
        assert capsys.readouterr().out.splitlines()[0].endswith(" Asia/Shanghai")

    def test_the_text_sheet(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(flags(tmp_path, "--no-tls")) == 0
        text = capsys.readouterr().out
        key = load_key_file(tmp_path / "var" / "keys" / "device.key")
        assert text.startswith("COMMISSIONING SHEET  station CQ-YB-0042  Yubei No. 42")
        assert f"kid          {key.kid}" in text
        assert key.public_pem() in text
        assert "TLS          off: plain MQTT" in text
        assert not (tmp_path / "etc" / "tls").exists()
        assert load_config(tmp_path / "etc" / "agent.toml").config.uplink.tls is None


class TestServiceUser:
    @pytest.mark.skipif(os.geteuid() != 0, reason="handing files over takes root")
    def test_root_hands_the_keys_to_the_service_user(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The agent runs as its own user: it must own its keys and state; the config is root's, readable by
        the user's group only."""
        account = pwd.getpwnam("nobody")
        assert main([*flags(tmp_path), "--service-user", "nobody", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["keys_owner"] == "nobody"
        for path in ("var", "var/keys", "var/keys/device.key", "var/keys/tls.key"):
            assert (tmp_path / path).stat().st_uid == account.pw_uid, path
        config = (tmp_path / "etc" / "agent.toml").stat()
        assert (config.st_uid, config.st_gid, stat.S_IMODE(config.st_mode)) == (0, account.pw_gid, 0o640)


class TestNeverOverwrites:
    def test_an_existing_config_is_refused_without_force(
        self, tmp_path: Path, sheet: dict[str, Any], capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = tmp_path / "etc" / "agent.toml"
        key = tmp_path / "var" / "keys" / "device.key"
        before = (config.read_bytes(), key.read_bytes())
        assert main(flags(tmp_path, "--timezone", "UTC")) == 2
        assert "already exists; give --force to replace it" in capsys.readouterr().err
        assert (config.read_bytes(), key.read_bytes()) == before

    def test_force_replaces_the_config_and_keeps_both_keys(
        self, tmp_path: Path, sheet: dict[str, Any], capsys: pytest.CaptureFixture[str]
    ) -> None:
        key = tmp_path / "var" / "keys" / "device.key"
        tls_key = tmp_path / "var" / "keys" / "tls.key"
        before = (key.read_bytes(), tls_key.read_bytes())
        assert main([*flags(tmp_path), "--name", "Renamed", "--force", "--json"]) == 0
        again = json.loads(capsys.readouterr().out)
        assert (again["kid"], again["key_created"], again["name"]) == (sheet["kid"], False, "Renamed")
        assert (key.read_bytes(), tls_key.read_bytes()) == before

    def test_an_invalid_answer_writes_nothing(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A config that would not load never lands, and no key is made for it."""
        assert main(flags(tmp_path, "--timezone", "Mars/Olympus")) == 2
        error = capsys.readouterr().err
        assert "not valid, so nothing was written" in error
        assert "station.timezone: found 'Mars/Olympus'" in error
        assert sorted(path.name for path in tmp_path.rglob("*")) == ["etc"]

    def test_an_unknown_profile_writes_nothing(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(flags(tmp_path, "--port", "/dev/ttyUSB0", "--device", "x1:1:no-such-profile")) == 2
        assert "no profile 'no-such-profile'" in capsys.readouterr().err
        assert not (tmp_path / "var").exists()


class TestAnswers:
    def test_without_a_terminal_the_missing_flags_are_named(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["provision", "--config", str(tmp_path / "agent.toml"), "--timezone", "UTC"]) == 2
        assert "give --station-id and --broker (or run on a terminal" in capsys.readouterr().err

    def test_port_and_devices_go_together(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A line without devices, and a device before any line, are refused with the flag order to use."""
        assert main(flags(tmp_path, "--port", "/dev/ttyUSB0")) == 2
        assert "no --device after /dev/ttyUSB0" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            main(flags(tmp_path, "--device", "pc1:1:sim-pump-controller"))
        assert "--device belongs to a line: give --port DEV or --tcp HOST:PORT before it" in capsys.readouterr().err

    def test_the_dialogue_asks_only_what_is_missing_and_re_asks_a_bad_answer(self) -> None:
        script = iter(["no spaces allowed", "CQ-1", "", "", "mqtt.example.city:8883"])
        asked: list[str] = []
        said: list[str] = []

        def ask(prompt: str) -> str:
            asked.append(prompt)
            return next(script)

        answers = complete(Answers("", "", "", ""), ask, said.append, "Asia/Shanghai")
        assert answers == Answers("CQ-1", "CQ-1", "Asia/Shanghai", "mqtt.example.city:8883")
        assert asked[0] == asked[1] == "Station id (as the platform registered it): "
        assert asked[3] == "Time zone [Asia/Shanghai]: "
        assert said == ["  must be 1-64 letters, digits, '_', '-', '.'"]

    def test_the_dialogue_gives_up_after_three_bad_answers(self) -> None:
        with pytest.raises(DialogueError, match="Platform MQTT broker"):
            complete(Answers("CQ-1", "n", "UTC", ""), lambda _prompt: "nohost", lambda _text: None, "UTC")

    def test_the_box_time_zone_comes_from_localtime(self, tmp_path: Path) -> None:
        zone = tmp_path / "usr" / "share" / "zoneinfo" / "Asia" / "Shanghai"
        zone.parent.mkdir(parents=True)
        zone.write_bytes(b"TZif")
        (tmp_path / "localtime").symlink_to(zone)
        assert system_timezone(tmp_path / "localtime") == "Asia/Shanghai"
        assert system_timezone(tmp_path / "missing") == "UTC"


class TestSeveralLines:
    def test_two_rtu_lines_and_a_tcp_line_make_a_config_check_config_accepts(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each --port or --tcp starts a line and takes the --baud, --parity and --device after it."""
        lines = ["--port", "/dev/ttyUSB0", "--baud", "19200", "--parity", "E", "--device", "pc1:1:sim-pump-controller"]
        lines += ["--port", "/dev/ttyUSB1", "--device", "pcm11:11:sim-pulse-counter"]
        lines += ["--tcp", "192.168.10.20:5020", "--device", "pc2:1:sim-pump-controller"]
        assert main(flags(tmp_path, *lines, "--no-tls")) == 0
        path = tmp_path / "etc" / "agent.toml"
        capsys.readouterr()
        assert main(["check-config", str(path)]) == 0
        config = load_config(path).config
        described = [
            (line.name, line.kind, getattr(line, "baudrate", None), getattr(line, "parity", None), line.port)
            for line in config.lines
        ]
        assert described == [
            ("rs485-1", "rtu", 19200, "E", Path("/dev/ttyUSB0")),
            ("rs485-2", "rtu", 9600, "N", Path("/dev/ttyUSB1")),
            ("tcp-1", "tcp", None, None, 5020),
        ]
        assert [[device.name for device in line.devices] for line in config.lines] == [["pc1"], ["pcm11"], ["pc2"]]
        assert config.station.allow_empty  # no forecourt yet: written so, with the comment saying when to drop it

    def test_a_lines_file_gives_the_lines(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--lines-file takes [[lines]] as the config writes them."""
        lines = tmp_path / "lines.toml"
        lines.write_text(
            '[[lines]]\nkind = "rtu"\nname = "x"\nport = "/dev/ttyS4"\nbaudrate = 4800\n'
            '[[lines.devices]]\nname = "pc1"\nunit = 3\nprofile = "sim-pump-controller"\n'
            '[[lines]]\nkind = "tcp"\nname = "y"\nhost = "10.0.0.9"\n'
            '[[lines.devices]]\nname = "ps1"\nunit = 21\nprofile = "sim-pressure-sensor"\n'
        )
        assert main(flags(tmp_path, "--lines-file", str(lines), "--no-tls")) == 0
        config = load_config(tmp_path / "etc" / "agent.toml").config
        assert [(line.kind, line.port) for line in config.lines] == [("rtu", Path("/dev/ttyS4")), ("tcp", 502)]


class TestSheetAgain:
    def test_sheet_prints_without_force_and_leaves_the_config_as_it_was(
        self, tmp_path: Path, sheet: dict[str, Any], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`station-agent sheet` re-prints the commissioning sheet from the edited config, byte for byte untouched."""
        config = tmp_path / "etc" / "agent.toml"
        edited = config.read_bytes().replace(b'name = "Yubei No. 42"', b'name = "Yubei No. 42 (edited)"')
        config.write_bytes(edited)
        before = os.stat(config)
        assert main(["sheet", "--config", str(config), "--json"]) == 0
        again = json.loads(capsys.readouterr().out)
        assert config.read_bytes() == edited and os.stat(config).st_mtime_ns == before.st_mtime_ns
        assert again["name"] == "Yubei No. 42 (edited)"
        for same in ("station", "kid", "public_key_pem", "public_key_sha256", "broker", "lines"):
            assert again[same] == sheet[same], same
        assert again["tls"]["csr_pem"] == sheet["tls"]["csr_pem"]
        assert again["tls"]["key_spki_sha256"] == sheet["tls"]["key_spki_sha256"]
        assert again["key_created"] is False
        assert main(["sheet", "--config", str(config)]) == 0
        assert capsys.readouterr().out.startswith("COMMISSIONING SHEET  station CQ-YB-0042  Yubei No. 42 (edited)")


class TestKeyPublic:
    def test_key_public_prints_what_keygen_printed(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The public PEM and kid of an existing key match keygen's, checked against the key file with openssl."""
        key = tmp_path / "device.key"
        assert main(["keygen", str(key)]) == 0
        made = capsys.readouterr().out
        assert main(["key", "public", str(key), "--public-out", str(tmp_path / "device.pub")]) == 0
        shown = capsys.readouterr().out
        pem_and_kid = made.split("private key:")[0]
        assert shown == pem_and_kid
        openssl = subprocess.run(
            ["openssl", "pkey", "-in", str(key), "-pubout"], capture_output=True, text=True, check=True
        )
        assert (tmp_path / "device.pub").read_text() == openssl.stdout
        assert key.stat().st_mode & 0o777 == 0o600

    def test_a_missing_key_is_an_error_that_says_so(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """key public never makes a key."""
        assert main(["key", "public", str(tmp_path / "none.key")]) == 2
        assert not (tmp_path / "none.key").exists()
        assert str(tmp_path / "none.key") in capsys.readouterr().err
