"""The MQTT uplink: one thread that keeps a session to the broker and moves the outbox to the platform.

Theory of operation: the uplink thread connects (with full-jitter exponential backoff, so a thousand stations
coming back after a broker restart do not all knock at once), announces itself on the retained status topic
(its last will says offline), then publishes what the planner proposes, reading the records from the outbox
through its own read-only connection. paho's network thread only queues what it hears (PUBACKs, acks,
disconnects); all decisions are taken here, one at a time. Acknowledgements (PUBACK in broker mode,
`{"upto": N}` on the ack topic in platform mode) go to the recorder, which may then prune. On any disconnect
or ack timeout, everything unacknowledged is sent again: duplicates are possible, but only as byte-identical
re-sends. A fresh paho client per connection keeps paho from re-sending on its own behind the planner's back.

The platform is the authority on what it holds: an `upto` lower than the agent believed (a platform restored
from a backup) makes the agent send again from there, at most once per ack_timeout_s. Command replies wait in a
bounded queue of their own and go out only when the planner has no record to publish, through a slot of paho's
in-flight window that records never use, so a flood of commands cannot hold records back.

Hostile broker: every inbound message is size-checked on paho's thread before it is kept (`max_ack_bytes`; the
command desk cuts commands at `max_command_bytes`), parsed within limits (agent.uplink.inbound_json), and each
message and each turn of the loop runs inside the loop's containment boundary (agent.containment), so that no
message can end a thread. On MQTT 5 the CONNECT asks the broker not to send larger packets at all (Maximum
Packet Size). Reconnects follow agent.uplink.backoff: a session that ends within STEADY_SESSION_S counts as a
failure, so a broker that accepts and closes at once is knocked on less and less often.

What a hostile world did is recorded, not only logged: refused acks make an `ack_refused` event, a run of short
sessions, a client id taken over and a platform that acked less make an `uplink_unstable` event, each at most
once a minute (per reason) with the count it stands for, by the same LogTally that paces its log line. Records
made while the link is down wait in the outbox like any other.
"""

from __future__ import annotations

import collections
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.clock import Clock
from agent.config import TlsSection, UplinkSection
from agent.containment import DETAIL_CHARS, Boundary
from agent.contract.records import (
    AckRefusal,
    AckRefusedBody,
    RecordIntent,
    UplinkInstability,
    UplinkUnstableBody,
    format_ts,
)
from agent.ledger.integrity import Damage
from agent.ledger.outbox import OutboxReader
from agent.logs import LogTally, get_logger
from agent.pulse import Pulse
from agent.uplink.backoff import Backoff
from agent.uplink.inbound_json import InboundJsonError
from agent.uplink.messages import AckError, Topics, build_records_message, parse_ack, status_payload
from agent.uplink.planner import Lane, SendPlanner

log = get_logger("agent.uplink")

SESSION_EXPIRY_S = 7 * 86_400
STALLED_ACK_S = 2.0
"""The platform acks every message it takes; acks that stay below a record sent this long ago mean it lacks
that record (lost on the way, or sent before the platform subscribed): send again from there at once. Only
when little is outstanding: in a drain, a slow platform is still working through older messages, and
sending them again would only slow it further (ack_timeout_s covers a loss there)."""
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
REPLY_QUEUE = 32
"""Command replies waiting for a moment when no record needs the link; beyond it the oldest is dropped."""
REPLY_SLOTS = 1
"""paho in-flight slots for replies, on top of the records' max_inflight_messages (and two for the status)."""
MAX_QUEUED_MESSAGES = 256
"""paho's own queue, behind its in-flight window: only a resend command's burst ever waits there."""
INBOUND_OVERHEAD_BYTES = 1024
"""Room for the topic and properties around the largest payload, for MQTT 5's Maximum Packet Size."""


class ConnectFailed(Exception):
    """The broker could not be reached or refused the connection."""


_JSON_LIMITS: tuple[tuple[str, AckRefusal], ...] = (
    ("longer than", AckRefusal.TOO_LARGE),
    ("nested", AckRefusal.TOO_DEEP),
    ("an integer", AckRefusal.BAD_NUMBER),
    ("a number", AckRefusal.BAD_NUMBER),
    ("NaN ", AckRefusal.BAD_NUMBER),
    ("Infinity ", AckRefusal.BAD_NUMBER),
    ("-Infinity ", AckRefusal.BAD_NUMBER),
)
"""How agent.uplink.inbound_json begins the words for each limit it enforces, to the record's reason code."""


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


def _tls_advice(tls: TlsSection | None, error: BaseException | None) -> str:
    """The setting to check after a failed TLS connect, since OpenSSL's words do not name one; "" if none fits.

    `error` is what connect raised, or None when the broker closed the session before CONNACK. Under TLS 1.3 a
    broker that demands a client certificate completes the handshake and only then hangs up, so without
    cert_file that close (an EOF, or the alert if it arrives first) is the sign of a missing device certificate.
    """
    if tls is None:
        return ""
    if isinstance(error, ssl.SSLCertVerificationError):
        ca = tls.ca_file or "the system CA store"
        return (
            f"; check that uplink.tls.ca_file ({ca}) holds the CA that signed the broker's certificate"
            " and that the certificate names the host in uplink.broker"
        )
    hung_up = error is None or isinstance(error, ssl.SSLEOFError) or "CERTIFICATE_REQUIRED" in str(error)
    if tls.cert_file is None and hung_up:
        return "; a broker that requires a client certificate does this: set uplink.tls.cert_file and key_file"
    return ""


@dataclass(frozen=True, slots=True)
class UplinkStatus:
    state: Literal["connecting", "online", "offline", "stopped"]
    since_ms: int
    broker: str
    ack_mode: str
    acked_upto: int
    head_seq: int
    messages_published: int
    records_published: int
    rewinds: int
    connects: int
    last_error: str | None
    acks_refused: int = 0
    """Ack messages too large or not `{"upto": N}`, dropped."""
    internal_errors: int = 0
    """Unexpected exceptions contained by the loop's boundary (each an internal_error event, rate-limited)."""
    failing: bool = False
    """The loop's last turns all failed; it keeps trying, paced."""


@dataclass(frozen=True, slots=True)
class _Sent:
    first: int
    last: int
    lane: Lane


class Uplink:
    """Moves records from the outbox to the platform. `notify` and `set_faults` are safe from any thread."""

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
    ) -> None:
        """`record` takes the events the uplink makes (ack_refused, uplink_unstable), from paho's thread too."""
        self._settings = settings
        self._record = record
        self._station = station
        self._outbox_path = outbox_path
        self._clock = clock
        self._on_acked = on_acked
        self._birth_fields = birth_fields or dict
        self._topics = Topics.for_station(settings.prefix, station)
        self._client_id = settings.client_id or f"station-agent-{station}"[:64]
        self._planner = SendPlanner(
            max_records=settings.max_records_per_message,
            max_inflight=settings.max_inflight_messages,
            window_records=2 * settings.max_inflight_messages * settings.max_records_per_message,
            live_threshold=2 * settings.max_records_per_message,
        )
        self._planner.reset(acked_upto)
        self._wake = threading.Condition()
        self._events: collections.deque[tuple[str, Any]] = collections.deque()
        self._head = head_seq
        self._faults: tuple[object, ...] = ("starting",)
        self._faults_published: tuple[object, ...] = ("starting",)
        self._problems: tuple[Mapping[str, object], ...] = ()
        self._stopping = threading.Event()
        self._state: Literal["connecting", "online", "offline", "stopped"] = "offline"
        self._since_ms = clock.wall_ms()
        self._counts = collections.Counter[str]()
        self._last_error: str | None = None
        self._inflight: dict[int, _Sent] = {}
        self._last_progress = clock.monotonic()
        self.on_damage: Callable[[Damage], None] | None = None
        """Told of bit-rot found in records read for sending (agent/ledger/integrity.py); set before start()."""
        self._next_sent_at = clock.monotonic()
        self._boundary = boundary
        self._backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        self._refused_acks = LogTally()
        self._unstable = {reason: LogTally() for reason in UplinkInstability}
        self._acks_beyond_head = LogTally()
        self._authority_rewound_at: float | None = None
        self._replies: collections.deque[bytes] = collections.deque()
        self._replies_dropped = LogTally()
        self._reply_mids: set[int] = set()
        self._reader: OutboxReader | None = None
        self._on_command: Callable[[bytes], None] | None = None
        self._max_command_bytes = 0
        self.pulse = Pulse()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)

    # -- called from other threads ---------------------------------------------------------------------------

    def take_commands(self, post: Callable[[bytes], None], max_command_bytes: int) -> None:
        """Subscribe to the cmd topic and give `post` each message, on paho's thread (it must not block and must
        bound what it keeps: agent.commands.desk); call before start()."""
        self._on_command = post
        self._max_command_bytes = max_command_bytes

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def notify(self, head_seq: int) -> None:
        """The recorder committed records up to head_seq."""
        with self._wake:
            self._head = max(self._head, head_seq)
            self._wake.notify()

    def set_faults(self, health: str, problems: tuple[Mapping[str, object], ...]) -> None:
        """The agent's health and problems (agent/health.py) for the status topic; republished when the health or
        a problem's kind and subject change, not when only a size moves."""
        faults = (health, *((problem["kind"], problem["subject"]) for problem in problems))
        with self._wake:
            self._problems = problems
            if faults != self._faults:
                self._faults = faults
                self._wake.notify()

    def reply(self, payload: bytes) -> None:
        """Publish a command's reply on cmd/reply (QoS 1) from the uplink thread, after any record that can go
        now; at most REPLY_QUEUE wait (the oldest is dropped and counted)."""
        with self._wake:
            dropped = len(self._replies) >= REPLY_QUEUE
            if dropped:
                self._replies.popleft()
            self._replies.append(payload)
            self._wake.notify()
        count = self._replies_dropped.note(self._clock.monotonic()) if dropped else None
        if count is not None:
            log.warning("uplink_replies_dropped", queue=REPLY_QUEUE, count=count)

    def resend(self, first: int, last: int) -> None:
        """Publish records first..last again (a resend command), whatever the platform acknowledged."""
        self._push("resend", (first, last))

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
            return UplinkStatus(
                state=self._state,
                since_ms=self._since_ms,
                broker=self._settings.broker,
                ack_mode=self._settings.ack_mode,
                acked_upto=self._planner.acked_upto,
                head_seq=self._head,
                messages_published=self._counts["messages"],
                records_published=self._counts["records"],
                rewinds=self._counts["rewinds"],
                connects=self._counts["connects"],
                last_error=self._last_error,
                acks_refused=self._refused_acks.total,
                internal_errors=boundary.errors,
                failing=boundary.failing,
            )

    # -- the uplink thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        self._reader = OutboxReader(self._outbox_path, self.on_damage)
        try:
            first = True
            while not self._stopping.is_set():
                if not first:
                    self._pause(max(self._backoff.delay_s(), self._boundary.pause_s()))
                    if self._stopping.is_set():
                        break
                first = False
                with self._boundary.contain("uplink session"):
                    self._session(self._reader)
        finally:
            self._reader.close()

    def _session(self, reader: OutboxReader) -> None:
        """One connect and what follows it; counted as a failure for the backoff unless it proves steady."""
        self._backoff.failed()
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
            self._set_state("offline" if not self._stopping.is_set() else "stopped")
        if self._clock.monotonic() - started >= STEADY_SESSION_S:
            self._backoff.steady()
        elif self._backoff.failures >= SHORT_SESSIONS_WARNING and not self._stopping.is_set():
            count = self._unstable_noted(UplinkInstability.SESSIONS_SHORT)
            if count is not None:
                log.warning(
                    "uplink_sessions_short",
                    in_a_row=self._backoff.failures,
                    count=count,
                    client_id=self._client_id,
                    advice="the broker ends every session at once: another box with the same client id, "
                    "an ACL that refuses this client, or a broker that is failing",
                )

    def _set_state(
        self, state: Literal["connecting", "online", "offline", "stopped"], error: str | None = None
    ) -> None:
        """`since` is when the uplink last came online or went down: the tries to reconnect in between (connecting,
        offline, connecting ...) are one outage, which is what staff are told the length of."""
        with self._wake:
            if (state == "online") != (self._state == "online"):
                self._since_ms = self._clock.wall_ms()
            self._state = state
            if error is not None:
                self._last_error = error

    def _pause(self, seconds: float) -> None:
        """Backoff sleep that a stop interrupts."""
        self.pulse.beat(seconds)
        self._stopping.wait(seconds)

    def _connect_once(self) -> mqtt.Client:
        self._set_state("connecting")
        with self._wake:
            self._events.clear()
        client = self._new_client()
        try:
            if self._settings.protocol == "5":
                properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = SESSION_EXPIRY_S
                properties.MaximumPacketSize = self._max_inbound_bytes()
                client.connect(
                    self._settings.host,
                    self._settings.port,
                    self._settings.keepalive_s,
                    clean_start=False,
                    properties=properties,
                )
            else:
                client.connect(self._settings.host, self._settings.port, self._settings.keepalive_s)
        except (OSError, ssl.SSLError, ValueError) as exc:
            error = f"{exc}{_tls_advice(self._settings.tls, exc)}"
            self._set_state("offline", f"connect to {self._settings.broker}: {error}")
            log.warning("uplink_connect_failed", broker=self._settings.broker, error=error)
            raise ConnectFailed(error) from exc
        client.loop_start()
        kind, detail = self._next_event(("connected", "refused", "disconnected"), CONNACK_TIMEOUT_S)
        if kind == "disconnected":
            detail, _taken_over = detail
        if kind != "connected":
            client.loop_stop()
            advice = _tls_advice(self._settings.tls, None) if kind == "disconnected" else ""
            reason = f"broker {self._settings.broker} {kind or 'did not answer'}: {detail}{advice}"
            self._set_state("offline", reason)
            log.warning("uplink_connect_failed", broker=self._settings.broker, error=reason)
            raise ConnectFailed(reason)
        return client

    def _new_client(self) -> mqtt.Client:
        settings = self._settings
        protocol = MQTTProtocolVersion.MQTTv5 if settings.protocol == "5" else MQTTProtocolVersion.MQTTv311
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=None if protocol == MQTTProtocolVersion.MQTTv5 else False,
            protocol=protocol,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(settings.max_inflight_messages + 2 + REPLY_SLOTS)
        client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        client.will_set(
            self._topics.status,
            status_payload("offline", reason="connection_lost", client_id=self._client_id),
            qos=1,
            retain=True,
        )
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls is not None:
            client.tls_set(
                ca_certs=str(settings.tls.ca_file) if settings.tls.ca_file else None,
                certfile=str(settings.tls.cert_file) if settings.tls.cert_file else None,
                keyfile=str(settings.tls.key_file) if settings.tls.key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _max_inbound_bytes(self) -> int:
        """The largest packet the broker may send this client: an ack or a command, with room for the topic.
        A broker that honours it (Mosquitto does) drops a larger message instead of sending it."""
        largest = self._settings.max_ack_bytes
        if self._on_command is not None:
            largest = max(largest, self._max_command_bytes)
        return largest + INBOUND_OVERHEAD_BYTES

    # paho's network thread: record what happened and wake the uplink thread, nothing more.

    def _push(self, kind: str, detail: Any = None) -> None:
        with self._wake:
            self._events.append((kind, detail))
            self._wake.notify()

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._push("refused" if reason.is_failure else "connected", str(reason))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._push("disconnected", (str(reason), reason.value == SESSION_TAKEN_OVER))

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        self._push("puback", mid)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        """On paho's thread, which must outlive any message: an oversized ack is dropped before it is kept."""
        with self._boundary.contain(f"message on {message.topic[:80]}"):
            if message.topic == self._topics.ack:
                if len(message.payload) > self._settings.max_ack_bytes:
                    why = f"{len(message.payload)} bytes, more than max_ack_bytes"
                    self._ack_refused(AckRefusal.TOO_LARGE, why, len(message.payload))
                else:
                    self._push("ack", message.payload)
            elif message.topic == self._topics.cmd and self._on_command is not None:
                self._on_command(bytes(message.payload))

    def _ack_refused(self, reason: AckRefusal, why: str, payload_bytes: int) -> None:
        """Count a refused ack; the first, then one a minute, is logged and recorded with the count since."""
        count = self._refused_acks.note(self._clock.monotonic())
        if count is None:
            return
        log.warning(
            "uplink_ack_refused", reason=reason, error=why, count=count, max_ack_bytes=self._settings.max_ack_bytes
        )
        body = AckRefusedBody(reason=reason, detail=ascii_line(why), count=count, payload_bytes=payload_bytes)
        self._record(body.intent(self._clock.wall_ms()))

    def _unstable_noted(
        self, reason: UplinkInstability, believed_upto: int | None = None, upto: int | None = None
    ) -> int | None:
        """Count one occurrence of `reason`; when its tally says so, record it and return the count to log."""
        count = self._unstable[reason].note(self._clock.monotonic())
        if count is not None:
            body = UplinkUnstableBody(reason=reason, count=count, believed_upto=believed_upto, upto=upto)
            self._record(body.intent(self._clock.wall_ms()))
        return count

    def _next_event(self, kinds: tuple[str, ...], timeout_s: float) -> tuple[str | None, Any]:
        deadline = self._clock.monotonic() + timeout_s
        with self._wake:
            while True:
                while self._events:
                    kind, detail = self._events.popleft()
                    if kind in kinds:
                        return kind, detail
                remaining = deadline - self._clock.monotonic()
                if remaining <= 0 or self._stopping.is_set():
                    return None, "timeout"
                self.pulse.beat(remaining)
                self._wake.wait(remaining)

    # a live session

    def _serve(self, client: mqtt.Client, reader: OutboxReader) -> None:
        self._counts["connects"] += 1
        first_stored = reader.first_seq()
        acked = self._planner.acked_upto
        if first_stored is not None and first_stored > acked + 1:
            acked = first_stored - 1
        recent_cutoff = self._clock.wall_ms() - int(RECENT_S * 1000)
        self._planner.reset(acked, reader.first_seq_since(recent_cutoff, acked + 1, self._head))
        self._inflight.clear()
        self._reply_mids.clear()
        self._last_progress = self._clock.monotonic()
        if self._settings.ack_mode == "platform":
            client.subscribe(self._topics.ack, qos=1)
        if self._on_command is not None:
            client.subscribe(self._topics.cmd, qos=1)
        self._publish_status(client, "online")
        self._set_state("online")
        log.info("uplink_online", broker=self._settings.broker, acked_upto=acked, head_seq=self._head)
        while True:
            events = self._wait_for_work()
            for kind, detail in events:
                if kind == "disconnected":
                    self._disconnected(*detail)
                    return
                with self._boundary.contain(f"{kind} event"):
                    if kind == "resend":
                        self._resend(client, reader, *detail)
                    else:
                        self._handle(kind, detail)
            if self._stopping.is_set():
                self._finish(client, reader)
                return
            with self._boundary.contain("uplink turn"):
                self._check_ack_timeout()
                if self._faults != self._faults_published:
                    self._publish_status(client, "online")
                self._fill_window(client, reader)
                self._publish_replies(client)
            if pause_s := self._boundary.pause_s():
                self._pause(pause_s)

    def _disconnected(self, reason: str, taken_over: bool) -> None:
        self._set_state("offline", f"disconnected: {reason}")
        if taken_over:
            count = self._unstable_noted(UplinkInstability.TAKEN_OVER)
            if count is not None:
                log.warning(
                    "uplink_session_taken_over",
                    client_id=self._client_id,
                    count=count,
                    advice="another client connected with this client id: give every box its own uplink.client_id",
                )
        else:
            log.warning("uplink_disconnected", reason=reason)

    def _wait_for_work(self, timeout_s: float | None = None) -> list[tuple[str, Any]]:
        wait_s = self._settings.ack_timeout_s / 4 if timeout_s is None else timeout_s
        self.pulse.beat(wait_s)
        with self._wake:
            if not self._events and not self._stopping.is_set() and not self._can_publish():
                self._wake.wait(wait_s)
            events = list(self._events)
            self._events.clear()
            return events

    def _can_publish(self) -> bool:
        return (
            self._planner.propose(self._head) is not None or self._faults != self._faults_published or self._reply_due()
        )

    def _reply_due(self) -> bool:
        """A reply waits, its slot is free, and no record can go now (records always go first)."""
        return bool(self._replies) and len(self._reply_mids) < REPLY_SLOTS and self._planner.propose(self._head) is None

    def _publish_replies(self, client: mqtt.Client) -> None:
        while True:
            with self._wake:
                if not self._reply_due():
                    return
                payload = self._replies.popleft()
            info = client.publish(self._topics.cmd_reply, payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                log.warning("uplink_reply_not_published", error=mqtt.error_string(info.rc))
                return
            self._reply_mids.add(info.mid)

    def _resend(self, client: mqtt.Client, reader: OutboxReader, first: int, last: int) -> None:
        """The records a resend command asked for, beside the planner: a resent record's PUBACK finds no
        in-flight entry and the ack it brings moves nothing backwards, so a resend changes no delivery
        bookkeeping. What does not fit paho's bounded queue is left out, and said."""
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
            self._counts["resent"] += message.last - message.first + 1
            first = message.last + 1
        log.info("uplink_resent", first=start, last=last)

    def _handle(self, kind: str, detail: Any) -> None:
        if kind == "puback":
            sent = self._inflight.pop(detail, None)
            if sent is None:
                self._reply_mids.discard(detail)
                return
            self._planner.delivered()
            if self._settings.ack_mode == "broker":
                self._progress(self._planner.confirm(sent.first, sent.last))
        elif kind == "ack":
            try:
                upto = parse_ack(detail, self._settings.max_ack_bytes)
            except AckError as exc:
                self._ack_refused(ack_refusal(exc), str(exc), len(detail))
                return
            if upto > self._head:
                self._ack_beyond_head(upto)
                return
            if self._planner.acknowledge(upto):
                self._progress(upto)
            elif upto < self._planner.acked_upto:
                self._platform_lacks(upto)
            elif self._planner.lacks_few() and self._clock.monotonic() - self._next_sent_at > STALLED_ACK_S:
                self._rewind("uplink_platform_lacks_record")

    def _ack_beyond_head(self, upto: int) -> None:
        """The platform holds records past this box's head: the box lost records it had sent (rebuilt with only
        its key, an outbox put back from an old copy with its anchor). New records would take seqs the platform
        has already; a person must stop the agent and run `station-agent recover --after-seq <upto>`. Said once
        as an error, then counted on a rate-limited line, whatever the platform repeats."""
        count = self._acks_beyond_head.note(self._clock.monotonic())
        if self._acks_beyond_head.total == 1:
            log.error(
                "chain_behind_platform",
                platform_upto=upto,
                head_seq=self._head,
                fix=f"stop the agent, run 'station-agent recover --after-seq {upto}', start it",
            )
        elif count is not None:
            log.warning("uplink_ack_beyond_head", upto=upto, head_seq=self._head, count=count)

    def _platform_lacks(self, upto: int) -> None:
        """The platform acks less than it did: it lost records (a restore from backup, a lost disk), and it is
        the authority on what it holds. Send again from its `upto`, at most once per ack_timeout_s, so that a
        stale or out-of-order ack costs a bounded number of duplicates."""
        now = self._clock.monotonic()
        if self._authority_rewound_at is not None and now - self._authority_rewound_at < self._settings.ack_timeout_s:
            return
        self._authority_rewound_at = now
        believed = self._planner.acked_upto
        first_stored = None if self._reader is None else self._reader.first_seq()
        restart = upto
        if first_stored is not None and first_stored > upto + 1:
            restart = first_stored - 1
            log.error("uplink_platform_lacks_pruned", first=upto + 1, last=restart, acked_upto=upto)
        self._rewind("uplink_platform_acked_less", restart, upto=upto, believed_acked_upto=believed)
        self._unstable_noted(UplinkInstability.PLATFORM_ACKED_LESS, believed_upto=believed, upto=upto)

    def _progress(self, acked: int) -> None:
        self._last_progress = self._next_sent_at = self._clock.monotonic()
        self._on_acked(acked)

    def _check_ack_timeout(self) -> None:
        if not self._planner.unacked_sent():
            self._last_progress = self._clock.monotonic()
            return
        if self._clock.monotonic() - self._last_progress >= self._settings.ack_timeout_s:
            self._rewind("uplink_ack_timeout")

    def _rewind(self, event: str, acked_upto: int | None = None, **fields: object) -> None:
        """Send everything unacknowledged again, from the record after acked_upto (by default the planner's)."""
        acked = self._planner.acked_upto if acked_upto is None else acked_upto
        log.warning(event, acked_upto=acked, head_seq=self._head, **fields)
        self._counts["rewinds"] += 1
        self._planner.reset(acked)
        self._inflight.clear()
        self._last_progress = self._clock.monotonic()

    def _fill_window(self, client: mqtt.Client, reader: OutboxReader) -> None:
        while (proposal := self._planner.propose(self._head)) is not None:
            message = build_records_message(
                reader.read(proposal.first, proposal.last), self._settings.max_message_bytes
            )
            if message is None or message.first != proposal.first:
                log.error("uplink_records_missing", first=proposal.first, last=proposal.last)
                self._planner.reset(self._planner.acked_upto)
                return
            info = client.publish(self._topics.records, message.payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._set_state("offline", f"publish failed: {mqtt.error_string(info.rc)}")
                return
            self._inflight[info.mid] = _Sent(message.first, message.last, proposal.lane)
            if message.first == self._planner.acked_upto + 1:
                self._next_sent_at = self._clock.monotonic()
            self._planner.published(message.first, message.last, proposal.lane)
            self._counts["messages"] += 1
            self._counts["records"] += message.last - message.first + 1

    def _publish_status(self, client: mqtt.Client, state: str) -> mqtt.MQTTMessageInfo:
        with self._wake:
            faults, problems = self._faults, self._problems
        self._faults_published = faults
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
        while self._clock.monotonic() < deadline and (self._planner.unacked_sent() or self._can_publish()):
            self._fill_window(client, reader)
            for kind, detail in self._wait_for_work(timeout_s=0.05):
                if kind == "disconnected":
                    return
                self._handle(kind, detail)
        info = self._publish_status(client, "offline")
        info.wait_for_publish(timeout=2.0)
        client.disconnect()
        log.info("uplink_stopped", acked_upto=self._planner.acked_upto, head_seq=self._head)
