"""Platform commands without a broker: the envelope's checks, the replay memory and its file, the refusal
bucket, what a resend can resend, the desk end to end on fake ports, and the key rotation on a real outbox."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from support.clock import FakeClock
from support.waiting import wait_until

from agent.commands.desk import CommandDesk, CommandPorts
from agent.commands.envelope import Command, Limits, Refusal, Refused, check_envelope
from agent.commands.handlers import LeftOut, ResendArgs, plan_resend
from agent.commands.refusals import RefusalGate
from agent.commands.replay import ReplayMemory
from agent.commands.replay_file import ReplayFileError, load_replay, save_replay
from agent.commands.settings import CommandsSection
from agent.containment import Boundary
from agent.contract.records import HeartbeatBody, RecordIntent, format_ts
from agent.ledger.chain import seal
from agent.ledger.key_rotation import (
    destroy_key_file,
    finish_rotation,
    new_key_path,
    old_key_path,
    prepare_new_key,
    rotation_cursor,
)
from agent.ledger.keys import DeviceKey, KeyFileError, KeySpec, generate_key_file, load_key_file
from agent.ledger.outbox import Outbox, OutboxReader
from agent.ledger.recorder import KeyRotationFailed, Recorder
from agent.ledger.recorder_inbox import KeyRotated
from agent.ledger.settings import OutboxSection
from agent.ledger.suites import PublicKey, Suite
from simulators.platform.command import sign_command
from simulators.platform.rotation import announced_key

STATION = "CMD-0001"
NOW_MS = 1_800_000_000_000
LIMITS = Limits(max_skew_ms=30_000, max_lifetime_ms=3_600_000, max_bytes=16 * 1024)
PLATFORM = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
STRANGER = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))


def platform_keys() -> dict[str, Any]:
    public = PublicKey(Suite.ED25519, PLATFORM.public_key().public_bytes_raw())
    return {public.kid: public}


def envelope(cmd: str = "ping", args: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """A correctly signed envelope issued at NOW_MS, valid 60 s."""
    signed = sign_command(PLATFORM, STATION, cmd, args, command_id=changes.pop("id", "c-1"), issued_ms=NOW_MS)
    signed.update(changes)
    return signed


def check(message: dict[str, Any] | bytes, now_ms: int = NOW_MS) -> Command | Refused:
    payload = message if isinstance(message, bytes) else json.dumps(message).encode()
    return check_envelope(payload, STATION, platform_keys(), now_ms, LIMITS)


def resigned(message: dict[str, Any], key: Ed25519PrivateKey = PLATFORM) -> dict[str, Any]:
    """The message signed again after a change, by hand: RFC 8785 of the values used here is sorted, compact JSON."""
    unsigned = {k: v for k, v in message.items() if k != "sig"}
    data = json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()
    return {**unsigned, "sig": base64.b64encode(key.sign(data)).decode()}


def heartbeat(ts_ms: int) -> RecordIntent:
    return HeartbeatBody(
        interval_s=60, uptime_s=0, uplink="offline", unacked=0, devices_online=0, devices_total=0
    ).intent(ts_ms)


class TestEnvelope:
    def test_a_signed_command_passes_with_its_fields(self) -> None:
        """A well-formed, signed, current command for this station comes out typed."""
        command = check(envelope("resend", {"first": 1, "last": 5}))
        assert command == Command("c-1", "resend", {"first": 1, "last": 5}, NOW_MS, NOW_MS + 60_000, command.kid)  # type: ignore[union-attr]
        assert isinstance(command, Command) and command.kid in platform_keys()

    def test_a_hand_signed_command_passes(self) -> None:
        """The signature is over the sorted, compact JSON of the envelope without sig, not the simulator's bytes."""
        assert isinstance(check(resigned(envelope())), Command)

    @pytest.mark.parametrize(
        ("message", "reason"),
        [
            ({k: v for k, v in envelope().items() if k != "sig"}, Refusal.UNSIGNED),
            ({**envelope(), "sig": ""}, Refusal.UNSIGNED),
            ({**envelope(), "cmd": "rotate-key"}, Refusal.BAD_SIGNATURE),
            ({**envelope(), "sig": "not base64"}, Refusal.BAD_SIGNATURE),
            (resigned(envelope(), STRANGER), Refusal.BAD_SIGNATURE),
            ({**envelope(), "kid": "0123456789abcdef"}, Refusal.UNKNOWN_KID),
            (envelope(station="CMD-0002"), Refusal.BAD_SIGNATURE),
        ],
        ids=["no-sig", "empty-sig", "tampered", "sig-not-base64", "other-key", "unknown-kid", "station-swapped"],
    )
    def test_what_the_platform_did_not_sign_is_refused(self, message: dict[str, Any], reason: Refusal) -> None:
        """Unsigned, tampered, or signed by another key: refused before anything in it is believed."""
        refused = check(message)
        assert isinstance(refused, Refused) and refused.reason == reason

    def test_another_station_is_refused_even_when_signed(self) -> None:
        refused = check(resigned(envelope(station="CMD-0002")))
        assert isinstance(refused, Refused) and refused.reason == Refusal.WRONG_STATION
        assert "CMD-0002" in refused.detail and refused.id == "c-1"

    @pytest.mark.parametrize(
        ("now_ms", "reason"),
        [
            (NOW_MS + 60_000, Refusal.EXPIRED),
            (NOW_MS + 59_999, None),
            (NOW_MS - 30_000, None),
            (NOW_MS - 30_001, Refusal.ISSUED_IN_FUTURE),
        ],
        ids=["at-expiry", "just-before-expiry", "issued-at-max-skew", "issued-beyond-skew"],
    )
    def test_times_are_judged_by_the_agents_clock(self, now_ms: int, reason: Refusal | None) -> None:
        """Expiry is exclusive; an issue time up to max_skew ahead of the agent's clock is accepted."""
        outcome = check(envelope(), now_ms)
        assert (outcome.reason if isinstance(outcome, Refused) else None) == reason

    def test_a_lifetime_beyond_the_limit_is_refused(self) -> None:
        message = resigned({**envelope(), "expires": format_ts(NOW_MS + 3_600_001)})
        refused = check(message)
        assert isinstance(refused, Refused) and refused.reason == Refusal.LIFETIME_TOO_LONG

    @pytest.mark.parametrize(
        "payload",
        [
            b"not json",
            b"[1, 2]",
            b'{"id": "a", "id": "b", "sig": "x"}',
            json.dumps({**envelope(), "extra": 1}).encode(),
            json.dumps({k: v for k, v in envelope().items() if k != "expires"}).encode(),
            json.dumps(resigned(envelope(args={"first": 1.5}))).encode(),
            json.dumps(resigned(envelope(args={"nested": {"a": 1}}))).encode(),
            json.dumps(resigned({**envelope(), "issued": "yesterday"})).encode(),
            json.dumps(resigned({**envelope(), "expires": format_ts(NOW_MS - 1)})).encode(),
            json.dumps(resigned({**envelope(), "id": "has spaces"})).encode(),
        ],
        ids=[
            "not-json",
            "not-object",
            "duplicate-key",
            "extra-key",
            "missing-key",
            "float",
            "nested-args",
            "bad-time",
            "expires-before-issued",
            "bad-id",
        ],
    )
    def test_malformed_envelopes_are_refused_as_malformed(self, payload: bytes) -> None:
        refused = check(payload)
        assert isinstance(refused, Refused) and refused.reason == Refusal.MALFORMED, refused

    def test_untrusted_text_is_not_echoed_raw(self) -> None:
        """An id that is not of the documented form is not echoed; a quoted station is ASCII and short."""
        refused = check(json.dumps({**envelope(), "id": "\ud800" * 3, "sig": ""}).encode())
        assert isinstance(refused, Refused) and refused.id is None
        long_station = check(resigned(envelope(station="\u00e9" * 200)))
        assert isinstance(long_station, Refused) and long_station.detail.isascii() and len(long_station.detail) < 120


class TestReplayMemory:
    def test_an_id_is_refused_until_it_expires_and_after_by_the_floor(self) -> None:
        memory = ReplayMemory(16)
        assert memory.replay_problem("a", NOW_MS + 60_000) is None
        memory.remember("a", NOW_MS + 60_000, NOW_MS)
        assert memory.replay_problem("a", NOW_MS + 60_000) is not None
        memory.remember("b", NOW_MS + 200_000, NOW_MS + 100_000)
        assert memory.state().expiries == (("b", NOW_MS + 200_000),)
        assert memory.replay_problem("a", NOW_MS + 60_000) is not None, "a clock stepped back must not reopen it"
        assert memory.replay_problem("c", NOW_MS + 60_001) is None

    def test_a_full_memory_forgets_the_first_to_expire_and_refuses_what_expires_before_it(self) -> None:
        memory = ReplayMemory(16)
        for n in range(17):
            memory.remember(f"id-{n}", NOW_MS + 1000 * (n + 1), NOW_MS)
        assert len(memory.state().expiries) == 16 and memory.state().floor_ms == NOW_MS + 1000
        assert memory.replay_problem("fresh", NOW_MS + 1000) is not None
        assert memory.replay_problem("fresh", NOW_MS + 1001) is None

    def test_the_file_round_trips_and_a_damaged_one_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "state" / "commands.json"
        assert load_replay(path) is None
        memory = ReplayMemory(16)
        save_replay(path, memory.remember("a", NOW_MS + 60_000, NOW_MS))
        restarted = ReplayMemory(16, load_replay(path))
        assert restarted.replay_problem("a", NOW_MS + 60_000) is not None
        path.write_text("{")
        with pytest.raises(ReplayFileError, match="delete it and wait"):
            load_replay(path)


class TestRefusalGate:
    def test_a_burst_is_recorded_then_counted_and_the_counts_ride_on_the_next_record(self) -> None:
        gate = RefusalGate(per_hour=3, now_ms=0)
        assert [gate.admit("bad_signature", 0) for _ in range(3)] == [{}, {}, {}]
        assert gate.admit("bad_signature", 1) is None and gate.admit("unsigned", 2) is None
        assert gate.suppressed == 2
        assert gate.admit("unsigned", 10 * 60_000) is None, "a token takes 20 minutes to come back"
        assert gate.admit("expired", 20 * 60_000) == {"bad_signature": 1, "unsigned": 2}
        assert gate.suppressed == 0

    def test_a_flood_costs_records_at_the_configured_rate(self) -> None:
        """10,000 refusals in an hour make at most the burst plus an hour's refill of records."""
        gate = RefusalGate(per_hour=60, now_ms=0)
        outcomes = [gate.admit("unsigned", n * 360) for n in range(10_000)]
        recorded = [counts for counts in outcomes if counts is not None]
        assert len(recorded) <= 120, "the burst of 60 and 60 refilled"
        reported = sum(sum(counts.values()) for counts in recorded)
        assert len(recorded) + reported + gate.suppressed == 10_000, "every refusal is recorded or counted"


class TestResendPlan:
    @pytest.mark.parametrize(
        ("wanted", "oldest", "head", "resend", "left_out"),
        [
            ((3, 5), 1, 9, (3, 5), ()),
            ((1, 12), 3, 9, (3, 9), (LeftOut(1, 2, "pruned"), LeftOut(10, 12, "not_made"))),
            ((1, 2), 3, 9, None, (LeftOut(1, 2, "pruned"),)),
            ((10, 12), 3, 9, None, (LeftOut(10, 12, "not_made"),)),
            ((1, 5), None, 9, None, (LeftOut(1, 5, "pruned"),)),
            ((1, 100), 1, 100, (1, 40), (LeftOut(41, 100, "over_limit"),)),
        ],
        ids=["kept", "both-ends", "all-pruned", "not-made", "outbox-empty", "over-limit"],
    )
    def test_every_requested_seq_is_resent_or_said_why_not(
        self,
        wanted: tuple[int, int],
        oldest: int | None,
        head: int,
        resend: tuple[int, int] | None,
        left_out: tuple[LeftOut, ...],
    ) -> None:
        plan = plan_resend(ResendArgs(*wanted), oldest_kept=oldest, head=head, max_records=40)
        assert (plan.resend, plan.left_out) == (resend, left_out)


class FakePorts:
    """The desk's surroundings, recorded: pure logic is tested against these, the real wiring in the link test."""

    def __init__(self) -> None:
        self.intents: list[RecordIntent] = []
        self.resent: list[tuple[int, int]] = []
        self.rotations: list[str | None] = []
        self.replies: list[bytes] = []
        self.snapshot: dict[str, object] | None = {"health": "ok"}
        """The status the agent built last; None: none yet."""

    def ports(self) -> CommandPorts:
        return CommandPorts(
            submit=self.intents.append,
            head_seq=lambda: 7,
            status=lambda: self.snapshot,
            resend=lambda first, last: self.resent.append((first, last)),
            rotate_key=self._rotate,
            reply=self.replies.append,
        )

    def _rotate(self, command_id: str | None) -> Future[KeyRotated]:
        self.rotations.append(command_id)
        done: Future[KeyRotated] = Future()
        done.set_exception(KeyRotationFailed("key not rotated: records cannot be stored now"))
        return done

    def events(self) -> list[dict[str, Any]]:
        return [intent.body.as_json() for intent in self.intents]


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    """An outbox holding records 3..7 (1 and 2 pruned)."""
    outbox = Outbox(tmp_path / "outbox.sqlite", 8 * 1024**2)
    key = DeviceKey.from_private(STRANGER)
    records, _ = seal([heartbeat(NOW_MS + n) for n in range(7)], outbox.head(), STATION, key)
    outbox.append(records)
    outbox.prune(2, None, None)
    outbox.close()
    return tmp_path / "outbox.sqlite"


def make_desk(tmp_path: Path, outbox_path: Path, fake: FakePorts, clock: FakeClock, **settings: Any) -> CommandDesk:
    section = CommandsSection(
        enabled=True, platform_key=tmp_path / "unused.pem", state_path=tmp_path / "commands.json", **settings
    )
    return CommandDesk(
        section,
        STATION,
        platform_keys=platform_keys(),
        replay=ReplayMemory(section.replay_memory, load_replay(section.state_path)),
        outbox_path=outbox_path,
        ports=fake.ports(),
        clock=clock,
        boundary=Boundary("commands", fake.intents.append, clock),
    )


def ask(desk: CommandDesk, message: dict[str, Any] | bytes) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(
        desk.handle(message if isinstance(message, bytes) else json.dumps(message).encode())
    )
    return reply


class TestDesk:
    def test_each_command_answers_and_is_recorded_before_it_acts(self, tmp_path: Path, outbox_path: Path) -> None:
        fake, clock = FakePorts(), FakeClock(NOW_MS)
        desk = make_desk(tmp_path, outbox_path, fake, clock)
        try:
            assert ask(desk, envelope("ping", id="p")) == {
                "id": "p",
                "ok": True,
                "result": {"head_seq": 7, "pong": True, "ts": format_ts(NOW_MS)},
            }
            assert ask(desk, envelope("status", id="s"))["result"] == {"health": "ok"}
            resend = ask(desk, envelope("resend", {"first": 1, "last": 9}, id="r"))
            assert resend["result"] == {
                "first": 1,
                "last": 9,
                "resent": [3, 7],
                "left_out": [{"first": 1, "last": 2, "why": "pruned"}, {"first": 8, "last": 9, "why": "not_made"}],
            }
            assert fake.resent == [(3, 7)]
            rotate = ask(desk, envelope("rotate-key", id="k"))
            assert rotate == {
                "id": "k",
                "ok": False,
                "error": {"reason": "failed", "detail": rotate["error"]["detail"]},
            }
            assert "cannot be stored" in rotate["error"]["detail"] and fake.rotations == ["k"]
        finally:
            desk.stop()
        events = fake.events()
        assert [(e["kind"], e["command_id"], e["cmd"]) for e in events] == [
            ("command_accepted", "p", "ping"),
            ("command_accepted", "s", "status"),
            ("command_accepted", "r", "resend"),
            ("command_accepted", "k", "rotate-key"),
        ]
        assert events[2]["args"] == {"first": 1, "last": 9} and events[2]["issued"] == format_ts(NOW_MS)

    def test_status_before_the_first_snapshot_fails_saying_to_ask_again(
        self, tmp_path: Path, outbox_path: Path
    ) -> None:
        """Before the agent has built a status, `status` is accepted and answers `failed` with the way out; once a
        snapshot is there, it answers that snapshot."""
        fake = FakePorts()
        fake.snapshot = None
        desk = make_desk(tmp_path, outbox_path, fake, FakeClock(NOW_MS))
        try:
            early = ask(desk, envelope("status", id="s1"))
            fake.snapshot = {"health": "warning"}
            later = ask(desk, envelope("status", id="s2"))
        finally:
            desk.stop()
        assert (early["ok"], early["error"]["reason"]) == (False, "failed")
        assert (
            early["error"]["detail"].startswith("no status snapshot to give yet")
            and "ask again" in early["error"]["detail"]
        )
        assert later == {"id": "s2", "ok": True, "result": {"health": "warning"}}

    def test_a_stop_with_a_full_queue_behind_a_waiting_rotation_keeps_to_its_timeout(
        self, tmp_path: Path, outbox_path: Path
    ) -> None:
        """The desk waits for a key rotation the recorder has not carried out (a slow disk) and its queue is full:
        its stop still returns within its timeout, saying the thread has not ended (so the agent's stop counts as
        unclean) instead of waiting for a slot in the queue for as long as the rotation takes."""
        waiting: Future[KeyRotated] = Future()

        class StuckRecorder(FakePorts):
            def _rotate(self, command_id: str | None) -> Future[KeyRotated]:
                self.rotations.append(command_id)
                return waiting

        fake = StuckRecorder()
        desk = make_desk(tmp_path, outbox_path, fake, FakeClock(NOW_MS), queue_limit=1)
        desk.start()
        try:
            desk.post(json.dumps(envelope("rotate-key", id="k")).encode())
            wait_until(lambda: fake.rotations == ["k"], 10, "the desk to wait for the rotation")
            desk.post(b"{}")
            started = time.monotonic()
            ended = desk.stop(timeout_s=1.0)
            took_s = time.monotonic() - started
            desk.post(b"{}")
            assert desk.inbox.counts().dropped == 1, "a command arriving once the desk stops is dropped and counted"
        finally:
            waiting.set_exception(KeyRotationFailed("key not rotated: records cannot be stored now"))
        assert ended is False and took_s < 5.0, f"stop took {took_s:.1f} s"
        assert desk.stop(timeout_s=10.0), "the desk ends once the rotation is answered"

    def test_refusals_answer_with_the_reason_and_are_recorded(self, tmp_path: Path, outbox_path: Path) -> None:
        fake = FakePorts()
        desk = make_desk(tmp_path, outbox_path, fake, FakeClock(NOW_MS))
        try:
            first = envelope(id="once")
            assert ask(desk, first)["ok"] is True
            replies = [
                ask(desk, first),
                ask(desk, {k: v for k, v in envelope(id="u").items() if k != "sig"}),
                ask(desk, envelope("reboot", id="x")),
                ask(desk, envelope("resend", {"first": 5, "last": 1}, id="y")),
                ask(desk, b"\xff"),
            ]
        finally:
            desk.stop()
        assert [(r["id"], r["ok"], r["error"]["reason"]) for r in replies] == [
            ("once", False, "replayed"),
            (None, False, "unsigned"),
            ("x", False, "unknown_command"),
            ("y", False, "bad_args"),
            (None, False, "malformed"),
        ], "an unsigned message does not choose the id of its reply"
        refused = [e for e in fake.events() if e["kind"] == "command_refused"]
        assert [(e["command_id"], e["reason"]) for e in refused] == [
            ("once", "replayed"),
            ("u", "unsigned"),
            ("x", "unknown_command"),
            ("y", "bad_args"),
            (None, "malformed"),
        ]

    def test_a_restart_does_not_reopen_the_replay_window(self, tmp_path: Path, outbox_path: Path) -> None:
        """The id is on disk before the command runs; a new desk (a restarted agent) refuses it again."""
        clock = FakeClock(NOW_MS)
        first = make_desk(tmp_path, outbox_path, FakePorts(), clock)
        assert ask(first, envelope(id="once"))["ok"] is True
        first.stop()
        again = make_desk(tmp_path, outbox_path, FakePorts(), clock)
        try:
            assert ask(again, envelope(id="once"))["error"]["reason"] == "replayed"
        finally:
            again.stop()

    def test_a_flood_of_refusals_is_counted_not_recorded(self, tmp_path: Path, outbox_path: Path) -> None:
        fake, clock = FakePorts(), FakeClock(NOW_MS)
        desk = make_desk(tmp_path, outbox_path, fake, clock, refusals_per_hour=5)
        unsigned = json.dumps({k: v for k, v in envelope().items() if k != "sig"}).encode()
        try:
            replies = [ask(desk, unsigned) for _ in range(200)]
            clock.advance(3600)
            ask(desk, unsigned)
        finally:
            desk.stop()
        assert all(reply["error"]["reason"] == "unsigned" for reply in replies), "every message is answered"
        refused = [e for e in fake.events() if e["kind"] == "command_refused"]
        assert len(refused) == 6
        assert refused[-1]["suppressed"] == 195 and refused[-1]["suppressed_by_reason"] == {"unsigned": 195}
        assert desk.status().refused == 201

    def test_the_thread_answers_what_was_posted_and_drops_what_did_not_fit(
        self, tmp_path: Path, outbox_path: Path
    ) -> None:
        """post() never blocks: beyond queue_limit a message is dropped and counted; the rest are answered in
        order by the desk's thread, an empty message included."""
        fake = FakePorts()
        desk = make_desk(tmp_path, outbox_path, fake, FakeClock(NOW_MS), queue_limit=2)
        desk.post(b"")
        desk.post(json.dumps(envelope(id="p")).encode())
        desk.post(json.dumps(envelope(id="dropped")).encode())
        assert desk.status().dropped == 1
        desk.start()
        desk.stop()
        replies = [json.loads(reply) for reply in fake.replies]
        assert [(r["id"], r["ok"]) for r in replies] == [(None, False), ("p", True)]
        assert replies[0]["error"]["reason"] == "malformed"


class TestKeyFiles:
    def test_a_new_key_is_private_and_a_leftover_is_replaced(self, tmp_path: Path) -> None:
        path = tmp_path / "device.key"
        generate_key_file(path)
        first = prepare_new_key(path, KeySpec())
        second = prepare_new_key(path, KeySpec())
        assert first.kid != second.kid and load_key_file(new_key_path(path)).kid == second.kid
        assert stat.S_IMODE(os.stat(new_key_path(path)).st_mode) == 0o600

    @pytest.mark.parametrize("renamed_old", [False, True], ids=["before-renames", "between-renames"])
    def test_an_announced_rotation_is_completed_at_start(self, tmp_path: Path, renamed_old: bool) -> None:
        path = tmp_path / "device.key"
        old = generate_key_file(path)
        new = prepare_new_key(path, KeySpec())
        if renamed_old:
            os.replace(path, old_key_path(path))
        cursors = {rotation_cursor(new.kid, NOW_MS).key: NOW_MS}
        assert finish_rotation(path, cursors) == "completed"
        assert load_key_file(path).kid == new.kid and load_key_file(old_key_path(path)).kid == old.kid
        assert not new_key_path(path).exists()
        assert finish_rotation(path, cursors) == "none"

    @pytest.mark.parametrize("torn", [False, True], ids=["whole", "torn-write"])
    def test_an_unannounced_rotation_is_undone_at_start(self, tmp_path: Path, torn: bool) -> None:
        path = tmp_path / "device.key"
        old = generate_key_file(path)
        prepare_new_key(path, KeySpec())
        if torn:
            new_key_path(path).write_bytes(new_key_path(path).read_bytes()[:20])
        earlier = {rotation_cursor(old.kid, NOW_MS - 1000).key: NOW_MS - 1000}  # the current key came by a rotation
        assert finish_rotation(path, earlier) == "abandoned"
        assert load_key_file(path).kid == old.kid and not new_key_path(path).exists()
        assert not old_key_path(path).exists()

    def test_an_announced_key_that_cannot_be_read_stops_the_start(self, tmp_path: Path) -> None:
        """Records after the announcement were signed with the new key: the old one must not go on signing."""
        path = tmp_path / "device.key"
        old = generate_key_file(path)
        new = prepare_new_key(path, KeySpec())
        new_key_path(path).write_bytes(new_key_path(path).read_bytes()[:20])
        with pytest.raises(KeyFileError, match=f"{new.kid} that the outbox announced cannot be read"):
            finish_rotation(path, {rotation_cursor(new.kid, NOW_MS).key: NOW_MS})
        assert load_key_file(path).kid == old.kid and new_key_path(path).exists()


class TestRecorderRotation:
    def test_the_old_key_announces_the_new_one_which_signs_everything_after(self, tmp_path: Path) -> None:
        key_path = tmp_path / "keys" / "device.key"
        old = generate_key_file(key_path)
        outbox = Outbox(tmp_path / "outbox.sqlite", 8 * 1024**2)
        recorder = Recorder(outbox, STATION, old, OutboxSection(), FakeClock(NOW_MS), key_path=key_path)
        recorder.start()
        try:
            for n in range(3):
                recorder.submit(heartbeat(NOW_MS + n))
            rotated = recorder.rotate_key("k-1").result(timeout=10)
            recorder.submit(heartbeat(NOW_MS + 10))
            wait_until(lambda: recorder.head.seq >= 5, 10, "the record after the rotation to be stored")
        finally:
            recorder.stop()
        new = load_key_file(key_path)
        assert rotated == KeyRotated(old.kid, new.kid, 4) and recorder.kid == new.kid
        assert load_key_file(old_key_path(key_path)).kid == old.kid and not new_key_path(key_path).exists()
        reader = OutboxReader(outbox.path)
        records = list(reader.read(1, 5))
        reader.close()
        assert [record.kid for record in records] == [old.kid] * 4 + [new.kid]
        announcement = json.loads(records[3].canonical)["body"]
        assert announcement["kind"] == "key_rotation" and announcement["command_id"] == "k-1"
        Ed25519PublicKey.from_public_bytes(old.public_raw).verify(records[3].sig, records[3].canonical)
        Ed25519PublicKey.from_public_bytes(new.public_raw).verify(records[4].sig, records[4].canonical)
        learned = announced_key(records[3].canonical, old.kid)
        assert learned is not None and learned[0] == new.kid
        assert announced_key(records[3].canonical, new.kid) is None, "only the key it replaces may announce it"
        assert rotation_cursor(new.kid, 0).key in outbox.cursors()
        outbox.close()

    def test_the_old_key_is_destroyed_once_its_rotation_is_acknowledged(self, tmp_path: Path) -> None:
        """`<key>.old` stays while the key_rotation record is unacknowledged (an ack below its seq changes
        nothing) and is gone once an ack covers it; a restart with an acknowledged rotation finds it gone too."""
        key_path = tmp_path / "keys" / "device.key"
        old = generate_key_file(key_path)
        outbox = Outbox(tmp_path / "outbox.sqlite", 8 * 1024**2)
        recorder = Recorder(outbox, STATION, old, OutboxSection(), FakeClock(NOW_MS), key_path=key_path)
        recorder.start()
        try:
            recorder.submit(heartbeat(NOW_MS))
            rotated = recorder.rotate_key(None).result(timeout=10)
            recorder.submit(heartbeat(NOW_MS + 1))
            recorder.flush()
            recorder.note_acked(rotated.seq - 1)
            recorder.flush()
            assert old_key_path(key_path).exists(), "an unacknowledged rotation keeps the old key"
            recorder.note_acked(rotated.seq)
            recorder.flush()
            assert not old_key_path(key_path).exists()
        finally:
            recorder.stop()
        assert load_key_file(key_path).kid == rotated.new_kid
        assert sorted(path.name for path in key_path.parent.iterdir()) == ["device.key"]
        outbox.close()

    def test_an_old_key_left_by_a_run_that_stopped_before_the_ack_goes_at_the_next(self, tmp_path: Path) -> None:
        """After a restart the rotation's seq is found in the outbox: the old key waits for that ack, not any."""
        key_path = tmp_path / "keys" / "device.key"
        old = generate_key_file(key_path)
        outbox = Outbox(tmp_path / "outbox.sqlite", 8 * 1024**2)
        first = Recorder(outbox, STATION, old, OutboxSection(), FakeClock(NOW_MS), key_path=key_path)
        first.start()
        try:
            first.submit(heartbeat(NOW_MS))
            rotated = first.rotate_key(None).result(timeout=10)
            first.submit(heartbeat(NOW_MS + 1))
        finally:
            first.stop()
        again = Recorder(
            outbox, STATION, load_key_file(key_path), OutboxSection(), FakeClock(NOW_MS), key_path=key_path
        )
        again.start()
        try:
            again.note_acked(rotated.seq - 1)
            again.flush()
            assert old_key_path(key_path).exists()
            again.note_acked(rotated.seq + 1)
            again.flush()
            assert not old_key_path(key_path).exists()
        finally:
            again.stop()
        outbox.close()

    def test_without_a_key_file_the_rotation_fails_and_the_old_key_signs_on(self, tmp_path: Path) -> None:
        outbox = Outbox(tmp_path / "outbox.sqlite", 8 * 1024**2)
        key = DeviceKey.from_private(STRANGER)
        recorder = Recorder(outbox, STATION, key, OutboxSection(), FakeClock(NOW_MS))
        recorder.start()
        try:
            with pytest.raises(KeyRotationFailed, match="no key file"):
                recorder.rotate_key(None).result(timeout=10)
        finally:
            recorder.stop()
        assert recorder.kid == key.kid and recorder.head.seq == 0
        outbox.close()


class TestKeyDestruction:
    def test_a_destroyed_key_file_is_zeroed_before_it_is_unlinked(self, tmp_path: Path) -> None:
        """The file's own blocks are overwritten (seen through a second link to the same inode), then the name
        goes."""
        path = tmp_path / "device.key.old"
        generate_key_file(path)
        size = path.stat().st_size
        witness = tmp_path / "witness"
        os.link(path, witness)
        destroy_key_file(path)
        assert not path.exists()
        assert witness.read_bytes() == bytes(size) and size > 0

    def test_destroying_a_missing_key_file_is_nothing(self, tmp_path: Path) -> None:
        """A key already gone (destroyed before a crash) is not an error."""
        destroy_key_file(tmp_path / "device.key.old")
