"""The station as the agent models it: field events in, record intents out, with a tick for what time decides."""

from __future__ import annotations

from agent.config import MeteringSection, VerificationSection
from agent.field.events import DeviceOffline, DeviceOnline, DeviceReading, FieldEvent, LineHealth
from agent.records import DeviceOfflineBody, DeviceOnlineBody, RecordIntent
from agent.station.alarms import AlarmBook
from agent.station.devices import CalibrationWatch, LineWatch, SilenceWatch
from agent.station.nozzle import Count, NozzleBinding, NozzleTracker, PulseBoard
from drivers.readings import PressureReading, PulseCounterReading, PumpControllerReading


class Station:
    def __init__(
        self,
        bindings: list[NozzleBinding],
        cursors: dict[str, int],
        rules: MeteringSection,
        verifications: tuple[VerificationSection, ...] = (),
    ) -> None:
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

    def on_event(self, event: FieldEvent) -> list[RecordIntent]:
        match event:
            case DeviceReading(reading=PumpControllerReading() as reading):
                intents = self._calibration.on_reading(event.device, reading, event.ts_ms)
                for nozzle in reading.nozzles:
                    tracker = self._trackers.get((event.device, nozzle.nozzle))
                    if tracker is not None:
                        intents += tracker.on_controller(nozzle, reading.counters, event.ts_ms, self._board)
                return intents
            case DeviceReading(reading=PulseCounterReading() as reading):
                for channel in reading.channels:
                    self._board.put(
                        event.device, channel.channel, Count(channel.count, event.ts_ms, reading.count_modulus)
                    )
                intents = []
                for tracker in self._on_counter.get(event.device, ()):
                    intents += tracker.on_pulses(self._board, event.ts_ms)
                return intents
            case DeviceReading(reading=PressureReading()):
                return []
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
