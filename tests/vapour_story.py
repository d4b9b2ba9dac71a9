"""A nozzle's vapour recovery over six days, scripted: a vacuum pump that stalls and recovers, a slow dispenser,
five failing days that make an alarm, and a clean day that clears it.

Fed to the vapour watch as the station feeds it transactions, and closed day by day, it raises and clears
`vapour_pump_fault`, `slow_dispenser`, `vapour_al_warning` and `vapour_al_alarm` with the default GB 20952 rules.
"""

from __future__ import annotations

import datetime

from agent.contract.records import JsonValue, RecordIntent, TransactionBody, format_ts, parse_ts
from agent.station.alarms import AlarmBook
from agent.station.vapour import VapourWatch
from agent.station.vapour_settings import VapourSettings

DAY_MS = 86_400_000
FIRST_DAY = datetime.date(2026, 3, 1)
START_MS = parse_ts("2026-03-01T00:00:00.000Z")


def transaction(
    start_ms: int,
    *,
    nozzle: str = "D01-N1",
    txn_no: int = 1,
    volume_ml: int = 30_000,
    al_permille: int | None = 1_100,
    duration_s: int = 90,
) -> dict[str, JsonValue]:
    """A transaction body as the station makes it; 30 L in 90 s is 20 L/min, a normal fuelling."""
    vapour_ml = None if al_permille is None else volume_ml * al_permille // 1000
    return (
        TransactionBody(
            nozzle=nozzle,
            dispenser="D" + nozzle[1:3],
            grade="92",
            tank="T1",
            controller="pc1",
            txn_no=txn_no,
            start=format_ts(start_ms),
            end=format_ts(start_ms + duration_s * 1000),
            volume_ml=volume_ml,
            amount_fen=volume_ml * 768 // 1000,
            price_fen_per_l=768,
            totalizer_volume_ml_before=None,
            totalizer_volume_ml_after=0,
            totalizer_amount_fen_before=None,
            totalizer_amount_fen_after=None,
            pulse_volume_ml=volume_ml,
            deviation_ppm=0,
            vapour_ml=vapour_ml,
            al_permille=al_permille,
        )
        .intent(start_ms)
        .body
    )


GOOD = {"al_permille": 1_100}
STARVED = {"al_permille": 20}
"""600 mL of vapour in 90 s: 0.4 L/min, a vacuum pump that does not draw."""
LOW_FAST = {"al_permille": 800}
LOW_SLOW = {"al_permille": 800, "duration_s": 240}
"""30 L in 4 minutes: 7.5 L/min, slow."""

DAYS: list[list[dict[str, int]]] = [
    [STARVED, STARVED, STARVED, GOOD, GOOD, GOOD, LOW_SLOW, LOW_SLOW, LOW_SLOW, LOW_SLOW],
    *[[GOOD] * 4 + [LOW_FAST] * 6] * 4,
    [GOOD] * 10,
]
"""Day 1 fails on slow fuellings (and stalled pump ones); days 2 to 5 fail fast; day 6 passes."""


def vapour_story(days: list[list[dict[str, int]]] = DAYS) -> list[RecordIntent]:
    watch = VapourWatch(VapourSettings(), AlarmBook({}), [])
    made: list[RecordIntent] = []
    txn_no = 0
    for index, day in enumerate(days):
        for slot, shape in enumerate(day):
            txn_no += 1
            start = START_MS + index * DAY_MS + (8 * 60 + slot * 10) * 60_000
            made += watch.on_transaction(transaction(start, txn_no=txn_no, **shape), start + 100_000)
        made += watch.close_day(FIRST_DAY + datetime.timedelta(days=index), START_MS + (index + 1) * DAY_MS)
    return made
