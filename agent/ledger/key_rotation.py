"""Replacing the device key so that a kill -9 at any moment leaves one consistent answer to "which key signs".

Theory of operation: the new key is written to `<key>.new` (mode 0600, fsync) before anything depends on it;
then the `key_rotation` record, signed by the old key, is committed to the outbox together with the cursor
`key_rotation/<new kid>`; only then is the old key renamed to `<key>.old` and the new one to `<key>`. The
cursor is the single point of decision. At start, `finish_rotation` looks at what a crash left: a `.new` whose
cursor is in the outbox was announced, so the rotation is completed; one whose cursor is not was never
announced nor used, so it is removed and the old key goes on signing. The `.old` file is kept only until the
platform acknowledges the `key_rotation` record (`RetiredKey`): until then a crash between the renames may need
it; after, it can only leak, so it is overwritten, unlinked and the directory synced.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal

from agent.contract.decode import decode_record
from agent.contract.records import Cursor, EventKind, KeyRotationBody
from agent.ledger.keys import DeviceKey, KeyFileError, KeySpec, generate_key_file, load_key_file

CURSOR_PREFIX = "key_rotation/"
_ROTATION_KIND = f'"{EventKind.KEY_ROTATION}"'.encode()
"""A cheap look before parsing an event: only a key_rotation event holds this."""


def rotation_cursor(new_kid: str, ts_ms: int) -> Cursor:
    """Committed with the key_rotation record: its presence in the outbox is what makes the new key the key."""
    return Cursor(CURSOR_PREFIX + new_kid, ts_ms)


def new_key_path(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def old_key_path(path: Path) -> Path:
    return path.with_name(path.name + ".old")


def prepare_new_key(path: Path, spec: KeySpec) -> DeviceKey:
    """Write a fresh key of `spec`'s suite beside the device key, durable before any record names it. A `.new`
    left from an attempt that never committed is replaced: `finish_rotation` at start would have removed it."""
    pending = new_key_path(path)
    pending.unlink(missing_ok=True)
    key = generate_key_file(pending, spec)
    _sync_directory(path.parent)
    return key


def promote_new_key(path: Path) -> None:
    """After the key_rotation record is durable: the old key becomes `.old`, the new one takes its name.

    Each rename is atomic; between the two, the key file is missing and `finish_rotation` completes the move."""
    if path.exists():
        os.replace(path, old_key_path(path))
    os.replace(new_key_path(path), path)
    _sync_directory(path.parent)


def abandon_new_key(path: Path) -> None:
    """The key_rotation record was not committed: the new key was never announced, so it must never sign."""
    new_key_path(path).unlink(missing_ok=True)
    _sync_directory(path.parent)


class RetiredKey:
    """The old key of the last rotation, destroyed once the platform acknowledges the record that retired it.

    Owned by the recorder's thread: `acked(upto)` is asked as acknowledgements arrive and does the file work at
    most once. After a restart the `key_rotation` record's seq is found again in the outbox (`from_records`)."""

    __slots__ = ("_path", "_seq")

    def __init__(self, path: Path, seq: int | None) -> None:
        self._path = path
        self._seq = seq
        """The key_rotation record's seq while `<key>.old` waits for its acknowledgement; None: nothing waits."""

    @classmethod
    def from_events(cls, path: Path, events: Callable[[], Iterable[bytes]]) -> RetiredKey:
        """At start: `events` gives the canonical `event` records still in the outbox, in seq order (read only if
        an old key is there). An old key whose key_rotation record is gone (pruned, so acknowledged long ago)
        waits for nothing."""
        if not old_key_path(path).exists():
            return cls(path, None)
        seq = 0
        for canonical in events():
            if _ROTATION_KIND in canonical:
                record = decode_record(canonical)
                if isinstance(record.body, KeyRotationBody):
                    seq = record.seq
        return cls(path, seq)

    def retired(self, seq: int) -> None:
        """A rotation's record `seq` is committed and the old key renamed: it waits for `seq`'s acknowledgement."""
        self._seq = seq

    def waiting_for(self) -> int | None:
        return self._seq

    def acked(self, upto: int) -> bool:
        """Destroy the old key if `upto` covers its record; True if it was destroyed now."""
        if self._seq is None or upto < self._seq:
            return False
        destroy_key_file(old_key_path(self._path))
        self._seq = None
        return True


def destroy_key_file(path: Path) -> None:
    """Overwrite a private key file with zeros, flushed, before unlinking it and syncing its directory: on the
    flash of a small box an unlinked file's blocks are otherwise readable until they are reused. (Wear levelling
    can keep older copies; the overwrite is what software can do.)"""
    try:
        descriptor = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        zeros = memoryview(bytes(os.fstat(descriptor).st_size))
        while zeros:
            zeros = zeros[os.write(descriptor, zeros) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    path.unlink()
    _sync_directory(path.parent)


def finish_rotation(path: Path, cursors: Mapping[str, int]) -> Literal["none", "completed", "abandoned"]:
    """Complete or undo a rotation that a crash interrupted; call at start, before the device key is loaded."""
    pending = new_key_path(path)
    if not pending.exists():
        return "none"
    try:
        announced = CURSOR_PREFIX + load_key_file(pending).kid in cursors
    except KeyFileError:
        _refuse_if_announced(path, pending, cursors)
        announced = False
    if announced:
        promote_new_key(path)
        return "completed"
    abandon_new_key(path)
    return "abandoned"


def _refuse_if_announced(path: Path, pending: Path, cursors: Mapping[str, int]) -> None:
    """An unreadable new key is normally one a crash cut short before it was announced, and is dropped. But if
    the newest rotation the outbox records names a key other than the current one, the damaged file is that key:
    records after the announcement were signed with it, and going on with the old key would break the chain."""
    rotations = {
        key.removeprefix(CURSOR_PREFIX): when for key, when in cursors.items() if key.startswith(CURSOR_PREFIX)
    }
    if not rotations:
        return
    newest = max(rotations, key=lambda kid: rotations[kid])
    if newest != load_key_file(path).kid:
        raise KeyFileError(
            f"{pending}: the device key {newest} that the outbox announced cannot be read; restore it from a backup "
            "(the station cannot sign on with the old key without breaking its chain)"
        )


def _sync_directory(directory: Path) -> None:
    """Make the renames themselves durable, not only the files' contents."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
