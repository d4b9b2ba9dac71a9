"""What the station has said lately, kept for `status`: active alarms, each nozzle's last sale, each tank's
latest level, the last clock step, and each nozzle's phase now.

The station model is owned by its thread and takes no locks, so `status` cannot ask it. Instead this view sits
on the station's way out: it sees every intent the station loop submits, on the station thread, and keeps the
few facts staff ask about behind a lock, so the main loop can copy them at any moment. It learns only from what
the station records, so it can never show an alarm the platform was not told of. The nozzles' phases are not
recorded (a sale is, once it ends): the station loop hands them over as they change (`LiveNozzles`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.contract.records import (
    AlarmBody,
    AlarmState,
    ClockJumpBody,
    JsonScalar,
    RecordIntent,
    TankInventoryBody,
    TransactionBody,
    format_ts,
)
from agent.station.alarms import active_in
from agent.station.fsm import Phase

if TYPE_CHECKING:
    from agent.station.bindings import NozzleBinding, TankBinding
    from drivers.readings import PumpControllerReading


@dataclass(frozen=True, slots=True)
class ActiveAlarm:
    """`since` is None for an alarm raised before this run of the agent whose record the outbox no longer holds
    (its book came back from the cursors alone)."""

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
class TankLevel:
    """A tank's contents as its latest `tank_inventory` record said them; the reading's fields are None while
    this run has made none (a gauge not yet answered)."""

    tank: str
    product: str
    capacity_ml: int | None
    """The nominal capacity the config gives; None for a tank the config does not name."""
    volume_ml: int | None = None
    volume_20_ml: int | None = None
    ullage_ml: int | None = None
    height_um: int | None = None
    water_um: int | None = None
    temperature_cC: int | None = None
    delivery_in_progress: bool | None = None
    ts: str | None = None
    """When the gauge or probe read it (the record's time). A record is made when the volume, water or
    temperature moved by its `[tank_rules]` step (200 L by default) and at least every `inventory_interval_s`:
    the level shown may be that far behind the gauge."""


@dataclass(frozen=True, slots=True)
class NozzleNow:
    """A nozzle's phase as the station's state machine last saw it (agent/station/fsm.py): idle, lifted,
    fuelling or finished; None before its controller's first answer."""

    nozzle: str
    dispenser: str
    phase: str | None
    volume_ml: int | None
    """While fuelling, the volume delivered so far, if the controller says it; otherwise None."""


@dataclass(frozen=True, slots=True)
class StationFacts:
    alarms: tuple[ActiveAlarm, ...]
    last_sales: tuple[LastSale, ...]
    last_clock_step: ClockStep | None
    tanks: tuple[TankLevel, ...] = ()
    nozzles: tuple[NozzleNow, ...] = ()


class LiveNozzles:
    """Each configured nozzle's phase now, written by the station thread and read by any other without a lock.

    The station thread replaces `now`, an immutable tuple, in one assignment, and only when a phase or a
    fuelling's volume changed: a reader takes whichever tuple is there, and a controller reading that changes
    nothing costs a lookup per nozzle it reports. Readings of other devices (pulse counters, hundreds a second)
    never come here."""

    def __init__(self, bindings: Iterable[NozzleBinding]) -> None:
        self._by_place = {(b.controller, b.controller_nozzle): b for b in bindings}
        self._seen = {b.nozzle: NozzleNow(b.nozzle, b.dispenser, None, None) for b in self._by_place.values()}
        self.now: tuple[NozzleNow, ...] = self._ordered()

    def on_controller(
        self, device: str, reading: PumpControllerReading, phase_of: Callable[[str, int], Phase | None]
    ) -> None:
        """After the station has taken `reading`: `phase_of` is the station's answer for a controller's nozzle."""
        changed = False
        for nozzle in reading.nozzles:
            binding = self._by_place.get((device, nozzle.nozzle))
            if binding is None:
                continue
            phase = phase_of(device, nozzle.nozzle)
            volume_ml = nozzle.current_volume_ml if phase is Phase.FUELLING else None
            seen = self._seen[binding.nozzle]
            if seen.phase != phase or seen.volume_ml != volume_ml:
                self._seen[binding.nozzle] = NozzleNow(binding.nozzle, binding.dispenser, phase, volume_ml)
                changed = True
        if changed:
            self.now = self._ordered()

    def _ordered(self) -> tuple[NozzleNow, ...]:
        return tuple(self._seen[nozzle] for nozzle in sorted(self._seen))


class StationView:
    def __init__(
        self,
        cursors: dict[str, int],
        *,
        tanks: Iterable[TankBinding] = (),
        nozzles: Iterable[NozzleBinding] = (),
        raised_before: Iterable[RecordIntent] = (),
    ) -> None:
        """`cursors`: the outbox's cursors at start, whose `alarm/<kind>/<subject>` entries say which alarms
        are still active from an earlier run. `raised_before`: alarm records still in the outbox, in seq order,
        so that an alarm carried over keeps its start and its size (`alarm_history` reads them only when one is
        active). `tanks`, `nozzles`: the config's, each shown even before a word of it comes."""
        self._lock = threading.Lock()
        self._alarms: dict[tuple[str, str], ActiveAlarm] = {}
        for kind, subject in active_in(cursors):
            self._alarms[(kind, subject)] = ActiveAlarm(kind, subject, None, {})
        for intent in raised_before:
            body = intent.body
            if (
                isinstance(body, AlarmBody)
                and body.state is AlarmState.RAISED
                and (body.kind, body.subject) in self._alarms
            ):
                self._alarms[(body.kind, body.subject)] = ActiveAlarm(
                    body.kind, body.subject, format_ts(intent.ts_ms), body.evidence
                )
        self._sales: dict[str, LastSale] = {}
        self._clock_step: ClockStep | None = None
        self._tanks = {t.tank: TankLevel(t.tank, str(t.fuel.product), t.capacity_ml) for t in tanks}
        self.nozzles = LiveNozzles(nozzles)

    def watching(self, submit: Callable[[RecordIntent], None]) -> Callable[[RecordIntent], None]:
        """`submit`, noting each intent here first: what the station loop is given instead of the bare one."""

        def note_and_submit(intent: RecordIntent) -> None:
            self.note(intent)
            submit(intent)

        return note_and_submit

    def note(self, intent: RecordIntent) -> None:
        body = intent.body
        if isinstance(body, AlarmBody):
            key = (body.kind, body.subject)
            with self._lock:
                if body.state is AlarmState.RAISED:
                    self._alarms[key] = ActiveAlarm(key[0], key[1], format_ts(intent.ts_ms), body.evidence)
                else:
                    self._alarms.pop(key, None)
        elif isinstance(body, TransactionBody):
            sale = LastSale(
                nozzle=body.nozzle,
                dispenser=body.dispenser,
                grade=body.grade,
                end=body.end,
                volume_ml=body.volume_ml,
                amount_fen=body.amount_fen,
            )
            with self._lock:
                self._sales[sale.nozzle] = sale
        elif isinstance(body, TankInventoryBody):
            known = self._tanks.get(body.tank)
            level = TankLevel(
                tank=body.tank,
                product=body.product,
                capacity_ml=None if known is None else known.capacity_ml,
                volume_ml=body.volume_ml,
                volume_20_ml=body.volume_20_ml,
                ullage_ml=body.ullage_ml,
                height_um=body.height_um,
                water_um=body.water_um,
                temperature_cC=body.temperature_cC,
                delivery_in_progress=body.delivery_in_progress,
                ts=format_ts(intent.ts_ms),
            )
            with self._lock:
                self._tanks[body.tank] = level
        elif isinstance(body, ClockJumpBody):
            step = ClockStep(body.from_ts, body.to_ts, body.jump_ms)
            with self._lock:
                self._clock_step = step

    def facts(self) -> StationFacts:
        """A copy, in a stable order (alarms by kind and subject, sales by nozzle, tanks and nozzles by id), safe
        from any thread."""
        with self._lock:
            return StationFacts(
                alarms=tuple(self._alarms[key] for key in sorted(self._alarms)),
                last_sales=tuple(self._sales[nozzle] for nozzle in sorted(self._sales)),
                last_clock_step=self._clock_step,
                tanks=tuple(self._tanks[tank] for tank in sorted(self._tanks)),
                nozzles=self.nozzles.now,
            )
