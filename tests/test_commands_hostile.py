"""Platform commands from a hostile publisher, against the agent as a process over a real Mosquitto: a flood of
junk on the cmd topic and an oversized command leave the records flowing and the desk answering."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from support.waiting import wait_until
from test_commands_link import CommandRig

from simulators.broker import MosquittoBroker
from simulators.platform.command import CommandError, sign_command

pytestmark = pytest.mark.slow

FLOOD = 2000


@pytest.fixture
def rig(tmp_path: Path, broker: MosquittoBroker) -> Iterator[CommandRig]:
    station = CommandRig(tmp_path, broker)
    try:
        yield station
    finally:
        station.close()


def publisher(rig: CommandRig) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="junk-sender", protocol=MQTTProtocolVersion.MQTTv5)
    host, port = rig.broker_address.rsplit(":", 1)
    client.connect(host, int(port))
    client.loop_start()
    return client


def ping_answered(rig: CommandRig, name: str, tries: int = 5) -> bool:
    """A signed ping, asked again with a new id when no reply comes, as the contract tells a platform to do: the
    tail of a flood may still fill the desk's queue when the first one arrives."""
    for attempt in range(tries):
        envelope = sign_command(rig.platform_key, rig.station, "ping", command_id=f"{name}-{attempt}")
        try:
            reply = rig.client.send(envelope, timeout_s=5)
        except CommandError:
            continue
        return bool(reply["id"] == f"{name}-{attempt}" and reply["ok"] is True)
    return False


def test_a_flood_of_junk_commands_does_not_hold_back_records(rig: CommandRig) -> None:
    """2,000 unsigned commands poured onto cmd: records are still acknowledged meanwhile, refusals become a
    bounded number of records (the hourly allowance), and a signed ping after the flood is answered."""
    topic = f"fsm/v1/{rig.station}/cmd"
    upto = rig.report().upto
    sender = publisher(rig)
    try:
        for n in range(FLOOD):
            sender.publish(topic, b'{"id": "junk-%d", "cmd": "ping", "args": {}}' % n, qos=1)
        wait_until(lambda: rig.report().upto >= upto + 5, 30, "five more records acknowledged during the flood")
    finally:
        sender.disconnect()
        sender.loop_stop()
    assert ping_answered(rig, "after-the-flood"), "a ping after the flood answered (asked again as the contract says)"
    assert rig.process.poll() is None, "the agent kept running"
    refused = [event for event in rig.events() if event["kind"] == "command_refused"]
    assert 1 <= len(refused) <= 60 + 5, "the hourly allowance of refusal records, not one per junk message"


def test_an_oversized_command_is_dropped_and_the_agent_answers_the_next(rig: CommandRig) -> None:
    """A 4 MB command never reaches the desk's parser (the broker holds it back under the agent's Maximum Packet
    Size, or the desk refuses it unread); the agent keeps running and answers a signed ping after it."""
    sender = publisher(rig)
    try:
        big = b'{"id": "big", "pad": "' + b"x" * 4 * 1024**2 + b'"}'
        sender.publish(f"fsm/v1/{rig.station}/cmd", big, qos=1).wait_for_publish(10)
    finally:
        sender.disconnect()
        sender.loop_stop()
    assert ping_answered(rig, "after-the-big-one") and rig.process.poll() is None
    assert not [event for event in rig.events() if event.get("command_id") == "big"], "never read as a command"
