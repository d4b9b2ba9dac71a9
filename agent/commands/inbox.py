"""What reaches the command desk from other threads: the command messages the uplink hears, and the stop.

The uplink and the desk call each other: the uplink hands the desk each message on the cmd topic, the desk hands
the uplink its replies and the resends it asks for. The inbox is the one piece between them, built before both:
the uplink is built with the inbox (its `post` and `max_command_bytes`), then the desk with the inbox and the
uplink's `reply` and `resend`, and nothing is set on either after it is built.

Hostile input: `post` runs on paho's network thread and never blocks. A message longer than `max_command_bytes`
is kept cut to one byte more, which is all the envelope check needs to refuse it for its size unread, and beyond
`queue_limit` waiting messages one is dropped and counted, so the inbox's memory is bounded whatever arrives.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from agent.clock import Clock
from agent.commands.settings import CommandsSection
from agent.logs import LogTally, get_logger
from agent.mailbox import Mailbox

log = get_logger("agent.commands")


@dataclass(frozen=True, slots=True)
class CommandMessage:
    payload: bytes
    """As it came, or cut to max_command_bytes + 1."""


@dataclass(frozen=True, slots=True)
class StopDesk:
    """Behind every message posted before it: the desk answers those, then ends."""


DeskMessage = CommandMessage | StopDesk


@dataclass(frozen=True, slots=True)
class InboxCounts:
    dropped: int
    """Messages that arrived while queue_limit were waiting, or once the desk was stopping."""
    oversized: int
    """Messages longer than max_command_bytes, kept cut and refused unread."""


class CommandInbox:
    """Every method but `take` and `wait` is safe from any thread and never blocks."""

    def __init__(self, settings: CommandsSection, clock: Clock) -> None:
        self.max_command_bytes = settings.max_command_bytes
        """The largest message read: the uplink asks the broker for no larger packets (MQTT 5)."""
        self._queue_limit = settings.queue_limit
        self._clock = clock
        self._mail: Mailbox[DeskMessage] = Mailbox()
        self._lock = threading.Lock()
        self._waiting = 0
        self._dropped = 0
        self._stopping = False
        self._oversized = LogTally()

    def post(self, payload: bytes) -> None:
        """A message from the cmd topic; called on paho's network thread."""
        limit = self.max_command_bytes
        if len(payload) > limit:
            count = self._oversized.note(self._clock.monotonic())
            if count is not None:
                log.warning("command_too_large", payload_bytes=len(payload), max_command_bytes=limit, count=count)
            payload = payload[: limit + 1]
        with self._lock:
            full = self._stopping or self._waiting >= self._queue_limit
            if full:
                self._dropped += 1
                dropped = self._dropped
            else:
                self._waiting += 1
                self._mail.put(CommandMessage(bytes(payload)))
        if full and (dropped == 1 or dropped % 100 == 0):
            log.warning("commands_dropped", dropped=dropped, queue_limit=self._queue_limit)

    def ask_stop(self) -> None:
        """Never dropped, whatever waits: the desk ends when it takes this. A message posted after it would
        wait unanswered behind it, so from now on each is dropped and counted instead."""
        with self._lock:
            self._stopping = True
        self._mail.put(StopDesk())

    def counts(self) -> InboxCounts:
        with self._lock:
            dropped = self._dropped
        return InboxCounts(dropped, self._oversized.total)

    def take(self) -> DeskMessage | None:
        """For the desk's thread: the oldest message, or None at once."""
        message = self._mail.take()
        if isinstance(message, CommandMessage):
            with self._lock:
                self._waiting -= 1
        return message

    def wait(self, timeout_s: float) -> None:
        """For the desk's thread: until a message is there, at most `timeout_s` real seconds."""
        self._mail.wait(timeout_s)
