"""The facts of the machine a run was made on, so that figures from two boxes are never compared blindly."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Machine:
    cpu_count: int
    cpus_usable: int
    cpu_model: str
    memory_mb: int
    platform: str
    python: str
    sqlite: str
    mosquitto: str
    packages: dict[str, str]
    temp_filesystem: str


def machine_facts(temp_dir: Path) -> Machine:
    return Machine(
        cpu_count=os.cpu_count() or 0,
        cpus_usable=len(os.sched_getaffinity(0)),
        cpu_model=_cpu_model(),
        memory_mb=_memory_kb() // 1024,
        platform=platform.platform(),
        python=sys.version.split()[0],
        sqlite=sqlite3.sqlite_version,
        mosquitto=_mosquitto_version(),
        packages={name: _version(name) for name in ("cryptography", "paho-mqtt", "rfc8785", "pydantic", "structlog")},
        temp_filesystem=_filesystem_of(temp_dir),
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.machine()


def _memory_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _mosquitto_version() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if found is None:
        return "not installed"
    try:
        result = subprocess.run([found, "-h"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (result.stdout or result.stderr).splitlines()
    return first[0].strip() if first else "unknown"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _filesystem_of(path: Path) -> str:
    """The type of the file system holding `path` (the outbox's medium in these runs), from /proc/mounts."""
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) < 3 or len(parts[1]) < len(best):
            continue
        if resolved == parts[1] or resolved.startswith(parts[1].rstrip("/") + "/"):
            best, kind = parts[1], parts[2]
    return kind
