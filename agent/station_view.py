"""What the station has said lately, kept for `status`: active alarms, each nozzle's last sale, the last clock step.

The station model is owned by its thread and takes no locks, so `status` cannot ask it. Instead this view sits
on the station's way out: it sees every intent the station loop submits, on the station thread, and keeps the
few facts staff ask about behind a lock, so the main loop can copy them at any moment. It learns only from what
the station records, so it can never show an alarm the platform was not told of.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from agent.records import AlarmState, EventKind, JsonScalar, RecordIntent, RecordType, format_ts

_ALARM_CURSOR = "alarm/"


@dataclass(frozen=True, slots=True)
class ActiveAlarm:
    """`since` is None for an alarm raised before this run of the agent (its book came back from the outbox)."""

    kind: str
    subject: str
    since: str | None
    evidence: dict[str, JsonScalar]


@dataclass(frozen=True, slots=True)
class LastSale:
    nozzle: str
    dispenser: str
    grade: str
    end: str
    volume_ml: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class ClockStep:
    from_ts: str
    to_ts: str
    jump_ms: int


@dataclass(frozen=True, slots=True)
class StationFacts:
    alarms: tuple[ActiveAlarm, ...]
    last_sales: tuple[LastSale, ...]
    last_clock_step: ClockStep | None


class StationView:
    def __init__(self, cursors: dict[str, int]) -> None:
        """`cursors`: the outbox's cursors at start, whose `alarm/<kind>/<subject>` entries say which alarms
        are still active from an earlier run."""
        self._lock = threading.Lock()
        self._alarms: dict[tuple[str, str], ActiveAlarm] = {}
        for key, value in cursors.items():
            if key.startswith(_ALARM_CURSOR) and value == 1:
                kind, _, subject = key.removeprefix(_ALARM_CURSOR).partition("/")
                self._alarms[(kind, subject)] = ActiveAlarm(kind, subject, None, {})
        self._sales: dict[str, LastSale] = {}
        self._clock_step: ClockStep | None = None

    def watching(self, submit: Callable[[RecordIntent], None]) -> Callable[[RecordIntent], None]:
        """`submit`, noting each intent here first: what the station loop is given instead of the bare one."""

        def note_and_submit(intent: RecordIntent) -> None:
            self.note(intent)
            submit(intent)

        return note_and_submit

    def note(self, intent: RecordIntent) -> None:
        body = intent.body
        if intent.type is RecordType.ALARM:
            key = (str(body["kind"]), str(body["subject"]))
            with self._lock:
                if body["state"] == AlarmState.RAISED:
                    evidence = cast(dict[str, JsonScalar], body["evidence"])
                    self._alarms[key] = ActiveAlarm(key[0], key[1], format_ts(intent.ts_ms), evidence)
                else:
                    self._alarms.pop(key, None)
        elif intent.type is RecordType.TRANSACTION:
            sale = LastSale(
                nozzle=str(body["nozzle"]),
                dispenser=str(body["dispenser"]),
                grade=str(body["grade"]),
                end=str(body["end"]),
                volume_ml=cast(int, body["volume_ml"]),
                amount_fen=cast(int, body["amount_fen"]),
            )
            with self._lock:
                self._sales[sale.nozzle] = sale
        elif intent.type is RecordType.EVENT and body.get("kind") == EventKind.CLOCK_JUMP:
            step = ClockStep(str(body["from_ts"]), str(body["to_ts"]), cast(int, body["jump_ms"]))
            with self._lock:
                self._clock_step = step

    def facts(self) -> StationFacts:
        """A copy, in a stable order (alarms by kind and subject, sales by nozzle), safe from any thread."""
        with self._lock:
            return StationFacts(
                alarms=tuple(self._alarms[key] for key in sorted(self._alarms)),
                last_sales=tuple(self._sales[nozzle] for nozzle in sorted(self._sales)),
                last_clock_step=self._clock_step,
            )
