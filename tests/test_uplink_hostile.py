"""The uplink against a hostile broker and platform: poison acks, a platform that forgets, a broker that accepts
and closes at once, a client id taken over. Real Mosquitto and real TCP on 127.0.0.1; a real outbox and recorder.

The platform here is a small stand-in written from the contract (records in, `{"upto": N}` out), so that a test
can make it forget what it held; the reference receiver is exercised by the command link tests."""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from support.uplink_station import UplinkStation, uplink_station
from support.waiting import wait_until

from agent.contract.records import EventKind
from agent.uplink.settings import UplinkSection
from simulators.broker import MosquittoBroker
from simulators.hostile.rude_broker import RudeBroker

pytestmark = pytest.mark.slow

STATION = "HOSTILE-1"
TOPICS = f"fsm/v1/{STATION}"
DEADLINE_S = 15.0


@pytest.fixture
def station(tmp_path: Path) -> Iterator[UplinkStation]:
    with uplink_station(tmp_path, STATION, outbox_bytes=64 * 1024**2, deadline_s=DEADLINE_S) as running:
        yield running


class Platform:
    """Holds the seqs it received and acks the contiguous prefix, as the contract says; can forget."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self._lock = threading.Lock()
        self.held: set[int] = set()
        self.received: list[int] = []
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"platform-{STATION}", protocol=MQTTProtocolVersion.MQTTv5
        )
        self._subscribed = threading.Event()
        self._client.on_connect = lambda c, *_: c.subscribe(f"{TOPICS}/records", qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_records
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert self._subscribed.wait(10), "the platform subscribed"

    def _on_records(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        seqs = [item["record"]["seq"] for item in json.loads(message.payload)["records"]]
        with self._lock:
            self.received.extend(seqs)
            self.held.update(seqs)
            upto = self.upto()
        client.publish(f"{TOPICS}/ack", json.dumps({"upto": upto}), qos=1)

    def upto(self) -> int:
        upto = 0
        while upto + 1 in self.held:
            upto += 1
        return upto

    def forget_after(self, seq: int) -> None:
        """A restore from an older backup: everything after `seq` is gone, and the platform says so."""
        with self._lock:
            self.held = {held for held in self.held if held <= seq}
        self._client.publish(f"{TOPICS}/ack", json.dumps({"upto": seq}), qos=1).wait_for_publish(5)

    def times_received(self, seq: int) -> int:
        with self._lock:
            return self.received.count(seq)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def publish_retained(broker: MosquittoBroker, topic: str, payload: bytes) -> None:
    """Publish as some other client could, retained, and wait until the broker has it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder", protocol=MQTTProtocolVersion.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_poison_acks_are_refused_and_counted_and_records_still_get_acked(
    station: UplinkStation, private_broker: MosquittoBroker
) -> None:
    """A retained ack with a 5,000-digit upto, then `[` x 50,000 (within the size limit, refused for depth),
    then `[` x 100,000 (beyond it, dropped unread): each is refused and counted, the uplink thread lives on, and
    the records are acknowledged by the platform's good acks."""
    platform = Platform(private_broker)
    try:
        publish_retained(private_broker, f"{TOPICS}/ack", b'{"upto": 1' + b"0" * 5000 + b"}")
        settings = UplinkSection(
            broker=private_broker.address,
            protocol="3.1.1",
            max_ack_bytes=64 * 1024,
            reconnect_min_s=0.2,
            reconnect_max_s=1.0,
        )
        head = station.record(5)
        uplink = station.uplink(settings)
        wait_until(lambda: uplink.status().acks_refused >= 1, DEADLINE_S, "the retained huge integer refused")
        publish_retained(private_broker, f"{TOPICS}/ack", b"[" * 50_000)
        wait_until(lambda: uplink.status().acks_refused >= 2, DEADLINE_S, "the deep ack refused")
        publish_retained(private_broker, f"{TOPICS}/ack", b"[" * 100_000)
        wait_until(lambda: uplink.status().acks_refused >= 3, DEADLINE_S, "the oversized ack dropped")
        head = station.record(3)
        wait_until(lambda: uplink.status().acked_upto == head, DEADLINE_S, "every record acknowledged by the platform")
        assert uplink.alive(), "the uplink thread outlived every poison ack"
        assert uplink.status().internal_errors == 0, "refused by the parser, not contained as a crash"
    finally:
        platform.close()
        publish_retained(private_broker, f"{TOPICS}/ack", b"")


def test_poison_acks_make_one_ack_refused_record_a_minute(
    station: UplinkStation, private_broker: MosquittoBroker
) -> None:
    """A retained ack with a 5,000-digit upto makes one `ack_refused` record (reason bad_number, count 1, its
    size), committed to the outbox; 200 more poison acks within the minute are counted, not recorded."""
    huge = b'{"upto": 1' + b"0" * 5000 + b"}"
    try:
        publish_retained(private_broker, f"{TOPICS}/ack", huge)
        settings = UplinkSection(
            broker=private_broker.address, protocol="3.1.1", max_ack_bytes=64 * 1024, reconnect_min_s=0.2
        )
        uplink = station.uplink(settings)
        wait_until(lambda: bool(station.events(EventKind.ACK_REFUSED)), DEADLINE_S, "the ack_refused record")
        started = time.monotonic()
        (first,) = station.events(EventKind.ACK_REFUSED)
        assert first["reason"] == "bad_number" and first["count"] == 1
        assert first["payload_bytes"] == len(huge)
        assert "integer of 5001 characters" in first["detail"] and first["detail"].isascii()
        assert len(first["detail"]) <= 200
        wait_until(lambda: bool(station.stored_events(EventKind.ACK_REFUSED)), DEADLINE_S, "the record in the outbox")
        refused = uplink.status().acks_refused
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="poisoner", protocol=MQTTProtocolVersion.MQTTv5)
        client.connect(private_broker.host, private_broker.port)
        client.loop_start()
        try:
            for n in range(200):
                poison = b'{"upto": "' + str(n).encode() + b'"}' if n % 2 else b"[" * 100
                client.publish(f"{TOPICS}/ack", poison, qos=1).wait_for_publish(10)
        finally:
            client.disconnect()
            client.loop_stop()
        wait_until(lambda: uplink.status().acks_refused >= refused + 200, DEADLINE_S, "the 200 poison acks refused")
        assert time.monotonic() - started < 60.0, "the burst fell within the record's minute"
        assert len(station.events(EventKind.ACK_REFUSED)) == 1, "one record a minute, not one per ack"
        assert uplink.alive() and uplink.status().internal_errors == 0
    finally:
        publish_retained(private_broker, f"{TOPICS}/ack", b"")


def test_a_platform_that_acks_less_gets_the_records_again(
    station: UplinkStation, private_broker: MosquittoBroker
) -> None:
    """The platform is the authority: an upto lower than the agent believed makes the agent send again from
    there, records it (`uplink_unstable` platform_acked_less with both uptos), and the platform ends up holding
    every record once more, that one included."""
    platform = Platform(private_broker)
    try:
        settings = UplinkSection(broker=private_broker.address, ack_timeout_s=2.0, reconnect_min_s=0.2)
        head = station.record(10)
        uplink = station.uplink(settings)
        wait_until(lambda: uplink.status().acked_upto == head, DEADLINE_S, "every record acknowledged")
        rewinds = uplink.status().rewinds
        platform.forget_after(4)
        wait_until(lambda: platform.times_received(head) >= 2, DEADLINE_S, "the forgotten records sent again")
        assert all(platform.times_received(seq) >= 2 for seq in range(5, head + 1))
        recorded = head + 1
        wait_until(
            lambda: station.recorder.status().head_seq == recorded, DEADLINE_S, "the uplink_unstable record committed"
        )
        wait_until(lambda: uplink.status().acked_upto == recorded, DEADLINE_S, "the platform's new acks followed")
        assert platform.upto() == recorded
        assert uplink.status().rewinds == rewinds + 1
        unstable = station.events(EventKind.UPLINK_UNSTABLE)
        assert unstable == [
            {
                "kind": "uplink_unstable",
                "reason": "platform_acked_less",
                "count": 1,
                "believed_upto": head,
                "upto": 4,
            }
        ]
    finally:
        platform.close()


def test_a_broker_that_accepts_and_closes_is_knocked_on_less_and_less(station: UplinkStation) -> None:
    """Every session ends at once, so every one counts as a failure and the wait grows across them: a handful
    of connects in 5 s, where an immediate retry would make hundreds."""
    with RudeBroker("connack-close") as broker:
        station.record(2)
        uplink = station.uplink(UplinkSection(broker=f"127.0.0.1:{broker.port}", reconnect_min_s=1.0))
        wait_until(lambda: len(broker.connects()) >= 1, DEADLINE_S, "the first connect")
        first = broker.connects()[0]
        time.sleep(5.0)  # the behaviour under test: how many connects five seconds hold
        within = [at for at in broker.connects() if at - first <= 5.0]
        assert 2 <= len(within) <= 6, f"{len(within)} connects in 5 s"
        gaps = [later - earlier for earlier, later in itertools.pairwise(within)]
        assert all(gap >= 0.5 for gap in gaps), f"no reconnect without a wait: {gaps}"
        assert uplink.alive()


def test_a_broker_that_accepts_and_closes_is_recorded_as_sessions_short(station: UplinkStation) -> None:
    """The rude broker's CONNACK-and-close: after a run of short sessions the uplink makes one `uplink_unstable`
    record (sessions_short, no uptos), kept in the outbox, since that broker never takes it."""
    with RudeBroker("connack-close") as broker:
        station.record(1)
        settings = UplinkSection(broker=f"{broker.host}:{broker.port}", reconnect_min_s=0.2, reconnect_max_s=1.0)
        uplink = station.uplink(settings)
        wait_until(lambda: bool(station.stored_events(EventKind.UPLINK_UNSTABLE)), 30.0, "the record in the outbox")
        (stored,) = station.stored_events(EventKind.UPLINK_UNSTABLE)
        assert stored["reason"] == "sessions_short" and stored["count"] == 1
        assert stored["believed_upto"] is None and stored["upto"] is None
        assert len(broker.connects()) >= 3, "made after a run of short sessions, not the first"
        assert uplink.alive()


def test_a_twin_with_the_same_client_id_is_said_and_knocked_on_less(
    station: UplinkStation, private_broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A second client with the station's client id (reconnecting as paho does) ends the agent's session again
    and again. The agent names it, by MQTT 5's "session taken over" where the broker sends it and by the run of
    short sessions where it only closes (Mosquitto 2.0), and its backoff keeps the tug of war slow."""
    settings = UplinkSection(broker=private_broker.address, reconnect_min_s=0.5, reconnect_max_s=8.0)
    uplink = station.uplink(settings)
    wait_until(lambda: uplink.status().state == "online", DEADLINE_S, "online")
    connects = uplink.status().connects
    twin = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"station-agent-{STATION}", protocol=MQTTProtocolVersion.MQTTv5
    )
    with caplog.at_level(logging.WARNING, logger="agent.uplink"):
        twin.connect(private_broker.host, private_broker.port)
        twin.loop_start()
        try:
            said = {"uplink_session_taken_over", "uplink_sessions_short"}
            wait_until(lambda: any(r.getMessage() in said for r in caplog.records), 30.0, "the twin named")
            recorded = {event["reason"] for event in station.events(EventKind.UPLINK_UNSTABLE)}
            assert recorded & {"taken_over", "sessions_short"}, "the twin recorded as well as said"
            started = uplink.status().connects
            time.sleep(5.0)  # the behaviour under test: how many sessions the tug of war makes in five seconds
            assert uplink.status().connects - started <= 5, "a slow tug of war, not a storm"
        finally:
            twin.disconnect()
            twin.loop_stop()
    assert uplink.status().connects > connects and uplink.alive()


def test_acks_beyond_the_head_are_said_once_as_chain_behind_platform(
    station: UplinkStation, private_broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A platform that acks past the box's head (the box lost records it had sent) 200 times in a burst: one
    `chain_behind_platform` error naming the platform's upto, the head and the recover command, and at most a
    rate-limited line or two more, not one per ack."""
    head = station.record(5)
    settings = UplinkSection(broker=private_broker.address, protocol="3.1.1", reconnect_min_s=0.2)
    with caplog.at_level(logging.INFO, logger="agent.uplink"):
        uplink = station.uplink(settings)
        wait_until(lambda: uplink.status().state == "online", DEADLINE_S, "the uplink online")
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="platform-ahead", protocol=MQTTProtocolVersion.MQTTv5
        )
        client.connect(private_broker.host, private_broker.port)
        client.loop_start()
        try:
            for _ in range(200):
                client.publish(f"{TOPICS}/ack", b'{"upto": 9000}', qos=1).wait_for_publish(10)
            client.publish(f"{TOPICS}/ack", json.dumps({"upto": head}).encode(), qos=1).wait_for_publish(10)
        finally:
            client.disconnect()
            client.loop_stop()
        wait_until(lambda: uplink.status().acked_upto == head, DEADLINE_S, "the good ack after the burst taken")
    said = [getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == "chain_behind_platform"]
    repeated = [r for r in caplog.records if r.getMessage() == "uplink_ack_beyond_head"]
    assert len(said) == 1, said
    assert said[0]["platform_upto"] == 9000 and said[0]["head_seq"] == head
    assert "recover --after-seq 9000" in said[0]["fix"]
    assert len(repeated) <= 2, f"{len(repeated)} lines for one burst"


def test_offline_since_is_when_the_link_went_down_not_the_last_try(
    station: UplinkStation, private_broker: MosquittoBroker
) -> None:
    """While the broker is gone the uplink tries again and again (connecting, offline, connecting ...): its
    `since` stays at the moment it went down, so staff are told how long the outage really is."""
    station.record(2)
    uplink = station.uplink(
        UplinkSection(broker=private_broker.address, ack_mode="broker", reconnect_min_s=0.2, reconnect_max_s=0.4)
    )
    wait_until(lambda: uplink.status().state == "online", DEADLINE_S, "online")
    private_broker.stop()
    wait_until(lambda: uplink.status().state != "online", DEADLINE_S, "the link seen down")
    went_down_ms = uplink.status().since_ms
    connects = uplink.status().connects
    time.sleep(3.0)  # the behaviour under test: several reconnect tries (0.2 to 0.4 s apart) while the broker is gone
    status = uplink.status()
    assert status.state in ("connecting", "offline")
    assert status.since_ms == went_down_ms, "a reconnect try must not restart the outage's clock"
    private_broker.start()
    wait_until(lambda: uplink.status().state == "online", DEADLINE_S, "online again")
    assert uplink.status().since_ms > went_down_ms
    assert uplink.status().connects > connects


def test_what_is_posted_with_a_hang_up_waits_for_the_next_session(
    station: UplinkStation, private_broker: MosquittoBroker
) -> None:
    """The broker hangs up in the same moment as the recorder commits and the command desk replies (all three
    taken in one turn of the uplink thread): nothing posted behind the hang-up is lost. The next session sends
    the records up to the new head, with no further commit to remind it, and publishes the reply."""
    platform = Platform(private_broker)
    replies: list[bytes] = []
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="reply-reader", protocol=MQTTProtocolVersion.MQTTv5)
    subscribed = threading.Event()
    listener.on_connect = lambda c, *_: c.subscribe(f"{TOPICS}/cmd/reply", qos=1)
    listener.on_subscribe = lambda *_: subscribed.set()
    listener.on_message = lambda _c, _u, message: replies.append(bytes(message.payload))
    listener.connect(private_broker.host, private_broker.port)
    listener.loop_start()
    try:
        assert subscribed.wait(10), "the reply reader subscribed"
        before = station.record(3)
        settings = UplinkSection(broker=private_broker.address, protocol="3.1.1", reconnect_min_s=0.2)
        uplink = station.uplink(settings)
        wait_until(lambda: uplink.status().acked_upto == before, DEADLINE_S, "the first records acknowledged")
        station.uplinks.remove(uplink)  # the recorder's next commits reach it only as the notify below
        head = station.record(4)
        with uplink._wake:  # one turn of the uplink thread takes all three, in this order
            hung_up = ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")
            uplink._on_disconnect(listener, None, None, hung_up, None)  # as paho's thread calls it
            uplink.notify(head)
            uplink.reply(b'{"id": "c-1", "ok": true}')
        station.uplinks.append(uplink)
        wait_until(lambda: uplink.status().connects >= 2, DEADLINE_S, "a new session")
        wait_until(lambda: platform.upto() == head, DEADLINE_S, "the records committed with the hang-up delivered")
        wait_until(
            lambda: replies == [b'{"id": "c-1", "ok": true}'], DEADLINE_S, "the reply posted with the hang-up published"
        )
    finally:
        listener.disconnect()
        listener.loop_stop()
        platform.close()


QUEUE_FILLING = {"keepalive_s": 60, "ack_timeout_s": 1.0, "max_records_per_message": 1, "max_inflight_messages": 100}
"""One record a message, a hundred in flight, sent again every second: behind a hung broker paho's own queue
(256 messages) fills within seconds."""


def test_a_publish_that_cannot_go_now_does_not_say_the_link_is_down(
    station: UplinkStation, private_broker: MosquittoBroker
) -> None:
    """The broker hangs (no PUBACK, no ack, its connection open): every ack timeout sends the window again
    until paho's own queue is full and a publish is refused for the moment. Once the broker wakes, the records
    go and are acknowledged in the same session, and the status says online again (a link that carries records
    is not offline to the staff, the LED or the heartbeat)."""
    platform = Platform(private_broker)
    try:
        head = station.record(150)
        settings = UplinkSection(broker=private_broker.address, protocol="3.1.1", reconnect_min_s=0.2, **QUEUE_FILLING)
        uplink = station.uplink(settings)
        wait_until(lambda: uplink.status().state == "online", DEADLINE_S, "online")
        connects = uplink.status().connects
        private_broker.hang()
        try:
            wait_until(
                lambda: "queue" in (uplink.status().last_error or ""), DEADLINE_S, "a publish refused by the full queue"
            )
        finally:
            private_broker.wake()
        head = station.record(1)
        wait_until(lambda: uplink.status().acked_upto == head, DEADLINE_S, "every record acknowledged after the wake")
        status = uplink.status()
        assert (status.state, status.connects) == ("online", connects), status
    finally:
        platform.close()


def test_a_retained_ack_is_refused_and_sends_nothing_again(
    station: UplinkStation, private_broker: MosquittoBroker
) -> None:
    """Acks are never retained (contract), so a retained `{"upto": 1}` (left by a peer, or by a platform that got
    the flag wrong) answers nothing a session sent. The broker hands it over at every connect: it is refused as
    not_an_ack, not taken as a platform that lost everything after seq 1, which sent the whole backlog again at
    every reconnect. (The copy the broker queued for the box's persistent session while it was away arrives as
    an ordinary ack, once, and is taken as one.)"""
    platform = Platform(private_broker)
    try:
        head = station.record(20)
        settings = UplinkSection(broker=private_broker.address, protocol="3.1.1", reconnect_min_s=0.2)
        first = station.uplink(settings)
        wait_until(lambda: first.status().acked_upto == head, DEADLINE_S, "every record acknowledged")
        first.stop()
        publish_retained(private_broker, f"{TOPICS}/ack", b'{"upto": 1}')
        second = station.uplink(settings)
        wait_until(lambda: second.status().acks_refused >= 1, DEADLINE_S, "the retained copy refused")
        wait_until(lambda: second.status().acked_upto >= head, DEADLINE_S, "the queued copy's rewind made good")
        second.stop()
        sent_before = platform.times_received(2)
        third = station.uplink(settings)
        wait_until(lambda: third.status().acks_refused >= 1, DEADLINE_S, "the retained ack refused at the next connect")
        head = station.record(1)
        wait_until(lambda: third.status().acked_upto == head, DEADLINE_S, "the next record acknowledged")
        assert third.status().rewinds == 0 and platform.times_received(2) == sent_before, "nothing sent again"
        refused = station.events(EventKind.ACK_REFUSED)[-1]
        assert refused["reason"] == "not_an_ack" and "retained" in refused["detail"]
    finally:
        platform.close()
        publish_retained(private_broker, f"{TOPICS}/ack", b"")


def test_a_stop_while_the_broker_hangs_is_no_internal_error(
    station: UplinkStation, private_broker: MosquittoBroker
) -> None:
    """The broker hangs until paho's own queue is full, and the agent stops then: the offline status cannot be
    queued, which the stop says and goes on; the thread ends, no internal_error is recorded for it, and once the
    broker wakes, the retained status says offline."""
    head = station.record(150)
    settings = UplinkSection(broker=private_broker.address, protocol="3.1.1", **QUEUE_FILLING)
    uplink = station.uplink(settings)
    wait_until(lambda: uplink.status().state == "online" and uplink.status().head_seq == head, DEADLINE_S, "online")
    private_broker.hang()
    try:
        wait_until(
            lambda: "queue" in (uplink.status().last_error or ""), DEADLINE_S, "a publish refused by the full queue"
        )
        assert uplink.stop(), "the uplink thread ended"
    finally:
        private_broker.wake()
    assert uplink.status().internal_errors == 0
    assert station.events(EventKind.INTERNAL_ERROR) == []
    said: list[dict[str, Any]] = []
    reader = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="status-reader", protocol=MQTTProtocolVersion.MQTTv5)
    reader.on_connect = lambda c, *_: c.subscribe(f"{TOPICS}/status", qos=1)
    reader.on_message = lambda _c, _u, message: said.append(json.loads(message.payload))
    reader.connect(private_broker.host, private_broker.port)
    reader.loop_start()
    try:
        wait_until(
            lambda: bool(said) and said[-1]["state"] == "offline", DEADLINE_S, "the retained status says offline"
        )
    finally:
        reader.disconnect()
        reader.loop_stop()


def test_a_hole_in_the_outbox_is_tried_again_at_the_ack_timeout_not_at_once(
    station: UplinkStation, private_broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Records 5 and 6 deleted from the outbox by hand (a careless repair of a damaged file): the uplink cannot
    read what it must send next; it says so and tries again when the ack timeout comes round, instead of trying
    again at once, for ever, at full speed, with an error line each time."""
    head = station.record(10)
    connection = sqlite3.connect(station.outbox_path)
    with connection:
        connection.execute("DELETE FROM record WHERE seq IN (5, 6)")
    connection.close()
    settings = UplinkSection(broker=private_broker.address, protocol="3.1.1", ack_mode="broker", ack_timeout_s=1.0)
    with caplog.at_level(logging.INFO, logger="agent.uplink"):
        uplink = station.uplink(settings)
        wait_until(lambda: uplink.status().acked_upto == 4, DEADLINE_S, "the records before the hole acknowledged")
        time.sleep(2.5)  # the span measured: about two ack timeouts
        said = sum(1 for r in caplog.records if r.getMessage() == "uplink_records_missing")
    assert 1 <= said <= 4, f"{said} tries in 2.5 s"
    assert uplink.status().acked_upto == 4 and uplink.status().head_seq == head and uplink.alive()
