"""The MQTT uplink: one thread that keeps a session to the broker and moves the outbox to the platform.

Theory of operation: the uplink thread connects (with full-jitter exponential backoff, so a thousand stations
coming back after a broker restart do not all knock at once), announces itself on the retained status topic
(its last will says offline), then publishes what the planner proposes, reading the records from the outbox
through its own read-only connection. paho's network thread only queues what it hears (PUBACKs, acks,
disconnects); all decisions are taken here, one at a time. Acknowledgements (PUBACK in broker mode,
`{"upto": N}` on the ack topic in platform mode) go to the recorder, which may then prune. On any disconnect
or ack timeout, everything unacknowledged is sent again: duplicates are possible, but only as byte-identical
re-sends. A fresh paho client per connection keeps paho from re-sending on its own behind the planner's back.
"""

from __future__ import annotations

import collections
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_when_event_set, wait_random_exponential

from agent.clock import Clock
from agent.config import TlsSection, UplinkSection
from agent.ledger.outbox import OutboxReader
from agent.logs import get_logger
from agent.pulse import Pulse
from agent.records import format_ts
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


class ConnectFailed(Exception):
    """The broker could not be reached or refused the connection."""


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
        birth_fields: Callable[[], dict[str, object]] | None = None,
    ) -> None:
        self._settings = settings
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
        self._faults: tuple[str, ...] = ()
        self._faults_published: tuple[str, ...] = ()
        self._stopping = threading.Event()
        self._state: Literal["connecting", "online", "offline", "stopped"] = "offline"
        self._since_ms = clock.wall_ms()
        self._counts = collections.Counter[str]()
        self._last_error: str | None = None
        self._inflight: dict[int, _Sent] = {}
        self._last_progress = clock.monotonic()
        self._next_sent_at = clock.monotonic()
        self.on_command: Callable[[bytes], None] | None = None
        """Given each message on the cmd topic, on paho's thread (it must not block); set before start()."""
        self.pulse = Pulse()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)

    # -- called from other threads ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def notify(self, head_seq: int) -> None:
        """The recorder committed records up to head_seq."""
        with self._wake:
            self._head = max(self._head, head_seq)
            self._wake.notify()

    def set_faults(self, faults: tuple[str, ...]) -> None:
        """Faults to show on the status topic (e.g. the outbox is full), republished when they change."""
        with self._wake:
            if faults != self._faults:
                self._faults = faults
                self._wake.notify()

    def reply(self, payload: bytes) -> None:
        """Publish a command's reply on cmd/reply (QoS 1) from the uplink thread; dropped while offline."""
        self._push("reply", payload)

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
            )

    # -- the uplink thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        reader = OutboxReader(self._outbox_path)
        try:
            while not self._stopping.is_set():
                client = self._connect_with_backoff()
                if client is None:
                    break
                try:
                    self._serve(client, reader)
                finally:
                    client.loop_stop()
                    self._set_state("offline" if not self._stopping.is_set() else "stopped")
        finally:
            reader.close()

    def _set_state(
        self, state: Literal["connecting", "online", "offline", "stopped"], error: str | None = None
    ) -> None:
        with self._wake:
            if state != self._state:
                self._state, self._since_ms = state, self._clock.wall_ms()
            if error is not None:
                self._last_error = error

    def _connect_with_backoff(self) -> mqtt.Client | None:
        retrying = Retrying(
            retry=retry_if_exception_type(ConnectFailed),
            wait=wait_random_exponential(multiplier=self._settings.reconnect_min_s, max=self._settings.reconnect_max_s),
            stop=stop_when_event_set(self._stopping),
            sleep=self._pause,
            reraise=False,
        )
        try:
            client: mqtt.Client = retrying(self._connect_once)
        except RetryError:
            return None
        return client

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
        client.max_inflight_messages_set(settings.max_inflight_messages + 2)
        client.max_queued_messages_set(0)
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

    # paho's network thread: record what happened and wake the uplink thread, nothing more.

    def _push(self, kind: str, detail: Any = None) -> None:
        with self._wake:
            self._events.append((kind, detail))
            self._wake.notify()

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._push("refused" if reason.is_failure else "connected", str(reason))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._push("disconnected", str(reason))

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        self._push("puback", mid)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._topics.ack:
            self._push("ack", message.payload)
        elif message.topic == self._topics.cmd and self.on_command is not None:
            self.on_command(bytes(message.payload))

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
        self._last_progress = self._clock.monotonic()
        if self._settings.ack_mode == "platform":
            client.subscribe(self._topics.ack, qos=1)
        if self.on_command is not None:
            client.subscribe(self._topics.cmd, qos=1)
        self._publish_status(client, "online")
        self._set_state("online")
        log.info("uplink_online", broker=self._settings.broker, acked_upto=acked, head_seq=self._head)
        while True:
            events = self._wait_for_work()
            for kind, detail in events:
                if kind == "disconnected":
                    self._set_state("offline", f"disconnected: {detail}")
                    log.warning("uplink_disconnected", reason=str(detail))
                    return
                if kind in ("reply", "resend"):
                    self._serve_command(client, reader, kind, detail)
                else:
                    self._handle(kind, detail)
            if self._stopping.is_set():
                self._finish(client, reader)
                return
            self._check_ack_timeout()
            if self._faults != self._faults_published:
                self._publish_status(client, "online")
            self._fill_window(client, reader)

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
        return self._planner.propose(self._head) is not None or self._faults != self._faults_published

    def _serve_command(self, client: mqtt.Client, reader: OutboxReader, kind: str, detail: Any) -> None:
        """A command's reply, or the records a resend asked for. Both go out beside the planner: a resent
        record's PUBACK finds no in-flight entry and the ack it brings moves nothing backwards, so a resend
        changes no delivery bookkeeping."""
        if kind == "reply":
            client.publish(self._topics.cmd_reply, detail, qos=1)
            return
        first, last = detail
        while first <= last:
            message = build_records_message(reader.read(first, last), self._settings.max_message_bytes)
            if message is None or message.first != first:
                log.warning("uplink_resend_records_missing", first=first, last=last)
                return
            client.publish(self._topics.records, message.payload, qos=1)
            self._counts["resent"] += message.last - message.first + 1
            first = message.last + 1
        log.info("uplink_resent", first=detail[0], last=last)

    def _handle(self, kind: str, detail: Any) -> None:
        if kind == "puback":
            sent = self._inflight.pop(detail, None)
            if sent is None:
                return
            self._planner.delivered()
            if self._settings.ack_mode == "broker":
                self._progress(self._planner.confirm(sent.first, sent.last))
        elif kind == "ack":
            try:
                upto = parse_ack(detail)
            except AckError as exc:
                log.warning("uplink_bad_ack", error=str(exc))
                return
            if upto > self._head:
                log.warning("uplink_ack_beyond_head", upto=upto, head_seq=self._head)
                return
            if self._planner.acknowledge(upto):
                self._progress(upto)
            elif self._planner.lacks_few() and self._clock.monotonic() - self._next_sent_at > STALLED_ACK_S:
                self._rewind("uplink_platform_lacks_record")

    def _progress(self, acked: int) -> None:
        self._last_progress = self._next_sent_at = self._clock.monotonic()
        self._on_acked(acked)

    def _check_ack_timeout(self) -> None:
        if not self._planner.unacked_sent():
            self._last_progress = self._clock.monotonic()
            return
        if self._clock.monotonic() - self._last_progress >= self._settings.ack_timeout_s:
            self._rewind("uplink_ack_timeout")

    def _rewind(self, event: str) -> None:
        """Send everything unacknowledged again, from the record after acked_upto."""
        log.warning(event, acked_upto=self._planner.acked_upto, head_seq=self._head)
        self._counts["rewinds"] += 1
        self._planner.reset(self._planner.acked_upto)
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
            faults = self._faults
        self._faults_published = faults
        fields: dict[str, object] = {
            "faults": list(faults),
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
