"""The chain anchor: where the chain stood, kept beside the device key and outside the outbox.

The outbox is the chain's memory; the anchor is what survives when the outbox does not (deleted, restored from
an old copy, corrupt). It names the last record known to be committed (seq, SHA-256, ts), the highest seq known
to be acknowledged, and a *reservation*: a seq that the recorder promises not to commit past before it has
written a new anchor. After losing its outbox the agent starts again above the reservation, so no record it
makes then can carry a seq that the platform may already hold, however far the anchor lagged.

Written whole to `<name>.tmp`, fsynced, renamed over the old one and the directory fsynced, so a power cut leaves
the old anchor or the new one, never a torn one. It is written after the commit it names (it never claims a
record that is not durable), and seldom: at start, at a clean stop, every few minutes while the chain moves,
and when the chain reaches the reservation (every `RESERVE` records) — a flash page now and then next to the
outbox's fsync per commit. The clean stop's anchor reserves nothing above its record: every commit of the run is
behind it, so after a later loss the fresh chain starts right above it, not `RESERVE` seqs further on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from agent.contract.records import ChainResetReason

ANCHOR_FILE = "chain-anchor.json"
FORMAT = 1
RESERVE = 4096
"""Seqs reserved ahead of the head at each anchor write: a lost outbox costs at most this many unused seqs, and
the anchor is written at least every this many records."""
MAX_BYTES = 4096
MAX_SEQ = 2**53 - 1 - 2**32
"""The highest seq an anchor may name or reserve: a record's seq must stay a JSON-safe integer (at most 2^53 - 1),
and the chain needs room above the reservation to make its chain_reset and go on for years."""
HEX_DIGITS = frozenset("0123456789abcdef")


class AnchorError(Exception):
    """The anchor file cannot be read, or holds what no agent wrote; the message names the file and the fix."""


class AnchorUnwritable(AnchorError):
    """The anchor cannot be written: the disk is full or failing. A fault of the box, not of its files: trying
    again later (systemd's restart) can succeed."""


@dataclass(frozen=True, slots=True)
class ChainAnchor:
    """Where the chain stood at the last write: `seq`/`digest`/`ts_ms` of a committed record (0, zeros, None
    before the first), `acked_upto` the highest seq known acknowledged, `reserved_upto` the ceiling no commit
    passes before the next write, `kid` the key that signed then. `reset_reason` and `set_aside` are set by
    `station-agent recover` for the next start to name in its chain_reset."""

    station: str
    seq: int
    digest: str
    ts_ms: int | None
    acked_upto: int
    reserved_upto: int
    kid: str
    reset_reason: str | None = None
    set_aside: str | None = None

    def moved(self, seq: int, digest: str, ts_ms: int | None, acked_upto: int, kid: str) -> ChainAnchor:
        """The anchor after the chain reached `seq`, with a fresh reservation above it."""
        return replace(
            self,
            seq=seq,
            digest=digest,
            ts_ms=ts_ms,
            acked_upto=max(self.acked_upto, acked_upto),
            reserved_upto=max(self.reserved_upto, seq + RESERVE),
            kid=kid,
            reset_reason=None,
            set_aside=None,
        )

    def closed(self, seq: int, digest: str, ts_ms: int | None, acked_upto: int, kid: str) -> ChainAnchor:
        """The anchor a clean stop leaves: `seq` is the last record this run committed and no commit can follow
        before the next start reserves again (it writes its anchor before its first commit), so the unused part of
        the reservation is handed back and a lost outbox later costs no seq that was never used."""
        return replace(self.moved(seq, digest, ts_ms, acked_upto, kid), reserved_upto=seq)


def anchor_path(device_key: Path) -> Path:
    """The anchor lives beside the device key: it belongs to what the key signed, and a box restored with its
    key directory is restored with its anchor."""
    return device_key.with_name(ANCHOR_FILE)


def load_anchor(path: Path) -> ChainAnchor | None:
    """The anchor at `path`, or None if there is none (a new station, or one made before anchors)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AnchorError(f"chain anchor {path} cannot be read: {exc.strerror or exc}") from exc
    try:
        if len(data) > MAX_BYTES:
            raise ValueError(f"longer than {MAX_BYTES} bytes")
        fields = json.loads(data)
        if not isinstance(fields, dict):
            raise ValueError("not a JSON object")
        if fields.pop("format", None) != FORMAT:
            raise ValueError("unknown format")
        anchor = ChainAnchor(**fields)
        _check_fields(anchor)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise AnchorError(
            f"chain anchor {path} is damaged ({exc}); do not delete it (a new chain from seq 1 under the same key "
            "would fork the chain the platform holds): ask the platform team for the highest seq it holds of this "
            "station and run 'station-agent recover --after-seq N' with that N, which writes a sound anchor"
        ) from exc
    return anchor


def check_seq(name: str, value: object) -> int:
    """`value` as a seq the chain can use (0..MAX_SEQ); ValueError naming `name` otherwise. A JSON `true` is
    not the number 1."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise ValueError(f"{name} {value!r} is not a whole number from 0 to {MAX_SEQ}")
    return value


def _check_fields(anchor: ChainAnchor) -> None:
    """Every field of the right type and range: a hand-edited or rotted anchor must be refused, not turned into a
    spurious reset or a crash (an `int` subclass `bool`, a float, a seq beyond what a record can carry)."""
    for name in ("seq", "acked_upto", "reserved_upto"):
        check_seq(name, getattr(anchor, name))
    if anchor.ts_ms is not None and (isinstance(anchor.ts_ms, bool) or not isinstance(anchor.ts_ms, int)):
        raise ValueError(f"ts_ms {anchor.ts_ms!r} is not a whole number of milliseconds")
    if not isinstance(anchor.digest, str) or len(anchor.digest) != 64 or not HEX_DIGITS.issuperset(anchor.digest):
        raise ValueError(f"digest {anchor.digest!r} is not 64 lowercase hex digits")
    for name in ("station", "kid"):
        if not isinstance(getattr(anchor, name), str):
            raise ValueError(f"{name} {getattr(anchor, name)!r} is not a string")
    if anchor.reset_reason is not None and anchor.reset_reason not in set(ChainResetReason):
        raise ValueError(f"reset_reason {anchor.reset_reason!r} is not one of {', '.join(ChainResetReason)}")
    if anchor.set_aside is not None and not isinstance(anchor.set_aside, str):
        raise ValueError(f"set_aside {anchor.set_aside!r} is not a file name")
    if not anchor.acked_upto <= anchor.seq <= anchor.reserved_upto:
        raise ValueError("seq, acked_upto and reserved_upto out of order")


def save_anchor(path: Path, anchor: ChainAnchor) -> None:
    """Replace the anchor atomically and durably (write, fsync, rename, fsync the directory)."""
    data = json.dumps({"format": FORMAT, **_fields(anchor)}, sort_keys=True).encode()
    temporary = path.with_name(path.name + ".tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise AnchorUnwritable(
            f"chain anchor {path} cannot be written: {exc.strerror or exc}; the disk that holds it is full or "
            f"failing: free space on it (df {path.parent}) or replace it"
        ) from exc


def _fields(anchor: ChainAnchor) -> dict[str, object]:
    return {name: getattr(anchor, name) for name in ChainAnchor.__dataclass_fields__}


class AnchorKeeper:
    """The recorder's handle on the anchor: it keeps the reservation ahead of every commit and writes the anchor
    now and then. Only the recorder thread calls it."""

    def __init__(self, path: Path, anchor: ChainAnchor) -> None:
        self.path = path
        self._anchor = anchor

    @property
    def anchor(self) -> ChainAnchor:
        return self._anchor

    def covers(self, seq: int) -> bool:
        """Whether `seq` may be committed under the reservation written now."""
        return seq <= self._anchor.reserved_upto

    def save(self, seq: int, digest: str, ts_ms: int | None, acked_upto: int, kid: str) -> None:
        """Name committed record `seq` and reserve above it (AnchorError if it cannot be written)."""
        moved = self._anchor.moved(seq, digest, ts_ms, min(acked_upto, seq), kid)
        if moved != self._anchor:
            save_anchor(self.path, moved)
            self._anchor = moved

    def close(self, seq: int, digest: str, ts_ms: int | None, acked_upto: int, kid: str) -> None:
        """At a clean stop, after the last commit: name record `seq` and reserve nothing above it."""
        closed = self._anchor.closed(seq, digest, ts_ms, min(acked_upto, seq), kid)
        if closed != self._anchor:
            save_anchor(self.path, closed)
            self._anchor = closed
