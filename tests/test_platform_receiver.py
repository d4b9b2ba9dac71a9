"""The receiver over a real Mosquitto: verify, store, then ack; persistent session across restarts."""

from __future__ import annotations

import dataclasses
import json
import socket
import sqlite3
import threading
import time
import uuid
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from test_platform_signer import ZEROS, StationClient, TinySigner, canonical, sha256_hex
from test_platform_verify_fast import agent_payload

import simulators.platform.receiver as receiver_module
from simulators.broker import MosquittoBroker, free_loopback_port
from simulators.platform.audit import audit
from simulators.platform.keys import StationKey, keyring
from simulators.platform.receiver import PlatformReceiver, ReceiverConfig, ReceiverError
from simulators.platform.store import Ingested, Store
from simulators.platform.verify import Verdict

STATION = "ST-0001"


@pytest.fixture
def signer() -> TinySigner:
    return TinySigner(STATION)


@pytest.fixture
def config(broker: MosquittoBroker, tmp_path: Path, signer: TinySigner) -> ReceiverConfig:
    """A receiver of its own on the shared broker: its own topic prefix and its own session."""
    tag = uuid.uuid4().hex[:8]
    return ReceiverConfig(
        host=broker.host,
        port=broker.port,
        db_path=tmp_path / "platform.sqlite",
        keys=keyring([StationKey(STATION, signer.platform_key())]),
        prefix=f"t{tag}/v1",
        client_id=f"platform-{tag}",
    )


@pytest.fixture
def receiver(config: ReceiverConfig) -> Iterator[PlatformReceiver]:
    with PlatformReceiver(config) as running:
        yield running


@pytest.fixture
def station(broker: MosquittoBroker, config: ReceiverConfig) -> Iterator[StationClient]:
    client = StationClient(broker, config.prefix, STATION)
    yield client
    client.close()


def send_all(station: StationClient, signer: TinySigner, messages: list[list[dict[str, Any]]]) -> list[int]:
    """Publish each list of records as one message; the upto of every ack, once all have come."""
    before = len(station.acks)
    for records in messages:
        station.publish("records", signer.message(records))
    return [ack["upto"] for ack in station.wait_acks(before + len(messages))[before:]]


def wait_for_ack(station: StationClient, upto: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The acks, once `{"upto": upto}` is among them. A receiver stopped between a message's ack and its PUBACK
    gets it again at the next start, and acks it again first: a count of acks cannot tell when that is over."""
    deadline = time.monotonic() + timeout_s
    while {"upto": upto} not in station.acks and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {"upto": upto} in station.acks, f"no ack of {upto} came within {timeout_s} s: {station.acks}"
    return list(station.acks)


def test_valid_chain_is_stored_and_acked(
    receiver: PlatformReceiver, station: StationClient, signer: TinySigner
) -> None:
    """Every message of a valid chain is acked with the seq it completes."""
    chain = signer.chain(7)
    assert send_all(station, signer, [chain[:3], chain[3:4], chain[4:]]) == [3, 4, 7]
    report = receiver.report().station(STATION)
    assert (report.accepted, report.upto, report.by_type, report.ok) == (7, 7, {"heartbeat": 7}, True)
    assert receiver.report().ok


def test_ack_is_exactly_upto_json(receiver: PlatformReceiver, station: StationClient, signer: TinySigner) -> None:
    """The ack payload is the contract's `{"upto": N}` and nothing else."""
    send_all(station, signer, [signer.chain(1)])
    assert station.acks == [{"upto": 1}]


def test_live_ahead_of_backlog_ends_fully_acked(
    receiver: PlatformReceiver, station: StationClient, signer: TinySigner
) -> None:
    """Live records sent before the old backlog are kept; the ack jumps once the backlog fills the hole."""
    chain = signer.chain(20)
    acks = send_all(station, signer, [chain[15:18], chain[18:], chain[:5], chain[5:10], chain[10:15]])
    assert acks == [0, 0, 5, 10, 20]
    report = receiver.report().station(STATION)
    assert (report.upto, report.gaps, report.ok) == (20, (), True)


def test_gap_is_reported_and_not_acked_past(
    receiver: PlatformReceiver, station: StationClient, signer: TinySigner
) -> None:
    """A missing record holds the ack below it and shows as a missing range."""
    chain = signer.chain(8)
    assert send_all(station, signer, [chain[:3], chain[5:]]) == [3, 3]
    report = receiver.report().station(STATION).to_json()
    assert (report["upto"], report["highest_seq"], report["gaps"], report["ok"]) == (3, 8, [[4, 5]], False)


def test_resend_is_counted_as_duplicate_and_acked_again(
    receiver: PlatformReceiver, station: StationClient, signer: TinySigner
) -> None:
    """An agent that re-sends learns where the platform is: duplicates are acked too."""
    chain = signer.chain(4)
    assert send_all(station, signer, [chain, chain[2:]]) == [4, 4]
    report = receiver.report().station(STATION)
    assert (report.duplicates, report.accepted, report.ok) == (2, 4, True)


def test_messages_framed_as_the_agent_frames_them_are_checked_alike(
    receiver: PlatformReceiver, station: StationClient, signer: TinySigner, config: ReceiverConfig
) -> None:
    """Canonical payloads (the quick way): a replay is duplicates, a forged record refused, a fork and a gap kept."""
    chain = signer.chain(6)
    forged = agent_payload(chain[3:5], signer).replace(canonical(chain[3]), canonical({**chain[3], "body": {"n": 40}}))
    forked = agent_payload([signer.record(2, chain[1]["prev"], body={"n": -2})], signer)
    before = len(station.acks)
    for payload in (agent_payload(chain[:3], signer), agent_payload(chain[:3], signer), forged, forked):
        station.publish("records", payload)
    assert [ack["upto"] for ack in station.wait_acks(before + 4)[before:]] == [3, 3, 3, 3]
    station.publish("records", agent_payload(chain[3:], signer))
    assert station.wait_acks(before + 5)[-1] == {"upto": 6}
    receiver.stop()
    report = audit(config.db_path, config.keys).station(STATION)
    assert (report.accepted, report.upto, report.duplicates, report.forks) == (6, 6, 4, (2,))
    assert (report.rejections, report.chain_breaks, report.gaps) == ({"bad_signature": 1}, (), ())


def test_fork_is_reported_and_the_stored_record_kept(
    receiver: PlatformReceiver, station: StationClient, signer: TinySigner, config: ReceiverConfig
) -> None:
    """A second, different record for seq 2 is a fork; the first record of seq 2 is what stays stored."""
    chain = signer.chain(3)
    forked = signer.record(2, chain[1]["prev"], body={"n": -2})
    assert send_all(station, signer, [chain, [forked]]) == [3, 3]
    receiver.stop()
    report = audit(config.db_path, config.keys).station(STATION)
    assert (report.forks, report.accepted, report.upto, report.ok) == ((2,), 3, 3, False)


def test_broken_prev_is_a_chain_break(receiver: PlatformReceiver, station: StationClient, signer: TinySigner) -> None:
    """A validly signed record whose prev is not the hash of the one before is a chain break at its seq."""
    chain = signer.chain(2)
    chain.append(signer.record(3, "00" * 31 + "01"))
    assert send_all(station, signer, [chain]) == [2]
    report = receiver.report().station(STATION)
    assert (report.chain_breaks, report.upto, report.ok) == ((3,), 2, False)


def test_bad_messages_are_rejected_for_their_reasons_and_still_acked(
    receiver: PlatformReceiver, station: StationClient, signer: TinySigner
) -> None:
    """Each kind of bad input lands in its own count, and every records message still gets an ack."""
    chain = signer.chain(3)
    stranger = TinySigner(STATION)
    tampered = signer.item(chain[0])
    tampered["record"] = chain[0] | {"ts": "2026-11-27T08:00:00.000Z"}
    payloads = [
        b"{not json",
        b'{"records": []}',
        stranger.message(chain),
        json.dumps({"kid": signer.kid, "records": [tampered]}).encode(),
        signer.message([chain[0] | {"extra": True}]),
        signer.message([signer.record(1, ZEROS, body={"volume_ml": 1.5})]),
        signer.message([chain[0], chain[2]]),
    ]
    for payload in payloads:
        station.publish("records", payload)
    assert [ack["upto"] for ack in station.wait_acks(len(payloads))] == [0] * len(payloads)
    report = receiver.report().station(STATION).to_json()
    assert {key: report[key] for key in ("malformed", "unknown_kid", "bad_signatures", "accepted")} == {
        "malformed": 2,
        "unknown_kid": 1,
        "bad_signatures": 1,
        "accepted": 0,
    }
    assert report["contract_violations"] == {"float_in_body": 1, "record_keys": 1, "seq_not_contiguous": 1}
    assert report["ok"] is False


def test_status_is_kept_and_unknown_stations_counted(
    broker: MosquittoBroker,
    receiver: PlatformReceiver,
    station: StationClient,
    signer: TinySigner,
    config: ReceiverConfig,
) -> None:
    """The last status payload is kept; another station's traffic is counted, ignored and never acked."""
    other = StationClient(broker, config.prefix, "ST-9999")
    try:
        station.publish("status", b'{"state": "online", "agent": "0.1.0"}', retain=True)
        other.publish("records", signer.message(signer.chain(1)))
        send_all(station, signer, [signer.chain(1)])
        assert other.acks == []
    finally:
        other.close()
    report = receiver.report()
    assert report.unknown_stations == {"ST-9999": 1}
    assert report.station(STATION).status == {"state": "online", "agent": "0.1.0"}
    assert report.ok


@pytest.mark.parametrize("mqtt_version", ["5", "3.1.1"])
def test_restart_keeps_state_and_gets_what_was_sent_while_down(
    config: ReceiverConfig, station: StationClient, signer: TinySigner, mqtt_version: str
) -> None:
    """The session is persistent: messages published while the receiver was stopped arrive after start."""
    config = dataclasses.replace(config, mqtt_version=mqtt_version)
    chain = signer.chain(9)
    receiver = PlatformReceiver(config)
    with receiver:
        assert send_all(station, signer, [chain[:3]]) == [3]
    assert receiver.report().station(STATION).upto == 3
    for part in (chain[3:6], chain[6:]):
        station.publish("records", signer.message(part))
    with receiver:
        assert [ack["upto"] for ack in station.wait_acks(3)] == [3, 6, 9]
        report = receiver.report().station(STATION)
    assert (report.accepted, report.upto, report.ok) == (9, 9, True)


def test_report_is_safe_to_read_while_messages_flow(
    receiver: PlatformReceiver, station: StationClient, signer: TinySigner
) -> None:
    """report() from other threads while the network thread stores records never fails or sees half a message."""
    chain = signer.chain(60)
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        seen = [0]
        try:
            while not done.is_set():
                report = receiver.report().station(STATION)
                assert report.upto == report.accepted >= seen[-1], (report, seen[-1])
                seen.append(report.upto)
        except BaseException as error:
            errors.append(error)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    send_all(station, signer, [chain[k : k + 3] for k in range(0, 60, 3)])
    done.set()
    for reader in readers:
        reader.join(timeout=5)
    assert errors == []
    assert receiver.report().station(STATION).upto == 60


def test_start_without_a_broker_fails_with_the_address(tmp_path: Path, signer: TinySigner) -> None:
    """No broker: start() gives up after the timeout and says where it looked and what to do."""
    port = free_loopback_port()
    config = ReceiverConfig(
        host="127.0.0.1",
        port=port,
        db_path=tmp_path / "p.sqlite",
        keys=keyring([StationKey(STATION, signer.platform_key())]),
        connect_timeout_s=0.5,
    )
    with pytest.raises(ReceiverError, match=f"no MQTT broker answered at 127.0.0.1:{port} within 0.5 s; start"):
        PlatformReceiver(config).start()


def test_start_fails_fast_when_the_broker_refuses(tmp_path: Path, signer: TinySigner) -> None:
    """A broker that answers CONNECT with "not authorised" makes start() fail at once, quoting the refusal."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(5)

        def refuse() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(bytes([0x20, 0x02, 0x00, 0x05]))
                connection.recv(1024)

        thread = threading.Thread(target=refuse)
        thread.start()
        config = ReceiverConfig(
            host="127.0.0.1",
            port=server.getsockname()[1],
            db_path=tmp_path / "p.sqlite",
            keys=keyring([StationKey(STATION, signer.platform_key())]),
            mqtt_version="3.1.1",
        )
        started = time.monotonic()
        with pytest.raises(ReceiverError, match=r"refused: connection refused \(Not authorized\); check its access"):
            PlatformReceiver(config).start()
        assert time.monotonic() - started < 3
        thread.join(timeout=5)


def test_config_without_a_client_id_is_refused(config: ReceiverConfig) -> None:
    """A persistent session needs a name."""
    with pytest.raises(ValueError, match="client_id is empty"):
        dataclasses.replace(config, client_id="")


def test_report_before_any_start_is_refused(config: ReceiverConfig) -> None:
    """There is nothing to report before the first start."""
    with pytest.raises(ReceiverError, match="has never run"):
        PlatformReceiver(config).report()


def test_hand_built_record_is_acked_over_mqtt(
    receiver: PlatformReceiver, station: StationClient, signer: TinySigner
) -> None:
    """A record built field by field here, not by the chain helper, verifies end to end."""
    record = {
        "v": 1,
        "station": STATION,
        "seq": 1,
        "ts": "2026-11-27T08:15:02.113Z",
        "type": "transaction",
        "body": {"volume_ml": 40125, "amount_fen": 30094, "price_fen_per_l": 750},
        "prev": ZEROS,
    }
    second = signer.record(2, sha256_hex(canonical(record)))
    assert send_all(station, signer, [[record, second]]) == [2]
    assert receiver.report().station(STATION).by_type == {"transaction": 1, "heartbeat": 1}


def test_a_bad_signature_mid_message_stops_the_ack_before_it(
    receiver: PlatformReceiver, station: StationClient, signer: TinySigner
) -> None:
    """One record of a message that does not verify is rejected alone: the records after it are kept above the
    hole it leaves, the ack stops just below it, and the true record sent again moves the ack past them all."""
    chain = signer.chain(6)
    items = [TinySigner(STATION).item(record) if record["seq"] == 4 else signer.item(record) for record in chain]
    station.publish("records", json.dumps({"kid": signer.kid, "records": items}).encode())
    assert [ack["upto"] for ack in station.wait_acks(1)] == [3]
    report = receiver.report().station(STATION)
    assert (report.accepted, report.gaps, report.rejections) == (5, ((4, 4),), {"bad_signature": 1})
    assert send_all(station, signer, [chain[3:4]]) == [6]
    assert receiver.report().station(STATION).gaps == ()


def test_a_burst_is_acked_message_by_message_as_if_taken_one_at_a_time(
    receiver: PlatformReceiver, station: StationClient, signer: TinySigner
) -> None:
    """Forty messages published at once, out of order and some twice, are stored in runs of one transaction:
    each is still acked, in arrival order, with exactly the upto a receiver taking them one by one would give."""
    chain = signer.chain(120)
    parts = [chain[first : first + 4] for first in range(0, len(chain), 4)]
    order = [*parts[10:20], *parts[:5], parts[3], *parts[5:10], *parts[20:], parts[12]]
    expected, held, upto = [], set(), 0
    for part in order:
        held.update(record["seq"] for record in part)
        while upto + 1 in held:
            upto += 1
        expected.append(upto)
    assert send_all(station, signer, order) == expected
    report = receiver.report().station(STATION)
    assert (report.accepted, report.duplicates, report.upto, report.ok) == (120, 8, 120, True)


def rotated_chain(signer: TinySigner, successor: TinySigner) -> list[dict[str, Any]]:
    """Records 1-3 by `signer`, 4 a key_rotation event (signed by it) handing trust to `successor`, 5-8 by it."""
    raw = successor.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    chain = signer.chain(3)
    body = {
        "kind": "key_rotation",
        "old_kid": signer.kid,
        "new_kid": successor.kid,
        "new_public_key": b64encode(raw).decode(),
    }
    chain.append(signer.record(4, sha256_hex(canonical(chain[-1])), body=body, type_="event"))
    for seq in range(5, 9):
        chain.append(successor.record(seq, sha256_hex(canonical(chain[-1]))))
    return chain


def test_a_key_handed_over_signs_the_very_next_message(
    receiver: PlatformReceiver, station: StationClient, signer: TinySigner
) -> None:
    """A key_rotation event and records signed by the key it hands over, published back to back: the next
    message is checked against the new key, although the checks of messages overlap."""
    successor = TinySigner(STATION)
    chain = rotated_chain(signer, successor)
    before = len(station.acks)
    station.publish("records", signer.message(chain[:4]))
    station.publish("records", successor.message(chain[4:6]))
    station.publish("records", successor.message(chain[6:]))
    assert [ack["upto"] for ack in station.wait_acks(before + 3)[before:]] == [4, 6, 8]
    report = receiver.report().station(STATION)
    assert (report.accepted, report.rejections, report.ok) == (8, {}, True)


def test_a_key_is_handed_over_only_once_its_rotation_is_stored(
    config: ReceiverConfig, station: StationClient, signer: TinySigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails on the key_rotation's message: the key it carries is not trusted (the records it signs
    are refused as of an unknown kid) until the broker delivers the rotation again and it is stored."""
    successor = TinySigner(STATION)
    chain = rotated_chain(signer, successor)
    take = Store._take
    failing = [True]

    def fails_on_the_rotation(store: Store, station_id: str, verdict: Verdict) -> Ingested:
        if failing[0] and any(record.type == "event" for record in verdict.accepted):
            raise sqlite3.OperationalError("disk I/O error")
        return take(store, station_id, verdict)

    monkeypatch.setattr(Store, "_take", fails_on_the_rotation)
    with PlatformReceiver(config) as receiver:
        before = len(station.acks)
        for records, by in ((chain[:3], signer), (chain[3:4], signer), (chain[4:], successor)):
            station.publish("records", by.message(records))
        assert [ack["upto"] for ack in station.wait_acks(before + 2)[before:]] == [3, 3]
        assert receiver.report().station(STATION).rejections == {"unknown_kid": 1}
    failing[0] = False
    with receiver:
        assert wait_for_ack(station, 4)[-1] == {"upto": 4}
        station.publish("records", successor.message(chain[4:]))
        assert wait_for_ack(station, 8)[-1] == {"upto": 8}
        report = receiver.report().station(STATION)
    assert (report.accepted, report.upto, report.gaps, report.rejections) == (8, 8, (), {"unknown_kid": 1})


def test_a_message_that_cannot_be_stored_is_left_for_the_broker_to_deliver_again(
    config: ReceiverConfig, station: StationClient, signer: TinySigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails on one message of a run taken together: the others are stored and acked, that one is not
    PUBACKed, so the broker delivers it again at the next start, and then it is stored and acked."""
    chain = signer.chain(8)
    take = Store._take
    failing = [True]

    def fails_on_seq_5(store: Store, station_id: str, verdict: Verdict) -> Ingested:
        if failing[0] and any(record.seq == 5 for record in verdict.accepted):
            raise sqlite3.OperationalError("disk I/O error")
        return take(store, station_id, verdict)

    monkeypatch.setattr(Store, "_take", fails_on_seq_5)
    with PlatformReceiver(config) as receiver:
        before = len(station.acks)
        for first in range(0, 8, 2):
            station.publish("records", signer.message(chain[first : first + 2]))
        assert [ack["upto"] for ack in station.wait_acks(before + 3)[before:]] == [2, 4, 4]
        assert receiver.report().station(STATION).gaps == ((5, 6),)
    failing[0] = False
    with receiver:
        assert wait_for_ack(station, 8)[-1] == {"upto": 8}
        report = receiver.report().station(STATION)
    assert (report.accepted, report.upto, report.ok) == (8, 8, True)


def test_a_message_taken_before_the_broker_restarted_is_not_pubacked_on_the_new_connection(
    private_broker: MosquittoBroker, tmp_path: Path, signer: TinySigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message stored after the broker came back is not PUBACKed on the new connection, where its packet id
    names another message, one the store failed on: that one is delivered again at the next start, and stored."""
    config = ReceiverConfig(
        host=private_broker.host,
        port=private_broker.port,
        db_path=tmp_path / "platform.sqlite",
        keys=keyring([StationKey(STATION, signer.platform_key())]),
        client_id="platform-restart",
    )
    chain = signer.chain(6)
    storing, release, failing = threading.Event(), threading.Event(), [True]
    take, set_status = Store._take, Store.set_status
    on_message, on_subscribe = PlatformReceiver._on_message, PlatformReceiver._on_subscribe
    taken, subscribed = threading.Semaphore(0), threading.Semaphore(0)

    def held(store: Store, station_id: str, status: Any) -> None:
        storing.set()
        assert release.wait(10), "the test did not release the store"
        set_status(store, station_id, status)

    def failing_on_seq_5(store: Store, station_id: str, verdict: Verdict) -> Ingested:
        if failing[0] and any(record.seq == 5 for record in verdict.accepted):
            raise sqlite3.OperationalError("disk I/O error")
        return take(store, station_id, verdict)

    def counting_message(receiver: PlatformReceiver, *args: Any) -> None:
        on_message(receiver, *args)
        taken.release()

    def counting_subscribe(receiver: PlatformReceiver, *args: Any) -> None:
        on_subscribe(receiver, *args)
        subscribed.release()

    monkeypatch.setattr(Store, "set_status", held)
    monkeypatch.setattr(Store, "_take", failing_on_seq_5)
    monkeypatch.setattr(PlatformReceiver, "_on_message", counting_message)
    monkeypatch.setattr(PlatformReceiver, "_on_subscribe", counting_subscribe)
    with PlatformReceiver(config) as receiver:
        assert subscribed.acquire(timeout=5)
        first = StationClient(private_broker, config.prefix, STATION)
        first.publish("status", b'{"state": "online", "agent": "0.1.0"}')
        assert storing.wait(5), "the status was not taken to the store"
        first.publish("records", signer.message(chain[:2]))
        first.close()
        private_broker.stop(kill=True)
        private_broker.start()
        assert subscribed.acquire(timeout=15), "the receiver did not subscribe again on the new broker"
        station = StationClient(private_broker, config.prefix, STATION)
        station.publish("records", signer.message(chain[2:4]))
        station.publish("records", signer.message(chain[4:]))
        assert all(taken.acquire(timeout=5) for _ in range(4)), "not every message was taken"
        release.set()
        assert station.wait_acks(2) == [{"upto": 2}, {"upto": 4}]
    failing[0] = False
    with receiver:
        assert wait_for_ack(station, 6)[-1] == {"upto": 6}
    station.close()


def test_a_backlog_longer_to_store_than_the_connect_timeout_does_not_fail_the_start(
    config: ReceiverConfig, station: StationClient, signer: TinySigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker hands the session's backlog over before the SUBACK: a start that it keeps busy past the
    connect timeout still starts (the backlog shows the session's subscriptions are in place) and acks it all."""
    config = dataclasses.replace(config, connect_timeout_s=1.0)
    chain = signer.chain(200)
    receiver = PlatformReceiver(config)
    with receiver:
        assert send_all(station, signer, [chain[:1]]) == [1]
    topic = f"{config.prefix}/{STATION}/records"
    sent = [station._client.publish(topic, signer.message(chain[seq : seq + 1]), qos=1) for seq in range(1, 200)]
    for info in sent:
        info.wait_for_publish(timeout=5)
    take = Store._take

    def slow(store: Store, station_id: str, verdict: Verdict) -> Ingested:
        time.sleep(0.02)
        return take(store, station_id, verdict)

    monkeypatch.setattr(Store, "_take", slow)
    with receiver:
        assert wait_for_ack(station, 200, timeout_s=20)[-1] == {"upto": 200}


def test_large_messages_wait_on_the_broker_while_the_store_is_busy_not_in_memory(
    config: ReceiverConfig, station: StationClient, signer: TinySigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages are taken off the network only while the payload bytes waiting for the store stay within
    QUEUED_BYTES, however few they are; the rest wait on the broker, and all are stored and acked in the end."""
    monkeypatch.setattr(receiver_module, "QUEUED_BYTES", 100_000)
    chain = [signer.record(seq, ZEROS, body={"pad": "x" * 30_000}) for seq in range(1, 11)]
    release = threading.Event()
    take, on_message = Store._take, PlatformReceiver._on_message
    taken = threading.Semaphore(0)

    def held(store: Store, station_id: str, verdict: Verdict) -> Ingested:
        assert release.wait(10), "the test did not release the store"
        return take(store, station_id, verdict)

    def counting_message(receiver: PlatformReceiver, *args: Any) -> None:
        on_message(receiver, *args)
        taken.release()

    monkeypatch.setattr(Store, "_take", held)
    monkeypatch.setattr(PlatformReceiver, "_on_message", counting_message)
    with PlatformReceiver(config):
        for record in chain:
            station.publish("records", signer.message([record]))
        assert all(taken.acquire(timeout=5) for _ in range(3))  # 3 x 30 kB fit in 100 kB
        assert not taken.acquire(timeout=1), "a fourth message was taken into memory"
        release.set()
        assert len(station.wait_acks(10)) == 10
