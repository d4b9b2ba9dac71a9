"""The SM4 key for HJ 212-2025 encryption: one file, 32 hex digits, readable by the service user alone.

Provisioning: the platform issues a 128-bit key per data logger; the installer writes it as 32 hex digits to
the file `[hj212] sm4_key_file` names, mode 0600, owned by the service user. Rotation: the platform and the
station agree a moment; at that moment the new key replaces the file (written beside it and renamed over it)
and the agent is restarted, or left to pick it up at its next connection, since the uplink reads the file at
every connection. A frame is never encrypted with a key read from a half-written file: a file that is not
exactly one key is refused and the connection waits.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from drivers.hj212.sm4 import Sm4Key

MAX_KEY_FILE_BYTES = 256


class Sm4KeyError(ValueError):
    """The key file cannot be used; the message names the file, what is wrong and the fix."""


def load_sm4_key(path: Path) -> Sm4Key:
    """The key in `path`; Sm4KeyError unless it is a regular file of the service user's holding one key. Opened
    without blocking and checked again once open: a FIFO or device named there would hold the thread forever."""
    try:
        mode = path.stat().st_mode
        _check_mode(path, mode)
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        with os.fdopen(descriptor, "rb") as file:
            _check_mode(path, os.fstat(file.fileno()).st_mode)  # the file opened, not the one stat saw
            raw = file.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise Sm4KeyError(f"{path}: the SM4 key cannot be read: {exc.strerror}") from exc
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise Sm4KeyError(f"{path}: more than {MAX_KEY_FILE_BYTES} bytes; the file holds one key, 32 hex digits")
    try:
        return Sm4Key.from_hex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Sm4KeyError(f"{path}: {exc}; write the platform's key as 32 hex digits") from exc


def _check_mode(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise Sm4KeyError(f"{path}: not a regular file; write the platform's key as 32 hex digits in a plain file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise Sm4KeyError(
            f"{path}: the SM4 key is readable by others (mode {stat.S_IMODE(mode):04o}); run chmod 600 {path}"
        )
