"""The recorder and the uplink wired as the daemon wires them, with moments a benchmark can wait for.

The only additions are two callbacks in the path the daemon already has (`on_commit`, `on_acked`): each
notes the time at which the chain head or the acknowledged position moved, so a benchmark learns when the N-th
record was durable or acknowledged without polling, and without changing what the agent does.
"""

from __future__ import annotations

import bisect
import threading
import time
from pathlib import Path
from typing import Literal

from agent.clock import SystemClock
from agent.containment import Boundary
from agent.ledger.keys import DeviceKey
from agent.ledger.outbox import Outbox
from agent.ledger.recorder import Recorder
from agent.ledger.settings import OutboxSection
from agent.uplink.session import Uplink
from bench.workload import OUTBOX_MAX_BYTES, STATION, uplink_settings


class Progress:
    """A position that only grows (head seq, acked seq) and the perf_counter time at which it reached each value."""

    def __init__(self) -> None:
        self._moved = threading.Condition()
        self._values: list[int] = []
        self._times: list[float] = []

    def note(self, value: int) -> None:
        now = time.perf_counter()
        with self._moved:
            if not self._values or value > self._values[-1]:
                self._values.append(value)
                self._times.append(now)
                self._moved.notify_all()

    @property
    def value(self) -> int:
        with self._moved:
            return self._values[-1] if self._values else 0

    def wait(self, value: int, timeout_s: float) -> float | None:
        """The time the position first reached `value`, waiting up to timeout_s; None if it did not."""
        with self._moved:
            self._moved.wait_for(lambda: bool(self._values) and self._values[-1] >= value, timeout_s)
            index = bisect.bisect_left(self._values, value)
            return self._times[index] if index < len(self._values) else None


class Rig:
    """An outbox, its recorder and optionally an uplink, for one benchmark run in `workdir`."""

    def __init__(self, workdir: Path, key: DeviceKey, *, with_recorder: bool = True) -> None:
        self.path = workdir / "outbox.sqlite"
        self.key = key
        self.committed = Progress()
        self.acked = Progress()
        self.outbox: Outbox | None = None
        self.recorder: Recorder | None = None
        self.uplink: Uplink | None = None
        self._uplink_started = False
        if with_recorder:
            self.outbox = Outbox(self.path, OUTBOX_MAX_BYTES)
            self.recorder = Recorder(
                self.outbox, STATION, key, OutboxSection(path=self.path), SystemClock(), on_commit=self._on_commit
            )

    def start_recorder(self) -> Recorder:
        assert self.recorder is not None, "this rig was made without a recorder"
        self.recorder.start()
        return self.recorder

    def attach_uplink(self, broker: str, ack_mode: Literal["broker", "platform"], head_seq: int) -> Uplink:
        """An uplink that starts from nothing acknowledged and knows records up to head_seq; not started yet."""
        self.uplink = Uplink(
            uplink_settings(broker, ack_mode),
            STATION,
            self.path,
            SystemClock(),
            on_acked=self._on_acked,
            acked_upto=0,
            head_seq=head_seq,
            boundary=Boundary("uplink", lambda _intent: None, SystemClock()),
            record=lambda _intent: None,
        )
        return self.uplink

    def start_uplink(self) -> Uplink:
        assert self.uplink is not None, "attach_uplink() first"
        self.uplink.start()
        self._uplink_started = True
        return self.uplink

    def wait_online(self, timeout_s: float) -> bool:
        assert self.uplink is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.uplink.status().state == "online":
                return True
            time.sleep(0.005)
        return False

    def close(self) -> None:
        """Stop the uplink, then the recorder (which commits what it holds), then close the outbox."""
        if self.uplink is not None and self._uplink_started:
            self.uplink.stop()
        if self.recorder is not None:
            self.recorder.stop()
        if self.outbox is not None:
            self.outbox.close()

    def _on_commit(self, head_seq: int) -> None:
        self.committed.note(head_seq)
        if self.uplink is not None:
            self.uplink.notify(head_seq)

    def _on_acked(self, upto: int) -> None:
        self.acked.note(upto)
        if self.recorder is not None:
            self.recorder.note_acked(upto)
