"""The self-test's checks of the box itself: the device key and TLS files, the state folders, the disk, the
clock."""

from __future__ import annotations

import os
import shutil
import ssl
import stat
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

from agent.config import AgentConfig
from agent.ledger.keys import KeyFileError, load_key_file
from agent.status_settings import RUNTIME_DIRECTORY
from agent.tools.checks import Check, Status, fail, ok
from agent.uplink.settings import TlsSection, UplinkSection

EARLIEST_YEAR = 2024
"""A clock before this year has never been set (a box without a battery-backed clock boots in 1970)."""


def check_private_file(name: str, path: Path) -> Check | None:
    """A private key's file must be readable by its owner only, and owned by the user running this; None when
    both hold, or when there is no file (whoever calls says whether that is a failure)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return fail(name, f"{path} cannot be examined: {exc.strerror}", "check the directory's permissions")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return fail(name, f"{path} has mode {mode:04o}: others may read it", f"chmod 600 {path}")
    if info.st_uid != os.geteuid():
        return fail(
            name,
            f"{path} belongs to uid {info.st_uid}, not to uid {os.geteuid()} running this",
            f"chown the file to the service user (chown station-agent {path}), and run the self-test as that user",
        )
    return None


def check_device_key(config: AgentConfig) -> Check:
    path = config.keys.device_key
    if not path.exists():
        return fail(
            "device key", f"{path} does not exist", f"station-agent keygen {path}, and register its kid and public key"
        )
    problem = check_private_file("device key", path)
    if problem is not None:
        return problem
    try:
        key = load_key_file(path)
    except KeyFileError as exc:
        return fail("device key", str(exc), f"move {path} away and run station-agent keygen")
    probe = b"station-agent selftest"
    if not key.verify(key.sign(probe), probe):
        return fail("device key", f"{path} makes signatures that do not verify", f"replace {path}: keygen")
    return ok("device key", f"{path}: kid {key.kid}, owner-only, signs and verifies")


def check_tls_files(uplink: UplinkSection) -> Check | None:
    """Each TLS file exists, is readable and holds what it should, each problem naming its file: OpenSSL's own
    words ('[X509] no certificate or crl found') name none, and a connection attempt would report a network
    problem instead."""
    tls = uplink.tls
    if tls is None:
        return None
    for what, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file)):
        if path is None:
            continue
        if not path.is_file():
            fix = (
                "install the certificate the platform signed from the CSR that provision wrote"
                if what == "cert_file"
                else f"put the file there or correct uplink.tls.{what}"
            )
            return fail("tls files", f"uplink.tls.{what} {path} does not exist", fix)
        if not os.access(path, os.R_OK):
            return fail(
                "tls files",
                f"uplink.tls.{what} {path} is not readable by uid {os.geteuid()}",
                f"chown it to the service user (chown station-agent {path}), and run the self-test as that user",
            )
    if tls.key_file is not None:
        problem = check_private_file("tls files", tls.key_file)
        if problem is not None:
            return problem
    return _tls_contents(tls) or ok("tls files", "CA, certificate and key in place" if tls.cert_file else "CA in place")


def _tls_contents(tls: TlsSection) -> Check | None:
    """The CA file holds certificates, and the certificate and key are PEM and belong together."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.ca_file)
        except ssl.SSLError as exc:
            return fail(
                "tls files",
                f"uplink.tls.ca_file {tls.ca_file} holds no PEM certificate ({exc.reason})",
                "put the platform's CA certificate there (PEM, '-----BEGIN CERTIFICATE-----')",
            )
    if tls.cert_file is not None and tls.key_file is not None:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        except ssl.SSLError as exc:
            return fail(
                "tls files",
                f"uplink.tls.cert_file {tls.cert_file} and key_file {tls.key_file} do not load together ({exc.reason})",
                "install the certificate the platform signed for this box's CSR; it must match key_file",
            )
    return None


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(name: str, directory: Path) -> Check:
    """The agent can create files in `directory`, or create the directory itself where it is missing."""
    target = _nearest_existing(directory)
    fix = f"install -d -o station-agent {directory} (or correct the path in the config)"
    if not target.is_dir():
        blocked = "" if target == directory else f", so {directory} cannot be made"
        return fail(name, f"{target} is not a directory{blocked}", fix)
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".selftest-"):
            pass
    except OSError as exc:
        return fail(name, f"{target} is not writable by uid {os.geteuid()}: {exc.strerror}", fix)
    created = "" if target == directory else f" (missing; the agent creates it under {target})"
    return ok(name, f"{directory} writable{created}")


def check_status_dir(directory: Path) -> Check:
    """Like `check_writable`, except for the unit's runtime directory before the agent's first start: systemd
    makes it at each start, so its absence then is no fault of the box."""
    if directory == RUNTIME_DIRECTORY and not directory.exists():
        return ok("status dir", f"{directory} is made by systemd when the agent starts (RuntimeDirectory=)")
    return check_writable("status dir", directory)


def check_disk(config: AgentConfig) -> Check:
    """The outbox's filesystem can hold the outbox up to its cap, so the designed 'outbox full' comes first."""
    outbox = config.outbox
    usage = shutil.disk_usage(_nearest_existing(outbox.path.parent))
    stored = sum(
        path.stat().st_size
        for path in (outbox.path, outbox.path.with_name(outbox.path.name + "-wal"))
        if path.is_file()
    )
    room = usage.free + stored
    mib = 1024**2
    if room < outbox.max_bytes:
        return fail(
            "disk space",
            f"outbox.max_bytes is {outbox.max_bytes // mib} MiB but its filesystem has {room // mib} MiB for it",
            f"free space, or set outbox.max_bytes to at most {int(room * 0.8) // mib * mib} (80 % of that)",
        )
    return ok("disk space", f"{room // mib} MiB for an outbox capped at {outbox.max_bytes // mib} MiB")


def ntp_synchronised() -> bool | None:
    """What `timedatectl` says about NTP; None where it cannot say (no systemd, no timedatectl)."""
    try:
        answer = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = answer.stdout.strip()
    return None if answer.returncode != 0 or value not in ("yes", "no") else value == "yes"


def check_clock(now: datetime, synchronised: bool | None) -> Check:
    """`now` is read in the station's zone where the config gives one, so the installer compares it with the
    clock on the wall."""
    shown = _local_time(now)
    if now.year < EARLIEST_YEAR:
        return fail(
            "clock",
            f"the clock says {shown}: records would carry that date",
            "set the time (timedatectl set-ntp true, or date -s) before starting the agent",
        )
    if synchronised is None:
        return Check(
            "clock",
            Status.WARN,
            f"{shown}; cannot tell whether NTP keeps it (timedatectl unavailable)",
            "check that this box's NTP service runs",
        )
    if not synchronised:
        return Check(
            "clock",
            Status.WARN,
            f"{shown}; not synchronised by NTP",
            "timedatectl set-ntp true, and let UDP 123 reach an NTP server",
        )
    return ok("clock", f"{shown}, NTP synchronised")


def _local_time(now: datetime) -> str:
    """`2026-03-01 14:05:09 Asia/Shanghai (UTC+08:00)`: the zone by its name, which an abbreviation such as CST
    (China, or the US Central zone?) does not give."""
    zone = getattr(now.tzinfo, "key", None) or now.tzname() or "local time"
    offset = now.strftime("%z")
    return f"{now:%Y-%m-%d %H:%M:%S} {zone} (UTC{offset[:3]}:{offset[3:]})"
