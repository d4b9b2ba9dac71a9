"""Opening the outbox at start: check it against the chain anchor, and start it again with a chain_reset when
it cannot be continued (agent/ledger/continuity.py decides; this module does the reading, moving and writing).

Order of writes for a reset, each durable before the next: the old file is moved aside (kept for an
investigator), the anchor is given a reservation above the reset's seq, the chain_reset record is committed to
the fresh outbox, and the anchor moves to it. A kill -9 anywhere in between leaves either the old state (the
next start decides again, the same way) or a fresh outbox whose first record is the reset.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from agent.contract.decode import ContractDecodeError, decode_record
from agent.contract.records import ChainResetReason, KeyRotationBody
from agent.ledger.anchor import RESERVE, ChainAnchor, load_anchor, save_anchor
from agent.ledger.chain import ChainHead, RecordRefused, seal
from agent.ledger.continuity import Continue, OutboxState, Refuse, Reset, judge, reset_plan
from agent.ledger.keys import DeviceKey
from agent.ledger.outbox import Outbox, OutboxUnusable, StoredRecord
from agent.ledger.space_reserve import release_at_start
from agent.logs import get_logger

log = get_logger("agent.outbox")

SIDE_FILES = ("", "-wal", "-shm")
LOCK_SUFFIX = ".lock"


class OutboxRefused(Exception):
    """The agent will not use this outbox; the message says why and how to recover."""


class OutboxBusy(Exception):
    """Another process holds the outbox (a running agent, or `station-agent recover` at work)."""


def lock_outbox(path: Path) -> int:
    """Take the outbox's lock, `<outbox>.lock` beside it, and return its descriptor: held for as long as it stays
    open, and released by the kernel when the process ends however it ends (kill -9 included), so a stale lock
    cannot outlive its holder. The agent holds it while it runs and `station-agent recover` while it moves the
    outbox aside: neither can pull the outbox from under the other. OutboxBusy if another process holds it,
    OSError if the file cannot be opened."""
    lock_file = path.with_name(path.name + LOCK_SUFFIX)
    descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise OutboxBusy(f"outbox {path} is in use by another process (it holds {lock_file})") from None
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


@dataclass(frozen=True, slots=True)
class Opened:
    """The outbox to run on, the anchor as written at start, and the reset made, if one was."""

    outbox: Outbox
    anchor: ChainAnchor
    reset: Reset | None


def recover_hint(config: Path | None) -> str:
    where = "" if config is None else f" --config {config}"
    return (
        f"run 'station-agent recover{where}' to move it aside (it is kept, for an investigator) and start the "
        "next run with a chain_reset record that tells the platform which records are lost"
    )


def open_outbox(
    path: Path,
    max_bytes: int,
    key: DeviceKey,
    *,
    station: str,
    anchor_file: Path,
    now_ms: int,
    config: Path | None,
) -> Opened:
    """The checked outbox; OutboxRefused if it must not be used, AnchorError if the anchor is unreadable."""
    release_at_start(path)
    existed = path.exists()
    anchor = load_anchor(anchor_file)
    try:
        outbox = Outbox(path, max_bytes)
    except OutboxUnusable as exc:
        raise OutboxRefused(f"{exc}; {recover_hint(config)}") from exc
    state = _state_of(outbox, existed, anchor, key, station)
    verdict = judge(anchor, state)
    if isinstance(verdict, Refuse):
        outbox.close()
        raise OutboxRefused(f"outbox {path}: {verdict.problem}; {recover_hint(config)}")
    if isinstance(verdict, Continue):
        if verdict.anchor_behind:
            log.warning("chain_anchor_behind", anchor_seq=None if anchor is None else anchor.seq, head=state.head.seq)
        return Opened(
            outbox,
            _anchor_at_start(anchor_file, anchor, head=state.head, acked=state.acked_upto, key=key, station=station),
            None,
        )
    set_aside_as = None
    if verdict.set_aside and existed:
        outbox.close()
        set_aside_as = set_aside(path, verdict.reason, now_ms).name
        outbox = Outbox(path, max_bytes)
    plan = reset_plan(anchor, state, verdict, set_aside_as)
    try:
        records, head = seal([plan.body.intent(now_ms)], plan.head, station, key)
    except RecordRefused as exc:
        outbox.close()
        raise OutboxRefused(
            f"outbox {path}: the chain_reset after seq {plan.head.seq} cannot be made ({exc}); the anchor or the "
            f"outbox names a seq beyond what a record can carry: ask the platform team for the highest seq it holds of "
            "this station and run 'station-agent recover --after-seq N' with that N"
        ) from exc
    base = anchor or ChainAnchor(station, 0, plan.head.digest, None, 0, 0, key.kid)
    save_anchor(anchor_file, replace(base, reserved_upto=head.seq + RESERVE, reset_reason=None, set_aside=None))
    outbox.append(records)
    log.error(
        "chain_reset",
        reason=str(verdict.reason),
        detail=verdict.detail,
        lost_first=plan.body.lost_first,
        lost_last=plan.body.lost_last,
        seq=head.seq,
        set_aside=set_aside_as,
    )
    moved = base.moved(head.seq, head.digest, head.ts_ms, 0, key.kid)
    save_anchor(anchor_file, moved)
    return Opened(outbox, moved, verdict)


def set_aside(path: Path, reason: ChainResetReason | str, now_ms: int) -> Path:
    """Move an outbox (and its WAL and shared-memory files) to `<name>.<reason>-<UTC time>`; the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_ms // 1000))
    target = path.with_name(f"{path.name}.{reason}-{stamp}")
    for suffix in SIDE_FILES:
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, target.with_name(target.name + suffix))
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return target


def _anchor_at_start(
    anchor_file: Path, anchor: ChainAnchor | None, *, head: ChainHead, acked: int, key: DeviceKey, station: str
) -> ChainAnchor:
    base = anchor or ChainAnchor(station, 0, head.digest, None, 0, 0, key.kid)
    moved = base.moved(head.seq, head.digest, head.ts_ms, min(acked, head.seq), key.kid)
    save_anchor(anchor_file, moved)
    return moved


def _state_of(outbox: Outbox, existed: bool, anchor: ChainAnchor | None, key: DeviceKey, station: str) -> OutboxState:
    head = outbox.head()
    stored = outbox.head_record()
    problem, signer = (None, None) if stored is None else _head_check(stored, key, station)
    return OutboxState(
        existed=existed,
        head=head,
        acked_upto=outbox.acked_upto(),
        digest_at_anchor=None if anchor is None or anchor.seq == 0 else outbox.digest_at(anchor.seq),
        head_problem=problem,
        head_signer=signer,
    )


def _head_check(stored: StoredRecord, key: DeviceKey, station: str) -> tuple[str | None, str | None]:
    """(problem, foreign signer) of the newest record: its bytes must be a record of this station with its seq,
    signed by this box's key, or be the key_rotation that handed signing over to it (signed by the old key,
    which the box no longer needs)."""
    try:
        record = decode_record(stored.canonical)
    except ContractDecodeError:
        return "its stored bytes are not a record", None
    if (record.seq, record.station) != (stored.seq, station):
        return f"its bytes name seq {record.seq} of station {record.station!r}", None
    if stored.kid != key.kid:
        handed_over = isinstance(record.body, KeyRotationBody) and record.body.new_kid == key.kid
        return (None, None) if handed_over else (None, stored.kid)
    if not key.verify(stored.sig, stored.canonical):
        return "its signature does not verify with this box's key (the stored bytes changed)", None
    return None, None
