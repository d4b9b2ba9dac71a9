"""Platform commands over a real Mosquitto: the agent as a process, the reference platform receiving its
records, and `station-sim command`'s client signing with the platform key. Every command works end to end, a
key rotation is followed by the platform and its audit, and each kind of bad command is refused with its
reason, in the reply and in a record."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.waiting import wait_until

from agent.ledger.keys import generate_key_file, load_key_file
from simulators.broker import MosquittoBroker
from simulators.platform.audit import audit
from simulators.platform.command import CommandClient, load_platform_key, make_platform_key, sign_command
from simulators.platform.keys import StationKey, keyring
from simulators.platform.receiver import PlatformReceiver, ReceiverConfig
from simulators.platform.report import StationReport
from simulators.platform.store import Store

pytestmark = pytest.mark.slow


class CommandRig:
    """An agent without field devices (heartbeats and events only), its platform, and a command client."""

    def __init__(self, workdir: Path, broker: MosquittoBroker) -> None:
        self.workdir = workdir
        self.broker_address = broker.address
        self.station = f"CMD-{uuid.uuid4().hex[:8]}"
        self.device_key = generate_key_file(workdir / "keys" / "device.key")
        (workdir / "station.pub").write_text(self.device_key.public_pem())
        self.platform_key_path = workdir / "platform.key"
        make_platform_key(self.platform_key_path)
        self.platform_key = load_platform_key(self.platform_key_path)
        settings = {
            "station": {"id": self.station, "allow_empty": True},
            "keys": {"device_key": "keys/device.key"},
            "outbox": {"path": "outbox.sqlite"},
            "uplink": {"broker": broker.address, "ack_timeout_s": 3.0, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
            "heartbeat": {"interval_s": 1},
            "status": {"path": "status.json", "interval_s": 0.2, "socket": "status.sock"},
            "commands": {
                "enabled": True,
                "platform_key": "platform.key.pub",
                "state_path": "commands.json",
                "refusals_per_hour": 60,
            },
        }
        self.config_path = workdir / "agent.toml"
        self.config_path.write_bytes(tomli_w.dumps(settings).encode())
        keys = keyring([StationKey.from_argument(f"{self.station}={workdir / 'station.pub'}")])
        self.keys = keys
        self.platform = PlatformReceiver(
            ReceiverConfig(
                host=broker.host,
                port=broker.port,
                db_path=workdir / "platform.sqlite",
                keys=keys,
                client_id=f"platform-{self.station}",
            )
        )
        self.platform.start()
        self.log = (workdir / "agent.log").open("ab")
        self.client = CommandClient(broker.host, broker.port, self.station)
        self.start_agent()

    def start_agent(self) -> None:
        upto = self.report().upto
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(self.config_path)],
            stdout=self.log,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )
        wait_until(lambda: self.report().upto > upto, 20, "the agent online")

    def report(self) -> StationReport:
        return self.platform.report().station(self.station)

    def send(self, cmd: str, args: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        return self.client.send(sign_command(self.platform_key, self.station, cmd, args, **fields), timeout_s=10)

    def raw(self, payload: bytes, reply_id: str | None) -> dict[str, Any]:
        self.client.publish(payload)
        return self.client.reply(reply_id, timeout_s=10)

    def events(self) -> list[dict[str, Any]]:
        with Store(self.workdir / "platform.sqlite", read_only=True) as store:
            return [json.loads(canonical)["body"] for canonical in store.accepted(self.station, "event")]

    def stop_agent(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(20)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.client.close()
        self.platform.stop()
        self.log.close()


@pytest.fixture
def rig(tmp_path: Path, broker: MosquittoBroker) -> Iterator[CommandRig]:
    station = CommandRig(tmp_path, broker)
    try:
        yield station
    finally:
        station.close()


def test_every_command_works_end_to_end_across_a_key_rotation(rig: CommandRig) -> None:
    """ping, status, resend and rotate-key answer on cmd/reply; the platform receives the resent records
    again and, after the rotation, takes the records signed by the new key, which only the old key announced."""
    pong = rig.send("ping", command_id="ping-1")
    assert pong["id"] == "ping-1" and pong["ok"] is True and pong["result"]["pong"] is True
    head = pong["result"]["head_seq"]
    assert head >= 1

    arguments = ["ping", "--key", str(rig.platform_key_path), "--station", rig.station, "--broker", rig.broker_address]
    command_line = subprocess.run(
        [sys.executable, "-m", "simulators.cli", "command", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert command_line.returncode == 0, command_line.stderr
    assert json.loads(command_line.stdout.splitlines()[-1])["result"]["pong"] is True

    status = rig.send("status")
    assert status["ok"] is True and status["result"]["station"] == rig.station
    assert {"health", "recorder", "uplink", "lines"} <= status["result"].keys(), "the snapshot of agent.status"

    wait_until(lambda: rig.report().upto >= head, 10, "the platform to hold the first records")
    duplicates = rig.report().duplicates
    resend = rig.send("resend", {"first": 1, "last": head + 1000})
    assert resend["ok"] is True
    resent_first, resent_last = resend["result"]["resent"]
    assert resent_first == 1 and resent_last >= head
    assert resend["result"]["left_out"] == [{"first": resent_last + 1, "last": head + 1000, "why": "not_made"}]
    wait_until(lambda: rig.report().duplicates >= duplicates + resent_last, 10, "the resent records at the platform")

    rotated = rig.send("rotate-key", command_id="rotate-1")
    assert rotated["ok"] is True, rotated
    assert rotated["result"]["old_kid"] == rig.device_key.kid != rotated["result"]["new_kid"]
    rotation_seq = rotated["result"]["seq"]
    wait_until(lambda: rig.report().upto >= rotation_seq + 2, 15, "records signed by the new key at the platform")
    old_key = rig.workdir / "keys" / "device.key.old"
    wait_until(lambda: not old_key.exists(), 10, "the old key destroyed once its rotation is acknowledged")
    assert rig.stop_agent() == 0
    wait_until(lambda: rig.report().upto == rig.report().highest_seq, 10, "the last records at the platform")

    report = rig.report()
    assert report.ok, report
    new_key = load_key_file(rig.workdir / "keys" / "device.key")
    assert new_key.kid == rotated["result"]["new_kid"]
    key_files = sorted(path.name for path in (rig.workdir / "keys").iterdir() if path.name != "chain-anchor.json")
    assert key_files == ["device.key"], "only the new private key is left: no .old, no .new"
    events = rig.events()
    accepted = [(e["command_id"], e["cmd"]) for e in events if e["kind"] == "command_accepted"]
    assert [cmd for _, cmd in accepted] == ["ping", "ping", "status", "resend", "rotate-key"]
    rotation = next(e for e in events if e["kind"] == "key_rotation")
    assert rotation["command_id"] == "rotate-1" and rotation["new_kid"] == new_key.kid
    assert audit(rig.workdir / "platform.sqlite", rig.keys).ok, "the audit follows the rotation from the first key"


def test_bad_commands_are_refused_with_their_reason_and_recorded(rig: CommandRig) -> None:
    """Replayed, expired, unsigned, wrongly signed, for another station, malformed: each reply names why (with
    the id only of what the platform signed), and each refusal is a command_refused event at the platform."""
    now_ms = int(time.time() * 1000)
    once = sign_command(rig.platform_key, rig.station, "ping", command_id="once")
    assert rig.client.send(once)["ok"] is True
    forged = sign_command(Ed25519PrivateKey.generate(), rig.station, "ping", command_id="forged")
    forged["kid"] = once["kid"]
    unsigned = sign_command(rig.platform_key, rig.station, "ping", command_id="bare")
    del unsigned["sig"]
    cases = [
        (json.dumps(once).encode(), "once", "replayed"),
        (
            json.dumps(
                sign_command(rig.platform_key, rig.station, "ping", command_id="old", issued_ms=now_ms - 7_200_000)
            ).encode(),
            "old",
            "expired",
        ),
        (json.dumps(unsigned).encode(), None, "unsigned"),
        (json.dumps(forged).encode(), None, "bad_signature"),
        (
            json.dumps(sign_command(rig.platform_key, "CMD-ELSEWHERE", "ping", command_id="lost")).encode(),
            "lost",
            "wrong_station",
        ),
        (b'{"id": "broken", ', None, "malformed"),
        (
            json.dumps(sign_command(rig.platform_key, rig.station, "reboot", command_id="rb")).encode(),
            "rb",
            "unknown_command",
        ),
    ]
    for payload, reply_id, reason in cases:
        reply = rig.raw(payload, reply_id)
        assert (reply["ok"], reply["error"]["reason"]) == (False, reason), reply
    wait_until(
        lambda: sum(e["kind"] == "command_refused" for e in rig.events()) >= len(cases),
        15,
        "the refusals recorded at the platform",
    )
    refused = [(e["command_id"], e["reason"]) for e in rig.events() if e["kind"] == "command_refused"]
    claimed = {"unsigned": "bare", "bad_signature": "forged"}
    assert refused == [(claimed.get(reason, reply_id), reason) for _, reply_id, reason in cases], (
        "the record keeps the id a message claimed; only its reply leaves it out"
    )


def test_a_rotation_cut_short_after_its_announcement_is_completed_at_the_next_start(rig: CommandRig) -> None:
    """A kill -9 after the key_rotation record was committed and before the key files were renamed leaves
    the old key in place and the new one beside it; the next start finishes the move and signs with the new
    key, which the platform already trusts."""
    keys = rig.workdir / "keys"
    first_key = (keys / "device.key").read_bytes()
    rotated = rig.send("rotate-key")
    assert rotated["ok"] is True
    assert rig.stop_agent() == 0
    (keys / "device.key").rename(keys / "device.key.new")
    (keys / "device.key.old").unlink(missing_ok=True)  # destroyed already if the platform acknowledged in time
    (keys / "device.key").write_bytes(first_key)
    (keys / "device.key").chmod(0o600)
    rig.start_agent()
    wait_until(lambda: [e for e in rig.events() if e["kind"] == "agent_start"][1:], 10, "the second agent_start")
    starts = [e for e in rig.events() if e["kind"] == "agent_start"]
    assert [start["kid"] for start in starts] == [rotated["result"]["old_kid"], rotated["result"]["new_kid"]]
    assert load_key_file(keys / "device.key").kid == rotated["result"]["new_kid"]
    assert not (keys / "device.key.new").exists()
    assert rig.stop_agent() == 0
    wait_until(lambda: rig.report().upto == rig.report().highest_seq, 10, "the last records at the platform")
    assert rig.report().ok
