"""The Debian package and the systemd unit: built from this checkout, installed, upgraded, removed and purged
with the real dpkg in a throwaway root; the unit checked by systemd-analyze.

dpkg runs with `--root=DIR --force-script-chrootless`: the maintainer scripts run on this machine with
DPKG_ROOT set, which they honour, so the test exercises the same scripts a gateway runs, the system user made by
systemd-sysusers in the root's /etc/passwd, and the virtualenv built offline from the packaged wheels. What it
does not cover: a running systemd (start, restart on upgrade, the watchdog kill), which tests/test_watchdog.py
covers from the agent's side.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
BUILD = PROJECT / "packaging" / "build-deb.sh"
UNIT = PROJECT / "systemd" / "station-agent.service"
VERSION = re.search(r'^version = "([^"]+)"', (PROJECT / "pyproject.toml").read_text(), re.MULTILINE)
LAB_PACKAGES = ("simulators", "station_lab", "bench")
"""The lab's distribution (lab/pyproject.toml): never on a gateway."""
MAX_EXPOSURE = 2.0
"""`systemd-analyze security` rates the unit 1.5 today; a change that loosens the hardening fails here."""

needs_debian_tools = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("dpkg", "dpkg-deb", "systemd-analyze", "systemd-sysusers")),
    reason="needs dpkg, dpkg-deb and systemd (make debs installs them)",
)
pytestmark = needs_debian_tools


def _arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb of this checkout; the wheels cached under build/deb are reused when they are all there. The
    agent's wheel is built with the virtualenv's own setuptools (the dev extra holds the backend's floor), not in a
    fresh isolated environment, which would install setuptools anew for every run (about 5 s): the same files."""
    out = tmp_path_factory.mktemp("deb")
    wheelhouse = PROJECT / "build" / "deb" / f"wheelhouse-{_arch()}"
    offline = ["--offline"] if any(wheelhouse.glob("pip-*.whl")) else []
    environment = {**os.environ, "PIP_NO_BUILD_ISOLATION": "0"}  # pip reads "0" here as "no isolation"
    built = subprocess.run(
        ["bash", str(BUILD), "--out", str(out), "--wheelhouse", str(wheelhouse), *offline],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
    )
    if built.returncode != 0 and offline:
        built = subprocess.run(
            ["bash", str(BUILD), "--out", str(out), "--wheelhouse", str(wheelhouse)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=environment,
        )
    assert built.returncode == 0, built.stderr[-3000:]
    return Path(built.stdout.strip().splitlines()[-1])


@dataclass
class Root:
    """A throwaway system: an empty dpkg database, /etc/passwd and /etc/group with a dialout group."""

    path: Path

    def dpkg(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["dpkg", f"--root={self.path}", "--force-script-chrootless", "--force-depends", *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def __truediv__(self, relative: str) -> Path:
        return self.path / relative.lstrip("/")

    def id_of(self, table: str, name: str) -> int:
        for line in (self / f"etc/{table}").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2])
        raise AssertionError(f"{name} not in the root's /etc/{table}")

    def members(self, group: str) -> list[str]:
        for line in (self / "etc/group").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == group:
                return fields[3].split(",")
        return []


def _empty_root(path: Path) -> Root:
    system = Root(path)
    for folder in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"):
        (system / folder).mkdir(parents=True)
    (system / "var/lib/dpkg/status").touch()
    (system / "var/lib/dpkg/available").touch()
    (system / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (system / "etc/group").write_text("root:x:0:\ndialout:x:20:\n")
    return system


@pytest.fixture(scope="module")
def installed(package: Path, tmp_path_factory: pytest.TempPathFactory) -> Root:
    """A root with the package installed once, for the tests that only look (building the venv takes seconds)."""
    system = _empty_root(tmp_path_factory.mktemp("installed") / "root")
    system.dpkg("-i", str(package))
    return system


@pytest.fixture
def root(installed: Root, tmp_path: Path) -> Root:
    """A copy of the installed root that a test may upgrade, remove and purge."""
    shutil.copytree(installed.path, tmp_path / "root", symlinks=True)
    return Root(tmp_path / "root")


def _run_installed(root: Root, *arguments: str) -> str:
    """The installed command, from outside the checkout so that nothing is imported from the sources."""
    result = subprocess.run(
        [str(root / "opt/station-agent/bin/station-agent"), *arguments],
        cwd=root.path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _with_version(package: Path, version: str, into: Path) -> Path:
    """The same package under a later version number: what an upgrade installs."""
    tree = into / "tree"
    subprocess.run(["dpkg-deb", "-R", str(package), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"^Version: .*$", f"Version: {version}", control.read_text(), flags=re.MULTILINE))
    later = into / f"station-agent_{version}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(tree), str(later)], check=True)
    return later


class TestInstall:
    def test_files_user_folders_and_venv_land_where_they_should(self, package: Path, installed: Root) -> None:
        """One install gives the unit (enabled), the example config as a conffile, the system user in dialout,
        the state folder for that user only, and a virtualenv whose agent runs and finds its shipped profiles."""
        assert VERSION is not None
        assert package.name == f"station-agent_{VERSION.group(1)}_{_arch()}.deb"
        root = installed

        assert (root / "lib/systemd/system/station-agent.service").read_text() == UNIT.read_text()
        assert (root / "etc/systemd/system/multi-user.target.wants/station-agent.service").is_symlink()
        conffiles = (root / "var/lib/dpkg/info/station-agent.conffiles").read_text().split()
        assert conffiles == ["/etc/station-agent/agent.toml.example"]
        assert os.readlink(root / "usr/bin/station-agent") == "/opt/station-agent/bin/station-agent"

        uid, gid = root.id_of("passwd", "station-agent"), root.id_of("group", "station-agent")
        assert "station-agent" in root.members("dialout")
        state = (root / "var/lib/station-agent").stat()
        assert (state.st_uid, state.st_gid, stat.S_IMODE(state.st_mode)) == (uid, gid, 0o700)
        config = (root / "etc/station-agent").stat()
        assert (config.st_uid, config.st_gid, stat.S_IMODE(config.st_mode)) == (0, gid, 0o750)

        assert _run_installed(root, "version").strip() == VERSION.group(1)
        summary = _run_installed(root, "check-config", str(root / "etc/station-agent/agent.toml.example"))
        assert "profile sim-pump-controller" in summary

    def test_the_package_carries_the_gateway_and_nothing_of_the_lab(self, installed: Root) -> None:
        """The agent's wheel in the package holds agent/ and drivers/ and its metadata only, no wheel of the lab
        rides along, the installed venv has no lab package, and `station-agent demo` there says to install it."""
        assert VERSION is not None
        dist = f"station_agent-{VERSION.group(1)}"
        wheels = installed / "usr/lib/station-agent/wheels"
        (agent_wheel,) = wheels.glob(f"{dist}-*.whl")
        with zipfile.ZipFile(agent_wheel) as wheel:
            top_level = {name.split("/")[0] for name in wheel.namelist()}
        assert top_level == {"agent", "drivers", f"{dist}.dist-info", f"{dist}.data"}
        assert not list(wheels.glob("station_agent_lab-*")), "the lab's wheel is in the package"

        site_packages = installed / "opt/station-agent/lib/python3.11/site-packages"
        assert (site_packages / "agent").is_dir() and (site_packages / "drivers").is_dir()
        assert [name for name in LAB_PACKAGES if (site_packages / name).exists()] == []
        demo = subprocess.run(
            [str(installed / "opt/station-agent/bin/station-agent"), "demo", "--workdir", str(installed / "tmp")],
            cwd=installed.path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert demo.returncode == 2 and "make install" in demo.stderr, demo.stderr
        assert "Traceback" not in demo.stderr

    def test_upgrade_keeps_config_keys_and_outbox_and_purge_removes_them(
        self, package: Path, root: Root, tmp_path: Path
    ) -> None:
        """The installer's config, an edited example, the key and the outbox survive an upgrade and a remove;
        the venv is rebuilt by the upgrade and goes with the remove; purge takes the station's files too."""
        installed = {
            "etc/station-agent/agent.toml": "[station]\nid = 'CQ-YB-0001'\n",
            "etc/station-agent/agent.toml.example": "# edited by the installer\n",
            "var/lib/station-agent/keys/device.key": "not really a key\n",
            "var/lib/station-agent/outbox.sqlite": "unsent records\n",
        }
        for relative, text in installed.items():
            (root / relative).write_text(text)
        stale = root / "opt/station-agent/lib/python3.11/site-packages/left_by_the_old_version.py"
        stale.write_text("")

        root.dpkg("-i", str(_with_version(package, "99.0.0", tmp_path)))
        assert {relative: (root / relative).read_text() for relative in installed} == installed
        assert not stale.exists()
        assert _run_installed(root, "version").strip()

        root.dpkg("--remove", "station-agent")
        assert {relative: (root / relative).read_text() for relative in installed} == installed
        assert not (root / "opt/station-agent").exists()
        assert not (root / "lib/systemd/system/station-agent.service").exists()
        assert not (root / "etc/systemd/system/multi-user.target.wants/station-agent.service").exists()

        root.dpkg("--purge", "station-agent")
        assert not (root / "etc/station-agent").exists()
        assert not (root / "var/lib/station-agent").exists()
        assert root.id_of("passwd", "station-agent") > 0, "the system user stays (Debian policy)"


class TestUnit:
    def test_the_unit_passes_systemd_analyze_verify(self, tmp_path: Path) -> None:
        """verify checks every directive and that ExecStart is an executable: a stand-in at the same path
        under tmp takes the place of the venv's script."""
        binary = tmp_path / "opt/station-agent/bin/station-agent"
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
        unit = tmp_path / "station-agent.service"
        unit.write_text(UNIT.read_text().replace("/opt/station-agent/bin/station-agent", str(binary)))
        verified = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
        )
        assert verified.returncode == 0, verified.stderr
        assert verified.stderr == ""

    def test_the_unit_is_a_notify_service_with_a_watchdog_and_its_hardening_holds(self) -> None:
        """Type=notify with WatchdogSec (the agent pings, tests/test_watchdog.py), and an exposure at or
        below MAX_EXPOSURE in `systemd-analyze security`."""
        directives = dict(
            line.split("=", 1) for line in UNIT.read_text().splitlines() if "=" in line and not line.startswith("#")
        )
        assert directives["Type"] == "notify"
        assert directives["WatchdogSec"] == "30s"
        assert directives["User"] == "station-agent"
        assert directives["ProtectSystem"] == "strict"
        assert directives["MemoryDenyWriteExecute"] == "yes"
        security = subprocess.run(
            ["systemd-analyze", "security", "--offline=true", str(UNIT)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        exposure = re.search(r"Overall exposure level for station-agent.service: ([0-9.]+)", security.stdout)
        assert exposure is not None, security.stdout + security.stderr
        assert float(exposure.group(1)) <= MAX_EXPOSURE


LOCK = PROJECT / "packaging" / "requirements.lock"


def _lock_pins() -> dict[str, tuple[str, list[str]]]:
    """The lock's entries: normalised name -> (pinned version, sha256 hashes), read from pip-compile's layout."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for raw in LOCK.read_text().splitlines():
        line = raw.strip().rstrip("\\").strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash=sha256:"):
            pins[name][1].append(line.removeprefix("--hash=sha256:"))
            continue
        requirement, version = line.split("==")
        name = re.sub(r"[-_.]+", "-", requirement).lower()
        pins[name] = (version.strip(), [])
    return pins


class TestLock:
    def test_every_runtime_dependency_is_pinned_with_its_hashes(self) -> None:
        """Each of pyproject's runtime dependencies is in the lock as name==version, the version within
        pyproject's range, with at least one sha256; no entry of the lock goes without a hash."""
        from packaging.requirements import Requirement  # noqa: PLC0415 - pip's own parser, a dev dependency's

        pins = _lock_pins()
        project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
        for dependency in project["dependencies"]:
            requirement = Requirement(dependency)
            name = re.sub(r"[-_.]+", "-", requirement.name).lower()
            assert name in pins, f"{requirement.name} is not in {LOCK.name}: run make lock"
            version, _ = pins[name]
            assert requirement.specifier.contains(version), f"{name}=={version} is outside {requirement.specifier}"
        assert all(len(hashes) >= 1 and all(len(h) == 64 for h in hashes) for _, hashes in pins.values())
        assert "pip" in pins, "the postinst installs with the packaged pip: it must be locked too"

    def test_the_package_takes_its_wheels_from_the_lock_with_hashes_required(self) -> None:
        """build-deb.sh downloads with --require-hashes from the lock, so a changed file is refused."""
        script = BUILD.read_text()
        assert '--require-hashes --requirement "$here/requirements.lock"' in script
