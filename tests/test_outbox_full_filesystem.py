"""The outbox on a file system something else filled to the last byte: the space reserve is given back, acknowledged
records are pruned, and new records are stored with the chain unbroken; the reserve's own rules (made once, kept,
remade only with room to spare) on an ordinary folder."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from raw_body import RawBody
from support.clock import FakeClock
from test_ledger import FIXED_SECRET_KEY, STATION, fixed_key, heartbeat

from agent.clock import Instant, now_of
from agent.contract.records import RecordIntent, RecordType
from agent.ledger.anchor import AnchorKeeper, anchor_path
from agent.ledger.opening import open_outbox
from agent.ledger.outbox import Outbox, OutboxReader
from agent.ledger.recorder import SPACE_RESERVE_INTERVAL_S, Recorder
from agent.ledger.settings import OutboxSection
from agent.ledger.space_reserve import FULL_BELOW_BYTES, Room, SpaceReserve, reserve_path

RESERVE_BYTES = OutboxSection(path=Path("o")).reserve_bytes
"""The shipped default: the test holds it against a WAL as full as SQLite lets it grow between folds."""


def event(n: int) -> RecordIntent:
    return RecordIntent(RecordType.EVENT, n, RawBody({"n": n, "pad": "x" * 600}))


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB tmpfs of its own (root only: CI runs as root), unmounted after the test."""
    where = tmp_path / "fs"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(where)], check=False)
    if mounted.returncode != 0:
        pytest.skip("tmpfs could not be mounted")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill_to_the_last_byte(path: Path) -> None:
    """Another program's file, written until the file system refuses even one byte more (ext4 keeps some
    clusters for itself that statvfs counts as free)."""
    with path.open("ab", buffering=0) as filler:
        for size in (1024**2, 4096, 1):
            for _ in range(100_000):
                try:
                    filler.write(b"\xa5" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    assert os.statvfs(path.parent).f_bavail == 0


def step_until_stored(recorder: Recorder, clock: FakeClock, head_seq: int) -> None:
    for _ in range(200):
        recorder.step(now_of(clock))
        if recorder.status().head_seq >= head_seq and recorder.status().pending == 0:
            return
        clock.advance(0.1)
    raise AssertionError(f"records not stored: {recorder.status()}")


def chain_of(outbox_path: Path) -> list[dict[str, object]]:
    """Every record the outbox holds, each checked against its neighbour by an outside SHA-256 and its
    signature by `cryptography`'s Ed25519 key."""
    public = FIXED_SECRET_KEY.public_key()
    records = []
    previous: bytes | None = None
    for stored in OutboxReader(outbox_path).read(1, 10**9):
        public.verify(stored.sig, stored.canonical)
        record = json.loads(stored.canonical)
        if previous is not None:
            assert record["prev"] == hashlib.sha256(previous).hexdigest(), f"chain broken at seq {record['seq']}"
        previous = stored.canonical
        records.append(record)
    return records


ACKED = 2000
"""Records acknowledged before the disk fills, still in the WAL (about 2 MiB): the fold must grow the database."""
WORST_ACKED = 3600
"""Records whose pages nearly fill the WAL before its first fold (SQLite folds at 1,000 pages, about 3.9 MiB): the
fold then grows the database file by all of them, the most room a fold needs, which the reserve must cover."""
AFTER = 1500
"""Records made on the full disk: more than the WAL's room, so that its fold must grow the database file."""


def acked_then_filled(where: Path, clock: FakeClock, reserve_bytes: int, acked: int = ACKED) -> tuple[Recorder, Outbox]:
    """An outbox with `acked` records acknowledged, then the file system filled to the last byte by another file,
    and AFTER records submitted."""
    outbox = Outbox(where / "outbox.sqlite", 64 * 1024**2)
    settings = OutboxSection(path=outbox.path, reserve_bytes=reserve_bytes)
    recorder = Recorder(outbox, STATION, fixed_key(), settings, clock)
    for n in range(acked):
        recorder.submit(event(n))
    step_until_stored(recorder, clock, acked)
    recorder.note_acked(acked)
    recorder.step(now_of(clock))
    fill_to_the_last_byte(where / "another-programs.log")
    for n in range(AFTER):
        recorder.submit(event(acked + n))
    return recorder, outbox


KILLED_RUN = """
import sys
import time
from pathlib import Path
from agent.clock import now_of
from agent.ledger.outbox import Outbox
from agent.ledger.space_reserve import SpaceReserve
from support.clock import FakeClock
from test_outbox_full_filesystem import RESERVE_BYTES, acked_then_filled

def stopping_after(cls, name, calls):
    done = getattr(cls, name)
    made = []
    def wrapper(self, *args):
        result = done(self, *args)
        made.append(result)
        if len(made) == calls:
            print(name, flush=True)
            time.sleep(60)
        return result
    setattr(cls, name, wrapper)

stopping_after(SpaceReserve if sys.argv[2] == "release" else Outbox, sys.argv[2], int(sys.argv[3]))
clock = FakeClock()
recorder, outbox = acked_then_filled(Path(sys.argv[1]), clock, RESERVE_BYTES)
print("filled", flush=True)
for _ in range(100_000):
    recorder.step(now_of(clock))
    clock.advance(0.1)
"""
"""An agent's recorder on the full disk, held still (to be killed) right after the n-th call of a step of making
room: the reserve given back, or a prune step."""


class TestFullFileSystem:
    def test_without_a_reserve_the_filled_disk_stops_new_records(self, small_fs: Path) -> None:
        """The defect the reserve answers, on the same disk with `reserve_bytes = 0`: acknowledged records cannot be
        pruned (the delete needs room in the WAL), so new records wait behind outbox_full until space is freed."""
        clock = FakeClock()
        recorder, outbox = acked_then_filled(small_fs, clock, reserve_bytes=0)
        for _ in range(20):
            recorder.step(now_of(clock))
            clock.advance(0.1)
        status = recorder.status()
        assert status.state == "full" and status.pending > 0
        assert "no space reserve is configured" in (status.problem or "")
        assert status.head_seq < ACKED + AFTER
        recorder.stop()
        outbox.close()

    def test_a_filled_disk_gives_back_the_reserve_prunes_acked_records_and_stores_new_ones_gap_free(
        self, small_fs: Path
    ) -> None:
        """Records acknowledged, the tmpfs filled to the last byte by another file, more records made: they are all
        stored, behind an outbox_full alarm naming the released reserve and before its clearing, none dropped, the
        seqs gap-free and the chain verified across the prune; records go on being stored while the disk stays
        full, and the reserve is made again once space is freed."""
        clock = FakeClock()
        reserve = reserve_path(small_fs / "outbox.sqlite")
        recorder, outbox = acked_then_filled(small_fs, clock, RESERVE_BYTES, WORST_ACKED)
        assert (small_fs / "outbox.sqlite").stat().st_size == 4096, "nothing folded yet: the worst case"
        assert (small_fs / "outbox.sqlite-wal").stat().st_size > 3.5 * 1024**2
        head = WORST_ACKED + AFTER + 2
        step_until_stored(recorder, clock, head)

        status = recorder.status()
        assert (status.state, status.pending, status.dropped) == ("ok", 0, 0)
        assert not reserve.exists()
        records = chain_of(outbox.path)
        seqs = [r["seq"] for r in records]
        assert seqs == list(range(seqs[0], head + 1)), "gap-free up to the head"
        assert 1 < seqs[0] <= WORST_ACKED + 1, "acknowledged records, and only those, were pruned to make the room"
        alarms = [r for r in records if r["type"] == "alarm"]
        assert [(a["body"]["kind"], a["body"]["state"]) for a in alarms] == [  # type: ignore[index]
            ("outbox_full", "raised"),
            ("outbox_full", "cleared"),
        ]
        assert WORST_ACKED < alarms[0]["seq"] < alarms[1]["seq"]  # type: ignore[operator]
        problem = alarms[0]["body"]["evidence"]["problem"]  # type: ignore[index]
        assert "file system under the outbox is full" in problem and "space reserve" in problem
        assert alarms[1]["body"]["evidence"]["dropped"] == 0  # type: ignore[index]
        made = [r["body"]["n"] for r in records if r["type"] == "event" and r["seq"] > WORST_ACKED]  # type: ignore[index]
        assert made == list(range(WORST_ACKED, WORST_ACKED + AFTER)), "every record made on the full disk, in order"

        for _ in range(2):  # the other program takes every byte freed: acknowledged records go on making the room
            fill_to_the_last_byte(small_fs / "another-programs.log")
            recorder.note_acked(head)
            for n in range(AFTER):
                recorder.submit(event(n))
            step_until_stored(recorder, clock, head + AFTER)
            head += AFTER
            assert (recorder.status().state, recorder.status().dropped) == ("ok", 0)
        assert [r["seq"] for r in chain_of(outbox.path)][-1] == head

        (small_fs / "another-programs.log").unlink()
        recorder.step(Instant(clock.monotonic() + SPACE_RESERVE_INTERVAL_S, clock.wall_ms()))
        assert reserve.stat().st_size == RESERVE_BYTES
        recorder.stop()
        outbox.close()

    @pytest.mark.parametrize(("step", "calls"), [("release", 1), ("prune_oldest", 3)])
    def test_a_kill_9_while_room_is_made_leaves_an_outbox_the_next_run_goes_on_with(
        self, small_fs: Path, step: str, calls: int
    ) -> None:
        """An agent killed with SIGKILL right after it gave back the reserve, or half-way through its prune steps:
        the next run opens the outbox on the disk still full, finds the chain whole and gap-free, and stores new
        records."""
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_RUN, str(small_fs), step, str(calls)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "filled\n"
        assert child.stdout.readline() == f"{step}\n"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        clock = FakeClock()
        outbox = Outbox(small_fs / "outbox.sqlite", 64 * 1024**2)
        recorder = Recorder(outbox, STATION, fixed_key(), OutboxSection(path=outbox.path), clock)
        before = [r["seq"] for r in chain_of(outbox.path)]
        assert before == list(range(before[0], before[-1] + 1)) and before[-1] >= ACKED
        assert before[0] <= ACKED + 1, "only acknowledged records were pruned"
        recorder.note_acked(ACKED)
        for n in range(500):
            recorder.submit(event(n))
        step_until_stored(recorder, clock, before[-1] + 500)
        after = [r["seq"] for r in chain_of(outbox.path)]
        assert after == list(range(after[0], recorder.status().head_seq + 1))
        assert recorder.status().dropped == 0
        recorder.stop()
        outbox.close()

    def test_a_start_on_a_disk_that_filled_while_the_agent_was_stopped_gives_back_the_reserve_and_records(
        self, small_fs: Path
    ) -> None:
        """A box rebooted onto a disk filled to the last byte while the agent was stopped: the start gives back
        the reserve the last run made, so opening the outbox and moving the chain anchor (on the same disk) find
        room, and the run goes on recording with its chain unbroken (heartbeats: the start checks the newest record's
        body against the contract)."""
        key_path = small_fs / "keys" / "device.key"
        key_path.parent.mkdir()
        outbox_path = small_fs / "outbox.sqlite"

        def start(clock: FakeClock) -> tuple[Recorder, Outbox]:
            opened = open_outbox(
                outbox_path,
                64 * 1024**2,
                fixed_key(),
                station=STATION,
                anchor_file=anchor_path(key_path),
                now_ms=clock.wall_ms(),
                config=None,
            )
            keeper = AnchorKeeper(anchor_path(key_path), opened.anchor)
            settings = OutboxSection(path=outbox_path)
            return Recorder(opened.outbox, STATION, fixed_key(), settings, clock, anchor=keeper), opened.outbox

        clock = FakeClock()
        recorder, outbox = start(clock)
        for n in range(200):
            recorder.submit(heartbeat(clock.wall_ms(), n))
        step_until_stored(recorder, clock, 200)
        recorder.note_acked(200)
        recorder.stop()
        outbox.close()
        assert reserve_path(outbox_path).exists()

        fill_to_the_last_byte(small_fs / "another-programs.log")
        recorder, outbox = start(clock)
        assert not reserve_path(outbox_path).exists()
        for n in range(300):
            recorder.submit(heartbeat(clock.wall_ms(), n))
        step_until_stored(recorder, clock, 500)
        seqs = [r["seq"] for r in chain_of(outbox_path)]
        assert seqs == list(range(seqs[0], 501)) and seqs[0] <= 201
        recorder.stop()
        outbox.close()

    def test_records_made_while_nothing_is_acknowledged_leave_room_to_prune_once_the_platform_acknowledges(
        self, small_fs: Path
    ) -> None:
        """No reserve held, the platform acknowledging nothing, records made until the disk is full and the other
        program taking every byte left: the records wait behind outbox_full, and once the platform acknowledges
        them, they are pruned and new records stored, gap-free (before, the outbox had spent the room its WAL needed
        to fold, so not even the prune could be written until someone freed space)."""
        filler = small_fs / "another-programs.log"
        fill_to_the_last_byte(filler)
        os.truncate(filler, filler.stat().st_size - 3 * 1024**2)
        clock = FakeClock()
        outbox = Outbox(small_fs / "outbox.sqlite", 64 * 1024**2)
        recorder = Recorder(outbox, STATION, fixed_key(), OutboxSection(path=outbox.path, retry_s=1.0), clock)
        made = 0
        for _ in range(60):
            for _ in range(400):
                recorder.submit(event(made))
                made += 1
            for _ in range(20):
                recorder.step(now_of(clock))
                clock.advance(0.1)
            if recorder.status().state == "full":
                break
        assert recorder.status().state == "full", "the disk filled with records nobody acknowledged"
        fill_to_the_last_byte(filler)
        stored = recorder.status().head_seq
        recorder.note_acked(stored)
        for n in range(300):
            recorder.submit(event(made + n))
        for _ in range(600):
            recorder.step(now_of(clock))
            clock.advance(0.1)
            if recorder.status().state == "ok" and recorder.status().pending == 0:
                break
        assert (recorder.status().state, recorder.status().pending) == ("ok", 0), recorder.status().problem
        seqs = [r["seq"] for r in chain_of(outbox.path)]
        assert seqs == list(range(seqs[0], recorder.status().head_seq + 1)) and 1 < seqs[0] <= stored + 1
        recorder.stop()
        outbox.close()

    def test_a_disk_already_full_at_start_goes_on_without_a_reserve(self, small_fs: Path) -> None:
        """With less free than twice the reserve, none is made and the recorder stores records all the same."""
        fill_to_the_last_byte(small_fs / "another-programs.log")
        os.truncate(small_fs / "another-programs.log", os.path.getsize(small_fs / "another-programs.log") - 4 * 1024**2)
        clock = FakeClock()
        outbox = Outbox(small_fs / "outbox.sqlite", 64 * 1024**2)
        recorder = Recorder(outbox, STATION, fixed_key(), OutboxSection(path=outbox.path), clock)
        assert not reserve_path(outbox.path).exists()
        for n in range(100):
            recorder.submit(event(n))
        step_until_stored(recorder, clock, 100)
        assert [r["seq"] for r in chain_of(outbox.path)] == list(range(1, 101))
        recorder.stop()
        outbox.close()


@pytest.fixture
def small_ext4(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB ext4 loop image of its own (root only), whose statvfs counts as free the clusters ext4 keeps for
    itself (`reserved_clusters`), which not even root can write."""
    image, where = tmp_path / "ext4.img", tmp_path / "ext4"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting an image needs root")
    with image.open("wb") as file:
        file.truncate(64 * 1024**2)
    made = subprocess.run(["mkfs.ext4", "-q", str(image)], check=False, capture_output=True)
    if made.returncode != 0 or subprocess.run(["mount", "-o", "loop", str(image), str(where)], check=False).returncode:
        pytest.skip("no ext4 loop mount here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def test_on_ext4_a_full_that_the_outbox_cap_does_not_explain_gives_back_the_reserve(small_ext4: Path) -> None:
    """On ext4 filled by another program, statvfs still counts ext4's own reserved clusters (over 1 MiB here) as
    free to root: the "full" is the file system's all the same, since the outbox is far below its cap, so the
    reserve is given back and every new record stored (before: the reserve kept, and records waiting forever)."""
    clock = FakeClock()
    recorder, outbox = acked_then_filled(small_ext4, clock, RESERVE_BYTES)
    step_until_stored(recorder, clock, ACKED + AFTER + 2)
    assert (recorder.status().state, recorder.status().dropped) == ("ok", 0)
    assert not reserve_path(outbox.path).exists()
    seqs = [r["seq"] for r in chain_of(outbox.path)]
    assert seqs == list(range(seqs[0], ACKED + AFTER + 3)) and 1 < seqs[0] <= ACKED + 1
    recorder.stop()
    outbox.close()


class TestSpaceReserve:
    def test_it_is_made_once_with_its_blocks_and_kept_as_it_is(self, tmp_path: Path) -> None:
        """The reserve is a file of the set size whose blocks are allocated; a second ensure (a restart) keeps
        the same file untouched: it is written once, not at every start."""
        reserve = SpaceReserve(tmp_path / "o.sqlite.reserve", 1024**2)
        assert reserve.ensure() == "held"
        made = reserve.path.stat()
        assert made.st_size == 1024**2 and made.st_blocks * 512 >= 1024**2
        assert SpaceReserve(reserve.path, 1024**2).ensure() == "held"
        kept = reserve.path.stat()
        assert (kept.st_ino, kept.st_mtime_ns) == (made.st_ino, made.st_mtime_ns)

    def test_a_file_cut_short_is_made_again_and_a_size_of_zero_removes_it(self, tmp_path: Path) -> None:
        """A reserve a kill -9 cut short (the wrong size, or sparse) is replaced by a whole one; size 0 removes
        it and holds none."""
        path = tmp_path / "o.sqlite.reserve"
        path.write_bytes(b"\0" * 1000)
        os.truncate(path, 1024**2)
        assert SpaceReserve(path, 1024**2).ensure() == "held"
        assert path.stat().st_blocks * 512 >= 1024**2
        assert SpaceReserve(path, 0).ensure() == "off"
        assert not path.exists()

    def test_release_gives_the_space_back_once(self, tmp_path: Path) -> None:
        """Released, the file is gone and the state says so; a second release has nothing to give."""
        reserve = SpaceReserve(tmp_path / "o.sqlite.reserve", 1024**2)
        reserve.ensure()
        assert reserve.release() and reserve.state == "released" and not reserve.path.exists()
        assert not reserve.release()

    def test_a_folder_at_its_path_is_said_and_the_agent_goes_on_without_one(self, tmp_path: Path) -> None:
        """Something an installer put where the reserve goes (a folder) neither ends the start nor the recorder's
        turn that would give the reserve back: no reserve is held, and the warning names the path."""
        path = tmp_path / "o.sqlite.reserve"
        (path / "kept").mkdir(parents=True)
        reserve = SpaceReserve(path, 1024**2)
        assert reserve.ensure() == "not_made"
        assert not reserve.release() and (path / "kept").is_dir()
        made = SpaceReserve(tmp_path / "p.sqlite.reserve", 1024**2)
        assert made.ensure() == "held"
        made.path.unlink()
        made.path.mkdir()
        assert not made.release() and made.state == "not_made"


class TestRoom:
    @pytest.mark.parametrize(
        ("free_bytes", "full"), [(0, True), (4096, True), (FULL_BELOW_BYTES - 1, True), (FULL_BELOW_BYTES, False)]
    )
    def test_a_file_system_is_full_below_a_mebibyte(self, free_bytes: int, full: bool) -> None:
        """SQLite fails a write once a 4 KiB WAL frame no longer fits: under 1 MiB free the file system is full."""
        assert Room(free_bytes).full is full

    @pytest.mark.parametrize(("free_bytes", "fits"), [(16 * 1024**2, True), (16 * 1024**2 - 1, False), (0, False)])
    def test_a_reserve_is_made_only_with_as_much_again_left_free(self, free_bytes: int, fits: bool) -> None:
        """An 8 MiB reserve needs 16 MiB free: making it never fills the disk itself."""
        assert Room(free_bytes).fits_reserve(8 * 1024**2) is fits
