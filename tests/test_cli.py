"""The station-agent command line: keygen, and refusing to run on a bad config or key with a clear line."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main

CONFIG = """
[station]
id = "ST-1"
allow_empty = true
[keys]
device_key = "{key}"
[outbox]
path = "outbox.sqlite"
[uplink]
broker = "127.0.0.1:1"
[status]
path = "status.json"
"""


def run_agent(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestKeygen:
    def test_prints_public_key_and_kid_and_writes_a_private_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """keygen prints the PEM public key and the kid, writes the key 0600 and the public PEM on request."""
        key = tmp_path / "keys" / "device.key"
        assert main(["keygen", str(key), "--public-out", str(tmp_path / "device.pub")]) == 0
        out = capsys.readouterr().out
        assert out.startswith("-----BEGIN PUBLIC KEY-----") and "\nkid: " in out
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert (tmp_path / "device.pub").read_text() in out

    def test_refuses_to_overwrite(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A second keygen on the same path exits 2 and says why; the key is unchanged."""
        key = tmp_path / "device.key"
        assert main(["keygen", str(key)]) == 0
        before = key.read_bytes()
        assert main(["keygen", str(key)]) == 2
        assert "never overwritten" in capsys.readouterr().err
        assert key.read_bytes() == before


class TestRefusalsToRun:
    def test_broken_config_exits_2_naming_the_field(self, tmp_path: Path) -> None:
        """`run` with an invalid config exits 2 before starting anything, naming the field."""
        config = tmp_path / "agent.toml"
        config.write_text("[station]\nid = 'x y'\n")
        result = run_agent(config)
        assert result.returncode == 2
        assert "station.id: found 'x y'" in result.stderr and "uplink: found nothing" in result.stderr
        assert not (tmp_path / "outbox.sqlite").exists()

    def test_missing_key_exits_2_with_the_keygen_command(self, tmp_path: Path) -> None:
        """`run` without a device key says how to make one and creates no outbox."""
        config = tmp_path / "agent.toml"
        config.write_text(CONFIG.format(key=tmp_path / "keys" / "device.key"))
        result = run_agent(config)
        assert result.returncode == 2
        assert "station-agent keygen" in result.stderr
        assert not (tmp_path / "outbox.sqlite").exists()

    def test_unreadable_key_exits_2(self, tmp_path: Path) -> None:
        """A key path that cannot be read as a file (here a directory, which even root cannot read) is refused."""
        (tmp_path / "keys" / "device.key").mkdir(parents=True)
        config = tmp_path / "agent.toml"
        config.write_text(CONFIG.format(key=tmp_path / "keys" / "device.key"))
        result = run_agent(config)
        assert result.returncode == 2
        assert "cannot be read" in result.stderr

    def test_key_readable_by_others_exits_2(self, tmp_path: Path) -> None:
        """A key with loose permissions is refused with the chmod that fixes it."""
        key = tmp_path / "device.key"
        assert main(["keygen", str(key)]) == 0
        key.chmod(0o644)
        config = tmp_path / "agent.toml"
        config.write_text(CONFIG.format(key=key))
        result = run_agent(config)
        assert result.returncode == 2 and "chmod 600" in result.stderr


@pytest.mark.parametrize("absent", ["station_lab", "simulators"])
def test_demo_without_the_lab_says_what_to_install(tmp_path: Path, absent: str) -> None:
    """Where the lab is not installed (a gateway's package), `station-agent demo` exits 2 with one plain line
    naming the command that installs it, writes nothing and shows no traceback."""
    hide_the_lab = (
        f"import sys; sys.modules[{absent!r}] = None; from agent.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    workdir = tmp_path / "demo-run"
    result = subprocess.run(
        [sys.executable, "-c", hide_the_lab, "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("station-agent: the demo needs the lab") and "Traceback" not in result.stderr
    assert "make install" in result.stderr and "pip install -e ./lab" in result.stderr
    assert result.stdout == "" and not workdir.exists()
