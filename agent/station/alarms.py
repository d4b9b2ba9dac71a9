"""Alarms are raised once and cleared once: the station keeps the book of which are active.

An alarm is identified by its kind and its subject (a nozzle, a device, a line). Raising an active alarm or
clearing an inactive one makes no record, so a condition seen on every poll is still one alarm. The book's
state travels as cursors with the alarm records themselves (`alarm/<kind>/<subject>` = 1 or 0), so after a
restart the agent neither raises an active alarm again nor forgets to clear it.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.contract.evidence import Evidence
from agent.contract.records import AlarmBody, AlarmKind, AlarmState, Cursor, RecordIntent

_PREFIX = "alarm/"


def active_in(cursors: Mapping[str, int]) -> set[tuple[str, str]]:
    """The (kind, subject) of every alarm the cursors say is active."""
    active: set[tuple[str, str]] = set()
    for key, value in cursors.items():
        if key.startswith(_PREFIX) and value == 1:
            kind, _, subject = key.removeprefix(_PREFIX).partition("/")
            active.add((kind, subject))
    return active


class AlarmBook:
    def __init__(self, cursors: dict[str, int]) -> None:
        self._active = active_in(cursors)

    def active(self, kind: AlarmKind, subject: str) -> bool:
        return (kind, subject) in self._active

    def raise_(self, kind: AlarmKind, subject: str, ts_ms: int, evidence: Evidence) -> list[RecordIntent]:
        if (kind, subject) in self._active:
            return []
        self._active.add((kind, subject))
        body = AlarmBody(kind=kind, state=AlarmState.RAISED, subject=subject, evidence=evidence.as_json())
        return [body.intent(ts_ms, Cursor(f"{_PREFIX}{kind}/{subject}", 1))]

    def clear(self, kind: AlarmKind, subject: str, ts_ms: int, evidence: Evidence) -> list[RecordIntent]:
        if (kind, subject) not in self._active:
            return []
        self._active.discard((kind, subject))
        body = AlarmBody(kind=kind, state=AlarmState.CLEARED, subject=subject, evidence=evidence.as_json())
        return [body.intent(ts_ms, Cursor(f"{_PREFIX}{kind}/{subject}", 0))]

    def judge(self, kind: AlarmKind, subject: str, ts_ms: int, bad: bool, evidence: Evidence) -> list[RecordIntent]:
        """Raise if `bad`, else clear: for checks that give a verdict every time they run."""
        return (self.raise_ if bad else self.clear)(kind, subject, ts_ms, evidence)
