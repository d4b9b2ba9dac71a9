"""The station as the agent models it: field events in, record intents out, with a tick for what time decides."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from agent.config import MeteringSection, TankRulesSection, VerificationSection
from agent.field.events import DeviceOffline, DeviceOnline, DeviceReading, FieldEvent, LineHealth
from agent.records import DeviceOfflineBody, DeviceOnlineBody, JsonValue, RecordIntent, RecordType
from agent.station.alarms import AlarmBook
from agent.station.devices import CalibrationWatch, LineWatch, SilenceWatch
from agent.station.leak import LeakSettings
from agent.station.leak_watch import LeakWatch
from agent.station.nozzle import Count, NozzleBinding, NozzleTracker, PulseBoard
from agent.station.tank import TankBinding, TankTracker
from drivers.readings import (
    LevelProbeReading,
    PressureReading,
    PulseCounterReading,
    PumpControllerReading,
    TankGaugeReading,
)


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
        tank_history: dict[str, list[dict[str, JsonValue]]] | None = None,
    ) -> None:
        """`tank_history`: the tanks' hourly books of the last weeks, from the outbox, for the leak test."""
        self._alarms = AlarmBook(cursors)
        self._board = PulseBoard()
        self._trackers = {
            (b.controller, b.controller_nozzle): NozzleTracker(b, cursors, rules, self._alarms) for b in bindings
        }
        self._on_counter: dict[str, list[NozzleTracker]] = {}
        for tracker in self._trackers.values():
            for device in {tap.device for tap in tracker.taps}:
                self._on_counter.setdefault(device, []).append(tracker)
        self._calibration = CalibrationWatch(cursors, verifications, self._alarms)
        self._silence = SilenceWatch(rules, self._alarms)
        self._lines = LineWatch(rules, self._alarms)
        self._tanks = {
            t.tank: TankTracker(t, cursors, tank_rules or TankRulesSection(), zone or ZoneInfo("UTC")) for t in tanks
        }
        self._by_gauge = {(t.device, t.gauge_tank): self._tanks[t.tank] for t in tanks if t.gauge_tank is not None}
        self._by_probe = {t.device: self._tanks[t.tank] for t in tanks if t.gauge_tank is None}
        self._leak = LeakWatch(self._tanks, leak or LeakSettings(), self._alarms, tank_history)

    def on_event(self, event: FieldEvent) -> list[RecordIntent]:
        match event:
            case DeviceReading(reading=PumpControllerReading() as reading):
                intents = self._calibration.on_reading(event.device, reading, event.ts_ms)
                for nozzle in reading.nozzles:
                    tracker = self._trackers.get((event.device, nozzle.nozzle))
                    if tracker is not None:
                        intents += tracker.on_controller(nozzle, reading.counters, event.ts_ms, self._board)
                self._book_sales(intents)
                return intents
            case DeviceReading(reading=PulseCounterReading() as reading):
                for channel in reading.channels:
                    self._board.put(
                        event.device, channel.channel, Count(channel.count, event.ts_ms, reading.count_modulus)
                    )
                intents = []
                for tracker in self._on_counter.get(event.device, ()):
                    intents += tracker.on_pulses(self._board, event.ts_ms)
                self._book_sales(intents)
                return intents
            case DeviceReading(reading=PressureReading()):
                return []
            case DeviceReading(reading=TankGaugeReading() as reading):
                return self._on_gauge(event.device, reading, event.ts_ms)
            case DeviceReading(reading=LevelProbeReading() as reading):
                probed = self._by_probe.get(event.device)
                if probed is None:
                    return []
                intents = probed.observe(probed.from_probe(reading, event.ts_ms))
                return intents + self._leak.on_books(intents)
            case DeviceOnline():
                online = DeviceOnlineBody(device=event.device, line=event.line).intent(event.ts_ms)
                return [online, *self._silence.online(event.device, event.ts_ms)]
            case DeviceOffline():
                self._silence.offline(event.device, event.line, event.ts_ms, event.reason)
                body = DeviceOfflineBody(device=event.device, line=event.line, reason=event.reason)
                return [body.intent(event.ts_ms)]
            case LineHealth():
                return self._lines.on_health(event)
        return []

    def tick(self, now_ms: int) -> list[RecordIntent]:
        intents = self._silence.tick(now_ms)
        for tracker in self._trackers.values():
            intents += tracker.tick(self._board, now_ms)
        return intents

    def _on_gauge(self, device: str, reading: TankGaugeReading, ts_ms: int) -> list[RecordIntent]:
        intents: list[RecordIntent] = []
        for tank in reading.tanks:
            tracker = self._by_gauge.get((device, tank.tank))
            if tracker is None:
                continue
            intents += tracker.on_gauge_deliveries(tuple(d for d in reading.deliveries if d.tank == tank.tank))
            intents += tracker.observe(tracker.from_gauge(tank, ts_ms))
        return intents + self._leak.on_books(intents)

    def _book_sales(self, intents: list[RecordIntent]) -> None:
        """Every sale lowers the tank its nozzle draws on, in that tank's books."""
        for intent in intents:
            if intent.type is RecordType.TRANSACTION:
                tracker = self._tanks.get(str(intent.body["tank"]))
                volume = intent.body["volume_ml"]
                if tracker is not None and isinstance(volume, int):
                    tracker.on_sale(volume, intent.ts_ms)
