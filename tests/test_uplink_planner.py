"""The send planner, without I/O: order, lanes, windows and acknowledgements."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.uplink.planner import Proposal, SendPlanner


def planner(max_records: int = 10, max_inflight: int = 4, window: int = 1000, live_threshold: int = 20) -> SendPlanner:
    return SendPlanner(max_records, max_inflight, window, live_threshold)


class TestOrder:
    def test_small_backlog_goes_out_in_order_in_batches(self) -> None:
        """With a backlog below the live threshold, runs are contiguous, ascending, at most max_records."""
        plan = planner()
        sent = []
        while (proposal := plan.propose(head=15)) is not None:
            sent.append(proposal)
            plan.published(proposal.first, proposal.last, proposal.lane)
        assert sent == [Proposal(1, 10, "drain"), Proposal(11, 15, "drain")]

    def test_window_of_inflight_messages_is_respected(self) -> None:
        """No more than max_inflight messages wait for PUBACK; a PUBACK frees one slot."""
        plan = planner(max_records=1, max_inflight=3, live_threshold=1000)
        for _ in range(3):
            proposal = plan.propose(head=10)
            assert proposal is not None
            plan.published(proposal.first, proposal.last, proposal.lane)
        assert plan.propose(head=10) is None
        plan.delivered()
        assert plan.propose(head=10) == Proposal(4, 4, "drain")

    def test_outstanding_records_are_capped_by_the_window(self) -> None:
        """In platform mode the planner stops once window_records wait for the platform's ack."""
        plan = planner(max_records=10, max_inflight=100, window=25, live_threshold=10_000)
        proposals = []
        while (proposal := plan.propose(head=100)) is not None:
            proposals.append(proposal)
            plan.published(proposal.first, proposal.last, proposal.lane)
            plan.delivered()
        assert proposals[-1].last == 25
        assert plan.acknowledge(20)
        assert plan.propose(head=100) == Proposal(26, 35, "drain")


class TestLiveLane:
    def test_live_records_overtake_a_long_backlog(self) -> None:
        """With a backlog past the threshold, a record committed now goes out before the backlog is done."""
        plan = planner(max_records=10, max_inflight=4, live_threshold=20)
        first = plan.propose(head=100)
        assert first == Proposal(1, 10, "drain")
        plan.published(1, 10, "drain")
        assert plan.propose(head=102) == Proposal(101, 102, "live")
        plan.published(101, 102, "live")
        assert plan.propose(head=102) == Proposal(11, 20, "drain")

    def test_records_made_recently_are_news_too(self) -> None:
        """Records made shortly before the link came back go on the live lane, ahead of the older backlog."""
        plan = planner(max_records=10, max_inflight=4, live_threshold=20)
        plan.reset(0, recent_from=96)
        assert plan.propose(head=100) == Proposal(96, 100, "live")
        plan.published(96, 100, "live")
        assert plan.propose(head=100) == Proposal(1, 10, "drain")

    def test_drain_never_takes_the_last_slot_while_lanes_are_split(self) -> None:
        """With lanes split, the drain fills max_inflight-1 slots; the last one stays for live records."""
        plan = planner(max_records=10, max_inflight=3, live_threshold=20)
        for _ in range(2):
            proposal = plan.propose(head=100)
            assert proposal is not None and proposal.lane == "drain"
            plan.published(proposal.first, proposal.last, proposal.lane)
        assert plan.propose(head=100) is None
        assert plan.propose(head=101) == Proposal(101, 101, "live")

    def test_lanes_merge_when_the_drain_reaches_the_split(self) -> None:
        """Once the drain reaches the live lane, it continues after the live lane's last record."""
        plan = planner(max_records=50, max_inflight=10, live_threshold=20)
        plan.published(*_run(plan.propose(head=60)))
        plan.published(*_run(plan.propose(head=63)))
        plan.published(*_run(plan.propose(head=63)))
        assert plan.status().live_from is None
        assert plan.propose(head=65) == Proposal(64, 65, "drain")


class TestAcks:
    def test_broker_confirms_advance_only_contiguously(self) -> None:
        """PUBACKs of a later run do not move acked_upto past an unconfirmed earlier run."""
        plan = planner()
        assert plan.confirm(11, 20) == 0
        assert plan.confirm(1, 10) == 20
        assert plan.confirm(21, 25) == 25

    def test_platform_ack_never_goes_back(self) -> None:
        """An older or repeated ack is no progress and changes nothing."""
        plan = planner()
        assert plan.acknowledge(10)
        assert not plan.acknowledge(5)
        assert plan.acked_upto == 10

    def test_reset_resends_everything_unacked(self) -> None:
        """After a reset the next proposal starts right after acked_upto."""
        plan = planner(live_threshold=1000)
        plan.published(*_run(plan.propose(head=30)))
        plan.published(*_run(plan.propose(head=30)))
        plan.acknowledge(7)
        plan.reset(plan.acked_upto)
        assert plan.propose(head=30) == Proposal(8, 17, "drain")


def _run(proposal: Proposal | None) -> tuple[int, int, str]:
    assert proposal is not None
    return proposal.first, proposal.last, proposal.lane  # type: ignore[return-value]


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["commit", "publish", "deliver", "lose", "ack", "reset"]), st.integers(1, 40))
    ),
    max_records=st.integers(1, 12),
    max_inflight=st.integers(1, 5),
    live_threshold=st.integers(1, 60),
)
def test_every_record_reaches_a_contiguous_platform_whatever_happens(
    steps: list[tuple[str, int]], max_records: int, max_inflight: int, live_threshold: int
) -> None:
    """Under any interleaving of commits, publishes, losses, acks and resets, messages are contiguous runs,
    acked_upto never passes what the platform holds, and once things calm down every record is delivered."""
    plan = SendPlanner(max_records, max_inflight, window_records=10 * max_records, live_threshold=live_threshold)
    head, platform, in_flight = 0, set(), []

    def platform_upto() -> int:
        upto = 0
        while upto + 1 in platform:
            upto += 1
        return upto

    def publish_one() -> bool:
        proposal = plan.propose(head)
        if proposal is None:
            return False
        last = max(proposal.first, proposal.last - 1) if proposal.last - proposal.first > 2 else proposal.last
        plan.published(proposal.first, last, proposal.lane)
        in_flight.append((proposal.first, last))
        return True

    for action, amount in steps:
        if action == "commit":
            head += amount
        elif action == "publish":
            publish_one()
        elif action == "deliver" and in_flight:
            first, last = in_flight.pop(0)
            platform.update(range(first, last + 1))
            plan.delivered()
        elif action == "lose" and in_flight:
            in_flight.pop(0)
            plan.delivered()
        elif action == "ack":
            plan.acknowledge(platform_upto())
        elif action == "reset":
            in_flight.clear()
            plan.reset(plan.acked_upto)
        assert plan.acked_upto <= platform_upto()
    for _ in range(10 * head + 10):
        while publish_one():
            pass
        while in_flight:
            first, last = in_flight.pop(0)
            platform.update(range(first, last + 1))
            plan.delivered()
        if not plan.acknowledge(platform_upto()) and plan.propose(head) is None:
            if platform_upto() == head:
                break
            plan.reset(plan.acked_upto)
    assert platform_upto() == head
    assert plan.acked_upto == head
