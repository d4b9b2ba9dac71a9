"""The recorder: the one thread that turns record intents into sealed, durable records.

Theory of operation: producers (the station loop) `submit` intents into a queue and never wait; the recorder
takes whatever has queued up, seals it after the chain head and commits it in one transaction, so a burst costs
one fsync however many records it holds (group commit). The head advances only after the commit, so a failed
or interrupted commit leaves no gap and no fork. When the outbox cannot be written (full, or failing), intents
wait in memory up to `pending_limit`, an `alarm` record is raised ahead of them and cleared behind them once
writing works again, and anything beyond the limit is counted in that alarm rather than silently lost. A file
system that something else filled is met with the outbox's space reserve (agent/ledger/space_reserve.py): given
back so that acknowledged records can be pruned, which makes room again for new ones.

Everything reaches the thread through its inbox (agent/ledger/recorder_inbox.py); `run()` only waits on it and
`step(now)` does one turn (take a batch, commit it, do what is due), so a test drives the recorder by hand with a
clock of its own.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agent.clock import Clock, Instant, now_of
from agent.contract.evidence import OutboxRecovered, OutboxTrouble, RecordsSealedAgain, RecordUnsealableEvidence
from agent.contract.records import (
    AlarmBody,
    AlarmKind,
    AlarmState,
    KeyRotationBody,
    RecordIntent,
    RecordType,
)
from agent.ledger.anchor import AnchorError, AnchorKeeper
from agent.ledger.chain import ChainHead, RecordRefused, SealedRecord, Signer, seal
from agent.ledger.key_rotation import (
    RetiredKey,
    abandon_new_key,
    prepare_new_key,
    promote_new_key,
    rotation_cursor,
)
from agent.ledger.keys import DeviceKey, KeyFileError, KeySpec
from agent.ledger.outbox import Outbox, OutboxError, OutboxFull
from agent.ledger.recorder_inbox import (
    Acked,
    ChainPosition,
    Flush,
    KeyRotated,
    Message,
    RecorderInbox,
    Rotation,
    Stop,
    Written,
)
from agent.ledger.settings import OutboxSection
from agent.ledger.space_reserve import Room, SpaceReserve, reserve_path
from agent.logs import get_logger, repeat_limited
from agent.pulse import Pulse

log = get_logger("agent.recorder")
repeats = repeat_limited("agent.recorder")
"""For what a loop may say over and over: once a minute per event and subject, with the count left out."""

MAX_BATCH = 256
FIRST_BATCH = 32
"""The most records the first commit of a burst holds: each commit after it may hold twice the one before, up to
MAX_BATCH. A burst's records reach the uplink only once committed, so a first commit of MAX_BATCH kept the
platform idle while 256 records were signed (about 20 ms here); 32, 64, 128 and then 256 let it start after the
first 32 and cost two or three more fsyncs a burst, while a long burst still commits MAX_BATCH at a time."""
SIGNING_WORKERS = 2
"""Threads that sign a burst; a third core would rather serve the pollers and the uplink."""
ACK_SAVE_INTERVAL_S = 30.0
PRUNE_INTERVAL_S = 600.0
ANCHOR_INTERVAL_S = 300.0
"""How often the chain anchor follows the head while records are made (and at every stop): what a lost outbox
can leave unknown is at most this long (agent/ledger/anchor.py)."""
SPACE_RESERVE_INTERVAL_S = 60.0
"""How often a space reserve not held (given back, or not made at start) is tried again: one `statvfs`."""
ROOM_STEP_RECORDS = 256
"""Records pruned per transaction on a full file system, the WAL folded between: each step's pages must fit in
the room the WAL file already takes (a few hundred KiB; the WAL grows to about 4 MiB between folds)."""
ROOM_STEPS = 64
"""The most steps one making of room takes (16,384 records): the recorder's turn stays bounded, and the next
"full" makes more."""
LOW_FREE_PAGES = 256
"""Without a reserve on a full file system, acknowledged records are pruned once the outbox has fewer free pages
than this (1 MiB, a few commits): a database that has to grow for its next records cannot, and its WAL, holding
the pages it could not fold into the file, would then have no room even for a delete."""
FOLD_EACH_COMMIT_BELOW_BYTES = 8 * 1024**2
"""Without a space reserve, once the file system has less free than this (twice the ~4 MiB SQLite lets the WAL
reach between its own folds) and the outbox's file grows, the WAL is folded after every commit, and the last
FULL_BELOW_BYTES are kept for that fold: a WAL holding pages the database file cannot grow to take cannot be
reused, and then not even a prune of records the platform acknowledges later could be written."""


class _ReserveGivenBack(OutboxFull):
    """The space reserve was given back and room made: the records wait one turn, behind an `outbox_full` alarm
    whose problem says what happened (the disk is full, and the next time there is no reserve)."""


class _NoRoomToFold(OutboxFull):
    """The file system's last room is kept to fold the WAL and nothing acknowledged can be pruned: a smaller batch
    would not fit either, so the records wait behind `outbox_full` at once."""


@dataclass(frozen=True, slots=True)
class _RoomMade:
    deleted: int
    released: bool
    free_bytes: int | None
    """The file system's free space before room was made; None: not asked (the outbox's own cap), or unknown."""


@dataclass(frozen=True, slots=True)
class RecorderStatus:
    """A snapshot for `status` and the LED: `state` is "ok", or "full"/"failing" while records cannot be stored."""

    state: Literal["ok", "full", "failing"]
    problem: str | None
    trouble_since_ms: int | None
    head_seq: int
    acked_upto: int
    pending: int
    dropped: int
    committed: int
    commits: int
    used_bytes: int


@dataclass(slots=True)
class _Trouble:
    kind: Literal["full", "failing"]
    since_ms: int
    problem: str
    next_try: float
    dropped: Counter[str] = field(default_factory=Counter)


def next_batch_limit(committed: int) -> int:
    """The most records the commit after one of `committed` records may hold: twice as many, at least FIRST_BATCH
    and at most MAX_BATCH. A burst after a quiet spell starts small and doubles; a steady flow keeps its size."""
    return min(MAX_BATCH, max(FIRST_BATCH, 2 * committed))


class KeyRotationFailed(Exception):
    """The key was not rotated; the old key still signs, and the message says why."""


class Recorder:
    """Owns the chain head and the outbox's writing connection; every record is made here and nowhere else."""

    def __init__(
        self,
        outbox: Outbox,
        station: str,
        key: DeviceKey,
        settings: OutboxSection,
        clock: Clock,
        *,
        key_path: Path | None = None,
        anchor: AnchorKeeper | None = None,
        inbox: RecorderInbox | None = None,
        committed: Callable[[Sequence[SealedRecord]], None] | None = None,
        on_commit: Callable[[int], None] | None = None,
        key_spec: KeySpec | None = None,
    ) -> None:
        """`inbox`: where its work comes from (a fresh one if None, fed through `submit`, `note_acked` and
        `rotate_key`). Right after each commit, `committed` is handed its records in seq order (the station's day
        books count what the outbox holds, however it was made) and `on_commit` the new head's seq (the uplinks'
        notify); neither may block."""
        self._outbox = outbox
        self._committed_sink = committed
        self._on_commit = on_commit
        self._station = station
        self._key = key
        self._key_path = key_path
        """The device key's file, which `rotate_key` replaces; None: the key cannot be rotated."""
        self._key_spec = key_spec or KeySpec(key.suite, key.public.sm2_id)
        """What a rotation makes: the configured suite, which may differ from the current key's (a station
        moves from one suite to the other by a rotation, the old key signing the announcement)."""
        self._anchor = anchor
        """The chain anchor beside the key; None: not kept (tests of other parts, benchmarks)."""
        self._space = SpaceReserve(reserve_path(outbox.path), settings.reserve_bytes)
        self._space.ensure()
        started = clock.monotonic()
        self._space_due = started + SPACE_RESERVE_INTERVAL_S
        self._anchor_due = started + ANCHOR_INTERVAL_S
        self._next_ack_save = started + ACK_SAVE_INTERVAL_S
        self._next_prune = started
        self._settings = settings
        self._clock = clock
        self._flushes: list[threading.Event] = []
        self._written: list[Callable[[], None]] = []
        """The `Written` requests taken, answered once nothing waits to be written."""
        self._stop_mark: Mapping[str, str] | None = None
        self._rotations: deque[Rotation] = deque()
        self._lock = threading.Lock()
        self._head: ChainHead = outbox.head()
        position = ChainPosition.stored(outbox, key.kid)
        self._acked = self._acked_saved = position.acked_upto
        self.inbox = inbox or RecorderInbox(position)
        self._pending: deque[RecordIntent] = deque()
        self._trouble: _Trouble | None = None
        self._unsealable: dict[str, int] = {}
        """Records refused by type, while their `record_unsealable` alarm is raised."""
        self._committed = 0
        self._commits = 0
        self._batch_limit = FIRST_BATCH
        self._used_bytes = outbox.used_bytes()
        self._signer = Signer(key, workers=min(SIGNING_WORKERS, os.cpu_count() or 1))
        self.pulse = Pulse()
        self._retired = (
            None
            if key_path is None
            else RetiredKey.from_events(key_path, lambda: outbox.canonical_since(RecordType.EVENT, 0))
        )
        """The rotated-out key, destroyed by this thread once its key_rotation record is acknowledged."""
        self._thread: threading.Thread | None = None

    @property
    def head(self) -> ChainHead:
        return self._head

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="recorder", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, intent: RecordIntent) -> None:
        """The inbox's `submit`: never blocks, whatever the disk is doing."""
        self.inbox.submit(intent)

    @property
    def kid(self) -> str:
        """The key id that signs the next record."""
        return self._key.kid

    def rotate_key(self, command_id: str | None) -> Future[KeyRotated]:
        """The inbox's `rotate_key`. See agent.ledger.key_rotation for the crash safety."""
        return self.inbox.rotate_key(command_id)

    def note_acked(self, upto: int) -> None:
        """The inbox's `note_acked`: the acknowledged position is saved lazily and used for pruning."""
        self.inbox.note_acked(upto)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything submitted so far is written (or found unwritable); False: the thread did not
        get there in time, or has ended."""
        if not self.alive():
            return False
        done = threading.Event()
        self.inbox.put(Flush(done))
        return done.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0, *, mark: Mapping[str, str] | None = None) -> bool:
        """Write everything submitted so far, save the ack position, and end the thread; returns whether it ended.

        `mark` (the clean-stop mark) is saved in the outbox's meta, then the WAL checkpointed, as the thread's
        last act, and only if no record is left unwritten: the outbox is written by this thread alone, so a mark
        can never land while a commit is still going on."""
        if self._thread is not None and self._thread.is_alive():
            self.inbox.put(Stop(mark))
            self._thread.join(timeout_s)
        return not self.alive()

    def status(self) -> RecorderStatus:
        with self._lock:
            trouble = self._trouble
            return RecorderStatus(
                state="ok" if trouble is None else trouble.kind,
                problem=None if trouble is None else trouble.problem,
                trouble_since_ms=None if trouble is None else trouble.since_ms,
                head_seq=self._head.seq,
                acked_upto=self._acked,
                pending=len(self._pending),
                dropped=0 if trouble is None else sum(trouble.dropped.values()),
                committed=self._committed,
                commits=self._commits,
                used_bytes=self._used_bytes,
            )

    def run(self) -> None:
        """The thread: wait for work or the next thing due, then `step`, until the stop."""
        while True:
            wait_s = self._wait_s(self._clock.monotonic())
            self.pulse.beat(wait_s)
            self.inbox.wait(wait_s)
            if not self.step(now_of(self._clock)):
                return

    def _wait_s(self, now_s: float) -> float:
        if self._pending and self._trouble is None:
            return 0.0
        wait_s = max(0.0, min(self._next_ack_save, self._next_prune) - now_s)
        if self._trouble is not None:
            wait_s = min(wait_s, max(0.0, self._trouble.next_try - now_s))
        return wait_s

    def step(self, now: Instant) -> bool:
        """One turn at `now`: take what waits in the inbox (up to MAX_BATCH pending, ended early by a key
        rotation), commit one batch of it (all of it before a stop, a flush or a rotation), carry out the
        rotations, then what is due (pruning, saving the ack position, the anchor, destroying a retired key) and
        release the flushes. False once a stop was taken: everything before it is then
        written, or found unwritable, and the clean-stop mark saved if nothing is left unwritten."""
        stopping = False
        while (message := self.inbox.take()) is not None:
            stopping = self._take(message)
            if stopping or self._rotations or len(self._pending) >= MAX_BATCH:
                break
        self._write_pending(
            force=stopping or bool(self._flushes) or bool(self._rotations) or self._written_asked_in_good_health()
        )
        while self._rotations:
            self._rotate(self._rotations.popleft())
        if now.monotonic_s >= self._next_prune and self._trouble is None:
            self._prune_by_retention()
            self._next_prune = now.monotonic_s + PRUNE_INTERVAL_S
        if now.monotonic_s >= self._next_ack_save or stopping:
            self._save_acked()
            self._next_ack_save = now.monotonic_s + ACK_SAVE_INTERVAL_S
        self._follow_with_anchor(now.monotonic_s, stopping)
        self._keep_space_reserve(now.monotonic_s)
        self._destroy_retired_key()
        self._release_flushes()
        self._answer_written()
        if not stopping:
            return True
        self._signer.close()
        if self._pending:
            log.error("records_lost_at_stop", count=len(self._pending), reason=self.status().problem)
        elif self._stop_mark is not None:
            self._save_stop_mark(self._stop_mark)
        return False

    def _take(self, message: Message) -> bool:
        if isinstance(message, Stop):
            self._stop_mark = message.mark
            return True
        if isinstance(message, Flush):
            self._flushes.append(message.done)
        elif isinstance(message, Written):
            self._written.append(message.then)
        elif isinstance(message, Rotation):
            self._rotations.append(message)
        elif isinstance(message, Acked):
            self._acked_to(message.upto)
        else:
            trouble = self._trouble
            if trouble is not None and len(self._pending) >= self._settings.pending_limit:
                trouble.dropped[str(message.type)] += 1
            else:
                self._pending.append(message)
        return False

    def _acked_to(self, upto: int) -> None:
        """Records up to `upto` are acknowledged: a full outbox may now make room, so its retry is due at once."""
        if upto <= self._acked:
            return
        with self._lock:
            self._acked = min(upto, self._head.seq)
        if self._trouble is not None:
            self._trouble.next_try = 0.0
        self.inbox.publish(self._position())

    def _position(self) -> ChainPosition:
        return ChainPosition(self._head.seq, self._acked, self._key.kid)

    def _release_flushes(self) -> None:
        for done in self._flushes:
            done.set()
        self._flushes.clear()

    def _written_asked_in_good_health(self) -> bool:
        """A `Written` request has everything taken before it written in the step that takes it, as a flush has;
        while the outbox is in trouble, writing is tried when its retry is due, and the answer waits for that."""
        return bool(self._written) and self._trouble is None

    def _answer_written(self) -> None:
        """Once nothing waits to be written, everything submitted before each request taken is in the outbox (or
        was dropped while it was full, and counted in its alarm)."""
        if self._pending or not self._written:
            return
        for then in self._written:
            then()
        self._written.clear()

    def _save_stop_mark(self, mark: Mapping[str, str]) -> None:
        try:
            self._outbox.set_meta(dict(mark))
            self._outbox.checkpoint()
        except OutboxError as exc:
            log.error("clean_stop_not_saved", problem=str(exc))

    def _write_pending(self, force: bool = False) -> None:
        """Commit one batch of pending intents, at most twice the one before (`next_batch_limit`), or all of them
        in such batches when `force`d (a stop, a flush, a rotation); what is left waits for the next step, which
        first takes what queued meanwhile. A batch that does not fit is halved, so a nearly full outbox still takes
        every record it has room for before the recorder declares itself in trouble. A retry in trouble writes all
        that waits, as forced: while the trouble lasts, the next step's intake drops what finds the pending list
        full, and the disk may have room again."""
        if self._trouble is not None:
            if not force and self._clock.monotonic() < self._trouble.next_try:
                return
            force = True
        batch_limit = self._batch_limit
        while self._pending:
            batch = [self._pending[i] for i in range(min(batch_limit, len(self._pending)))]
            try:
                records, head = seal(batch, self._head, self._station, self._key, self._signer)
            except RecordRefused as refused:
                alarm = self._unsealable_alarm(refused)
                with self._lock:
                    del self._pending[refused.index]
                    if alarm is not None:
                        self._pending.insert(refused.index, alarm)
                continue
            try:
                self._append_making_room(records)
            except _ReserveGivenBack as exc:
                self._enter_trouble(exc, retry_now=True)
                return
            except _NoRoomToFold as exc:
                self._enter_trouble(exc)
                return
            except OutboxFull as exc:
                if len(batch) > 1:
                    batch_limit = len(batch) // 2
                    continue
                self._enter_trouble(exc)
                return
            except OutboxError as exc:
                self._enter_trouble(exc)
                return
            self._clear_unsealable(batch)
            with self._lock:
                for _ in batch:
                    self._pending.popleft()
                self._head = head
                self._committed += len(records)
                self._commits += 1
            self._batch_limit = batch_limit = next_batch_limit(len(records))
            self._used_bytes = self._outbox_used_bytes()
            self._keep_free_pages()
            if self._trouble is not None and not self._pending:
                self._leave_trouble()
            self._tell_committed(records)
            if not force:
                return

    def _unsealable_alarm(self, refused: RecordRefused) -> RecordIntent | None:
        """What takes the place of a record the contract cannot carry (a value beyond 2^53): `record_unsealable`,
        raised at the first of its type and counted until a record of that type seals again, then cleared with
        the count. Until then the refused ones are counted only, so a value stuck out of range costs no flood."""
        record_type = str(refused.intent.type)
        count = self._unsealable.get(record_type, 0) + 1
        self._unsealable[record_type] = count
        repeats.error("record_unsealable", key=record_type, type=record_type, reason=str(refused), count=count)
        if count > 1:
            return None
        evidence = RecordUnsealableEvidence(record_type=record_type, count=1, reason=str(refused)[:200])
        body = AlarmBody(AlarmKind.RECORD_UNSEALABLE, AlarmState.RAISED, record_type, evidence.as_json())
        return body.intent(refused.intent.ts_ms)

    def _clear_unsealable(self, batch: list[RecordIntent]) -> None:
        """Clear `record_unsealable` for each type that sealed again in `batch` (its own alarms aside)."""
        sealed = {
            str(i.type)
            for i in batch
            if not (isinstance(i.body, AlarmBody) and i.body.kind == AlarmKind.RECORD_UNSEALABLE)
        }
        for record_type in sealed & self._unsealable.keys():
            count = self._unsealable.pop(record_type)
            sealed_again = RecordsSealedAgain(record_type=record_type, count=count)
            body = AlarmBody(AlarmKind.RECORD_UNSEALABLE, AlarmState.CLEARED, record_type, sealed_again.as_json())
            self._pending.append(body.intent(self._clock.wall_ms()))

    def _rotate(self, request: Rotation) -> None:
        """Announce a new key in a record signed by the old one, then sign with the new one from the next
        record on. Everything queued before the request is already written, under the old key."""
        if self._key_path is None or self._pending or self._trouble is not None:
            why = "no key file is configured" if self._key_path is None else "records cannot be stored now"
            request.done.set_exception(KeyRotationFailed(f"key not rotated: {why}; the old key still signs"))
            return
        old = self._key
        try:
            new = prepare_new_key(self._key_path, self._key_spec)
        except (KeyFileError, OSError) as exc:
            request.done.set_exception(KeyRotationFailed(f"key not rotated: cannot write the new key: {exc}"))
            return
        now_ms = self._clock.wall_ms()
        body = KeyRotationBody(
            old_kid=old.kid,
            new_kid=new.kid,
            new_public_key=base64.b64encode(new.public_raw).decode(),
            command_id=request.command_id,
        )
        records, head = seal([body.intent(now_ms, rotation_cursor(new.kid, now_ms))], self._head, self._station, old)
        try:
            self._append_making_room(records)
        except OutboxError as exc:
            if isinstance(exc, _ReserveGivenBack):
                self._enter_trouble(exc, retry_now=True)
            try:
                abandon_new_key(self._key_path)
            except OSError as unlinked:  # the next start abandons it: the announcement is not in the outbox
                log.error("new_key_not_removed", key=str(self._key_path), error=str(unlinked))
            request.done.set_exception(KeyRotationFailed(f"key not rotated: the announcement was not stored: {exc}"))
            return
        with self._lock:
            self._head = head
            self._committed += 1
            self._commits += 1
            self._key = new
        self._signer.close()
        self._signer = Signer(new, workers=min(SIGNING_WORKERS, os.cpu_count() or 1))
        try:
            promote_new_key(self._key_path)
        except OSError as exc:
            log.error("key_rotation_rename_failed", key=str(self._key_path), problem=str(exc))
        if self._retired is not None:
            self._retired.retired(head.seq)
        log.warning("key_rotated", old_kid=old.kid, new_kid=new.kid, suite=str(new.suite), seq=head.seq)
        self._tell_committed(records)
        request.done.set_result(KeyRotated(old.kid, new.kid, head.seq))

    def _tell_committed(self, records: list[SealedRecord]) -> None:
        self.inbox.publish(self._position())
        if self._committed_sink is not None:
            self._committed_sink(records)
        if self._on_commit is not None:
            self._on_commit(records[-1].seq)

    def _append_making_room(self, records: list[SealedRecord]) -> None:
        """Append, making room once if the outbox is full. `_ReserveGivenBack` once the space reserve went to make
        it (the records are not appended: an alarm goes ahead of them), OutboxFull if there is still none."""
        self._reserve(records[-1].seq)
        self._keep_room_to_fold(len(records))
        try:
            self._outbox.append(records)
        except OutboxFull as full:
            made = self._make_room()
            if made.released:
                raise _ReserveGivenBack(self._reserve_given_back(made)) from full
            if made.deleted == 0:
                raise OutboxFull(f"{full}{self._why_no_room(made)}") from full
            self._outbox.append(records)

    def _make_room(self) -> _RoomMade:
        """Prune every acknowledged record, to make room after "database or disk is full".

        Against the outbox's own cap one delete does it. On a full file system the delete needs room in the WAL
        and folding the WAL may need to grow the database file: the space reserve is given back (if held), the
        WAL folded, and the records pruned ROOM_STEP_RECORDS at a time with a fold after each, so that each step
        reuses the WAL's room. A kill -9 anywhere leaves the outbox as SQLite's last commit left it: each step is
        one transaction, and the next start makes the reserve again if there is room."""
        room = self._room()
        if room is None or not (room.full or self._below_cap()):
            return _RoomMade(self._prune(self._acked, None, None), False, None)
        released = self._space.release()
        if released:
            log.warning("outbox_space_reserve_released", free_bytes=room.free_bytes, bytes=self._space.size_bytes)
        deleted = 0
        step = ROOM_STEP_RECORDS
        self._fold_wal()
        for _ in range(ROOM_STEPS):
            try:
                pruned = self._prune_oldest(step)
            except OutboxError as exc:
                if step > 1:  # a WAL kept small by folds after each commit: fewer records at a time fit in it
                    step //= 2
                    continue
                repeats.warning("prune_failed", problem=str(exc))
                break
            if pruned == 0:
                break
            deleted += pruned
            self._fold_wal()
        if deleted:
            log.info("outbox_pruned", records=deleted, acked_upto=self._acked, emergency=True, file_system_full=True)
        self._used_bytes = self._outbox_used_bytes()
        return _RoomMade(deleted, released, room.free_bytes)

    def _fold_wal(self) -> None:
        try:
            self._outbox.fold_wal()
        except OutboxError as exc:
            repeats.warning("wal_not_folded", problem=str(exc))

    def _prune_oldest(self, count: int) -> int:
        """Raises OutboxError, for `_make_room` to stop its steps."""
        if self._acked == 0:
            return 0
        self._save_acked_before_prune(self._acked)
        return self._outbox.prune_oldest(self._acked, count)

    def _save_acked_before_prune(self, acked: int) -> None:
        """Raises OutboxError: a prune must not run ahead of the saved acknowledgement position."""
        if acked != self._acked_saved:
            self._outbox.set_meta({"acked_upto": str(acked)})
            self._acked_saved = acked

    def _keep_free_pages(self) -> None:
        """Without a space reserve on a nearly full file system, fold the WAL after each commit, and on a full one
        prune acknowledged records before the outbox's free pages run out (LOW_FREE_PAGES), so that its file never
        has to grow. With the reserve held this costs nothing; without, a query after each commit, and a `statvfs`
        once the free pages are few."""
        room = self._low_room()
        if room is None:
            return
        self._fold_wal()
        try:
            if self._acked < (self._outbox.first_seq() or 0):
                return
        except sqlite3.Error:
            return
        if room.full:
            self._make_room()

    def _keep_room_to_fold(self, count: int) -> None:
        """Records that would grow the outbox into the file system's last FULL_BELOW_BYTES, with no space reserve
        held, wait (OutboxFull) unless acknowledged records can be pruned: that room is what the WAL needs to fold,
        and so what a prune needs once the platform acknowledges them."""
        room = self._low_room()
        if room is None or not room.full:
            return
        made = self._make_room()
        if made.deleted == 0:
            raise _NoRoomToFold(
                f"outbox full before appending {count} record(s): its last room is kept to fold the WAL"
                f"{self._why_no_room(made)}"
            )

    def _low_room(self) -> Room | None:
        """The file system's room when no space reserve is held, the outbox's next records grow its file (few
        free pages) and under FOLD_EACH_COMMIT_BELOW_BYTES are free; None otherwise."""
        if self._space.held:
            return None
        try:
            if self._outbox.free_pages() >= LOW_FREE_PAGES:
                return None
        except sqlite3.Error:
            return None
        room = self._room()
        return room if room is not None and room.free_bytes < FOLD_EACH_COMMIT_BELOW_BYTES else None

    def _below_cap(self) -> bool:
        """The outbox far below its own cap: its "full" is the file system's even when statvfs counts room, as on
        ext4, which keeps clusters for itself (`reserved_clusters`, up to 16 MiB) that root sees as free."""
        try:
            return self._outbox.far_below_cap()
        except sqlite3.Error:
            return False

    def _room(self) -> Room | None:
        try:
            return Room.of(self._outbox.path.parent)
        except OSError:
            return None

    def _reserve_given_back(self, made: _RoomMade) -> str:
        return (
            f"the file system under the outbox is full ({made.free_bytes} bytes free): the outbox's space reserve "
            f"({self._space.size_bytes} bytes) was given back and {made.deleted} acknowledged records pruned to "
            f"make room for new ones; free space on the gateway: until {2 * self._space.size_bytes} bytes are free "
            "there is no reserve, and a full disk then stops new records once no acknowledged one can be pruned"
        )

    def _why_no_room(self, made: _RoomMade) -> str:
        if made.free_bytes is None:
            return ""
        reserve = {
            "released": "the space reserve was given back earlier",
            "not_made": "no space reserve could be made",
        }.get(self._space.state, "no space reserve is configured")
        return (
            f"; the file system under the outbox is full ({made.free_bytes} bytes free), {reserve}, and no "
            "acknowledged record could be pruned to make room: free space on the gateway"
        )

    def _keep_space_reserve(self, now_s: float) -> None:
        """Now and then, make the space reserve again if it is not held and there is room (one `statvfs`)."""
        if self._space.held or self._space.state == "off" or now_s < self._space_due:
            return
        self._space_due = now_s + SPACE_RESERVE_INTERVAL_S
        self._space.ensure()

    def _reserve(self, last_seq: int) -> None:
        """Before a commit would pass the anchor's reservation, write the anchor: after a lost outbox the next
        run starts above the reservation, so no seq committed now can be made twice. An anchor that cannot be
        written stops records as a failing outbox does (they wait in memory, with an alarm)."""
        if self._anchor is None or self._anchor.covers(last_seq):
            return
        try:
            self._save_anchor()
        except AnchorError as exc:
            raise OutboxError(str(exc)) from exc
        if not self._anchor.covers(last_seq):
            raise OutboxError(f"chain anchor reserves up to {self._anchor.anchor.reserved_upto}, not {last_seq}")

    def _follow_with_anchor(self, now: float, stopping: bool) -> None:
        """Now and then, and at stop, the anchor names the newest committed record (never one not committed). At a
        stop with every commit known to have succeeded (no trouble) it is the run's last commit: the reservation
        above it is handed back; after a commit that failed, the record may be on disk, so the reservation stays."""
        if self._anchor is None or not (stopping or now >= self._anchor_due):
            return
        self._anchor_due = now + ANCHOR_INTERVAL_S
        try:
            if stopping and self._trouble is None:
                head = self._head
                self._anchor.close(head.seq, head.digest, head.ts_ms, self._acked, self._key.kid)
            else:
                self._save_anchor()
        except AnchorError as exc:
            log.warning("chain_anchor_not_saved", problem=str(exc))

    def _save_anchor(self) -> None:
        assert self._anchor is not None
        head = self._head
        self._anchor.save(head.seq, head.digest, head.ts_ms, self._acked, self._key.kid)

    def _enter_trouble(self, exc: OutboxError, *, retry_now: bool = False) -> None:
        """`retry_now`: room was made (the space reserve given back), so the alarm and the records waiting behind
        it are written at the next turn rather than after `retry_s`."""
        kind: Literal["full", "failing"] = "full" if isinstance(exc, OutboxFull) else "failing"
        retry_at = self._clock.monotonic() + (0.0 if retry_now else self._settings.retry_s)
        if self._trouble is not None:
            with self._lock:  # the status says what the latest try found; the alarm keeps what began it
                self._trouble.next_try, self._trouble.problem = retry_at, str(exc)
            return
        now_ms = self._clock.wall_ms()
        log.error("outbox_unwritable", kind=kind, problem=str(exc), pending=len(self._pending))
        alarm = AlarmBody(
            kind=AlarmKind.OUTBOX_FULL if kind == "full" else AlarmKind.OUTBOX_FAILING,
            state=AlarmState.RAISED,
            subject="outbox",
            evidence=OutboxTrouble(
                problem=str(exc),
                max_bytes=self._settings.max_bytes,
                used_bytes=self._outbox_used_bytes(),
                acked_upto=self._acked,
                head_seq=self._head.seq,
            ).as_json(),
        )
        with self._lock:
            self._trouble = _Trouble(kind, now_ms, str(exc), retry_at)
            self._pending.appendleft(alarm.intent(now_ms))

    def _leave_trouble(self) -> None:
        trouble = self._trouble
        assert trouble is not None
        now_ms = self._clock.wall_ms()
        dropped = sum(trouble.dropped.values())
        log.warning(
            "outbox_writable_again", kind=trouble.kind, dropped=dropped, seconds=(now_ms - trouble.since_ms) // 1000
        )
        recovered = OutboxRecovered(
            duration_s=(now_ms - trouble.since_ms) // 1000, dropped=dropped, dropped_by_type=dict(trouble.dropped)
        )
        kind = AlarmKind.OUTBOX_FULL if trouble.kind == "full" else AlarmKind.OUTBOX_FAILING
        alarm = AlarmBody(kind=kind, state=AlarmState.CLEARED, subject="outbox", evidence=recovered.as_json())
        with self._lock:
            self._trouble = None
            self._pending.append(alarm.intent(now_ms))

    def _destroy_retired_key(self) -> None:
        if self._retired is None:
            return
        try:
            if self._retired.acked(self._acked):
                log.info("old_key_destroyed", key=str(self._key_path))
        except OSError as exc:
            repeats.error("old_key_not_destroyed", key=str(self._key_path), problem=str(exc))

    def _save_acked(self) -> None:
        acked = self._acked
        if acked == self._acked_saved:
            return
        try:
            self._outbox.set_meta({"acked_upto": str(acked)})
        except OutboxError as exc:
            repeats.warning("ack_position_not_saved", acked_upto=acked, problem=str(exc))
            return
        self._acked_saved = acked

    def _prune_by_retention(self) -> None:
        keep_after = self._clock.wall_ms() - int(self._settings.retention_days * 86_400_000)
        self._prune(self._acked, keep_after, self._settings.retention_bytes)
        self._used_bytes = self._outbox_used_bytes()

    def _prune(self, acked: int, keep_after_ts_ms: int | None, keep_bytes: int | None) -> int:
        """Delete acknowledged records, having first saved how far acknowledgements go (they must agree)."""
        if acked == 0:
            return 0
        try:
            self._save_acked_before_prune(acked)
            deleted = self._outbox.prune(acked, keep_after_ts_ms, keep_bytes)
        except OutboxError as exc:
            repeats.warning("prune_failed", problem=str(exc))
            return 0
        if deleted:
            log.info("outbox_pruned", records=deleted, acked_upto=acked, emergency=keep_bytes is None)
        return deleted

    def _outbox_used_bytes(self) -> int:
        try:
            return self._outbox.used_bytes()
        except sqlite3.Error:
            return -1
