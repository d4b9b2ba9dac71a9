"""Whether the outbox at start continues the chain the device key has signed, and if not, where to go on.

Pure code: the caller reads the anchor (agent/ledger/anchor.py) and the outbox and passes what it found; this
module says `Continue`, `Reset` or `Refuse`, and what a reset record says.

Theory of operation: the anchor, kept beside the key, names a committed record and a reservation no commit
passes before the anchor is written again. An outbox that is absent (the anchor exists, so there was one), that
ends before the anchor's record or holds another record there, or whose newest record fails its own signature,
cannot be continued: the records it lacks may be at the platform. The agent then starts a fresh outbox whose
first record is a signed `chain_reset` (contract v1.1) at one above the reservation, naming the range that may be
lost, with `prev` set to the anchor's record. An outbox the agent cannot read at all, or whose newest record
another key signed, is refused: a person decides (`station-agent recover`). Everything else continues, including
an outbox ahead of its anchor, which is what a kill -9 between a commit and the next anchor write leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.contract.records import ChainResetBody, ChainResetReason, format_ts
from agent.ledger.anchor import ChainAnchor
from agent.ledger.chain import GENESIS_PREV, ChainHead


@dataclass(frozen=True, slots=True)
class OutboxState:
    """What the outbox holds at start. `head_problem`: why its newest record fails its own check (None when it
    passes or there is none); `head_signer`: the kid that signed it when that is neither this box's key nor
    one a key_rotation handed over to it (None otherwise); `digest_at_anchor`: the SHA-256 of the record it
    holds at the anchor's seq, None if it holds none there."""

    existed: bool
    head: ChainHead
    acked_upto: int
    digest_at_anchor: str | None
    head_problem: str | None = None
    head_signer: str | None = None


@dataclass(frozen=True, slots=True)
class Continue:
    """The outbox continues the chain; `anchor_behind` if the outbox is past the anchor's reservation (an anchor
    restored from an old copy, or written by no agent at all): the outbox is then what the agent has."""

    anchor_behind: bool = False


@dataclass(frozen=True, slots=True)
class Reset:
    """Start a fresh outbox with a chain_reset; `set_aside` if the old file is to be kept for an investigator."""

    reason: ChainResetReason
    detail: str
    set_aside: bool


@dataclass(frozen=True, slots=True)
class Refuse:
    """The agent must not touch this outbox; `problem` says why."""

    problem: str


Verdict = Continue | Reset | Refuse


def judge(anchor: ChainAnchor | None, state: OutboxState) -> Verdict:
    """The verdict on an opened outbox, given the anchor (None: no anchor file)."""
    head = state.head
    if state.head_signer is not None:
        return Refuse(f"its newest record {head.seq} is signed by key {state.head_signer}, not by this box's key")
    if state.head_problem is not None:
        return Reset(ChainResetReason.OUTBOX_CORRUPT, f"record {head.seq}: {state.head_problem}", set_aside=True)
    if anchor is None:
        return Continue()
    if anchor.reset_reason is not None and not state.existed:
        return Reset(ChainResetReason(anchor.reset_reason), "set aside by station-agent recover", set_aside=False)
    if not state.existed or (head.seq == 0 and anchor.seq > 0):
        detail = "no outbox file" if not state.existed else "the outbox holds no record"
        return Reset(ChainResetReason.OUTBOX_MISSING, f"{detail}; the anchor names record {anchor.seq}", state.existed)
    if head.seq < anchor.seq:
        return Reset(
            ChainResetReason.OUTBOX_ROLLED_BACK,
            f"the outbox ends at record {head.seq}, before the anchor's record {anchor.seq}",
            set_aside=True,
        )
    if state.digest_at_anchor is not None and anchor.seq > 0 and state.digest_at_anchor != anchor.digest:
        return Reset(
            ChainResetReason.OUTBOX_ROLLED_BACK,
            f"the outbox holds another record {anchor.seq} than the one the anchor names",
            set_aside=True,
        )
    return Continue(anchor_behind=head.seq > anchor.reserved_upto)


@dataclass(frozen=True, slots=True)
class ResetPlan:
    """Where the fresh chain starts: the reset record is sealed after `head` (its seq is `head.seq + 1`)."""

    head: ChainHead
    body: ChainResetBody


def reset_plan(anchor: ChainAnchor | None, state: OutboxState, reset: Reset, set_aside_as: str | None) -> ResetPlan:
    """The chain_reset record's place and body: above the anchor's reservation and the old outbox's head, so it
    reuses no seq; `prev` the anchor's record (64 zeros without one); lost from one above the highest seq known
    acknowledged."""
    known = anchor
    known_seq = 0 if known is None else known.seq
    known_digest = GENESIS_PREV if known is None or known.seq == 0 else known.digest
    known_ts_ms = None if known is None else known.ts_ms
    ceiling = max(0 if known is None else known.reserved_upto, state.head.seq)
    acked = max(0 if known is None else known.acked_upto, min(state.acked_upto, state.head.seq))
    body = ChainResetBody(
        reason=reset.reason,
        detail=reset.detail,
        lost_first=min(acked + 1, ceiling + 1),
        lost_last=ceiling,
        known_seq=known_seq,
        known_digest=known_digest,
        known_ts=None if known_ts_ms is None else format_ts(known_ts_ms),
        set_aside=set_aside_as if set_aside_as is not None else (None if known is None else known.set_aside),
    )
    return ResetPlan(ChainHead(ceiling, known_digest, known_ts_ms), body)
