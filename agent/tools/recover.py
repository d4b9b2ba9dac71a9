"""`station-agent recover`: set a refused outbox aside and leave word in the chain anchor for the next start's
chain_reset; with --after-seq, also write a sound anchor where there is none, or a damaged one, so the next chain
starts above what the platform holds instead of forking it at seq 1.

A module of its own, loaded with its command: the outbox's opening, the chain anchor and the record and evidence
types they read are not for `station-agent run`, whose check would load them only to load them again after its
exec.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from agent.config import AgentConfig
from agent.contract.records import ChainResetReason
from agent.ledger.anchor import AnchorError, ChainAnchor, anchor_path, check_seq, load_anchor, save_anchor
from agent.ledger.chain import GENESIS_PREV
from agent.ledger.opening import SIDE_FILES, OutboxBusy, lock_outbox, set_aside


class RecoverError(Exception):
    """Why the outbox was not (or not wholly) recovered, and what to do; the command says it and exits 2."""


def recover(config: AgentConfig, after_seq: int | None) -> None:
    """Recover the config's outbox, saying on stdout what was done; RecoverError says what stopped it."""
    path, anchor_file = config.outbox.path, anchor_path(config.keys.device_key)
    try:
        checked_seq = None if after_seq is None else check_seq("--after-seq", after_seq)
    except ValueError as exc:
        raise RecoverError(
            f"{exc}: give the highest seq the platform holds of this station (ask the platform team)"
        ) from exc
    try:
        lock = lock_outbox(path)
    except OutboxBusy as exc:
        raise RecoverError(
            f"{exc}: the agent is running; stop it first (sudo systemctl stop station-agent), then run again"
        ) from exc
    except OSError as exc:
        raise RecoverError(f"cannot lock the outbox beside {path}: {exc.strerror or exc}") from exc
    try:
        _recover_locked(config.station.id, path, anchor_file, checked_seq)
    finally:
        os.close(lock)


def _recover_locked(station: str, path: Path, anchor_file: Path, after_seq: int | None) -> None:
    """The recovery proper, while this process holds the outbox's lock (no agent can start meanwhile)."""
    try:
        anchor = load_anchor(anchor_file)
    except AnchorError as exc:
        if after_seq is None:
            raise RecoverError(str(exc)) from exc
        print(f"the damaged chain anchor {anchor_file} is replaced by one after seq {after_seq}")
        anchor = None
    outbox_there = any(path.with_name(path.name + suffix).exists() for suffix in SIDE_FILES)
    if anchor is None and after_seq is None:
        raise RecoverError(
            f"there is no chain anchor at {anchor_file}, so the last seq this station used is unknown here; ask the "
            "platform for the highest seq it holds of this station and run again with --after-seq N"
        )
    if not outbox_there and after_seq is None:
        raise RecoverError(f"there is no outbox at {path}: nothing to recover; start the agent")
    if anchor is None:
        anchor = ChainAnchor(station, 0, GENESIS_PREV, None, 0, after_seq or 0, "")
    elif after_seq is not None and after_seq > anchor.reserved_upto:
        anchor = dataclasses.replace(anchor, reserved_upto=after_seq)
    try:
        if outbox_there:
            moved = set_aside(path, ChainResetReason.OUTBOX_REFUSED, int(time.time() * 1000))
            save_anchor(anchor_file, dataclasses.replace(anchor, reset_reason="outbox_refused", set_aside=moved.name))
            print(f"outbox {path} moved to {moved} (keep it: it holds the records the platform may lack)")
        else:
            save_anchor(anchor_file, anchor)
    except (OSError, AnchorError) as exc:
        raise RecoverError(f"cannot set the outbox aside: {exc}") from exc
    print(
        f"the next start makes a new outbox whose first record is a chain_reset after seq {anchor.reserved_upto}, "
        "telling the platform which records are lost; start the agent: sudo systemctl start station-agent"
    )
