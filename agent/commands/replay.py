"""The replay memory: which command ids were accepted, kept until they expire, in bounded space.

Theory of operation: a command is a replay if its id is remembered, or if it expires no later than the
*floor*, the latest expiry of any id the memory has let go of. Ids are let go of when they expire (the floor
then stays at or below the clock, so nothing valid is refused) or, when the memory is full, the one expiring
first is let go of early (the floor then rises above the clock, and the refusal says so). The floor is what
keeps a step of the clock backwards from reopening an expired command: its id may be gone, but its expiry is
still below the floor. Pure code; agent.commands.replay_file keeps it across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReplayState:
    """What must survive a restart: the floor and the ids not yet expired, with their expiry."""

    floor_ms: int
    expiries: tuple[tuple[str, int], ...]


class ReplayMemory:
    def __init__(self, capacity: int, state: ReplayState | None = None) -> None:
        self._capacity = capacity
        self._floor_ms = 0 if state is None else state.floor_ms
        self._expiries: dict[str, int] = {} if state is None else dict(state.expiries)
        self._shrink()

    def replay_problem(self, command_id: str, expires_ms: int) -> str | None:
        """Why a command with this id and expiry may have been seen before, or None if it cannot have been."""
        if command_id in self._expiries:
            return f"command id {command_id} was accepted before"
        if expires_ms <= self._floor_ms:
            return (
                "it expires no later than a command this box no longer remembers, so it may have been seen "
                "(the replay memory was full, or the clock stepped back); send it again with a new id"
            )
        return None

    def remember(self, command_id: str, expires_ms: int, now_ms: int) -> ReplayState:
        """Note an accepted command; return the state to persist before carrying it out."""
        self._expiries[command_id] = expires_ms
        for expired in [known for known, expiry in self._expiries.items() if expiry <= now_ms]:
            self._forget(expired)
        self._shrink()
        return self.state()

    def state(self) -> ReplayState:
        return ReplayState(self._floor_ms, tuple(sorted(self._expiries.items(), key=lambda item: item[1])))

    def _shrink(self) -> None:
        while len(self._expiries) > self._capacity:
            self._forget(min(self._expiries, key=self._expiries.__getitem__))

    def _forget(self, command_id: str) -> None:
        self._floor_ms = max(self._floor_ms, self._expiries.pop(command_id))
