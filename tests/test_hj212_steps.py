"""The HJ 212 uplink driven by hand: each `step(now)` is one turn at an instant the test picks, on the test's own
thread, against the reference receiver over real TCP on 127.0.0.1, from records a real recorder wrote into a
real SQLite outbox file. Time moves only when the test moves it: the backoff, the heartbeat and the progress
file follow the test's clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.clock import FakeClock
from support.waiting import wait_until
from test_hj212_link import MN, PROFILE, PW, T0_MS, ZONE, intent, settings

from agent.clock import now_of
from agent.containment import Boundary
from agent.contract.records import RecordType
from agent.ledger.keys import DeviceKey
from agent.ledger.outbox import Outbox
from agent.ledger.recorder import Recorder
from agent.ledger.settings import OutboxSection
from agent.uplink.hj212 import Hj212Uplink
from agent.uplink.hj212_settings import Hj212Section
from simulators.hj212_receiver import Hj212Receiver

SALES = 3
"""Sales with an A/L ratio made before the uplink's first step; each is one frame (the heartbeats between them
are not for the platform)."""


class Rig:
    """An outbox written by a recorder stepped by hand, and an HJ 212 uplink on it with the same clock."""

    def __init__(self, workdir: Path, clock: FakeClock) -> None:
        self.clock = clock
        self.workdir = workdir
        self.outbox = Outbox(workdir / "outbox.sqlite", 64 * 1024**2)
        key = DeviceKey.from_private(Ed25519PrivateKey.generate())
        self.recorder = Recorder(self.outbox, "S1", key, OutboxSection(), clock)
        for k in range(1, SALES + 1):
            end = f"2026-11-27T08:00:{k:02d}.000Z"
            self.recorder.submit(
                intent(RecordType.TRANSACTION, T0_MS + k * 1000, nozzle=f"N{k}", end=end, al_permille=1000 + k)
            )
            self.recorder.submit(intent(RecordType.HEARTBEAT, T0_MS + k * 1000 + 1, uptime_s=k))
        self.recorder.step(now_of(clock))
        self.uplinks: list[Hj212Uplink] = []

    def uplink(self, section: Hj212Section) -> Hj212Uplink:
        uplink = Hj212Uplink(
            section,
            PROFILE,
            self.outbox.path,
            ZONE,
            self.workdir / "hj212.state",
            self.clock,
            boundary=Boundary("uplink-hj212", self.recorder.submit, self.clock),
        )
        self.uplinks.append(uplink)
        return uplink


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path, FakeClock(T0_MS + 60_000))
    yield made
    for uplink in made.uplinks:
        uplink.stop()
    made.outbox.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Hj212Receiver]:
    with Hj212Receiver(tmp_path / "accepted.jsonl", profile=PROFILE, pw=PW, mn=MN) as server:
        yield server


def test_a_step_connects_the_next_sends_the_batch_then_steps_wait_for_the_heartbeat(
    rig: Rig, receiver: Hj212Receiver
) -> None:
    """The first step connects and sends nothing; the second sends every sale, each answered; then a step has
    nothing to do until the test's clock reaches heartbeat_s after the last frame, when it sends one heartbeat;
    the stop saves the progress."""
    uplink = rig.uplink(settings(receiver.port, heartbeat_s=30.0))
    head = rig.recorder.head.seq
    assert uplink.step(now_of(rig.clock)) is True
    assert (uplink.status().state, uplink.status().frames_sent) == ("online", 0)
    assert uplink.step(now_of(rig.clock)) is True
    status = uplink.status()
    assert (status.frames_sent, status.frames_acked, status.done_seq, status.backlog) == (SALES, SALES, head, 0)
    assert receiver.summary()["accepted"] == SALES
    assert uplink.step(now_of(rig.clock)) is False
    rig.clock.advance(29.0)
    assert uplink.step(now_of(rig.clock)) is False
    assert uplink.status().heartbeats == 0, "not due before heartbeat_s of the test's clock"
    rig.clock.advance(1.0)
    assert uplink.step(now_of(rig.clock)) is False
    assert uplink.status().heartbeats == 1
    wait_until(lambda: receiver.summary()["heartbeats"] == 1, 10, "the heartbeat received")
    assert uplink.stop() is True
    assert json.loads((rig.workdir / "hj212.state").read_text()) == {"done_seq": head}


def test_after_a_refused_connect_no_step_tries_again_before_the_backoff_is_over(rig: Rig, tmp_path: Path) -> None:
    """A step against a closed port leaves the link offline with the error; a platform up at once is not tried
    until the test's clock passes the backoff's wait (at most reconnect_max_s), when one step connects."""
    with Hj212Receiver(tmp_path / "gone.jsonl", profile=PROFILE, pw=PW, mn=MN) as gone:
        port = gone.port
    uplink = rig.uplink(settings(port, reconnect_min_s=10.0, reconnect_max_s=20.0))
    assert uplink.step(now_of(rig.clock)) is False
    refused = uplink.status()
    assert (refused.state, refused.connects) == ("offline", 0) and refused.last_error is not None
    with Hj212Receiver(tmp_path / "back.jsonl", port=port, profile=PROFILE, pw=PW, mn=MN) as back:
        rig.clock.advance(4.0)
        assert uplink.step(now_of(rig.clock)) is False
        assert (uplink.status().state, uplink.status().connects) == ("offline", 0), "within the backoff's wait"
        rig.clock.advance(17.0)
        assert uplink.step(now_of(rig.clock)) is True
        assert (uplink.status().state, uplink.status().connects) == ("online", 1)
        assert uplink.step(now_of(rig.clock)) is True
        assert back.summary()["accepted"] == SALES
