"""The command desk: one thread that takes command messages from the uplink, checks them, records them and
carries them out, and hands the reply back to the uplink.

Theory of operation: paho's network thread only drops the payload into a bounded queue (`post`), so a flood
of commands can neither hold up the uplink nor grow memory; what does not fit is dropped and counted. The desk
thread checks the envelope (agent.commands.envelope), the command and its arguments (agent.commands.handlers)
and the replay memory, in that order. An accepted command is written to the replay memory on disk *before* it
is carried out, so no crash can let it run twice; then its `command_accepted` event is submitted, so that any
record the command itself makes (a key_rotation) comes after it. Refusals are recorded through a token bucket
(agent.commands.refusals), whose state is kept beside the replay memory so that a restart buys no fresh burst.
Every message gets a reply on `cmd/reply`, at most `replies_per_s` a second (a flood of junk is answered in part
and the rest counted); a reply echoes the message's id only when the platform's signature on it checks out, so
that no one but the platform can choose which id a reply answers. Replies are not stored, so a platform that
misses one asks again with a new id.

Hostile input: `post` cuts a message longer than `max_command_bytes` before queueing it (the envelope check then
refuses it for its size unread), so the queue's memory is bounded whatever arrives, and each message is handled
inside the loop's containment boundary (agent.containment): no message can end the thread.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.clock import Clock
from agent.commands.bucket import TokenBucket
from agent.commands.envelope import Command, Limits, Refusal, Refused, check_envelope
from agent.commands.handlers import CommandArgs, ResendArgs, parse_args, plan_resend
from agent.commands.refusals import GateState, RefusalGate
from agent.commands.replay import ReplayMemory
from agent.commands.replay_file import ReplayFileError, save_replay
from agent.commands.settings import CommandsSection
from agent.commands.state_file import write_atomically
from agent.containment import Boundary, BoundaryStatus
from agent.ledger.outbox import OutboxReader
from agent.ledger.recorder import KeyRotationFailed
from agent.ledger.recorder_inbox import KeyRotated
from agent.ledger.suites import PublicKey
from agent.logs import LogTally, get_logger
from agent.records import CommandAcceptedBody, CommandRefusedBody, RecordIntent, format_ts

log = get_logger("agent.commands")

FAILED: Final = "failed"
"""The reply's error reason when an accepted command could not be carried out (the rest are Refusal values)."""
ROTATION_WAIT_S: Final = 30.0
"""How long a rotate-key reply waits for the recorder; beyond it the reply says so and the records tell."""


@dataclass(frozen=True, slots=True)
class CommandPorts:
    """What the commands act on; the daemon wires these to the recorder, the uplink and the status."""

    submit: Callable[[RecordIntent], None]
    head_seq: Callable[[], int]
    status: Callable[[], Mapping[str, object] | None]
    """The status snapshot the agent built last, as `station-agent status --json` shows it; None before the first."""
    resend: Callable[[int, int], None]
    rotate_key: Callable[[str | None], Future[KeyRotated]]
    reply: Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class DeskStatus:
    accepted: int
    refused: int
    refusals_not_recorded: int
    dropped: int
    oversized: int
    """Messages longer than max_command_bytes, refused unread."""
    replies_dropped: int
    """Replies beyond replies_per_s, not published."""


class _Failed(Exception):
    """An accepted command that could not be carried out."""


class CommandDesk:
    def __init__(
        self,
        settings: CommandsSection,
        station: str,
        *,
        platform_keys: dict[str, PublicKey],
        replay: ReplayMemory,
        outbox_path: Path,
        ports: CommandPorts,
        clock: Clock,
        boundary: Boundary,
    ) -> None:
        self._settings = settings
        self._station = station
        self._keys = platform_keys
        self._replay = replay
        self._ports = ports
        self._clock = clock
        self._boundary = boundary
        self._limits = Limits(settings.max_skew_s * 1000, settings.max_lifetime_s * 1000, settings.max_command_bytes)
        self._gate_path = refusals_path(settings.state_path)
        self._gate = RefusalGate(settings.refusals_per_hour, clock.wall_ms(), _load_gate(self._gate_path))
        self._gate_saved = self._gate.state()
        self._replies = TokenBucket(2 * settings.replies_per_s, settings.replies_per_s, clock.wall_ms())
        self._oversized = LogTally()
        self._replies_dropped = LogTally()
        self._inbox: queue.Queue[bytes | None] = queue.Queue(settings.queue_limit)
        """Payloads to handle; None tells the thread to stop."""
        self._lock = threading.Lock()
        self._accepted = self._refused = self._dropped = 0
        self._reader = OutboxReader(outbox_path)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def post(self, payload: bytes) -> None:
        """A message from the cmd topic; called on paho's network thread, never blocks. A message longer than
        max_command_bytes is queued cut to one byte more, which is all the envelope check needs to refuse it.
        Once the desk is stopping, a message is dropped: it would wait unanswered behind the stop, in a slot the
        stop needs."""
        if self._stopping.is_set():
            with self._lock:
                self._dropped += 1
            return
        limit = self._settings.max_command_bytes
        if len(payload) > limit:
            count = self._oversized.note(self._clock.monotonic())
            if count is not None:
                log.warning("command_too_large", payload_bytes=len(payload), max_command_bytes=limit, count=count)
            payload = payload[: limit + 1]
        try:
            self._inbox.put_nowait(bytes(payload))
        except queue.Full:
            with self._lock:
                self._dropped += 1
                dropped = self._dropped
            if dropped == 1 or dropped % 100 == 0:
                log.warning("commands_dropped", dropped=dropped, queue_limit=self._settings.queue_limit)

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Answer the commands already taken, then end the thread, keep the refusal bucket and close the outbox
        reader; returns whether the thread ended."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        if self._thread.is_alive():
            # A full queue behind a command that takes its time (a key rotation waiting for the recorder) has
            # no slot for the stop at once: wait for one no longer than the stop may take.
            with contextlib.suppress(queue.Full):
                self._inbox.put(None, timeout=timeout_s)
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._save_gate()
        ended = not self._thread.is_alive()
        if ended:
            self._reader.close()
        return ended

    def status(self) -> DeskStatus:
        with self._lock:
            return DeskStatus(
                self._accepted,
                self._refused,
                self._gate.suppressed,
                self._dropped,
                self._oversized.total,
                self._replies_dropped.total,
            )

    def boundary_status(self) -> BoundaryStatus:
        return self._boundary.status()

    def _run(self) -> None:
        while (payload := self._inbox.get()) is not None:
            with self._boundary.contain(f"command message of {len(payload)} bytes"):
                self._answer(self.handle(payload))
            if pause_s := self._boundary.pause_s():
                self._stopping.wait(self._clock.real_s(pause_s))

    def _answer(self, reply: bytes) -> None:
        """Hand the reply to the uplink, unless replies are coming faster than replies_per_s."""
        if self._replies.take(self._clock.wall_ms()):
            self._ports.reply(reply)
            return
        count = self._replies_dropped.note(self._clock.monotonic())
        if count is not None:
            log.warning("command_replies_dropped", replies_per_s=self._settings.replies_per_s, count=count)

    def handle(self, payload: bytes) -> bytes:
        """Check, record and carry out one command message; return the reply. Runs on the desk thread."""
        now_ms = self._clock.wall_ms()
        checked = check_envelope(payload, self._station, self._keys, now_ms, self._limits)
        if isinstance(checked, Refused):
            return self._refuse(checked)
        args = parse_args(checked)
        if isinstance(args, Refused):
            return self._refuse(args)
        problem = self._replay.replay_problem(checked.id, checked.expires_ms)
        if problem is not None:
            return self._refuse(Refused(Refusal.REPLAYED, problem, checked.id, checked.name, authentic=True))
        try:
            save_replay(self._settings.state_path, self._replay.remember(checked.id, checked.expires_ms, now_ms))
        except ReplayFileError as exc:
            log.error("command_not_run", id=checked.id, cmd=checked.name, problem=str(exc))
            return _reply(checked.id, error={"reason": FAILED, "detail": str(exc)})
        self._ports.submit(
            CommandAcceptedBody(
                command_id=checked.id,
                cmd=checked.name,
                args=checked.args,
                issued=format_ts(checked.issued_ms),
                expires=format_ts(checked.expires_ms),
                platform_kid=checked.kid,
            ).intent(now_ms)
        )
        with self._lock:
            self._accepted += 1
        log.info("command_accepted", id=checked.id, cmd=checked.name)
        try:
            result = self._carry_out(checked, args, now_ms)
        except _Failed as exc:
            log.error("command_failed", id=checked.id, cmd=checked.name, problem=str(exc))
            return _reply(checked.id, error={"reason": FAILED, "detail": str(exc)})
        return _reply(checked.id, result=result)

    def _carry_out(self, command: Command, args: CommandArgs, now_ms: int) -> object:
        if command.name == "ping":
            return {"pong": True, "ts": format_ts(now_ms), "head_seq": self._ports.head_seq()}
        if command.name == "status":
            snapshot = self._ports.status()
            if snapshot is None:
                raise _Failed("no status snapshot to give yet (the agent is starting); ask again in a moment")
            return snapshot
        if isinstance(args, ResendArgs):
            return self._resend(args)
        return self._rotate_key(command.id)

    def _resend(self, args: ResendArgs) -> object:
        plan = plan_resend(
            args,
            oldest_kept=self._reader.first_seq(),
            head=self._ports.head_seq(),
            max_records=self._settings.resend_max_records,
        )
        if plan.resend is not None:
            self._ports.resend(*plan.resend)
        return {
            "first": args.first,
            "last": args.last,
            "resent": None if plan.resend is None else list(plan.resend),
            "left_out": [{"first": part.first, "last": part.last, "why": part.why} for part in plan.left_out],
        }

    def _rotate_key(self, command_id: str) -> object:
        try:
            rotated = self._ports.rotate_key(command_id).result(timeout=ROTATION_WAIT_S)
        except KeyRotationFailed as exc:
            raise _Failed(str(exc)) from exc
        except FutureTimeout as exc:
            raise _Failed(
                f"the recorder did not finish within {ROTATION_WAIT_S:g} s; a key_rotation record will show "
                "whether the key changed"
            ) from exc
        return {"old_kid": rotated.old_kid, "new_kid": rotated.new_kid, "seq": rotated.seq}

    def _refuse(self, refused: Refused) -> bytes:
        with self._lock:
            self._refused += 1
            suppressed = self._gate.admit(refused.reason, self._clock.wall_ms())
        if suppressed is not None:
            self._save_gate()
            log.warning("command_refused", id=refused.id, reason=str(refused.reason), detail=refused.detail)
            self._ports.submit(
                CommandRefusedBody(
                    command_id=refused.id,
                    cmd=refused.name,
                    reason=str(refused.reason),
                    detail=refused.detail,
                    suppressed=sum(suppressed.values()),
                    suppressed_by_reason=suppressed,
                ).intent(self._clock.wall_ms())
            )
        reply_id = refused.id if refused.authentic else None
        return _reply(reply_id, error={"reason": str(refused.reason), "detail": refused.detail})

    def _save_gate(self) -> None:
        """Keep the bucket on disk when a token was spent (at most refusals_per_hour an hour) and at stop."""
        with self._lock:
            state = self._gate.state()
        if state == self._gate_saved:
            return
        try:
            write_atomically(self._gate_path, json.dumps(state.to_json()))
        except OSError as exc:
            log.warning("command_refusals_not_saved", path=str(self._gate_path), error=str(exc))
            return
        self._gate_saved = state


def refusals_path(state_path: Path) -> Path:
    """The refusal bucket's file, beside the replay memory: `commands.json` → `commands-refusals.json`."""
    return state_path.with_name(f"{state_path.stem}-refusals.json")


def _load_gate(path: Path) -> GateState | None:
    """The saved bucket; None (a full bucket, as on a first start) if there is none or it cannot be read."""
    try:
        return GateState.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("command_refusals_unreadable", path=str(path), error=str(exc))
        return None


def _reply(command_id: str | None, *, result: object = None, error: dict[str, str] | None = None) -> bytes:
    """`{"id", "ok", "result"}` or `{"id", "ok": false, "error": {"reason", "detail"}}`, JSON."""
    reply: dict[str, object] = {"id": command_id, "ok": error is None}
    if error is None:
        reply["result"] = result
    else:
        reply["error"] = error
    return json.dumps(reply, separators=(",", ":"), sort_keys=True, default=str).encode()
