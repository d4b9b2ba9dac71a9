"""The outbox's space reserve: a file of a few MiB beside the outbox, given back when the file system is full.

SQLite in WAL mode needs room to delete: a prune writes the pages it changes to the WAL, and folding the WAL into
the database may grow the database file by the pages appended since the last fold. On a file system that some
other program filled to the last byte, the acknowledged records the agent could give up cannot even be deleted,
and every new record is refused until someone frees space. The reserve is that room, set aside while there is
plenty: released when SQLite reports the disk full, so that the WAL can be folded and acknowledged records pruned
(agent/ledger/recorder.py), and made again once the file system has room for it twice over.

Flash wear: the file is allocated with `posix_fallocate` (on ext4, f2fs, xfs and tmpfs that reserves blocks
without writing them; elsewhere the C library writes it once), kept across restarts and never rewritten. A file
system that does not count the blocks (one that compresses) holds no reserve: that is said, and the agent goes on
without one. A kill -9 at any point leaves either no file, a complete one, or one of the wrong size, which the
next `ensure` removes and makes again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.logs import get_logger

log = get_logger("agent.outbox")

SUFFIX = ".reserve"
FULL_BELOW_BYTES = 1024**2
"""Less free than this and a "database or disk is full" is the file system's, not the outbox's own size cap:
SQLite fails a write when a WAL frame (4 KiB) no longer fits, so a file system it filled has far less left."""

State = Literal["held", "released", "not_made", "off"]


def reserve_path(outbox_path: Path) -> Path:
    return outbox_path.with_name(outbox_path.name + SUFFIX)


@dataclass(frozen=True, slots=True)
class Room:
    """A file system's free space as the agent may use it: `free_bytes` counts the blocks kept for root only
    when the agent runs as root (ext4 keeps 5 % for it by default)."""

    free_bytes: int

    @classmethod
    def of(cls, path: Path) -> Room:
        stats = os.statvfs(path)
        blocks = stats.f_bfree if os.geteuid() == 0 else stats.f_bavail
        return cls(blocks * stats.f_frsize)

    @property
    def full(self) -> bool:
        return self.free_bytes < FULL_BELOW_BYTES

    def fits_reserve(self, size_bytes: int) -> bool:
        """Room to make a reserve of `size_bytes`: as much again stays free after it, so that making it never
        fills the file system itself, and a disk that hovers near full does not see it made and released in turn."""
        return self.free_bytes >= 2 * size_bytes


def release_at_start(outbox_path: Path) -> None:
    """Before the start's first write: on a full file system, give back a reserve an earlier run made, so that the
    start itself (the outbox's opening, the chain anchor when it sits on the same disk) finds room, and the
    recorder the room to prune. A box rebooted onto a disk that filled meanwhile starts and records, rather than
    failing every restart until someone frees space; the recorder makes the reserve again once there is room."""
    path = reserve_path(outbox_path)
    try:
        room = Room.of(outbox_path.parent)
        if not room.full or not path.exists():
            return
        reserve = SpaceReserve(path, path.stat().st_size)
        reserve.ensure()  # a whole file is held as it is, one cut short removed: neither writes
        if not reserve.release():
            return
    except OSError as exc:
        log.warning("outbox_space_reserve_not_released", path=str(path), problem=str(exc))
        return
    log.warning("outbox_space_reserve_released", free_bytes=room.free_bytes, bytes=reserve.size_bytes, at_start=True)


class SpaceReserve:
    """The reserve file of one outbox. Only the recorder thread calls it."""

    def __init__(self, path: Path, size_bytes: int) -> None:
        self.path = path
        self.size_bytes = size_bytes
        self.state: State = "off"
        self._why_not: str | None = None

    @property
    def held(self) -> bool:
        return self.state == "held"

    def ensure(self) -> State:
        """Hold the reserve if there is room for it (an existing file of the right size is kept as it is);
        remove it when the size is 0. Every change and every failure is logged with what it means; something at
        the path that cannot be removed (a folder) leaves no reserve, and neither the start nor the recorder ends."""
        try:
            return self._ensure()
        except OSError as exc:
            self._not_made(f"{exc.strerror or exc}: remove what is at this path; the agent makes the file itself")
            return self.state

    def _ensure(self) -> State:
        if self.size_bytes == 0:
            self._remove()
            self.state = "off"
            return self.state
        if self._complete():
            self.state = "held"
            return self.state
        self._remove()
        room = Room.of(self.path.parent)
        if not room.fits_reserve(self.size_bytes):
            self._not_made(
                f"the file system has {room.free_bytes} bytes free and the reserve needs twice its "
                f"{self.size_bytes}; the agent goes on without one and makes it once there is room"
            )
            return self.state
        try:
            self._make()
        except OSError as exc:
            self._remove()
            self._not_made(f"it cannot be written ({exc.strerror or exc}); the agent goes on without one")
            return self.state
        if not self._complete():
            self._remove()
            self._not_made("the file system does not allocate its blocks (does it compress?); none is kept")
            return self.state
        log.info("outbox_space_reserve_made", path=str(self.path), bytes=self.size_bytes)
        self.state, self._why_not = "held", None
        return self.state

    def release(self) -> bool:
        """Give the reserve's space back to the file system; False if none was held."""
        if not self.held:
            return False
        try:
            self._remove()
        except OSError as exc:  # replaced by something else since it was made: nothing given back
            self._not_made(f"{exc.strerror or exc}: remove what is at this path; the agent makes the file itself")
            return False
        self.state = "released"
        return True

    def _not_made(self, why: str) -> None:
        """Say why there is no reserve, once for each reason: the recorder tries again every minute."""
        if why != self._why_not:
            log.warning("outbox_space_reserve_not_made", path=str(self.path), bytes=self.size_bytes, why=why)
            self._why_not = why
        if self.state != "released":
            self.state = "not_made"

    def _complete(self) -> bool:
        try:
            stats = self.path.stat()
        except FileNotFoundError:
            return False
        return stats.st_size == self.size_bytes and stats.st_blocks * 512 >= self.size_bytes

    def _make(self) -> None:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(descriptor, 0, self.size_bytes)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _remove(self) -> None:
        """Unlink the file and sync its folder: ext4 reuses freed blocks only once its journal has committed."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
