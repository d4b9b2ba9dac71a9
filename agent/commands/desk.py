"""The command desk: one thread that takes command messages from the uplink, checks them, records them and
carries them out, and hands the reply back to the uplink.

Theory of operation: paho's network thread only drops the payload into a bounded queue (`post`), so a flood
of commands can neither hold up the uplink nor grow memory; what does not fit is dropped and counted. The desk
thread checks the envelope (agent.commands.envelope), the command and its arguments (agent.commands.handlers)
and the replay memory, in that order. An accepted command is written to the replay memory on disk *before* it
is carried out, so no crash can let it run twice; then its `command_accepted` event is submitted, so that any
record the command itself makes (a key_rotation) comes after it. Refusals are recorded through a token bucket
(agent.commands.refusals). Every message gets a reply on `cmd/reply`; replies are not stored, so a platform
that misses one asks again with a new id.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.clock import Clock
from agent.commands.envelope import Command, Limits, Refusal, Refused, check_envelope
from agent.commands.handlers import CommandArgs, ResendArgs, parse_args, plan_resend
from agent.commands.refusals import RefusalGate
from agent.commands.replay import ReplayMemory
from agent.commands.replay_file import ReplayFileError, save_replay
from agent.commands.settings import CommandsSection
from agent.ledger.outbox import OutboxReader
from agent.ledger.recorder import KeyRotated, KeyRotationFailed
from agent.ledger.suites import PublicKey
from agent.logs import get_logger
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
    status: Callable[[], object]
    resend: Callable[[int, int], None]
    rotate_key: Callable[[str | None], Future[KeyRotated]]
    reply: Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class DeskStatus:
    accepted: int
    refused: int
    refusals_not_recorded: int
    dropped: int


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
    ) -> None:
        self._settings = settings
        self._station = station
        self._keys = platform_keys
        self._replay = replay
        self._ports = ports
        self._clock = clock
        self._limits = Limits(settings.max_skew_s * 1000, settings.max_lifetime_s * 1000)
        self._gate = RefusalGate(settings.refusals_per_hour, self._monotonic_ms())
        self._inbox: queue.Queue[bytes | None] = queue.Queue(settings.queue_limit)
        """Payloads to handle; None tells the thread to stop."""
        self._lock = threading.Lock()
        self._accepted = self._refused = self._dropped = 0
        self._reader = OutboxReader(outbox_path)
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def post(self, payload: bytes) -> None:
        """A message from the cmd topic; called on paho's network thread, never blocks."""
        try:
            self._inbox.put_nowait(bytes(payload))
        except queue.Full:
            with self._lock:
                self._dropped += 1
                dropped = self._dropped
            if dropped == 1 or dropped % 100 == 0:
                log.warning("commands_dropped", dropped=dropped, queue_limit=self._settings.queue_limit)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Answer the commands already taken, then end the thread and close the outbox reader."""
        if self._thread.is_alive():
            self._inbox.put(None)
            self._thread.join(timeout_s)
        self._reader.close()

    def status(self) -> DeskStatus:
        with self._lock:
            return DeskStatus(self._accepted, self._refused, self._gate.suppressed, self._dropped)

    def _run(self) -> None:
        while (payload := self._inbox.get()) is not None:
            try:
                reply = self.handle(payload)
            except Exception:
                log.exception("command_crashed", payload_bytes=len(payload))
                continue
            self._ports.reply(reply)

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
            return self._refuse(Refused(Refusal.REPLAYED, problem, checked.id, checked.name))
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
            try:
                return self._ports.status()
            except (OSError, ValueError) as exc:
                raise _Failed(f"no status snapshot to give yet ({exc}); ask again in a moment") from exc
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
            suppressed = self._gate.admit(refused.reason, self._monotonic_ms())
        if suppressed is not None:
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
        return _reply(refused.id, error={"reason": str(refused.reason), "detail": refused.detail})

    def _monotonic_ms(self) -> int:
        return int(self._clock.monotonic() * 1000)


def _reply(command_id: str | None, *, result: object = None, error: dict[str, str] | None = None) -> bytes:
    """`{"id", "ok", "result"}` or `{"id", "ok": false, "error": {"reason", "detail"}}`, JSON."""
    reply: dict[str, object] = {"id": command_id, "ok": error is None}
    if error is None:
        reply["result"] = result
    else:
        reply["error"] = error
    return json.dumps(reply, separators=(",", ":"), sort_keys=True, default=str).encode()
