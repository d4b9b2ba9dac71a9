"""Which records to publish next: a drain lane for the backlog and a live lane for what happens now.

Theory of operation: records go out in `seq` order, each message a contiguous ascending run. After days
offline the backlog can take a while to drain, and a regulator must not wait that long to see a fresh alarm, so
when the backlog is longer than `live_threshold` the planner splits the sequence: records made recently (from
`recent_from`, given at reset: a record made just before the link came back is news too) and everything
committed from then on go out at once on the live lane, while the drain lane works through the older backlog
below the split. When the drain reaches the split, the lanes merge and the order is plain again. The platform stores
what arrives and acknowledges the contiguous prefix, so acks still advance in order.

While the lanes are split, the drain never takes the last slot of the in-flight window (unless the window is a
single slot), so a live message always has a way out.
Outstanding records (sent, not acknowledged) are capped by `window_records` so that a broker is never handed
more than the platform is keeping up with. No I/O here: the delivery core (agent.uplink.delivery) feeds in heads,
acks and publishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Lane = Literal["drain", "live"]


@dataclass(frozen=True, slots=True)
class Proposal:
    """Publish records first..last (at most; a size limit may stop the message earlier)."""

    first: int
    last: int
    lane: Lane


@dataclass(frozen=True, slots=True)
class PlannerStatus:
    acked_upto: int
    drain_next: int
    live_from: int | None
    outstanding: int
    inflight_messages: int


class SendPlanner:
    def __init__(self, max_records: int, max_inflight: int, window_records: int, live_threshold: int) -> None:
        if max_inflight < 1 or max_records < 1:
            raise ValueError("max_records and max_inflight must be at least 1")
        self._max_records = max_records
        self._max_inflight = max_inflight
        self._window_records = window_records
        self._live_threshold = live_threshold
        self._acked = 0
        self._drain_next = 1
        self._live_from: int | None = None
        self._live_next = 0
        self._inflight = 0
        self._confirmed: list[tuple[int, int]] = []
        self._recent_from: int | None = None

    @property
    def acked_upto(self) -> int:
        return self._acked

    def reset(self, acked_upto: int, recent_from: int | None = None) -> None:
        """Start over after a reconnect or an ack timeout: everything above acked_upto counts as unsent, and
        records from `recent_from` on are news for the live lane (None: only what is committed from now)."""
        self._recent_from = recent_from
        self._acked = acked_upto
        self._drain_next = acked_upto + 1
        self._live_from = None
        self._inflight = 0
        self._confirmed = []

    def propose(self, head: int) -> Proposal | None:
        """The next run to publish given the newest committed seq, or None if nothing may go now."""
        if self._inflight >= self._max_inflight:
            return None
        if self._live_from is None and head - self._drain_next + 1 > self._live_threshold:
            split = head + 1 if self._recent_from is None else min(head + 1, self._recent_from)
            self._live_from = self._live_next = max(self._drain_next, split)
            self._recent_from = None
        if self._live_from is not None and self._live_next <= head:
            return Proposal(self._live_next, min(head, self._live_next + self._max_records - 1), "live")
        drain_end = head if self._live_from is None else self._live_from - 1
        room = self._window_records - self._outstanding()
        drain_slots = self._max_inflight - (1 if self._live_from is not None and self._max_inflight > 1 else 0)
        if self._drain_next > drain_end or room <= 0 or self._inflight >= drain_slots:
            return None
        last = min(drain_end, self._drain_next + min(self._max_records, room) - 1)
        return Proposal(self._drain_next, last, "drain")

    def published(self, first: int, last: int, lane: Lane) -> None:
        """Records first..last went out in one message (last may be below the proposal's)."""
        self._inflight += 1
        if lane == "live":
            self._live_next = last + 1
            return
        self._drain_next = last + 1
        if self._live_from is not None and self._drain_next >= self._live_from:
            self._drain_next, self._live_from = self._live_next, None

    def delivered(self) -> None:
        """The broker took one message (PUBACK): its in-flight slot is free again."""
        self._inflight = max(0, self._inflight - 1)

    def confirm(self, first: int, last: int) -> int:
        """Broker mode: records first..last are acknowledged; return the contiguous acked_upto."""
        self._confirmed.append((first, last))
        self._confirmed.sort()
        while self._confirmed and self._confirmed[0][0] <= self._acked + 1:
            self._acked = max(self._acked, self._confirmed.pop(0)[1])
        return self._acked

    def acknowledge(self, upto: int) -> bool:
        """Platform mode: the platform holds everything up to `upto`; True if that is progress."""
        if upto <= self._acked:
            return False
        self._acked = upto
        if self._drain_next <= upto:
            self._drain_next = upto + 1
            if self._live_from is not None and self._drain_next >= self._live_from:
                self._drain_next = max(self._drain_next, self._live_next)
                self._live_from = None
        return True

    def lacks_few(self) -> bool:
        """Something sent waits for its ack, but no more than one message's worth and no drain is split off."""
        return self._live_from is None and 0 < self._outstanding() <= self._max_records

    def unacked_sent(self) -> bool:
        """True while something published still waits for its acknowledgement."""
        return self._outstanding() > 0

    def _outstanding(self) -> int:
        drain = max(0, self._drain_next - 1 - self._acked)
        live = 0 if self._live_from is None else self._live_next - self._live_from
        return drain + live

    def status(self) -> PlannerStatus:
        return PlannerStatus(self._acked, self._drain_next, self._live_from, self._outstanding(), self._inflight)
