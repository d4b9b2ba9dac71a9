"""The record path end to end: devices on a pty line and Modbus TCP, the agent as a process, a real broker,
the reference platform; and what happens when the broker goes away, the agent is killed, or the disk fills."""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import rfc8785
from outside_verifier import independent_verify
from paho.mqtt.enums import CallbackAPIVersion
from station_rig import STATION, StationRig
from support.mqtt import Wiretap
from support.waiting import wait_until

from agent.contract.records import HeartbeatBody
from agent.ledger.anchor import anchor_path, load_anchor
from agent.ledger.chain import seal
from agent.ledger.outbox import Outbox, OutboxFull, OutboxReader
from simulators.broker import MosquittoBroker
from simulators.platform.report import StationReport

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class RecordRun:
    """A clean run of the station, stopped once the platform had eight transactions and two heartbeats, as the
    platform, a wiretap on the broker and the simulated forecourt saw it."""

    records: list[dict[str, Any]]
    report: StationReport
    head_seq: int
    signatures: dict[int, str]
    public_pem: bytes
    sales: dict[str, list[Any]]


@pytest.fixture(scope="module")
def record_run(tmp_path_factory: pytest.TempPathFactory, module_broker: MosquittoBroker) -> RecordRun:
    """One run for the tests of the plain record path, which only look at what it left."""
    with StationRig(tmp_path_factory.mktemp("record_run"), module_broker) as rig:
        tap = Wiretap(rig.broker, STATION)
        try:
            rig.start_agent()
            wait_until(
                lambda: (
                    rig.platform_report().by_type.get("transaction", 0) >= 8
                    and rig.platform_report().by_type.get("heartbeat", 0) >= 2
                ),
                60,
                "eight transactions and two heartbeats",
            )
            assert rig.stop_agent() == 0
            rig.wait_platform_caught_up()
            wait_until(lambda: tap.has_seqs(rig.head_seq()), 10, "the wiretap to see every record the platform has")
        finally:
            tap.close()
        return RecordRun(
            rig.platform_records(),
            rig.platform_report(),
            rig.head_seq(),
            tap.signatures(),
            (rig.workdir / "station.pub").read_bytes(),
            dict(rig.simulated.sales()),
        )


class TestRecordPath:
    def test_platform_gets_every_record_and_outside_code_verifies_it(self, record_run: RecordRun) -> None:
        """Transactions, heartbeats and events arrive as seq 1..N, and a verifier written from the contract
        alone (not the agent's signing code, not the platform's) accepts every signature and link."""
        records = record_run.records
        report = record_run.report
        assert report.ok and report.upto == report.highest_seq == len(records) == record_run.head_seq
        independent_verify(STATION, records, record_run.signatures, record_run.public_pem)
        types = {record["type"] for record in records}
        assert {"transaction", "heartbeat", "event"} <= types
        assert records[0]["body"]["kind"] == "agent_start" and records[-1]["body"]["kind"] == "agent_stop"
        for record in records:
            if record["type"] == "transaction":
                body = record["body"]
                assert body["totalizer_volume_ml_after"] - (body["totalizer_volume_ml_before"] or 0) >= 0
                assert body["amount_fen"] == (body["volume_ml"] * body["price_fen_per_l"] + 500) // 1000

    def test_every_sale_is_one_transaction_measured_twice_and_a_clean_forecourt_raises_no_alarm(
        self, record_run: RecordRun
    ) -> None:
        """Between the first and the last sale the agent saw, every sale the controllers booked is one
        transaction at the platform with the controller's volume, the encoder's volume within one pulse of
        what really flowed, and the vapour recovered; with no fault anywhere, no alarm at all."""
        records = record_run.records
        recorded: dict[tuple[str, int], dict[str, Any]] = {}
        for record in records:
            if record["type"] == "transaction":
                key = (record["body"]["nozzle"], record["body"]["txn_no"])
                assert key not in recorded, f"sale {key} recorded twice"
                recorded[key] = record["body"]
        compared = 0
        for nozzle, sales in record_run.sales.items():
            seen = [txn for (name, txn) in recorded if name == nozzle]
            for sale in sales:
                if seen and min(seen) <= sale.txn_no <= max(seen):
                    body = recorded[(nozzle, sale.txn_no)]
                    assert body["volume_ml"] == sale.volume_ml
                    if body["pulse_volume_ml"] is not None:
                        assert abs(body["pulse_volume_ml"] - sale.real_volume_ml) <= 10
                        assert abs(body["vapour_ml"] - sale.vapour_ml) <= 10
                    compared += 1
        assert compared == len(recorded)
        measured = [body for body in recorded.values() if body["pulse_volume_ml"] is not None]
        assert len(measured) >= len(recorded) - 4, "only each nozzle's first sale may go unmeasured"
        assert all(900 <= body["al_permille"] <= 1300 for body in measured)
        assert [r["body"] for r in records if r["type"] == "alarm"] == []

    def test_clean_restart_and_config_change_are_events(self, rig: StationRig) -> None:
        """A clean stop is not reported as unclean; a changed config is a config_change event on the next start."""
        rig.start_agent()
        wait_until(lambda: rig.head_seq() >= 3, 20, "first records")
        assert rig.stop_agent() == 0
        rig.agent_settings["heartbeat"]["interval_s"] = 2
        rig.write_agent_config()
        rig.start_agent()
        wait_until(lambda: rig.platform_report().upto >= rig.head_seq() > 0, 20, "restart records at platform")
        rig.stop_agent()
        rig.wait_platform_caught_up()
        kinds = [r["body"].get("kind") for r in rig.platform_records() if r["type"] == "event"]
        assert kinds.count("agent_start") == 2 and kinds.count("agent_stop") == 2
        assert "unclean_stop" not in kinds
        assert kinds.count("config_change") == 1

    def test_mqtt_3_1_1_with_broker_acks(self, tmp_path: Path, private_broker: MosquittoBroker) -> None:
        """With MQTT 3.1.1 and acks from the broker (PUBACK), every record still reaches the platform in order
        and the agent counts records as done without waiting for the platform."""
        rig = StationRig(tmp_path, private_broker, agent={"uplink": {"protocol": "3.1.1", "ack_mode": "broker"}})
        try:
            rig.simulated.start()
            rig.platform.start()
            rig.start_agent()
            wait_until(lambda: rig.platform_report().by_type.get("transaction", 0) >= 2, 40, "two transactions")
            rig.stop_agent()
            rig.wait_platform_caught_up()
            assert rig.status()["recorder"]["acked_upto"] == rig.head_seq()
            assert rig.platform_report().ok
        finally:
            rig.close()


class TestBrokerTrouble:
    def test_broker_down_for_a_while_loses_nothing_and_keeps_order(self, rig: StationRig) -> None:
        """Records made while the broker is dead (heartbeats say offline) arrive after it returns, in order."""
        rig.start_agent()
        rig.wait_platform_caught_up()
        rig.broker.stop(kill=True)
        wait_until(lambda: rig.status().get("uplink", {}).get("state") != "online", 10, "uplink to notice")
        made_before = rig.head_seq()
        wait_until(lambda: rig.head_seq() >= made_before + 5, 20, "records made while offline")
        # Sales come faster than heartbeats (one a second): wait until one has found the uplink offline too.
        wait_until(lambda: _offline_heartbeats(rig) > 0, 20, "a heartbeat that found the uplink offline")
        assert rig.status()["health"] in ("degraded", "fault")
        rig.broker.start()
        # Back online first: the status (and its head_seq) is a second old, and a stop while the uplink still
        # reconnects leaves the last records in the outbox for the next run, which this test does not start.
        wait_until(lambda: rig.status().get("uplink", {}).get("state") == "online", 20, "the uplink back online")
        rig.wait_platform_caught_up(timeout_s=40)
        rig.stop_agent()
        rig.wait_platform_caught_up()
        report = rig.platform_report()
        records = rig.platform_records()
        assert report.ok and [r["seq"] for r in records] == list(range(1, len(records) + 1))
        offline_heartbeats = [r for r in records if r["type"] == "heartbeat" and r["body"]["uplink"] == "offline"]
        assert offline_heartbeats, "heartbeats go on while offline and say so"

    def test_records_the_platform_never_got_are_sent_again_without_waiting_for_the_timeout(
        self, tmp_path: Path, private_broker: MosquittoBroker
    ) -> None:
        """Records published before the platform subscribed are lost on the broker; the platform's first acks
        stay below them, and the agent sends again from there within seconds, not after ack_timeout_s."""
        rig = StationRig(tmp_path, private_broker, agent={"uplink": {"ack_timeout_s": 600.0}})
        try:
            rig.simulated.start()
            rig.start_agent()
            wait_until(lambda: rig.status().get("uplink", {}).get("records_published", 0) >= 5, 20, "records sent")
            rig.platform.start()
            rig.wait_platform_caught_up(timeout_s=30)
            rig.stop_agent()
            rig.wait_platform_caught_up()
            assert rig.status()["uplink"]["rewinds"] >= 1
            assert rig.platform_report().ok
        finally:
            rig.close()

    def test_broker_restarted_in_the_middle_of_a_drain(self, tmp_path: Path, private_broker: MosquittoBroker) -> None:
        """A backlog of thousands is drained; a broker crash half-way costs re-sends only, never a record."""
        rig = StationRig(tmp_path, private_broker, agent={"uplink": {"max_records_per_message": 20}})
        try:
            prefill(rig, count=4000)
            rig.simulated.start()
            rig.platform.start()
            rig.start_agent()
            wait_until(lambda: rig.platform_report().upto >= 800, 60, "the drain to be under way")
            assert rig.platform_report().upto < 3000, "drain too fast to interrupt; raise the backlog"
            rig.broker.stop(kill=True)
            wait_until(lambda: rig.status().get("uplink", {}).get("state") != "online", 10, "the uplink to notice")
            rig.broker.start()
            rig.wait_platform_caught_up(timeout_s=60)
            rig.stop_agent()
            rig.wait_platform_caught_up()
            report = rig.platform_report()
            assert report.ok, report
            assert report.upto == report.highest_seq == rig.head_seq() > 4000
        finally:
            rig.close()


class TestLiveLane:
    def test_fresh_records_go_out_while_a_backlog_drains(self, tmp_path: Path, private_broker: MosquittoBroker) -> None:
        """With thousands of old records still draining, records made now are already on the wire, and the
        platform still ends with one contiguous chain."""
        rig = StationRig(tmp_path, private_broker, agent={"uplink": {"max_records_per_message": 10}})
        tap = Wiretap(rig.broker, STATION)
        try:
            prefill(rig, count=6000)
            rig.simulated.start()
            rig.platform.start()
            rig.start_agent()
            wait_until(lambda: max(tap.signatures(), default=0) > 6000, 30, "a fresh record on the wire")
            assert rig.platform_report().upto < 6000, "the fresh record overtook the backlog"
            rig.wait_platform_caught_up(timeout_s=60)
            rig.stop_agent()
            rig.wait_platform_caught_up()
            report = rig.platform_report()
            assert report.ok and report.upto == rig.head_seq()
        finally:
            tap.close()
            rig.close()


class TestPowerCuts:
    def test_kill_9_at_random_moments_leaves_a_gap_free_chain(self, rig: StationRig) -> None:
        """Killed -9 at random moments while records are made and sent (the first kills land in the drain of
        a backlog), the agent always resumes the chain: the platform ends with seq 1..N, no gap, no fork,
        every signature valid, one unclean_stop per kill, and no sale recorded twice."""
        chance = random.Random(20261127)
        kills = 10
        prefill(rig, count=3000)
        for _ in range(kills):
            rig.start_agent()
            wait_until(rig.status_path.exists, 20, "the agent to start")
            time.sleep(chance.uniform(0.3, 2.5))  # the behaviour under test: a kill at a random moment
            rig.kill_agent()
        rig.start_agent()
        rig.wait_platform_caught_up(timeout_s=40)
        wait_until(lambda: rig.head_seq() > 0, 10, "a status")
        rig.stop_agent()
        rig.wait_platform_caught_up()
        report = rig.platform_report()
        assert report.ok, report
        assert report.forks == () and report.chain_breaks == () and report.gaps == ()
        records = rig.platform_records()
        assert [r["seq"] for r in records] == list(range(1, rig.head_seq() + 1))
        kinds = [r["body"].get("kind") for r in records if r["type"] == "event"]
        assert kinds.count("unclean_stop") == kills
        transactions = [(r["body"]["nozzle"], r["body"]["txn_no"]) for r in records if r["type"] == "transaction"]
        assert len(transactions) == len(set(transactions)), "a sale recorded twice across a kill"
        assert all(r["type"] != "chain_reset" for r in records), "a kill -9 on an intact outbox made a chain_reset"
        anchor = load_anchor(anchor_path(rig.workdir / "keys" / "device.key"))
        assert anchor is not None and anchor.seq == records[-1]["seq"]
        assert anchor.digest == hashlib.sha256(rfc8785.dumps(records[-1])).hexdigest()


class TestFullDisk:
    def test_full_outbox_goes_red_keeps_everything_and_recovers_when_acks_free_space(
        self, tmp_path: Path, private_broker: MosquittoBroker
    ) -> None:
        """With the outbox at its cap and the platform away, status turns to fault and the status topic says
        why; once the platform acks, acknowledged records are pruned, and an outbox_full alarm raised and
        cleared reaches the platform with every record in between."""
        rig = StationRig(tmp_path, private_broker, agent={"outbox": {"max_bytes": 1024**2, "pending_limit": 1000}})
        try:
            prefill(rig, count=None)
            rig.simulated.start()
            rig.start_agent()
            wait_until(lambda: rig.status().get("recorder", {}).get("state") == "full", 30, "the outbox to be full")
            status = rig.status()
            assert status["health"] == "fault"
            assert any(problem["kind"] == "outbox_full" for problem in status["problems"])
            retained = retained_status(rig.broker)
            assert retained["health"] == "fault" and "outbox_full outbox" in retained["faults"]
            rig.platform.start()
            wait_until(lambda: rig.status().get("recorder", {}).get("state") == "ok", 60, "the outbox to recover")
            rig.wait_platform_caught_up(timeout_s=60)
            rig.stop_agent()
            rig.wait_platform_caught_up()
            report = rig.platform_report()
            assert report.ok and report.upto == rig.head_seq()
            alarms = [r["body"] for r in rig.platform_records() if r["type"] == "alarm"]
            assert [(a["kind"], a["state"]) for a in alarms] == [("outbox_full", "raised"), ("outbox_full", "cleared")]
        finally:
            rig.close()


def _offline_heartbeats(rig: StationRig) -> int:
    """Heartbeats in the agent's outbox that found the uplink offline (read through a read-only connection)."""
    outbox = OutboxReader(rig.workdir / rig.agent_settings["outbox"]["path"])
    try:
        first = outbox.first_seq() or 1
        return sum(b'"uplink":"offline"' in record.canonical for record in outbox.read(first, 10**9))
    finally:
        outbox.close()


def prefill(rig: StationRig, count: int | None) -> None:
    """Records made earlier by this station (same key), as if it had been offline: `count` of them, or until
    the outbox's cap (config outbox.max_bytes) is reached."""
    settings = rig.agent_settings["outbox"]
    outbox = Outbox(rig.workdir / settings["path"], settings.get("max_bytes", 256 * 1024**2))
    head = outbox.head()
    made = 0
    try:
        while count is None or made < count:
            batch = [
                HeartbeatBody(60, made + i, "offline", made + i, 0, 2).intent(1_795_000_000_000 + (made + i) * 60_000)
                for i in range(min(100, (count or 10**9) - made))
            ]
            records, next_head = seal(batch, head, STATION, rig.key)
            try:
                outbox.append(records)
            except OutboxFull:
                break
            head, made = next_head, made + len(records)
    finally:
        outbox.close()
    assert made > 0


def retained_status(broker: MosquittoBroker) -> dict[str, Any]:
    """The retained message on the station's status topic, as a new subscriber sees it."""
    received: list[dict[str, Any]] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="status-reader")
    client.on_message = lambda _c, _u, message: received.append(json.loads(message.payload))
    client.connect(broker.host, broker.port)
    client.subscribe(f"fsm/v1/{STATION}/status", qos=1)
    client.loop_start()
    try:
        wait_until(
            lambda: bool(received) and received[-1].get("health") == "fault", 15, "a retained status with a fault"
        )
    finally:
        client.disconnect()
        client.loop_stop()
    return received[-1]
