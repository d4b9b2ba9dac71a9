"""The reference platform receiver: MQTT in, verified records stored, acks out.

For each records message it verifies, commits, and only then publishes `{"upto": N}` to the station's ack
topic; and only then does it acknowledge the MQTT message itself (manual PUBACK). So a crash at any point
loses nothing: before the commit the broker still holds the message and delivers it again; after it, the
re-delivery is a harmless duplicate and is acked again, which is also how a re-sending agent learns where the
platform stands. The session is persistent (fixed client id, no clean start, a session expiry), so what
stations publish while the receiver is down is waiting for it when it comes back.

Three kinds of thread share the work. The MQTT network thread checks each message in all but its signatures and
starts those on a thread per core (`ThreadedVerifier.start`), then takes up the next message. The store thread
takes what has arrived, in arrival order: it waits for each message's signatures, stores all the messages it
took in one transaction (one fsync however many), then publishes each records message's ack and PUBACKs each
message, in arrival order. So the checks of one message overlap the storing of the last, and a burst costs an
fsync per run of messages rather than per message; a message is still acked only once it is on disk. A
key_rotation is the exception: its message is settled on the network thread, which learns the key only once the
store thread has stored it, so that the next message, which the new key may sign, is checked against it. All
store access goes through one lock: the store thread writes, `report()` reads from any thread.
"""

from __future__ import annotations

import json
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from simulators.platform.contract import DEFAULT_PREFIX, RECORDS, STATUS, Topics
from simulators.platform.keys import Keyring, StationPublicKey
from simulators.platform.report import PlatformReport
from simulators.platform.rotation import announced_key
from simulators.platform.signatures import PendingChecks, ThreadedVerifier
from simulators.platform.store import Ingested, Store
from simulators.platform.verify import ExaminedMessage, Rejection, Verdict, examine_message, verify_status

log = structlog.get_logger(__name__)

MqttVersion = Literal["5", "3.1.1"]
_PROTOCOLS: Final[dict[str, MQTTProtocolVersion]] = {
    "5": MQTTProtocolVersion.MQTTv5,
    "3.1.1": MQTTProtocolVersion.MQTTv311,
}
DEFAULT_CLIENT_ID: Final = "station-sim-platform"
_QOS: Final = 1
QUEUED_MESSAGES: Final = 64
"""Messages taken off the network but not yet stored, at most; past it the network thread waits, and the broker
holds the rest. Also the most the store thread takes into one transaction."""
QUEUED_BYTES: Final = 16 * 1024**2
"""Payload bytes taken off the network but not yet stored, at most (a message alone may be larger). A message is
held parsed, at several times its size, until its run is stored: without this bound, a station sending the
largest messages MQTT carries would have QUEUED_MESSAGES of them held at once. The agent's messages (64 KiB by
default) never reach it."""


class _ByteBudget:
    """The payload bytes of the messages between the network thread and the store thread; `take` waits for room."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._changed = threading.Condition()

    def take(self, size: int) -> None:
        """Wait until `size` more bytes fit, or nothing is held (so that a message larger than the limit passes)."""
        with self._changed:
            self._changed.wait_for(lambda: self._held == 0 or self._held + size <= self._limit)
            self._held += size

    def give_back(self, size: int) -> None:
        with self._changed:
            self._held -= size
            self._changed.notify_all()


@dataclass(frozen=True, slots=True)
class _Records:
    """A records message of a known station, checked in all but its signatures, which `pending` is checking
    (or already settled: `verdict`). `stored`, for a message that hands trust to a new key: whether the store
    thread stored it, which the network thread waits for before it learns the key."""

    station: str
    examined: ExaminedMessage
    pending: PendingChecks | None = None
    verdict: Verdict | None = None
    stored: Future[bool] | None = None

    def settled(self) -> Verdict:
        if self.verdict is not None:
            return self.verdict
        return self.examined.settle(() if self.pending is None else self.pending.results())


@dataclass(frozen=True, slots=True)
class _Status:
    station: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class _UnknownStation:
    station: str


@dataclass(frozen=True, slots=True)
class _Taken:
    """A message taken off the network, waiting in arrival order for the store thread: what to do with it
    (nothing, for a topic outside the prefix) and the PUBACK it is owed once that is done, on the connection
    it came on (`connection`, counted by the receiver) and no other."""

    mid: int
    qos: int
    work: _Records | _Status | _UnknownStation | None
    connection: int
    size: int

    @property
    def packet(self) -> tuple[int, int]:
        """The message's packet id with its connection: a stale copy delivered again shares only the id."""
        return self.connection, self.mid


class ReceiverError(RuntimeError):
    """The receiver could not start; the message names the broker and what to check."""


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    """Where to listen, where to keep records, and whose keys to trust.

    `client_id` names the persistent session: two receivers with the same id take it from each other, and a
    receiver with a new id does not get what was queued for the old one.
    """

    host: str
    port: int
    db_path: Path
    keys: Keyring = field(repr=False)
    prefix: str = DEFAULT_PREFIX
    mqtt_version: MqttVersion = "5"
    client_id: str = DEFAULT_CLIENT_ID
    session_expiry_s: int = 7 * 24 * 3600
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id is empty; a persistent session needs a fixed, non-empty client id")
        if self.mqtt_version not in _PROTOCOLS:
            raise ValueError(f"mqtt_version {self.mqtt_version!r} is not one of {sorted(_PROTOCOLS)}")


class PlatformReceiver:
    """Receives, verifies, stores and acks station records until stopped; see the module docstring.

    `start()` returns once the subscriptions are in place, so anything published afterwards is received.
    `report()` works while running and after `stop()`, when it returns the report as it stood at the stop.
    The receiver can be started again after a stop, on the same database.
    """

    def __init__(self, config: ReceiverConfig) -> None:
        self.config = config
        self._topics = Topics(config.prefix)
        self._lock = threading.Lock()
        self._settled = threading.Event()
        self._refusal: str | None = None
        self._store: Store | None = None
        self._verifier: ThreadedVerifier | None = None
        self._client: mqtt.Client | None = None
        self._taken: queue.Queue[_Taken | None] = queue.Queue(QUEUED_MESSAGES)
        self._storing: threading.Thread | None = None
        self._budget = _ByteBudget(QUEUED_BYTES)
        self._connection = 0
        """Connections lost so far. A packet id names a message only on its connection: on the next, the broker
        may give it to another message (a restarted broker starts again at 1), which a late PUBACK would settle
        before it is stored. So a message is PUBACKed only on the connection it came on."""
        self._puback_lock = threading.Lock()
        """Held while a PUBACK is queued and while `_connection` moves, so that none is queued once the
        connection it is owed on is lost."""
        self._last_report: PlatformReport | None = None
        self._learned: dict[str, dict[str, StationPublicKey]] = {}
        """station -> kid -> key handed over by a key_rotation event (simulators.platform.rotation)."""

    def __enter__(self) -> PlatformReceiver:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def start(self) -> None:
        """Open the store, connect, subscribe; raise ReceiverError if the broker refuses or is not there in time."""
        if self._client is not None:
            raise ReceiverError(f"receiver for {self.address} is already running; stop() it first")
        self._store = Store(self.config.db_path)
        for station in self.config.keys:
            for canonical in self._store.accepted(station, "event"):
                self._learn(station, canonical, None)
        self._verifier = ThreadedVerifier()
        self._taken = queue.Queue(QUEUED_MESSAGES)
        self._budget = _ByteBudget(QUEUED_BYTES)
        self._storing = threading.Thread(target=self._store_loop, args=(self._taken,), name="platform-store")
        self._storing.start()
        self._settled.clear()
        self._refusal = None
        self._client = self._connect()
        timeout_s = self.config.connect_timeout_s
        if not self._settled.wait(timeout_s) or self._refusal is not None:
            refusal = self._refusal
            self.stop()
            raise ReceiverError(
                f"the MQTT broker at {self.address} refused: {refusal}; check its access settings"
                if refusal is not None
                else f"no MQTT broker answered at {self.address} within {timeout_s:g} s; "
                "start the broker or give the right --broker HOST:PORT"
            )
        log.info("platform.started", broker=self.address, stations=sorted(self.config.keys), prefix=self.config.prefix)

    def _connect(self) -> mqtt.Client:
        """A client with a persistent session, connecting in its own network thread."""
        config = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=_PROTOCOLS[config.mqtt_version],
            clean_session=None if config.mqtt_version == "5" else False,
            manual_ack=True,
        )
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        if config.mqtt_version == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = config.session_expiry_s
            client.connect_async(config.host, config.port, config.keepalive_s, clean_start=False, properties=properties)
        else:
            client.connect_async(config.host, config.port, config.keepalive_s)
        client.loop_start()
        return client

    def stop(self) -> None:
        """Disconnect (the session stays on the broker) and close the store; safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        storing, self._storing = self._storing, None
        if storing is not None:
            self._taken.put(None)
            storing.join()
        verifier, self._verifier = self._verifier, None
        if verifier is not None:
            verifier.close()
        with self._lock:
            store, self._store = self._store, None
            if store is not None:
                self._last_report = self._report(store)
                store.close()
        if store is not None:
            log.info("platform.stopped", broker=self.address)

    def report(self) -> PlatformReport:
        """The report now (or as it stood at the last stop); safe from any thread."""
        with self._lock:
            if self._store is not None:
                return self._report(self._store)
            if self._last_report is not None:
                return self._last_report
        raise ReceiverError("the receiver has never run, so there is nothing to report; start() it first")

    def _report(self, store: Store) -> PlatformReport:
        stations = tuple(store.station_report(station) for station in self.config.keys)
        return PlatformReport(stations, store.unknown_stations())

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("platform.connect_refused", broker=self.address, reason=str(reason))
            self._refusal = f"connection refused ({reason})"
            self._settled.set()
            return
        log.info("platform.connected", broker=self.address, session_present=flags.session_present)
        client.subscribe([(topic, _QOS) for topic in self._topics.subscriptions()])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode], properties: Any
    ) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            log.error("platform.subscribe_refused", broker=self.address, reasons=refused)
            self._refusal = f"subscriptions {list(self._topics.subscriptions())} refused ({', '.join(refused)})"
        self._settled.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags, reason: ReasonCode, properties: Any
    ) -> None:
        with self._puback_lock:
            self._connection += 1
        log.info("platform.disconnected", broker=self.address, reason=str(reason))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """Take the message up and queue it for the store thread, which PUBACKs it once it is handled; a message
        that could not be taken up is not acked, so the broker delivers it again.

        A message under the prefix also settles the start: the broker hands a resumed session's backlog over
        before it answers the new SUBSCRIBE, and a backlog that takes longer to store than the connect timeout
        would otherwise fail the start as if no broker had answered. That it came shows the session's
        subscriptions are in place."""
        if not self._settled.is_set() and self._topics.parse(message.topic) is not None:
            self._settled.set()
        size = len(message.payload)
        self._budget.take(size)
        try:
            work = self._take(message.topic, bytes(message.payload))
        except Exception:
            self._budget.give_back(size)
            log.exception("platform.message_failed", topic=message.topic)
            return
        self._taken.put(_Taken(message.mid, message.qos, work, self._connection, size))
        if isinstance(work, _Records) and work.stored is not None:
            self._learn_once_stored(work)

    def _take(self, topic: str, payload: bytes) -> _Records | _Status | _UnknownStation | None:
        verifier = self._verifier
        assert verifier is not None, "messages arrive only between start() and stop()"
        parsed = self._topics.parse(topic)
        if parsed is None:
            log.warning("platform.foreign_topic", topic=topic, prefix=self.config.prefix)
            return None
        station, kind = parsed
        keys = self.config.keys.get(station)
        if keys is not None and station in self._learned:
            keys = {**keys, **self._learned[station]}
        if keys is None:
            log.warning("platform.unknown_station", station=station, topic=topic)
            return _UnknownStation(station)
        if kind == STATUS:
            return _Status(station, payload)
        if kind != RECORDS:
            return None
        examined = examine_message(payload, station, keys)
        if examined.key is None:
            return _Records(station, examined, verdict=examined.settle(()))
        if not examined.announces_key():
            return _Records(station, examined, pending=verifier.start(examined.key, examined.checks()))
        return _Records(
            station, examined, verdict=examined.settle(verifier(examined.key, examined.checks())), stored=Future()
        )

    def _learn_once_stored(self, work: _Records) -> None:
        """Wait until a message handing over a key is stored, then learn the key: the next message may be signed
        by it. A message the store failed on hands over nothing until it is delivered again and stored."""
        assert work.stored is not None and work.verdict is not None
        if not work.stored.result():
            return
        for record in work.verdict.accepted:
            if record.type == "event":
                self._learn(work.station, record.canonical, record.kid)

    def _store_loop(self, taken: queue.Queue[_Taken | None]) -> None:
        """Until stopped: take what has arrived (at least one message, at most QUEUED_MESSAGES) and handle it.
        Whatever goes wrong with one run is logged and leaves its messages unacked; the thread goes on."""
        while True:
            batch = [taken.get()]
            while batch[-1] is not None and len(batch) < QUEUED_MESSAGES:
                try:
                    batch.append(taken.get_nowait())
                except queue.Empty:
                    break
            messages = [message for message in batch if message is not None]
            handled: set[tuple[int, int]] = set()
            try:
                handled = self._handle(messages)
            except Exception:
                log.exception("platform.messages_failed", messages=len(messages))
            for message in messages:
                if isinstance(message.work, _Records) and message.work.stored is not None:
                    message.work.stored.set_result(message.packet in handled)
            self._budget.give_back(sum(message.size for message in messages))
            if batch[-1] is None:
                return

    def _handle(self, messages: list[_Taken]) -> set[tuple[int, int]]:
        """Store the messages, then PUBACK each that was handled, in arrival order; the packets handled. If the
        records messages cannot be stored together, each is tried alone, so one that fails is the only one left
        unacked."""
        handled: set[tuple[int, int]] = set()
        records = [message for message in messages if isinstance(message.work, _Records)]
        try:
            handled.update(self._store_records(records))
        except Exception:
            log.exception("platform.run_failed", messages=len(records))
            for message in records:
                try:
                    handled.update(self._store_records([message]))
                except Exception:
                    log.exception("platform.message_failed", mid=message.mid)
        for message in messages:
            if not isinstance(message.work, _Records):
                try:
                    self._store_other(message.work)
                except Exception:
                    log.exception("platform.message_failed", mid=message.mid)
                    continue
                handled.add(message.packet)
        client = self._client
        if client is None:
            return handled  # stopping: what was stored stays stored, and the broker delivers it again
        with self._puback_lock:
            for message in messages:
                if message.packet in handled and message.connection == self._connection:
                    client.ack(message.mid, message.qos)
        return handled

    def _store_records(self, messages: list[_Taken]) -> list[tuple[int, int]]:
        """Store the records messages in one transaction, then publish each one's ack; their packets."""
        if not messages:
            return []
        store = self._store
        assert store is not None, "the store thread runs only between start() and stop()"
        verdicts = [
            (message.work.station, message.work.settled()) for message in messages if isinstance(message.work, _Records)
        ]
        with self._lock:
            ingested = store.ingest_all(verdicts)
        client = self._client
        for (station, verdict), outcome in zip(verdicts, ingested, strict=True):
            _log_verdict(station, verdict, outcome)
            if client is not None:
                client.publish(self._topics.ack(station), json.dumps({"upto": outcome.upto}), qos=_QOS, retain=False)
        return [message.packet for message in messages]

    def _store_other(self, work: _Status | _UnknownStation | None) -> None:
        store = self._store
        assert store is not None, "the store thread runs only between start() and stop()"
        if isinstance(work, _UnknownStation):
            with self._lock:
                store.count_unknown_station(work.station)
        elif isinstance(work, _Status):
            self._status(store, work.station, work.payload)

    def _learn(self, station: str, canonical: bytes, signed_by: str | None) -> None:
        announced = announced_key(canonical, signed_by)
        if announced is not None:
            kid, key = announced
            self._learned.setdefault(station, {})[kid] = key
            log.info("platform.key_learned", station=station, kid=kid)

    def _status(self, store: Store, station: str, payload: bytes) -> None:
        status = verify_status(payload)
        with self._lock:
            if isinstance(status, Rejection):
                store.ingest(station, Verdict(rejections=(status,)))
            else:
                store.set_status(station, status)
        if isinstance(status, Rejection):
            _log_rejection(station, status)
        else:
            log.info("platform.status", station=station, state=status["state"])


def _log_rejection(station: str, rejection: Rejection) -> None:
    log.warning(
        "platform.rejected", station=station, seq=rejection.seq, reason=rejection.reason.value, detail=rejection.detail
    )


def _log_verdict(station: str, verdict: Verdict, ingested: Ingested) -> None:
    for rejection in verdict.rejections:
        _log_rejection(station, rejection)
    for seq in ingested.forks:
        log.error("platform.fork", station=station, seq=seq)
    for seq in ingested.chain_breaks:
        log.error("platform.chain_break", station=station, seq=seq)
    log.info(
        "platform.records",
        station=station,
        stored=len(ingested.stored),
        duplicates=len(ingested.duplicates),
        upto=ingested.upto,
    )
