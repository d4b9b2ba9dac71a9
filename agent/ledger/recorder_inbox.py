"""What reaches the recorder from other threads, and where it says how far the chain has come.

The recorder and the uplink call each other: the recorder tells the uplink of each commit, the uplink tells the
recorder of each acknowledgement and hands it the events it makes. The inbox is the one piece between them, built
before both: the uplink is built with the inbox's `submit` and `note_acked`, then the recorder with the inbox and
the uplink's `notify`, and nothing is set on either after it is built. Those built before the recorder read its
progress (`position`) here too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass

from agent.contract.records import RecordIntent
from agent.ledger.outbox import Outbox
from agent.mailbox import Mailbox


@dataclass(frozen=True, slots=True)
class ChainPosition:
    """How far the chain has come: the newest committed record, the acknowledged part, and the signing key."""

    head_seq: int
    acked_upto: int
    kid: str

    @classmethod
    def stored(cls, outbox: Outbox, kid: str) -> ChainPosition:
        """As the outbox holds it; an ack position beyond the head (an outbox restored from a backup) is cut."""
        head_seq = outbox.head().seq
        return cls(head_seq, min(outbox.acked_upto(), head_seq), kid)


@dataclass(frozen=True, slots=True)
class KeyRotated:
    """A finished rotation: the key_rotation record (signed by `old_kid`) is `seq`; later ones are `new_kid`'s."""

    old_kid: str
    new_kid: str
    seq: int


@dataclass(frozen=True, slots=True)
class Rotation:
    command_id: str | None
    done: Future[KeyRotated]


@dataclass(frozen=True, slots=True)
class Acked:
    upto: int


@dataclass(frozen=True, slots=True)
class Flush:
    done: threading.Event


@dataclass(frozen=True, slots=True)
class Written:
    """A request to be told once every intent submitted before it is in the outbox (or was dropped by a full one,
    counted in its alarm): what the station's day books need before a day closes (agent/station/daily_close.py)."""

    then: Callable[[], None]
    """Called on the recorder's thread; it must not block."""


@dataclass(frozen=True, slots=True)
class Stop:
    mark: Mapping[str, str] | None
    """Saved in the outbox's meta as the thread's last act, if every record was written: the clean-stop mark."""


Message = RecordIntent | Rotation | Acked | Flush | Written | Stop


class RecorderInbox:
    """Every method but `take` and `wait` is safe from any thread and never blocks."""

    def __init__(self, position: ChainPosition) -> None:
        """`position`: the chain as the outbox holds it before the recorder starts."""
        self._mail: Mailbox[Message] = Mailbox()
        self._lock = threading.Lock()
        self._position = position

    def submit(self, intent: RecordIntent) -> None:
        """Queue an intent; never blocks, whatever the disk is doing."""
        self._mail.put(intent)

    def note_acked(self, upto: int) -> None:
        """The uplink learnt that records up to `upto` are acknowledged."""
        self._mail.put(Acked(upto))

    def rotate_key(self, command_id: str | None) -> Future[KeyRotated]:
        """Queue a key rotation behind the intents submitted so far (they are signed by the old key); the
        future says how it went (agent.ledger.recorder.KeyRotationFailed)."""
        done: Future[KeyRotated] = Future()
        self._mail.put(Rotation(command_id, done))
        return done

    def when_written(self, then: Callable[[], None]) -> None:
        """Queue a `Written` request behind the intents submitted so far; never blocks. While the outbox cannot be
        written, the answer waits until they are."""
        self._mail.put(Written(then))

    def put(self, message: Flush | Stop) -> None:
        self._mail.put(message)

    def position(self) -> ChainPosition:
        with self._lock:
            return self._position

    def publish(self, position: ChainPosition) -> None:
        """For the recorder: how far the chain has come now."""
        with self._lock:
            self._position = position

    def take(self) -> Message | None:
        """For the recorder's thread: the oldest message, or None at once."""
        return self._mail.take()

    def wait(self, timeout_s: float) -> None:
        """For the recorder's thread: until a message is there, at most `timeout_s` seconds."""
        self._mail.wait(timeout_s)
