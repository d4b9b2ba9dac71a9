"""Completed sales, from each nozzle's controller registers, exactly once even across restarts.

The controller numbers its sales; the agent keeps, per nozzle, the number of the last sale it recorded as a
cursor committed with that record. A poll that shows another number means a new sale (its fields are read in
the same request, so they belong to it); the first poll ever only notes where the counters stand. The start
and end of a fuelling are the moments the agent saw the nozzle leave and return to rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.records import ControllerBaselineBody, Cursor, RecordIntent, TransactionBody, format_ts
from drivers.pump_controller import NozzleReading

_AT_REST = frozenset({"idle", "finished"})


@dataclass(frozen=True, slots=True)
class NozzleBinding:
    """Where a nozzle sits in the station and which controller input reports it."""

    nozzle: str
    dispenser: str
    grade: str
    tank: str
    controller: str
    controller_nozzle: int

    def cursor_key(self, what: str) -> str:
        return f"nozzle/{self.nozzle}/{what}"


class NozzleTracker:
    def __init__(self, binding: NozzleBinding, cursors: dict[str, int]) -> None:
        self.binding = binding
        self._txn_no = cursors.get(binding.cursor_key("txn_no"))
        self._totalizer_ml = cursors.get(binding.cursor_key("totalizer_volume_ml"))
        self._totalizer_fen = cursors.get(binding.cursor_key("totalizer_amount_fen"))
        self._state: str | None = None
        self._start_ms: int | None = None
        self._end_ms: int | None = None

    def observe(self, reading: NozzleReading, ts_ms: int) -> list[RecordIntent]:
        self._follow_state(reading.state, ts_ms)
        if reading.txn_no == self._txn_no:
            return []
        cursors = self._cursors(reading)
        if self._txn_no is None:
            body: TransactionBody | ControllerBaselineBody = ControllerBaselineBody(
                nozzle=self.binding.nozzle,
                controller=self.binding.controller,
                txn_no=reading.txn_no,
                totalizer_volume_ml=reading.totalizer_volume_ml,
                totalizer_amount_fen=reading.totalizer_amount_fen,
            )
        else:
            body = TransactionBody(
                nozzle=self.binding.nozzle,
                dispenser=self.binding.dispenser,
                grade=self.binding.grade,
                tank=self.binding.tank,
                controller=self.binding.controller,
                txn_no=reading.txn_no,
                start=format_ts(self._start_ms if self._start_ms is not None else ts_ms),
                end=format_ts(self._end_ms if self._end_ms is not None else ts_ms),
                volume_ml=reading.txn_volume_ml,
                amount_fen=reading.txn_amount_fen,
                price_fen_per_l=reading.txn_price_fen_per_l,
                totalizer_volume_ml_before=self._totalizer_ml,
                totalizer_volume_ml_after=reading.totalizer_volume_ml,
                totalizer_amount_fen_before=self._totalizer_fen,
                totalizer_amount_fen_after=reading.totalizer_amount_fen,
            )
        self._txn_no = reading.txn_no
        self._totalizer_ml = reading.totalizer_volume_ml
        self._totalizer_fen = reading.totalizer_amount_fen
        self._start_ms = self._end_ms = None
        return [body.intent(ts_ms, *cursors)]

    def _follow_state(self, state: str, ts_ms: int) -> None:
        previous, self._state = self._state, state
        if previous is None or previous == state:
            return
        if previous in _AT_REST and state not in _AT_REST:
            self._start_ms, self._end_ms = ts_ms, None
        elif previous not in _AT_REST and state in _AT_REST:
            self._end_ms = ts_ms

    def _cursors(self, reading: NozzleReading) -> tuple[Cursor, ...]:
        cursors = [
            Cursor(self.binding.cursor_key("txn_no"), reading.txn_no),
            Cursor(self.binding.cursor_key("totalizer_volume_ml"), reading.totalizer_volume_ml),
        ]
        if reading.totalizer_amount_fen is not None:
            cursors.append(Cursor(self.binding.cursor_key("totalizer_amount_fen"), reading.totalizer_amount_fen))
        return tuple(cursors)
