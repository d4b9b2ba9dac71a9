"""A platform link's life as staff see it: connecting, online, offline, stopped, since when, and the last error.

Theory of operation: both uplinks (MQTT in agent.uplink.session, HJ 212 in agent.uplink.hj212) live the same
cycle: try to connect, serve a session, lose it, wait a backoff (agent.uplink.backoff), try again. `since` is
when the link last came online or went down: the tries to reconnect in between (connecting, offline,
connecting ...) are one outage, which is what staff are told the length of. A connect is counted when the link
comes online. Pure code driven by the link's own thread; the times come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.uplink.backoff import Backoff

LinkState = Literal["connecting", "online", "offline", "stopped"]


@dataclass(frozen=True, slots=True)
class LinkSnapshot:
    state: LinkState
    since_ms: int
    connects: int
    last_error: str | None


class LinkLifecycle:
    """The link's state and its backoff between tries; owned by the link's thread, read through `snapshot`."""

    def __init__(self, backoff: Backoff, now_ms: int) -> None:
        self.backoff = backoff
        self._state: LinkState = "offline"
        self._since_ms = now_ms
        self._connects = 0
        self._last_error: str | None = None

    @property
    def state(self) -> LinkState:
        return self._state

    def enter(self, state: LinkState, now_ms: int, error: str | None = None) -> None:
        """The link is now in `state` (with the error that brought it there, if any)."""
        if (state == "online") != (self._state == "online"):
            self._since_ms = now_ms
            self._connects += state == "online"
        self._state = state
        if error is not None:
            self._last_error = error

    def error(self, error: str) -> None:
        """Something went wrong that staff should read, without changing the state."""
        self._last_error = error

    def snapshot(self) -> LinkSnapshot:
        return LinkSnapshot(self._state, self._since_ms, self._connects, self._last_error)
