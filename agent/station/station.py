"""The station as the agent models it: field events in, record intents out, with a tick for what time decides.

The day's books count what the outbox holds: every record is noted (`note`) as it comes back from the recorder,
committed, whoever made it (this station, the recorder's own alarms, the command desk, a loop's containment), just
as the records are replayed after a restart; the station does not note what it makes itself. When station time
crosses the day boundary, the vapour verdicts and the pressure rules close the day at once (before the first
reading of the next day counts); the daily summary follows `close_after_s` later, when the tanks' day books are
in, and once what was handed to the recorder before is back (`closes_due`, then `close_days`). After a restart
the station is brought up to date by replaying the records of the days not yet closed (`resume`), so a day is
judged once, whatever happened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from agent.contract.records import (
    DailySummaryBody,
    DeviceOfflineBody,
    DeviceOnlineBody,
    ReconciliationBody,
    RecordIntent,
    TankPressureBody,
    TransactionBody,
    VapourBody,
)
from agent.field.events import DeviceOffline, DeviceOnline, DeviceReading, DeviceValueFaults, FieldEvent, LineHealth
from agent.station.alarms import AlarmBook
from agent.station.bindings import NozzleBinding, TankBinding
from agent.station.daily_settings import DaySettings
from agent.station.daybooks import DayBooks, last_closed_of
from agent.station.devices import CalibrationWatch, GaugeReportWatch, LineWatch, SilenceWatch, ValueFaultWatch
from agent.station.fsm import Phase
from agent.station.leak_settings import LeakSettings
from agent.station.leak_watch import LeakWatch
from agent.station.localday import ONE_DAY, LocalDays
from agent.station.nozzle import NozzleTracker, PulseBoard
from agent.station.pressure import PressureWatch
from agent.station.pressure_settings import PressureSettings
from agent.station.settings import MeteringSection, TankRulesSection, VerificationSection
from agent.station.tank import TankTracker
from agent.station.vapour import VapourWatch
from agent.station.vapour_settings import VapourSettings
from drivers.readings import (
    PressureReading,
    PulseCounterReading,
    PumpControllerReading,
    Reading,
    TankGaugeReading,
)
from drivers.veeder_root.reports import DELIVERIES


@dataclass(frozen=True, slots=True)
class StationHistory:
    """What the station reads back from its own records at start, instead of keeping a second copy of its state."""

    tank_hours: dict[str, list[ReconciliationBody]] = field(default_factory=dict)
    """The tanks' hourly books of the leak test's window, by tank."""
    vapour_days: list[VapourBody] = field(default_factory=list)
    """The `vapour` records of the last week, oldest first."""
    pressure: list[TankPressureBody] = field(default_factory=list)
    """The `tank_pressure` records from each sensor's last day record on, oldest first."""
    last_summary: DailySummaryBody | None = None
    """The newest `daily_summary`."""


class Station:
    def __init__(
        self,
        bindings: list[NozzleBinding],
        cursors: dict[str, int],
        rules: MeteringSection,
        verifications: tuple[VerificationSection, ...] = (),
        *,
        tanks: tuple[TankBinding, ...] = (),
        tank_rules: TankRulesSection | None = None,
        zone: ZoneInfo | None = None,
        leak: LeakSettings | None = None,
        vapour: VapourSettings | None = None,
        pressure: PressureSettings | None = None,
        daily: DaySettings | None = None,
        history: StationHistory | None = None,
    ) -> None:
        self._alarms = AlarmBook(cursors)
        self._board = PulseBoard()
        self._trackers = {
            (b.controller, b.controller_nozzle): NozzleTracker(b, cursors, rules, self._alarms) for b in bindings
        }
        self._on_controller: dict[str, dict[int, NozzleTracker]] = {}
        for (controller, controller_nozzle), tracker in self._trackers.items():
            self._on_controller.setdefault(controller, {})[controller_nozzle] = tracker
        self._on_counter: dict[str, list[NozzleTracker]] = {}
        for tracker in self._trackers.values():
            for device in {tap.device for tap in tracker.taps}:
                self._on_counter.setdefault(device, []).append(tracker)
        self._calibration = CalibrationWatch(cursors, verifications, self._alarms)
        self._silence = SilenceWatch(rules, self._alarms)
        self._lines = LineWatch(rules, self._alarms)
        self._values = ValueFaultWatch(self._alarms)
        self._gauge_reports = GaugeReportWatch(cursors)
        history = history or StationHistory()
        self._daily = daily or DaySettings()
        self._zone = zone or ZoneInfo("UTC")
        self._days = LocalDays(self._zone, self._daily.boundary_time)
        self._last_closed = last_closed_of(cursors)
        self._last_summary = history.last_summary
        self._books: DayBooks | None = None
        """Made at the first instant the station sees (`resume`, an event or a tick), with the days below."""
        self._pressure_day = self._vapour_day = date.min
        """The days the pressure and vapour rules count into."""
        self._vapour_grace_ms = int(2 * rules.pulse_wait_s * 1000)
        self._no_close_before_ms: int | None = None
        """Until this instant `_cross_days` has nothing to close (None before its first call)."""
        self._tanks = {t.tank: TankTracker(t, cursors, tank_rules or TankRulesSection(), self._days) for t in tanks}
        self._by_gauge = {(t.device, t.gauge_tank): self._tanks[t.tank] for t in tanks if t.gauge_tank is not None}
        self._by_probe = {t.device: self._tanks[t.tank] for t in tanks if t.gauge_tank is None}
        self._leak = LeakWatch(self._tanks, leak or LeakSettings(), self._alarms, history.tank_hours)
        self._vapour = VapourWatch(vapour or VapourSettings(), self._alarms, history.vapour_days)
        self._pressure = PressureWatch(pressure or PressureSettings(), self._alarms, history.pressure)

    # -- the day ----------------------------------------------------------------------------------------------

    def replay_from_ms(self, now_ms: int) -> int:
        """Where `resume` wants the records from: the start of the first day whose books are not closed."""
        return self._day_books(now_ms).replay_from_ms

    def resume(self, records: Iterable[RecordIntent], starting: list[RecordIntent], now_ms: int) -> list[RecordIntent]:
        """Bring the day's books up to date with the records made since `replay_from_ms` (in seq order); returns
        the records of this start (`starting`: agent_start first, and the like), then what follows now: the vapour and
        pressure closes of the days that ended meanwhile, to be recorded in that order. The books count those
        when they come back committed (`note`); no day closes before this start's agent_start has."""
        books = self._day_books(now_ms)
        intents: list[RecordIntent] = []
        for record in records:
            intents += self._cross_days(record.ts_ms, now_ms)
            if isinstance(record.body, TransactionBody):
                intents += self._close_vapour_until(record.ts_ms, now_ms)
                if record.ts_ms >= self._days.start_ms(self._vapour_day):
                    self._vapour.replay_transaction(record.body)
            books.note(record)
        books.await_run_start()
        return starting + intents + self._cross_days(now_ms, now_ms)

    def note(self, record: RecordIntent) -> None:
        """A record committed to the outbox, in seq order, whoever made it: for the day's books."""
        self._day_books(record.ts_ms).note(record)

    def _day_books(self, now_ms: int) -> DayBooks:
        if self._books is None:
            self._books = DayBooks(self._daily, self._zone, self._last_closed, now_ms, last_summary=self._last_summary)
            first = self._days.day_of(self._books.replay_from_ms)
            self._pressure_day = first
            judged = self._vapour.last_closed
            self._vapour_day = first if judged is None else max(first, judged + ONE_DAY)
        return self._books

    def _cross_days(self, ts_ms: int, made_ms: int) -> list[RecordIntent]:
        """The closes due at `ts_ms`. The pressure rules close a day at its boundary, before a reading of the next
        day counts. The vapour rules wait `_vapour_grace_ms` longer, or for the next day's first sale: a sale is
        dated when the controller booked it but recorded only once its pulses are in, up to `pulse_wait_s` later,
        and it must count in the day it is dated in, now and after a restart alike.

        Asked on every event, it answers at once before the next instant anything can close: that instant is
        worked out from the days counted into, which only move forward, so one worked out earlier is never
        later than the one due now."""
        if self._no_close_before_ms is not None and ts_ms < self._no_close_before_ms:
            return []
        self._day_books(ts_ms)
        intents: list[RecordIntent] = []
        while (boundary_ms := self._days.start_ms(self._pressure_day + ONE_DAY)) <= ts_ms:
            intents += self._pressure.close_day(self._pressure_day, boundary_ms)
            self._pressure_day += ONE_DAY
        intents += self._close_vapour_until(ts_ms - self._vapour_grace_ms, made_ms)
        self._no_close_before_ms = min(
            boundary_ms, self._days.start_ms(self._vapour_day + ONE_DAY) + self._vapour_grace_ms
        )
        return intents

    def _close_vapour_until(self, ts_ms: int, made_ms: int) -> list[RecordIntent]:
        """The vapour verdicts of every day that ended by `ts_ms`, made at `made_ms`."""
        self._day_books(ts_ms)
        intents: list[RecordIntent] = []
        while self._days.start_ms(self._vapour_day + ONE_DAY) <= ts_ms:
            intents += self._vapour.close_day(self._vapour_day, made_ms)
            self._vapour_day += ONE_DAY
        return intents

    def phase_of(self, controller: str, controller_nozzle: int) -> Phase | None:
        """The phase a controller's nozzle was last seen in; None before its first reading, or if no nozzle of
        the config sits there. Read-only: for the status, on the station's own thread."""
        tracker = self._trackers.get((controller, controller_nozzle))
        return None if tracker is None else tracker.phase

    def on_event(self, event: FieldEvent) -> list[RecordIntent]:
        closes = self._cross_days(event.ts_ms, event.ts_ms)
        made = self._on_event(event)
        return closes + made if closes else made

    def tick(self, now_ms: int) -> list[RecordIntent]:
        intents = self._cross_days(now_ms, now_ms)
        intents += self._silence.tick(now_ms)
        sales: list[RecordIntent] = []
        for tracker in self._trackers.values():
            sales += tracker.tick(self._board, now_ms)
        intents += sales + self._after_sales(sales)
        intents += self._pressure.tick(now_ms)
        return intents

    def closes_due(self, now_ms: int) -> bool:
        """Whether a day's summary is due now: the station loop then waits for what it submitted before to be back
        from the outbox (agent/station/daily_close.py) before it asks for them (`close_days`)."""
        return bool(self._day_books(now_ms).due(now_ms))

    def close_days(self, now_ms: int, *, due_at_ms: int | None = None) -> list[RecordIntent]:
        """The daily summaries of the days due at `due_at_ms` (by default now) and still due now, made now: a
        clock set back meanwhile closes none before its day ends. Apart from `tick`, so that a summary that
        cannot be made (a bug) costs that summary only, not the sales and alarms that time completes."""
        books = self._day_books(now_ms)
        intents: list[RecordIntent] = []
        for day in books.due(now_ms if due_at_ms is None else min(now_ms, due_at_ms)):
            intents += books.close(day, now_ms)
        return intents

    def _on_event(self, event: FieldEvent) -> list[RecordIntent]:
        if isinstance(event, DeviceReading):
            return self._on_reading(event.device, event.reading, event.ts_ms)
        match event:
            case DeviceOnline():
                online = DeviceOnlineBody(device=event.device, line=event.line).intent(event.ts_ms)
                return [online, *self._silence.online(event.device, event.ts_ms)]
            case DeviceOffline():
                self._silence.offline(event.device, event.line, event.ts_ms, event.reason)
                body = DeviceOfflineBody(device=event.device, line=event.line, reason=event.reason)
                return [body.intent(event.ts_ms)]
            case LineHealth():
                return self._lines.on_health(event)
            case DeviceValueFaults():
                return self._values.on_faults(event)
        return []

    def _on_reading(self, device: str, reading: Reading, ts_ms: int) -> list[RecordIntent]:
        """A reading, by its kind: the controllers' and the pulse counters' first, as they are most of them."""
        if isinstance(reading, PumpControllerReading):
            return self._on_controller_reading(device, reading, ts_ms)
        if isinstance(reading, PulseCounterReading):
            return self._on_counter_reading(device, reading, ts_ms)
        if isinstance(reading, PressureReading):
            return self._pressure.on_reading(device, reading, ts_ms)
        if isinstance(reading, TankGaugeReading):
            return self._on_gauge(device, reading, ts_ms)
        probed = self._by_probe.get(device)
        if probed is None:
            return []
        intents = probed.observe(probed.from_probe(reading, ts_ms))
        return intents + self._leak.on_books(intents)

    def _on_controller_reading(self, device: str, reading: PumpControllerReading, ts_ms: int) -> list[RecordIntent]:
        intents = self._calibration.on_reading(device, reading, ts_ms)
        trackers = self._on_controller.get(device)
        if trackers is not None:
            for nozzle in reading.nozzles:
                tracker = trackers.get(nozzle.nozzle)
                if tracker is not None:
                    intents += tracker.on_controller(nozzle, reading.counters, ts_ms, self._board)
        if intents:
            intents += self._after_sales(intents)
        return intents

    def _on_counter_reading(self, device: str, reading: PulseCounterReading, ts_ms: int) -> list[RecordIntent]:
        self._board.read(device, reading, ts_ms)
        intents: list[RecordIntent] = []
        for tracker in self._on_counter.get(device, ()):
            intents += tracker.on_pulses(self._board, ts_ms)
        if intents:
            intents += self._after_sales(intents)
        return intents

    def _on_gauge(self, device: str, reading: TankGaugeReading, ts_ms: int) -> list[RecordIntent]:
        intents = self._gauge_reports.on_reading(device, reading.refused, ts_ms)
        for tank in reading.tanks:
            tracker = self._by_gauge.get((device, tank.tank))
            if tracker is None:
                continue
            tracker.gauge_reports_deliveries = DELIVERIES not in reading.refused
            intents += tracker.on_gauge_deliveries(tuple(d for d in reading.deliveries if d.tank == tank.tank))
            intents += tracker.observe(tracker.from_gauge(tank, ts_ms))
        return intents + self._leak.on_books(intents)

    def _after_sales(self, intents: list[RecordIntent]) -> list[RecordIntent]:
        """Every sale lowers the tank its nozzle draws on, in that tank's books, and counts for its nozzle's vapour
        recovery; returns the vapour alarms that follow."""
        more: list[RecordIntent] = []
        for intent in intents:
            if isinstance(intent.body, TransactionBody):
                tracker = self._tanks.get(intent.body.tank)
                if tracker is not None:
                    tracker.on_sale(intent.body.volume_ml, intent.ts_ms)
                more += self._close_vapour_until(intent.ts_ms, intent.ts_ms)
                more += self._vapour.on_transaction(intent.body, intent.ts_ms)
        return more
