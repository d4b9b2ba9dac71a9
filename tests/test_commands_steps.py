"""The command desk driven by hand: messages posted to its inbox wait until a `step(now)`, which answers one of
them as of the instant the test picks, on the test's own thread and with no sleep; what the desk records goes
through a real recorder into a real SQLite outbox file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.clock import FakeClock

from agent.clock import Instant, now_of
from agent.commands.desk import CommandDesk, CommandPorts
from agent.commands.inbox import CommandInbox
from agent.commands.replay import ReplayMemory
from agent.commands.settings import CommandsSection
from agent.containment import Boundary
from agent.contract.records import RecordType, format_ts
from agent.ledger.keys import DeviceKey
from agent.ledger.outbox import Outbox
from agent.ledger.recorder import Recorder
from agent.ledger.settings import OutboxSection
from agent.ledger.suites import PublicKey, Suite
from simulators.platform.command import sign_command

STATION = "DESK-0001"
ISSUED_MS = 1_800_000_000_000
TTL_S = 60
PLATFORM = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def command(command_id: str) -> bytes:
    """A ping signed by the platform, issued at ISSUED_MS and valid TTL_S seconds."""
    signed = sign_command(PLATFORM, STATION, "ping", command_id=command_id, issued_ms=ISSUED_MS, ttl_s=TTL_S)
    return json.dumps(signed).encode()


def at(wall_ms: int) -> Instant:
    return Instant(wall_ms / 1000, wall_ms)


class Desk:
    """A desk, its inbox and a recorder on one outbox file, wired as the daemon wires them; the uplink's side
    is the list of replies."""

    def __init__(self, workdir: Path, clock: FakeClock, **settings: Any) -> None:
        self.outbox = Outbox(workdir / "outbox.sqlite", 64 * 1024**2)
        self.recorder = Recorder(
            self.outbox, STATION, DeviceKey.from_private(Ed25519PrivateKey.generate()), OutboxSection(), clock
        )
        section = CommandsSection(
            enabled=True, platform_key=workdir / "platform.pem", state_path=workdir / "commands.json", **settings
        )
        self.inbox = CommandInbox(section, clock)
        self.replies: list[dict[str, Any]] = []
        public = PublicKey(Suite.ED25519, PLATFORM.public_key().public_bytes_raw())
        self.desk = CommandDesk(
            section,
            STATION,
            platform_keys={public.kid: public},
            replay=ReplayMemory(section.replay_memory, None),
            outbox_path=self.outbox.path,
            ports=CommandPorts(
                submit=self.recorder.submit,
                head_seq=lambda: self.recorder.head.seq,
                status=lambda: None,
                resend=lambda first, last: None,
                rotate_key=self.recorder.rotate_key,
                reply=lambda reply: self.replies.append(json.loads(reply)),
            ),
            clock=clock,
            boundary=Boundary("commands", self.recorder.submit, clock),
            inbox=self.inbox,
        )

    def close(self) -> None:
        assert self.desk.stop(), "a desk never started has no thread to end"
        self.outbox.close()

    def events(self) -> list[tuple[str, str, str]]:
        """The desk's events in the outbox file: kind, command id, ts."""
        stored = [json.loads(canonical) for canonical in self.outbox.canonical_since(RecordType.EVENT, 0)]
        return [(e["body"]["kind"], e["body"]["command_id"], e["ts"]) for e in stored]


def test_a_step_answers_one_message_as_of_its_instant_and_the_events_reach_the_outbox(tmp_path: Path) -> None:
    """Posted messages wait for a step; each step answers the oldest one, judged at the step's instant (a ping
    stepped past its expiry is refused as expired), and the events carry that instant once the recorder steps."""
    clock = FakeClock(ISSUED_MS)
    rig = Desk(tmp_path, clock)
    rig.inbox.post(command("early"))
    rig.inbox.post(command("late"))
    assert rig.replies == [], "nothing is answered before a step"
    first, second = at(ISSUED_MS + 1_000), at(ISSUED_MS + (TTL_S + 1) * 1000)
    assert rig.desk.step(first) is True
    assert [reply["id"] for reply in rig.replies] == ["early"], "one step, one message"
    assert rig.desk.step(second) is True
    assert rig.desk.step(second) is True, "a step with nothing posted answers nothing"
    early, late = rig.replies
    assert early == {"id": "early", "ok": True, "result": {"head_seq": 0, "pong": True, "ts": format_ts(first.wall_ms)}}
    assert (late["id"], late["ok"], late["error"]["reason"]) == ("late", False, "expired")
    rig.recorder.step(now_of(clock))
    assert rig.events() == [
        ("command_accepted", "early", format_ts(first.wall_ms)),
        ("command_refused", "late", format_ts(second.wall_ms)),
    ]
    assert rig.desk.status().accepted == 1 and rig.desk.status().refused == 1
    rig.close()


def test_the_stop_ends_the_steps_after_what_was_posted_before_it(tmp_path: Path) -> None:
    """A stop asked for behind two messages: two steps answer them, the third takes the stop and says so."""
    clock = FakeClock(ISSUED_MS)
    rig = Desk(tmp_path, clock)
    rig.inbox.post(command("a"))
    rig.inbox.post(command("b"))
    rig.inbox.ask_stop()
    now = at(ISSUED_MS)
    assert [rig.desk.step(now) for _ in range(3)] == [True, True, False]
    assert [reply["id"] for reply in rig.replies] == ["a", "b"]
    rig.close()


def test_the_inbox_keeps_queue_limit_messages_and_counts_the_rest(tmp_path: Path) -> None:
    """Beyond queue_limit waiting messages a post is dropped and counted; taking one makes room for the next; a
    stop is kept even when the inbox is full, what was posted before it is answered, and a post after it (it
    would wait unanswered behind the stop) is dropped and counted."""
    clock = FakeClock(ISSUED_MS)
    rig = Desk(tmp_path, clock, queue_limit=2)
    for name in ("a", "b", "dropped"):
        rig.inbox.post(command(name))
    now = at(ISSUED_MS)
    assert rig.desk.step(now) is True
    rig.inbox.post(command("c"))
    rig.inbox.ask_stop()
    rig.inbox.post(command("late"))
    assert [rig.desk.step(now) for _ in range(3)] == [True, True, False]
    assert [reply["id"] for reply in rig.replies] == ["a", "b", "c"]
    assert rig.desk.status().dropped == 2
    rig.close()
