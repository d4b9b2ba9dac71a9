"""The station as the agent models it: field events in, record intents out."""

from __future__ import annotations

from agent.field.events import DeviceOffline, DeviceOnline, DeviceReading, FieldEvent
from agent.records import DeviceOfflineBody, DeviceOnlineBody, RecordIntent
from agent.station.transactions import NozzleBinding, NozzleTracker


class Station:
    def __init__(self, bindings: list[NozzleBinding], cursors: dict[str, int]) -> None:
        self._trackers = {
            (binding.controller, binding.controller_nozzle): NozzleTracker(binding, cursors) for binding in bindings
        }

    def on_event(self, event: FieldEvent) -> list[RecordIntent]:
        match event:
            case DeviceReading():
                intents: list[RecordIntent] = []
                for nozzle in event.reading.nozzles:
                    tracker = self._trackers.get((event.device, nozzle.nozzle))
                    if tracker is not None:
                        intents.extend(tracker.observe(nozzle, event.ts_ms))
                return intents
            case DeviceOnline():
                return [DeviceOnlineBody(device=event.device, line=event.line).intent(event.ts_ms)]
            case DeviceOffline():
                body = DeviceOfflineBody(device=event.device, line=event.line, reason=event.reason)
                return [body.intent(event.ts_ms)]
