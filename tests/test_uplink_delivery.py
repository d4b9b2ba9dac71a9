"""The MQTT uplink's delivery core, without I/O: events in, actions out, time as plain numbers (no sleeps)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.contract.records import AckRefusal, AckRefusedBody, UplinkInstability, UplinkUnstableBody
from agent.uplink import delivery
from agent.uplink.backoff import Backoff
from agent.uplink.delivery import (
    REPLY_QUEUE,
    STALLED_ACK_S,
    Acknowledged,
    DeliveryCore,
    DeliveryPolicy,
    Record,
    SendRecords,
    SendReply,
    SendStatus,
)
from agent.uplink.link_state import LinkLifecycle

ACK_TIMEOUT_S = 30.0


def core(
    mode: Literal["broker", "platform"] = "platform",
    *,
    acked: int = 0,
    head: int = 0,
    max_records: int = 10,
    max_inflight: int = 4,
    first_stored: int | None = None,
) -> DeliveryCore:
    policy = DeliveryPolicy(
        ack_mode=mode,
        ack_timeout_s=ACK_TIMEOUT_S,
        max_ack_bytes=256,
        max_records_per_message=max_records,
        max_inflight_messages=max_inflight,
        client_id="station-agent-test",
    )
    made = DeliveryCore(policy, acked, head, lambda: first_stored)
    made.handle(delivery.Online(acked, None), 0.0)
    return made


def ack(upto: int) -> delivery.AckArrived:
    return delivery.AckArrived(json.dumps({"upto": upto}).encode())


@dataclass
class Wire:
    """Performs the core's sends as a perfect broker would, numbering messages like paho's mids."""

    core: DeliveryCore
    sent: list[SendRecords | SendReply | SendStatus] = field(default_factory=list)
    mids: list[int] = field(default_factory=list)
    next_mid: int = 1
    faults: tuple[object, ...] = ("starting",)

    def set_faults(self, faults: tuple[object, ...], now: float) -> None:
        self.faults = faults
        self.core.handle(delivery.FaultsChanged(faults), now)

    def turn(self, now: float) -> None:
        while (send := self.core.step(now)) is not None:
            self.sent.append(send)
            if isinstance(send, SendRecords):
                self.core.handle(delivery.RecordsSent(self.next_mid, send.first, send.last, send.lane), now)
            elif isinstance(send, SendReply):
                self.core.handle(delivery.ReplySent(self.next_mid), now)
            else:
                self.core.handle(delivery.StatusSent(self.faults), now)
            self.mids.append(self.next_mid)
            self.next_mid += 1

    def records(self) -> list[tuple[int, int]]:
        return [(send.first, send.last) for send in self.sent if isinstance(send, SendRecords)]


class TestWhatToSend:
    def test_records_go_in_order_up_to_the_head(self) -> None:
        """A committed head is sent in contiguous runs of at most max_records, nothing beyond it."""
        wire = Wire(core(max_records=10))
        wire.core.handle(delivery.Committed(25), 0.0)
        wire.turn(0.0)
        assert wire.records() == [(1, 10), (11, 20), (21, 25)]

    def test_a_changed_status_goes_before_records(self) -> None:
        """New faults are published once, ahead of the records due at the same moment."""
        wire = Wire(core())
        wire.core.handle(delivery.Committed(3), 0.0)
        wire.set_faults(("degraded", ("bus", "line1")), 0.0)
        wire.turn(0.0)
        assert wire.sent == [SendStatus(), SendRecords(1, 3, "drain")]
        wire.turn(1.0)
        assert wire.sent[2:] == [], "said once"

    def test_a_status_that_already_says_the_faults_is_not_sent_again(self) -> None:
        """Faults posted before a session's first status, which already says them, make no second status."""
        wire = Wire(core())
        wire.core.handle(delivery.StatusSent(("ok",)), 0.0)
        wire.set_faults(("ok",), 0.0)
        wire.turn(0.0)
        assert wire.sent == []

    def test_replies_wait_while_a_record_can_go(self) -> None:
        """A reply goes out only when no record can (here: the records' window is full), one at a time."""
        wire = Wire(core(max_records=2, max_inflight=1))
        wire.core.handle(delivery.Committed(4), 0.0)
        wire.core.handle(delivery.ReplyQueued(b"first"), 0.0)
        wire.core.handle(delivery.ReplyQueued(b"second"), 0.0)
        wire.turn(0.0)
        assert wire.sent == [SendRecords(1, 2, "drain"), SendReply(b"first")]
        wire.core.handle(delivery.Puback(wire.mids[0]), 1.0)
        wire.turn(1.0)
        assert wire.sent[2:] == [SendRecords(3, 4, "drain")], "a free slot goes to a record, not to a reply"
        wire.core.handle(delivery.Puback(wire.mids[1]), 2.0)
        wire.turn(2.0)
        assert wire.sent[3:] == [SendReply(b"second")]

    def test_the_reply_queue_keeps_the_newest(self) -> None:
        """Beyond REPLY_QUEUE waiting replies the oldest are dropped; the newest REPLY_QUEUE go out in order."""
        wire = Wire(core())
        for number in range(REPLY_QUEUE + 5):
            wire.core.handle(delivery.ReplyQueued(str(number).encode()), 0.0)
        replies: list[bytes] = []
        for moment in range(REPLY_QUEUE + 5):
            wire.turn(float(moment))
            replies.extend(send.payload for send in wire.sent if isinstance(send, SendReply))
            wire.sent.clear()
            wire.core.handle(delivery.Puback(wire.mids[-1]), float(moment))
        assert replies == [str(number).encode() for number in range(5, REPLY_QUEUE + 5)]


class TestWhatAnAckMeans:
    def test_broker_mode_confirms_contiguous_pubacks(self) -> None:
        """PUBACKs out of order acknowledge only the contiguous prefix."""
        wire = Wire(core("broker", max_records=5))
        wire.core.handle(delivery.Committed(15), 0.0)
        wire.turn(0.0)
        first, second, third = wire.mids
        wire.core.handle(delivery.Puback(second), 1.0)
        assert wire.core.acked_upto == 0
        assert wire.core.handle(delivery.Puback(first), 1.0) == (Acknowledged(10),)
        assert wire.core.handle(delivery.Puback(third), 1.0) == (Acknowledged(15),)

    def test_platform_ack_is_progress_once(self) -> None:
        """`{"upto": N}` above what was acked tells the recorder; the same ack again tells it nothing."""
        wire = Wire(core())
        wire.core.handle(delivery.Committed(8), 0.0)
        wire.turn(0.0)
        assert wire.core.handle(ack(8), 1.0) == (Acknowledged(8),)
        assert wire.core.handle(ack(8), 1.0) == ()

    def test_an_ack_beyond_the_head_moves_nothing(self) -> None:
        """An upto past this box's head is never taken as an acknowledgement (recover is a person's job)."""
        wire = Wire(core(head=5))
        wire.turn(0.0)
        assert wire.core.handle(ack(9), 1.0) == ()
        assert wire.core.acked_upto == 0

    def test_refused_acks_are_recorded_once_a_minute_with_their_count(self) -> None:
        """Three refused acks in a minute make one ack_refused record, the next one after a minute says 3."""
        made = core()
        (first,) = made.handle(delivery.AckArrived(b"[1]"), 0.0)
        assert isinstance(first, Record) and isinstance(first.body, AckRefusedBody)
        assert (first.body.reason, first.body.count, first.body.payload_bytes) == (AckRefusal.NOT_AN_ACK, 1, 3)
        assert made.handle(delivery.AckTooLarge(10_000), 10.0) == ()
        assert made.handle(delivery.AckArrived(b"{"), 20.0) == ()
        (later,) = made.handle(delivery.AckTooLarge(9_000), 61.0)
        assert isinstance(later, Record) and isinstance(later.body, AckRefusedBody)
        assert (later.body.reason, later.body.count, later.body.payload_bytes) == (AckRefusal.TOO_LARGE, 3, 9_000)
        assert made.status().acks_refused == 4


class TestWhenToSendAgain:
    def test_ack_timeout_sends_everything_unacknowledged_again(self) -> None:
        """Nothing acked for ack_timeout_s: the same runs are proposed again, from after the acked seq."""
        wire = Wire(core(max_records=5, max_inflight=10))
        wire.core.handle(delivery.Committed(12), 0.0)
        wire.turn(0.0)
        wire.core.handle(ack(5), 1.0)
        wire.turn(ACK_TIMEOUT_S)
        assert wire.records()[3:] == [], "not yet: the ack at 1 s was progress"
        wire.turn(1.0 + ACK_TIMEOUT_S)
        assert wire.records()[3:] == [(6, 10), (11, 12)]
        assert wire.core.status().rewinds == 1

    def test_a_stalled_ack_sends_the_missing_record_at_once(self) -> None:
        """Acks that stay below a record sent over STALLED_ACK_S ago, with little outstanding, send it again."""
        wire = Wire(core())
        wire.core.handle(delivery.Committed(3), 0.0)
        wire.turn(0.0)
        wire.core.handle(ack(0), 1.0)
        wire.turn(1.0)
        assert wire.records() == [(1, 3)], "sent a moment ago: the platform may still be working on it"
        wire.core.handle(ack(0), STALLED_ACK_S + 0.5)
        wire.turn(STALLED_ACK_S + 0.5)
        assert wire.records() == [(1, 3), (1, 3)]

    def test_a_platform_that_lost_records_is_sent_them_again_from_its_upto(self) -> None:
        """A lower upto rewinds to it (records it no longer has go again) and records uplink_unstable."""
        wire = Wire(core(max_records=10, max_inflight=10))
        wire.core.handle(delivery.Committed(30), 0.0)
        wire.turn(0.0)
        wire.core.handle(ack(30), 1.0)
        actions = wire.core.handle(ack(12), 2.0)
        body = UplinkUnstableBody(reason=UplinkInstability.PLATFORM_ACKED_LESS, count=1, believed_upto=30, upto=12)
        assert actions == (Record(body),)
        wire.turn(2.0)
        assert wire.records()[3:] == [(13, 22), (23, 30)]

    def test_what_was_pruned_is_not_asked_of_the_outbox(self) -> None:
        """A platform lacking records the outbox pruned is sent again from the first record still stored."""
        wire = Wire(core(max_records=10, max_inflight=10, first_stored=21))
        wire.core.handle(delivery.Committed(30), 0.0)
        wire.turn(0.0)
        wire.core.handle(ack(30), 1.0)
        wire.core.handle(ack(12), 2.0)
        wire.turn(2.0)
        assert wire.records()[3:] == [(21, 30)]


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, int]]:
    kinds = st.sampled_from(["commit", "tick", "puback", "ack", "turn", "disconnect"])
    return draw(st.lists(st.tuples(kinds, st.integers(0, 40)), max_size=60))


class TestInvariants:
    @settings(max_examples=300, deadline=None)
    @given(histories(), st.sampled_from(["broker", "platform"]))
    def test_nothing_is_sent_beyond_the_head_nor_below_the_ack(
        self, history: list[tuple[str, int]], mode: Literal["broker", "platform"]
    ) -> None:
        """Whatever arrives in whatever order, every run sent lies within acked_upto+1..head."""
        made = core(mode, max_records=3, max_inflight=2)
        head, now, mid = 0, 0.0, 0
        mids: list[int] = []
        for kind, number in history:
            if kind == "commit":
                head += number
                made.handle(delivery.Committed(head), now)
            elif kind == "tick":
                now += number
            elif kind == "puback" and mids:
                made.handle(delivery.Puback(mids.pop(number % len(mids))), now)
            elif kind == "ack":
                made.handle(ack(number), now)
            elif kind == "disconnect":
                made.handle(delivery.Online(made.resume_after(None), None), now)
                mids.clear()
            while (send := made.step(now)) is not None:
                assert isinstance(send, SendRecords)
                assert made.acked_upto < send.first <= send.last <= head
                mid += 1
                mids.append(mid)
                made.handle(delivery.RecordsSent(mid, send.first, send.last, send.lane), now)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.floats(0, 20), st.integers(0, 50)), max_size=40))
    def test_a_lower_upto_rewinds_at_most_once_per_ack_timeout(self, acks: list[tuple[float, int]]) -> None:
        """Stale or out-of-order acks below what the platform said before cost at most one rewind per timeout."""
        made = core(max_records=50, max_inflight=10)
        made.handle(delivery.Committed(50), 0.0)
        now, mid = 0.0, 0
        rewound_at: list[float] = []
        while (send := made.step(now)) is not None:
            assert isinstance(send, SendRecords)
            mid += 1
            made.handle(delivery.RecordsSent(mid, send.first, send.last, send.lane), now)
        made.handle(ack(50), now)
        for pause_s, upto in acks:
            now += pause_s
            before = made.status().rewinds
            made.handle(ack(upto), now)
            if made.status().rewinds > before:
                rewound_at.append(now)
        gaps = [later - earlier for earlier, later in itertools.pairwise(rewound_at)]
        assert all(gap >= ACK_TIMEOUT_S for gap in gaps), rewound_at


class TestInstability:
    def test_a_taken_over_client_id_is_recorded_once_a_minute(self) -> None:
        """Take-overs are counted; the first at once and the first after a minute, with the count since."""
        made = core()
        taken = delivery.Disconnected("Session taken over", taken_over=True)
        body = UplinkUnstableBody(reason=UplinkInstability.TAKEN_OVER, count=1, believed_upto=None, upto=None)
        assert made.handle(taken, 0.0) == (Record(body),)
        assert made.handle(taken, 30.0) == ()
        later = UplinkUnstableBody(reason=UplinkInstability.TAKEN_OVER, count=2, believed_upto=None, upto=None)
        assert made.handle(taken, 61.0) == (Record(later),)
        assert made.handle(delivery.Disconnected("keepalive", taken_over=False), 62.0) == ()

    def test_short_sessions_are_recorded(self) -> None:
        """A run of short sessions makes a sessions_short record."""
        body = UplinkUnstableBody(reason=UplinkInstability.SESSIONS_SHORT, count=1, believed_upto=None, upto=None)
        assert core().handle(delivery.SessionsShort(3), 0.0) == (Record(body),)


class TestLinkLifecycle:
    def test_an_outage_is_dated_from_when_the_link_went_down(self) -> None:
        """Reconnect tries (connecting, offline, ...) keep `since`; coming online restarts it and counts a connect."""
        link = LinkLifecycle(Backoff(1.0, 60.0), now_ms=0)
        link.enter("connecting", 10)
        link.enter("online", 20)
        link.enter("offline", 30, "disconnected: keepalive")
        link.enter("connecting", 40)
        link.enter("offline", 50)
        snapshot = link.snapshot()
        assert (snapshot.state, snapshot.since_ms, snapshot.connects) == ("offline", 30, 1)
        assert snapshot.last_error == "disconnected: keepalive", "a state change without an error keeps the last"
