"""The MQTT uplink's paho side: one thread that keeps a session to the broker and performs what the core decides.

Theory of operation: the uplink thread connects (waiting between tries as agent.uplink.backoff says, so a
thousand stations coming back after a broker restart do not all knock at once), announces itself on the retained
status topic (its last will says offline), then publishes what the delivery core (agent.uplink.delivery)
proposes, reading the records from the outbox through its own read-only connection. Every other thread only
posts: paho's network thread queues what it hears (CONNACKs, PUBACKs, acks, disconnects), the recorder the head
it committed, the command desk its replies; the uplink thread alone feeds those events to the core, performs
its actions and publishes a frozen snapshot for `status()`. A fresh paho client per connection
(agent.uplink.mqtt_client) keeps paho from re-sending on its own behind the core's back. The connection's life
as staff see it (state, since when, the last error) is agent.uplink.link_state, shared with the HJ 212 uplink.

Hostile broker: every inbound message is size-checked on paho's thread before it is kept (`max_ack_bytes`; the
command inbox cuts commands at `max_command_bytes`), parsed within limits (agent.contract.inbound_json), and each
message and each turn of the loop runs inside the loop's containment boundary (agent.containment), so that no
message can end a thread; on MQTT 5 the CONNECT asks the broker not to send larger packets at all. A session
that ends within STEADY_SESSION_S counts as a failure for the backoff, so a broker that accepts and closes at
once is knocked on less and less often. Records made while the link is down wait in the outbox like any other.
"""

from __future__ import annotations

import collections
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from agent.clock import Clock
from agent.containment import Boundary
from agent.contract.framing import Topics, build_records_message, status_payload
from agent.contract.records import RecordIntent, format_ts
from agent.ledger.integrity import Damage
from agent.ledger.outbox import OutboxReader
from agent.logs import get_logger
from agent.pulse import Pulse
from agent.uplink import delivery, mqtt_client
from agent.uplink.backoff import Backoff
from agent.uplink.delivery import DeliveryCore, DeliveryPolicy, DeliveryStatus
from agent.uplink.link_state import LinkLifecycle, LinkSnapshot, LinkState
from agent.uplink.settings import UplinkSection
from agent.uplink.uplink_status import UplinkStatus

if TYPE_CHECKING:
    from agent.commands.inbox import CommandInbox

log = get_logger("agent.uplink")

RECENT_S = 300.0
"""Records made this recently when the link comes back are news: they go out ahead of an older backlog."""
CONNACK_TIMEOUT_S = 15.0
STOP_FLUSH_S = 3.0
STEADY_SESSION_S = 10.0
"""A session shorter than this counts as a failed connect for the backoff (agent.uplink.backoff)."""
SHORT_SESSIONS_WARNING = 3
"""Short sessions in a row after which the agent says that something keeps ending them."""
SESSION_TAKEN_OVER = 142
"""MQTT 5 reason code of a DISCONNECT sent because another client connected with the same client id."""


class ConnectFailed(Exception):
    """The broker could not be reached or refused the connection."""


@dataclass(frozen=True, slots=True)
class _Connack:
    refused: bool
    reason: str


@dataclass(frozen=True, slots=True)
class _Resend:
    first: int
    last: int


_Posted = delivery.Event | _Connack | _Resend


class Uplink:
    """Moves records from the outbox to the platform. `notify`, `set_faults`, `reply`, `resend` and `status` are
    safe from any thread: they post to the uplink thread, or read the snapshot it publishes."""

    def __init__(
        self,
        settings: UplinkSection,
        station: str,
        outbox_path: Any,
        clock: Clock,
        *,
        on_acked: Callable[[int], None],
        acked_upto: int,
        head_seq: int,
        boundary: Boundary,
        record: Callable[[RecordIntent], None],
        birth_fields: Callable[[], dict[str, object]] | None = None,
        on_damage: Callable[[Damage], None] | None = None,
        commands: CommandInbox | None = None,
    ) -> None:
        """`record` takes the events the uplink makes (ack_refused, uplink_unstable); `on_damage` is told of
        bit-rot found in records read for sending (agent/ledger/integrity.py); `commands`, if given, is where the
        messages on the cmd topic go, on paho's thread (agent/commands/inbox.py: it never blocks and bounds what
        it keeps)."""
        self._settings = settings
        self._record = record
        self._outbox_path = outbox_path
        self._clock = clock
        self._on_acked = on_acked
        self._birth_fields = birth_fields or dict
        self._topics = Topics.for_station(settings.prefix, station)
        self._client_id = settings.client_id or f"station-agent-{station}"[:64]
        self._reader: OutboxReader | None = None
        policy = DeliveryPolicy(
            ack_mode=settings.ack_mode,
            ack_timeout_s=settings.ack_timeout_s,
            max_ack_bytes=settings.max_ack_bytes,
            max_records_per_message=settings.max_records_per_message,
            max_inflight_messages=settings.max_inflight_messages,
            client_id=self._client_id,
        )
        self._core = DeliveryCore(policy, acked_upto, head_seq, self._first_stored)
        self._link = LinkLifecycle(Backoff(settings.reconnect_min_s, settings.reconnect_max_s), clock.wall_ms())
        self._boundary = boundary
        self._on_damage = on_damage
        self._commands = commands
        self.pulse = Pulse()
        self._stopping = threading.Event()
        # Shared with the other threads, under _wake: what they posted, and the snapshots this thread publishes.
        self._wake = threading.Condition()
        self._posted: collections.deque[_Posted] = collections.deque()
        self._head_seen = head_seq
        self._faults: tuple[object, ...] = ("starting",)
        self._problems: tuple[Mapping[str, object], ...] = ()
        self._delivery_seen: DeliveryStatus = self._core.status()
        self._link_seen: LinkSnapshot = self._link.snapshot()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)

    # -- called from other threads ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def notify(self, head_seq: int) -> None:
        """The recorder committed records up to head_seq."""
        with self._wake:
            self._head_seen = max(self._head_seen, head_seq)
            self._posted.append(delivery.Committed(head_seq))
            self._wake.notify()

    def set_faults(self, health: str, problems: tuple[Mapping[str, object], ...]) -> None:
        """The agent's health and problems (agent/health.py) for the status topic; republished when the health or
        a problem's kind and subject change, not when only a size moves."""
        faults = (health, *((problem["kind"], problem["subject"]) for problem in problems))
        with self._wake:
            self._problems = problems
            if faults != self._faults:
                self._faults = faults
                self._posted.append(delivery.FaultsChanged(faults))
                self._wake.notify()

    def reply(self, payload: bytes) -> None:
        """Publish a command's reply on cmd/reply (QoS 1), after any record that can go now; at most
        delivery.REPLY_QUEUE wait (the oldest is dropped and counted)."""
        self._post(delivery.ReplyQueued(payload))

    def resend(self, first: int, last: int) -> None:
        """Publish records first..last again (a resend command), whatever the platform acknowledged."""
        self._post(_Resend(first, last))

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Send what can be sent within a moment, say offline on the status topic, and disconnect; returns
        whether the thread ended."""
        self._stopping.set()
        with self._wake:
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def status(self) -> UplinkStatus:
        boundary = self._boundary.status()
        with self._wake:
            sent, link, head = self._delivery_seen, self._link_seen, self._head_seen
        return UplinkStatus(
            state=link.state,
            since_ms=link.since_ms,
            broker=self._settings.broker,
            ack_mode=self._settings.ack_mode,
            acked_upto=sent.acked_upto,
            head_seq=head,
            messages_published=sent.messages_published,
            records_published=sent.records_published,
            rewinds=sent.rewinds,
            connects=link.connects,
            last_error=link.last_error,
            acks_refused=sent.acks_refused,
            internal_errors=boundary.errors,
            failing=boundary.failing,
        )

    # -- the uplink thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        self._reader = OutboxReader(self._outbox_path, self._on_damage)
        try:
            first = True
            while not self._stopping.is_set():
                if not first:
                    self._wait_offline(max(self._link.backoff.delay_s(), self._boundary.pause_s()))
                    if self._stopping.is_set():
                        break
                first = False
                with self._boundary.contain("uplink session"):
                    self._session(self._reader)
        finally:
            self._reader.close()

    def _first_stored(self) -> int | None:
        return None if self._reader is None else self._reader.first_seq()

    def _session(self, reader: OutboxReader) -> None:
        """One connect and what follows it; counted as a failure for the backoff unless it proves steady."""
        self._link.backoff.failed()
        try:
            client = self._connect_once()
        except ConnectFailed:
            return
        started = self._clock.monotonic()
        try:
            self._serve(client, reader)
        except BaseException:
            client.disconnect()
            raise
        finally:
            client.loop_stop()
            self._enter("offline" if not self._stopping.is_set() else "stopped")
        if self._clock.monotonic() - started >= STEADY_SESSION_S:
            self._link.backoff.steady()
        elif self._link.backoff.failures >= SHORT_SESSIONS_WARNING and not self._stopping.is_set():
            self._feed(delivery.SessionsShort(self._link.backoff.failures))

    def _enter(self, state: LinkState, error: str | None = None) -> None:
        self._link.enter(state, self._clock.wall_ms(), error)
        self._publish_snapshot()

    def _publish_snapshot(self) -> None:
        delivery_seen, link_seen = self._core.status(), self._link.snapshot()
        with self._wake:
            self._delivery_seen, self._link_seen = delivery_seen, link_seen

    def _pause(self, seconds: float) -> None:
        """A session's pause after failing turns, which a stop interrupts; what is posted meanwhile waits."""
        self.pulse.beat(seconds)
        self._stopping.wait(seconds)

    def _wait_offline(self, seconds: float) -> None:
        """The backoff's wait between sessions, which a stop interrupts. What the agent posts meanwhile (heads,
        faults, replies) goes to the core as it comes, so the queue never holds more than a moment's worth and
        the replies' bound is the core's; what paho heard about the last connection is dropped."""
        deadline = self._clock.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - self._clock.monotonic()) > 0:
            wait_s = self._clock.real_s(left)
            self.pulse.beat(wait_s)
            with self._wake:
                if not self._posted and not self._stopping.is_set():
                    self._wake.wait(wait_s)
            self._absorb()

    def _absorb(self) -> None:
        """Feed the core what the agent posted for the uplink as a whole; drop what paho heard about an earlier
        connection, and a resend asked for while offline."""
        with self._wake:
            events = list(self._posted)
            self._posted.clear()
        for event in events:
            if isinstance(event, delivery.Committed | delivery.FaultsChanged | delivery.ReplyQueued):
                self._feed(event)
        self._publish_snapshot()

    def _connect_once(self) -> mqtt.Client:
        self._enter("connecting")
        self._absorb()
        client = mqtt_client.new_client(self._settings, self._client_id, self._topics.status)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        largest = self._settings.max_ack_bytes
        if self._commands is not None:
            largest = max(largest, self._commands.max_command_bytes)
        try:
            mqtt_client.send_connect(client, self._settings, largest)
        except (OSError, ssl.SSLError, ValueError) as exc:
            error = f"{exc}{mqtt_client.tls_advice(self._settings.tls, exc)}"
            self._enter("offline", f"connect to {self._settings.broker}: {error}")
            log.warning("uplink_connect_failed", broker=self._settings.broker, error=error)
            raise ConnectFailed(error) from exc
        client.loop_start()
        answer = self._await_connack()
        if not isinstance(answer, _Connack) or answer.refused:
            client.loop_stop()
            if answer is None:
                reason = f"broker {self._settings.broker} did not answer: timeout"
            elif isinstance(answer, _Connack):
                reason = f"broker {self._settings.broker} refused: {answer.reason}"
            else:
                advice = mqtt_client.tls_advice(self._settings.tls, None)
                reason = f"broker {self._settings.broker} disconnected: {answer.reason}{advice}"
            self._enter("offline", reason)
            log.warning("uplink_connect_failed", broker=self._settings.broker, error=reason)
            raise ConnectFailed(reason)
        return client

    def _await_connack(self) -> _Connack | delivery.Disconnected | None:
        """The broker's answer to CONNECT (or its hanging up), None if none within CONNACK_TIMEOUT_S or on stop.
        What else arrives meanwhile stays posted for the session."""
        deadline = self._clock.monotonic() + CONNACK_TIMEOUT_S
        with self._wake:
            while True:
                for event in self._posted:
                    if isinstance(event, _Connack | delivery.Disconnected):
                        self._posted.remove(event)
                        return event
                remaining = deadline - self._clock.monotonic()
                if remaining <= 0 or self._stopping.is_set():
                    return None
                self.pulse.beat(remaining)
                self._wake.wait(remaining)

    # paho's network thread: post what happened and wake the uplink thread, nothing more.

    def _post(self, event: _Posted) -> None:
        with self._wake:
            self._posted.append(event)
            self._wake.notify()

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._post(_Connack(reason.is_failure, str(reason)))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._post(delivery.Disconnected(str(reason), reason.value == SESSION_TAKEN_OVER))

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        self._post(delivery.Puback(mid))

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        """On paho's thread, which must outlive any message: an oversized ack is dropped before it is kept."""
        with self._boundary.contain(f"message on {message.topic[:80]}"):
            if message.topic == self._topics.ack:
                size = len(message.payload)
                too_large = size > self._settings.max_ack_bytes
                self._post(
                    delivery.AckTooLarge(size)
                    if too_large
                    else delivery.AckArrived(bytes(message.payload), retained=bool(message.retain))
                )
            elif message.topic == self._topics.cmd and self._commands is not None:
                self._commands.post(bytes(message.payload))

    # a live session

    def _serve(self, client: mqtt.Client, reader: OutboxReader) -> None:
        acked = self._core.resume_after(reader.first_seq())
        recent_cutoff = self._clock.wall_ms() - int(RECENT_S * 1000)
        with self._wake:
            head = self._head_seen
        self._feed(delivery.Online(acked, reader.first_seq_since(recent_cutoff, acked + 1, head)))
        if self._settings.ack_mode == "platform":
            client.subscribe(self._topics.ack, qos=1)
        if self._commands is not None:
            client.subscribe(self._topics.cmd, qos=1)
        self._publish_status(client, "online")
        self._enter("online")
        log.info("uplink_online", broker=self._settings.broker, acked_upto=acked, head_seq=head)
        while True:
            events = self._wait_for_work()
            for index, event in enumerate(events):
                if isinstance(event, delivery.Disconnected):
                    self._disconnected(event)
                    self._hand_back(events[index + 1 :])
                    return
                with self._boundary.contain(f"{type(event).__name__} event"):
                    self._take(client, reader, event)
            if self._stopping.is_set():
                self._finish(client, reader)
                return
            with self._boundary.contain("uplink turn"):
                self._turn(client, reader)
            self._publish_snapshot()
            if pause_s := self._boundary.pause_s():
                self._pause(pause_s)

    def _take(self, client: mqtt.Client, reader: OutboxReader, event: _Posted) -> None:
        """One posted event: a resend is performed here, a stray CONNACK ignored, the rest go to the core."""
        if isinstance(event, _Resend):
            self._resend(client, reader, event.first, event.last)
        elif not isinstance(event, _Connack):
            self._feed(event)

    def _feed(self, event: delivery.Event) -> None:
        """Give the core one event and perform what it says the recorder and the ledger are to hear."""
        for action in self._core.handle(event, self._clock.monotonic()):
            if isinstance(action, delivery.Acknowledged):
                self._on_acked(action.upto)
            else:
                self._record(action.body.intent(self._clock.wall_ms()))

    def _turn(self, client: mqtt.Client, reader: OutboxReader) -> None:
        """Publish what the core says is due, until it says nothing is or a publish cannot go now."""
        while (send := self._core.step(self._clock.monotonic())) is not None:
            if isinstance(send, delivery.SendStatus):
                self._publish_status(client, "online")
            elif isinstance(send, delivery.SendRecords):
                if not self._publish_records(client, reader, send):
                    return
            elif not self._publish_reply(client, send.payload):
                return

    def _disconnected(self, event: delivery.Disconnected) -> None:
        self._enter("offline", f"disconnected: {event.reason}")
        self._feed(event)

    def _hand_back(self, events: list[_Posted]) -> None:
        """What was taken in the same turn as a hang-up, put back ahead of what came since: the wait before the
        next session absorbs it (a head the recorder committed, a reply) instead of losing it with the session."""
        with self._wake:
            self._posted.extendleft(reversed(events))

    def _wait_for_work(self, timeout_s: float | None = None) -> list[_Posted]:
        wait_s = self._settings.ack_timeout_s / 4 if timeout_s is None else timeout_s
        self.pulse.beat(wait_s)
        with self._wake:
            if not self._posted and not self._stopping.is_set() and not self._core.has_work(self._clock.monotonic()):
                self._wake.wait(wait_s)
            events = list(self._posted)
            self._posted.clear()
            return events

    def _publish_reply(self, client: mqtt.Client, payload: bytes) -> bool:
        info = client.publish(self._topics.cmd_reply, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.warning("uplink_reply_not_published", error=mqtt.error_string(info.rc))
            return False
        self._feed(delivery.ReplySent(info.mid))
        return True

    def _resend(self, client: mqtt.Client, reader: OutboxReader, first: int, last: int) -> None:
        """The records a resend command asked for, beside the core: a resent record's PUBACK finds no in-flight
        entry and the ack it brings moves nothing backwards, so a resend changes no delivery bookkeeping. What
        does not fit paho's bounded queue is left out, and said."""
        start = first
        while first <= last:
            message = build_records_message(reader.read(first, last), self._settings.max_message_bytes)
            if message is None or message.first != first:
                log.warning("uplink_resend_records_missing", first=first, last=last)
                return
            info = client.publish(self._topics.records, message.payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                log.warning("uplink_resend_cut", first=first, last=last, error=mqtt.error_string(info.rc))
                return
            first = message.last + 1
        log.info("uplink_resent", first=start, last=last)

    def _publish_records(self, client: mqtt.Client, reader: OutboxReader, send: delivery.SendRecords) -> bool:
        """Publish the run the core proposed (as much as fits one message); False if the turn must end here."""
        message = build_records_message(reader.read(send.first, send.last), self._settings.max_message_bytes)
        if message is None or message.first != send.first:
            self._feed(delivery.RecordsMissing(send.first, send.last))
            return False
        info = client.publish(self._topics.records, message.payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            # Refused for now (paho's queue full behind a slow broker) or the connection just went (its
            # Disconnected is on its way): the session, not this publish, says whether the link is down.
            self._link.error(f"publish failed: {mqtt.error_string(info.rc)}")
            self._publish_snapshot()
            return False
        self._feed(delivery.RecordsSent(info.mid, message.first, message.last, send.lane))
        return True

    def _publish_status(self, client: mqtt.Client, state: str) -> mqtt.MQTTMessageInfo:
        with self._wake:
            faults, problems = self._faults, self._problems
        self._feed(delivery.StatusSent(faults))
        fields: dict[str, object] = {
            "health": faults[0],
            "faults": [f"{problem['kind']} {problem['subject']}" for problem in problems],
            "problems": list(problems),
            "ts": format_ts(self._clock.wall_ms()),
            **self._birth_fields(),
        }
        if state == "offline":
            fields["reason"] = "stopped"
        payload = status_payload(state, **fields)
        return client.publish(self._topics.status, payload, qos=1, retain=True)

    def _finish(self, client: mqtt.Client, reader: OutboxReader) -> None:
        """On stop: give the last records a moment to go out and be acked, then say offline and leave."""
        deadline = self._clock.monotonic() + STOP_FLUSH_S
        while (now := self._clock.monotonic()) < deadline and (self._core.unacked_sent() or self._core.has_work(now)):
            while (send := self._core.next_records(now)) is not None and self._publish_records(client, reader, send):
                pass
            for event in self._wait_for_work(timeout_s=0.05):
                if isinstance(event, delivery.Disconnected):
                    return
                if not isinstance(event, _Resend | _Connack):
                    self._feed(event)
            self._publish_snapshot()
        info = self._publish_status(client, "offline")
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            info.wait_for_publish(timeout=2.0)
        else:  # paho's queue full behind a hung broker, or the connection just went: nothing to wait for
            log.warning("uplink_offline_status_not_sent", error=mqtt.error_string(info.rc))
        client.disconnect()
        log.info("uplink_stopped", acked_upto=self._core.acked_upto, head_seq=self._core.head_seq)
