"""What the MQTT uplink does next, decided without I/O: records to send, what an ack means, when to send again.

Theory of operation: the session (agent.uplink.session) feeds this core the events it hears, each with the
monotonic time it was handled (`handle(event, now)`), and asks `step(now)` for the next thing to publish; it
performs that action and reports its outcome as another event (`RecordsSent`, `ReplySent`, `RecordsMissing`),
then asks again until `step` says nothing is due. Whatever an event means for the recorder (an acknowledgement)
or the ledger (an `ack_refused` or `uplink_unstable` record) comes back as actions from `handle`. No threads,
sockets, paho or clocks in here: one owner drives it, and tests drive it with plain numbers for time.

The rules, each where it is decided:
- what to send: the SendPlanner's proposal, never beyond the head the recorder committed; a status message when
  the agent's faults changed; a command's reply only when no record can go and the reply's in-flight slot is
  free (records always go first, so a flood of commands cannot hold them back);
- what an ack means: in broker mode a PUBACK confirms its message's records; in platform mode `{"upto": N}` is
  the platform's word on what it holds: progress, a stall to mend at once (`STALLED_ACK_S`), a platform that
  lost records (send again from its `upto`, at most once per ack_timeout_s), or an `upto` beyond the head (the
  box lost records it had sent: a person must run recover); a retained one is refused (the platform's acks
  never are: the broker hands it over at every connect, stale or not the platform's);
- when to send again: nothing acknowledged for ack_timeout_s while something waits (everything unacknowledged
  goes again: duplicates are possible, but only as byte-identical re-sends);
- when the link counts as unstable: a client id taken over, a run of short sessions, a platform that acked
  less, each recorded at most once a minute per reason with the count it stands for (the LogTally that paces
  its log line); refused acks likewise.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from agent.containment import DETAIL_CHARS
from agent.contract.framing import AckError, parse_ack
from agent.contract.inbound_json import InboundJsonError
from agent.contract.records import AckRefusal, AckRefusedBody, UplinkInstability, UplinkUnstableBody
from agent.logs import LogTally, get_logger
from agent.uplink.planner import Lane, Proposal, SendPlanner

log = get_logger("agent.uplink")

STALLED_ACK_S = 2.0
"""The platform acks every message it takes; acks that stay below a record sent this long ago mean it lacks
that record (lost on the way, or sent before the platform subscribed): send again from there at once. Only
when little is outstanding: in a drain, a slow platform is still working through older messages, and
sending them again would only slow it further (ack_timeout_s covers a loss there)."""
REPLY_QUEUE = 32
"""Command replies waiting for a moment when no record needs the link; beyond it the oldest is dropped."""
REPLY_SLOTS = 1
"""paho in-flight slots for replies, on top of the records' max_inflight_messages (and two for the status)."""

TAKEN_OVER_ADVICE = "another client connected with this client id: give every box its own uplink.client_id"
SHORT_ADVICE = (
    "the broker ends every session at once: another box with the same client id, "
    "an ACL that refuses this client, or a broker that is failing"
)

_JSON_LIMITS: tuple[tuple[str, AckRefusal], ...] = (
    ("longer than", AckRefusal.TOO_LARGE),
    ("nested", AckRefusal.TOO_DEEP),
    ("an integer", AckRefusal.BAD_NUMBER),
    ("a number", AckRefusal.BAD_NUMBER),
    ("NaN ", AckRefusal.BAD_NUMBER),
    ("Infinity ", AckRefusal.BAD_NUMBER),
    ("-Infinity ", AckRefusal.BAD_NUMBER),
)
"""How agent.contract.inbound_json begins the words for each limit it enforces, to the record's reason code."""


def ack_refusal(error: AckError) -> AckRefusal:
    """The reason code of a refused ack: the JSON limit it broke, or not_an_ack for JSON of another shape."""
    cause = error.__cause__
    if not isinstance(cause, InboundJsonError):
        return AckRefusal.NOT_AN_ACK
    words = str(cause)
    return next((reason for prefix, reason in _JSON_LIMITS if words.startswith(prefix)), AckRefusal.NOT_JSON)


def ascii_line(text: str) -> str:
    """Text from a peer or a parser as one ASCII line of at most DETAIL_CHARS, fit for a record."""
    line = " ".join(text.encode("ascii", "backslashreplace").decode("ascii").split())
    return line if len(line) <= DETAIL_CHARS else line[: DETAIL_CHARS - 3] + "..."


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """The settings the core decides by (from uplink.* in the config)."""

    ack_mode: Literal["broker", "platform"]
    ack_timeout_s: float
    max_ack_bytes: int
    max_records_per_message: int
    max_inflight_messages: int
    client_id: str
    """Named in the words about an unstable link."""


# -- events: what the session heard or did -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Online:
    """A session began: everything above `acked_upto` counts as unsent; records from `recent_from` are news."""

    acked_upto: int
    recent_from: int | None


@dataclass(frozen=True, slots=True)
class Committed:
    """The recorder committed records up to `head_seq`."""

    head_seq: int


@dataclass(frozen=True, slots=True)
class FaultsChanged:
    """The agent's health and problems' (kind, subject) changed: the status topic is to say so."""

    faults: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class StatusSent:
    """The status topic now says these faults (published at a session's start or for a SendStatus)."""

    faults: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Puback:
    """The broker took the message with this mid."""

    mid: int


@dataclass(frozen=True, slots=True)
class AckArrived:
    """A message on the ack topic, already within max_ack_bytes; `retained` as the broker flagged it."""

    payload: bytes
    retained: bool = False


@dataclass(frozen=True, slots=True)
class AckTooLarge:
    """A message on the ack topic longer than max_ack_bytes, dropped on arrival (only its size is kept)."""

    payload_bytes: int


@dataclass(frozen=True, slots=True)
class ReplyQueued:
    """A command's reply to publish on cmd/reply."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The session ended; `taken_over` when the broker said another client took the client id."""

    reason: str
    taken_over: bool


@dataclass(frozen=True, slots=True)
class SessionsShort:
    """Sessions in a row ended before they proved steady (agent.uplink.link_state)."""

    in_a_row: int


@dataclass(frozen=True, slots=True)
class RecordsSent:
    """Records first..last went out as the message with this mid (last may be below the proposal's)."""

    mid: int
    first: int
    last: int
    lane: Lane


@dataclass(frozen=True, slots=True)
class RecordsMissing:
    """The outbox did not give records first..last for a proposal."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class ReplySent:
    """A reply went out as the message with this mid."""

    mid: int


Event = (
    Online
    | Committed
    | FaultsChanged
    | StatusSent
    | Puback
    | AckArrived
    | AckTooLarge
    | ReplyQueued
    | Disconnected
    | SessionsShort
    | RecordsSent
    | RecordsMissing
    | ReplySent
)


# -- actions: what the session is to do ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendRecords:
    """Publish records first..last (at most: a size limit may end the message earlier), then report RecordsSent."""

    first: int
    last: int
    lane: Lane


@dataclass(frozen=True, slots=True)
class SendReply:
    """Publish this reply on cmd/reply, then report ReplySent."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class SendStatus:
    """Publish the retained status again (the faults changed), then report StatusSent."""


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """Tell the recorder that the platform holds everything up to `upto`."""

    upto: int


@dataclass(frozen=True, slots=True)
class Record:
    """Record this event of a hostile world in the ledger."""

    body: AckRefusedBody | UplinkUnstableBody


Send = SendRecords | SendReply | SendStatus
Action = Acknowledged | Record


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """A snapshot of the core for the uplink's status."""

    acked_upto: int
    messages_published: int
    records_published: int
    rewinds: int
    acks_refused: int


@dataclass(frozen=True, slots=True)
class _Sent:
    first: int
    last: int


class DeliveryCore:
    """The uplink's delivery decisions; driven by one owner (the uplink thread, or a test)."""

    def __init__(
        self, policy: DeliveryPolicy, acked_upto: int, head_seq: int, first_stored: Callable[[], int | None]
    ) -> None:
        """`first_stored` gives the outbox's lowest seq (None if empty), asked only when a platform acks less."""
        self._policy = policy
        self._first_stored = first_stored
        self._planner = SendPlanner(
            max_records=policy.max_records_per_message,
            max_inflight=policy.max_inflight_messages,
            window_records=2 * policy.max_inflight_messages * policy.max_records_per_message,
            live_threshold=2 * policy.max_records_per_message,
        )
        self._planner.reset(acked_upto)
        self._head = head_seq
        self._inflight: dict[int, _Sent] = {}
        self._reply_mids: set[int] = set()
        self._replies: collections.deque[bytes] = collections.deque()
        self._faults: tuple[object, ...] = ("starting",)
        self._faults_published: tuple[object, ...] = ("starting",)
        self._messages = self._records = self._rewinds = 0
        self._last_progress_s = 0.0
        self._next_sent_at_s = 0.0
        self._authority_rewound_at_s: float | None = None
        self._records_held_until_s: float | None = None
        self._refused_acks = LogTally()
        self._unstable = {reason: LogTally() for reason in UplinkInstability}
        self._acks_beyond_head = LogTally()
        self._replies_dropped = LogTally()

    @property
    def acked_upto(self) -> int:
        return self._planner.acked_upto

    @property
    def head_seq(self) -> int:
        return self._head

    def resume_after(self, first_stored: int | None) -> int:
        """Where a new session starts: after the acked seq, or after what was pruned if the outbox starts later."""
        acked = self._planner.acked_upto
        return first_stored - 1 if first_stored is not None and first_stored > acked + 1 else acked

    def status(self) -> DeliveryStatus:
        return DeliveryStatus(
            acked_upto=self._planner.acked_upto,
            messages_published=self._messages,
            records_published=self._records,
            rewinds=self._rewinds,
            acks_refused=self._refused_acks.total,
        )

    # -- events ----------------------------------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> tuple[Action, ...]:
        """Take in what happened at monotonic time `now`; returns what the recorder and the ledger are to hear."""
        return _RULES[type(event)](self, event, now)

    def _committed(self, event: Committed, _now: float) -> tuple[Action, ...]:
        self._head = max(self._head, event.head_seq)
        return ()

    def _faults_changed(self, event: FaultsChanged, _now: float) -> tuple[Action, ...]:
        self._faults = event.faults
        return ()

    def _status_sent(self, event: StatusSent, _now: float) -> tuple[Action, ...]:
        self._faults = self._faults_published = event.faults
        return ()

    def _reply_queued(self, event: ReplyQueued, now: float) -> tuple[Action, ...]:
        dropped = len(self._replies) >= REPLY_QUEUE
        if dropped:
            self._replies.popleft()
        self._replies.append(event.payload)
        if dropped and (count := self._replies_dropped.note(now)) is not None:
            log.warning("uplink_replies_dropped", queue=REPLY_QUEUE, count=count)
        return ()

    def _reply_sent(self, event: ReplySent, _now: float) -> tuple[Action, ...]:
        self._reply_mids.add(event.mid)
        return ()

    def _online(self, event: Online, now: float) -> tuple[Action, ...]:
        self._planner.reset(event.acked_upto, event.recent_from)
        self._inflight.clear()
        self._reply_mids.clear()
        self._last_progress_s = now
        return ()

    def _records_sent(self, event: RecordsSent, now: float) -> tuple[Action, ...]:
        self._inflight[event.mid] = _Sent(event.first, event.last)
        if event.first == self._planner.acked_upto + 1:
            self._next_sent_at_s = now
        self._planner.published(event.first, event.last, event.lane)
        self._messages += 1
        self._records += event.last - event.first + 1
        return ()

    def _records_missing(self, event: RecordsMissing, now: float) -> tuple[Action, ...]:
        """The outbox lacks what is to go next (rows deleted by hand, a file put back in part): asked again at
        once it would lack them again, so records are held until the ack timeout comes round."""
        log.error("uplink_records_missing", first=event.first, last=event.last, retry_in_s=self._policy.ack_timeout_s)
        self._planner.reset(self._planner.acked_upto)
        self._records_held_until_s = now + self._policy.ack_timeout_s
        return ()

    def _disconnected(self, event: Disconnected, now: float) -> tuple[Action, ...]:
        if event.taken_over:
            return self._unstable_noted(UplinkInstability.TAKEN_OVER, now)
        log.warning("uplink_disconnected", reason=event.reason)
        return ()

    def _sessions_short(self, event: SessionsShort, now: float) -> tuple[Action, ...]:
        return self._unstable_noted(UplinkInstability.SESSIONS_SHORT, now, in_a_row=event.in_a_row)

    def _ack_too_large(self, event: AckTooLarge, now: float) -> tuple[Action, ...]:
        size = event.payload_bytes
        return self._ack_refused(AckRefusal.TOO_LARGE, f"{size} bytes, more than max_ack_bytes", size, now)

    # -- what to do next -------------------------------------------------------------------------------------

    def step(self, now: float) -> Send | None:
        """The next message to publish at monotonic time `now`, or None until an event changes something.
        An unanswered send waits for ack_timeout_s, then everything unacknowledged goes again."""
        self._check_ack_timeout(now)
        if self._faults != self._faults_published:
            return SendStatus()
        if (records := self.next_records(now)) is not None:
            return records
        if self._reply_due(now):
            return SendReply(self._replies.popleft())
        return None

    def next_records(self, now: float) -> SendRecords | None:
        """The next run of records to publish, if any may go now (on stop, only records are flushed)."""
        proposal = self._proposal(now)
        return None if proposal is None else SendRecords(proposal.first, proposal.last, proposal.lane)

    def has_work(self, now: float) -> bool:
        """Something can be published now: a record, a changed status or a reply."""
        return self._proposal(now) is not None or self._faults != self._faults_published or self._reply_due(now)

    def unacked_sent(self) -> bool:
        return self._planner.unacked_sent()

    # -- the rules -------------------------------------------------------------------------------------------

    def _reply_due(self, now: float) -> bool:
        """A reply waits, its slot is free, and no record can go now (records always go first)."""
        return bool(self._replies) and len(self._reply_mids) < REPLY_SLOTS and self._proposal(now) is None

    def _proposal(self, now: float) -> Proposal | None:
        """The planner's proposal, unless records are held after the outbox failed to give some."""
        if self._records_held_until_s is not None and now < self._records_held_until_s:
            return None
        return self._planner.propose(self._head)

    def _puback(self, event: Puback, now: float) -> tuple[Action, ...]:
        sent = self._inflight.pop(event.mid, None)
        if sent is None:
            self._reply_mids.discard(event.mid)
            return ()
        self._planner.delivered()
        if self._policy.ack_mode == "broker":
            return self._progress(self._planner.confirm(sent.first, sent.last), now)
        return ()

    def _ack(self, event: AckArrived, now: float) -> tuple[Action, ...]:
        payload = event.payload
        try:
            upto = parse_ack(payload, self._policy.max_ack_bytes)
        except AckError as exc:
            return self._ack_refused(ack_refusal(exc), str(exc), len(payload), now)
        if event.retained:
            why = f"upto {upto} in a retained message: the platform's acks are never retained, so it answers nothing"
            return self._ack_refused(AckRefusal.NOT_AN_ACK, why, len(payload), now)
        if upto > self._head:
            self._ack_beyond_head(upto, now)
            return ()
        if self._planner.acknowledge(upto):
            return self._progress(upto, now)
        if upto < self._planner.acked_upto:
            return self._platform_lacks(upto, now)
        if self._planner.lacks_few() and now - self._next_sent_at_s > STALLED_ACK_S:
            self._rewind("uplink_platform_lacks_record", now)
        return ()

    def _ack_refused(self, reason: AckRefusal, why: str, payload_bytes: int, now: float) -> tuple[Action, ...]:
        """Count a refused ack; the first, then one a minute, is logged and recorded with the count since."""
        count = self._refused_acks.note(now)
        if count is None:
            return ()
        log.warning(
            "uplink_ack_refused", reason=reason, error=why, count=count, max_ack_bytes=self._policy.max_ack_bytes
        )
        return (
            Record(AckRefusedBody(reason=reason, detail=ascii_line(why), count=count, payload_bytes=payload_bytes)),
        )

    def _ack_beyond_head(self, upto: int, now: float) -> None:
        """The platform holds records past this box's head: the box lost records it had sent (rebuilt with only
        its key, an outbox put back from an old copy with its anchor). New records would take seqs the platform
        has already; a person must stop the agent and run `station-agent recover --after-seq <upto>`. Said once
        as an error, then counted on a rate-limited line, whatever the platform repeats."""
        count = self._acks_beyond_head.note(now)
        if self._acks_beyond_head.total == 1:
            log.error(
                "chain_behind_platform",
                platform_upto=upto,
                head_seq=self._head,
                fix=f"stop the agent, run 'station-agent recover --after-seq {upto}', start it",
            )
        elif count is not None:
            log.warning("uplink_ack_beyond_head", upto=upto, head_seq=self._head, count=count)

    def _platform_lacks(self, upto: int, now: float) -> tuple[Action, ...]:
        """The platform acks less than it did: it lost records (a restore from backup, a lost disk), and it is
        the authority on what it holds. Send again from its `upto`, at most once per ack_timeout_s, so that a
        stale or out-of-order ack costs a bounded number of duplicates."""
        rewound_at = self._authority_rewound_at_s
        if rewound_at is not None and now - rewound_at < self._policy.ack_timeout_s:
            return ()
        self._authority_rewound_at_s = now
        believed = self._planner.acked_upto
        first_stored = self._first_stored()
        restart = upto
        if first_stored is not None and first_stored > upto + 1:
            restart = first_stored - 1
            log.error("uplink_platform_lacks_pruned", first=upto + 1, last=restart, acked_upto=upto)
        self._rewind("uplink_platform_acked_less", now, restart, upto=upto, believed_acked_upto=believed)
        return self._unstable_noted(UplinkInstability.PLATFORM_ACKED_LESS, now, believed_upto=believed, upto=upto)

    def _unstable_noted(
        self,
        reason: UplinkInstability,
        now: float,
        *,
        believed_upto: int | None = None,
        upto: int | None = None,
        in_a_row: int = 0,
    ) -> tuple[Action, ...]:
        """Count one occurrence of `reason`; when its tally says so, record it and log it with the count."""
        count = self._unstable[reason].note(now)
        if count is None:
            return ()
        client_id = self._policy.client_id
        if reason is UplinkInstability.TAKEN_OVER:
            log.warning("uplink_session_taken_over", client_id=client_id, count=count, advice=TAKEN_OVER_ADVICE)
        elif reason is UplinkInstability.SESSIONS_SHORT:
            log.warning(
                "uplink_sessions_short", in_a_row=in_a_row, count=count, client_id=client_id, advice=SHORT_ADVICE
            )
        return (Record(UplinkUnstableBody(reason=reason, count=count, believed_upto=believed_upto, upto=upto)),)

    def _progress(self, acked: int, now: float) -> tuple[Action, ...]:
        self._last_progress_s = self._next_sent_at_s = now
        return (Acknowledged(acked),)

    def _check_ack_timeout(self, now: float) -> None:
        if not self._planner.unacked_sent():
            self._last_progress_s = now
        elif now - self._last_progress_s >= self._policy.ack_timeout_s:
            self._rewind("uplink_ack_timeout", now)

    def _rewind(self, event: str, now: float, acked_upto: int | None = None, **fields: object) -> None:
        """Send everything unacknowledged again, from the record after acked_upto (by default the planner's)."""
        acked = self._planner.acked_upto if acked_upto is None else acked_upto
        log.warning(event, acked_upto=acked, head_seq=self._head, **fields)
        self._rewinds += 1
        self._planner.reset(acked)
        self._inflight.clear()
        self._last_progress_s = now


_RULES: dict[type[Any], Callable[[DeliveryCore, Any, float], tuple[Action, ...]]] = {
    Online: DeliveryCore._online,
    Committed: DeliveryCore._committed,
    FaultsChanged: DeliveryCore._faults_changed,
    StatusSent: DeliveryCore._status_sent,
    Puback: DeliveryCore._puback,
    AckArrived: DeliveryCore._ack,
    AckTooLarge: DeliveryCore._ack_too_large,
    ReplyQueued: DeliveryCore._reply_queued,
    Disconnected: DeliveryCore._disconnected,
    SessionsShort: DeliveryCore._sessions_short,
    RecordsSent: DeliveryCore._records_sent,
    RecordsMissing: DeliveryCore._records_missing,
    ReplySent: DeliveryCore._reply_sent,
}
"""What each event means, by its type: one rule each (a table, as agent/station/fsm.py keeps its phases)."""
