"""Watching the devices themselves: their calibration and firmware, whether they answer, whether a line is sick.

- A controller's calibration parameter (K-factor) and firmware id are remembered (cursors) from the first
  reading. A change is a `calibration_change` event; unless the new value is the one a verification in the
  config names (or, if none is configured, the value first seen), it also raises `calibration_unverified`,
  which clears when the value is a trusted one again. An installer who has a change verified adds it to
  `[[verifications]]`; the config change is itself recorded.
- A device offline for `silent_after_s` raises `device_silent`; coming back clears it. (The offline and
  online events themselves are made at once.)
- A device whose values cannot be true (NaN, infinity, out of its point's range) raises `device_value_fault`
  naming the first such value (its point, register and raw registers); a poll with none clears it.
- A tank gauge that refuses an optional report (i202, i205) makes a `gauge_report_unavailable` event, once:
  its state is a cursor, so neither a restart nor every poll repeats it; it answering again is an event too.
- A line whose answering devices fail more than `line_error_ratio` of the polls in `line_error_window_s`
  raises `line_errors` (CRC noise, a bad termination, a slow device); half that ratio clears it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from agent.contract.evidence import (
    CalibrationUnverifiedEvidence,
    DeviceAnswers,
    DeviceSilentEvidence,
    DeviceValueFaultEvidence,
    DeviceValuesPlausible,
    LineErrorsEvidence,
)
from agent.contract.records import (
    AlarmKind,
    CalibrationChangeBody,
    Cursor,
    DeviceIdentityBody,
    GaugeReportUnavailableBody,
    RecordIntent,
)
from agent.field.events import DeviceValueFaults, LineHealth
from agent.station.alarms import AlarmBook
from agent.station.settings import MeteringSection, VerificationSection
from drivers.readings import PumpControllerReading

_PARAMETERS = ("k_factor", "firmware_id")


class CalibrationWatch:
    """Per controller: the K-factor and firmware id last seen and the ones trusted (cursors survive restarts)."""

    def __init__(self, cursors: dict[str, int], verifications: tuple[VerificationSection, ...], alarms: AlarmBook):
        self._values = {key: value for key, value in cursors.items() if key.startswith("device/")}
        self._verified = {v.device: v for v in verifications}
        self._alarms = alarms
        self._judged: dict[str, tuple[int | None, int | None]] = {}
        """The (K-factor, firmware id) each controller was last judged on: the same pair again changes nothing."""

    def on_reading(self, device: str, reading: PumpControllerReading, ts_ms: int) -> list[RecordIntent]:
        pair = (reading.k_factor, reading.firmware_id)
        if (reading.k_factor is None and reading.firmware_id is None) or self._judged.get(device) == pair:
            return []  # the model's profile maps neither, or the verdict on this pair stands
        intents = self._judge(device, reading, ts_ms)
        self._judged[device] = pair
        return intents

    def _judge(self, device: str, reading: PumpControllerReading, ts_ms: int) -> list[RecordIntent]:
        seen = {"k_factor": reading.k_factor, "firmware_id": reading.firmware_id}
        intents: list[RecordIntent] = []
        if all(self._values.get(f"device/{device}/{p}") is None for p in _PARAMETERS):
            cursors = self._note(device, seen, baseline=True)
            identity = DeviceIdentityBody(device=device, k_factor=reading.k_factor, firmware_id=reading.firmware_id)
            intents.append(identity.intent(ts_ms, *cursors))
        trusted = self._trusted(device)
        verification = self._verified.get(device)
        for parameter in _PARAMETERS:
            old, new = self._values.get(f"device/{device}/{parameter}"), seen[parameter]
            if new is None or new == old:
                continue
            verified = new == trusted[parameter]
            certified = verification is not None and getattr(verification, parameter) == new
            change = CalibrationChangeBody(
                device=device,
                parameter="k_factor" if parameter == "k_factor" else "firmware_id",
                old=old,
                new=new,
                verified=verified,
                certificate=verification.certificate if verification is not None and certified else None,
            )
            intents.append(change.intent(ts_ms, *self._note(device, {parameter: new}, baseline=False)))
        untrusted = any(seen[p] is not None and seen[p] != trusted[p] for p in _PARAMETERS)
        evidence = CalibrationUnverifiedEvidence(
            k_factor=seen["k_factor"],
            firmware_id=seen["firmware_id"],
            trusted_k_factor=trusted["k_factor"],
            trusted_firmware_id=trusted["firmware_id"],
            certificate=verification.certificate if verification is not None else None,
        )
        intents += self._alarms.judge(AlarmKind.CALIBRATION_UNVERIFIED, device, ts_ms, untrusted, evidence)
        return intents

    def _note(self, device: str, values: dict[str, int | None], *, baseline: bool) -> list[Cursor]:
        cursors = []
        for parameter, value in values.items():
            if value is None:
                continue
            names = [f"device/{device}/{parameter}"] + ([f"device/{device}/first_{parameter}"] if baseline else [])
            for name in names:
                self._values[name] = value
                cursors.append(Cursor(name, value))
        return cursors

    def _trusted(self, device: str) -> dict[str, int | None]:
        """A verified value if the config names one, else the value the agent first saw."""
        verification = self._verified.get(device)
        trusted: dict[str, int | None] = {}
        for parameter in _PARAMETERS:
            verified = getattr(verification, parameter) if verification is not None else None
            trusted[parameter] = (
                verified if verified is not None else self._values.get(f"device/{device}/first_{parameter}")
            )
        return trusted


class SilenceWatch:
    def __init__(self, rules: MeteringSection, alarms: AlarmBook) -> None:
        self._after_ms = int(rules.silent_after_s * 1000)
        self._alarms = alarms
        self._offline: dict[str, tuple[int, str, str]] = {}

    def offline(self, device: str, line: str, ts_ms: int, reason: str) -> None:
        self._offline.setdefault(device, (ts_ms, line, reason))

    def online(self, device: str, ts_ms: int) -> list[RecordIntent]:
        since = self._offline.pop(device, None)
        answers = DeviceAnswers(silent_s=None if since is None else (ts_ms - since[0]) // 1000)
        return self._alarms.clear(AlarmKind.DEVICE_SILENT, device, ts_ms, answers)

    def tick(self, now_ms: int) -> list[RecordIntent]:
        intents: list[RecordIntent] = []
        for device, (since, line, reason) in self._offline.items():
            if now_ms - since >= self._after_ms:
                silent = DeviceSilentEvidence(line=line, silent_s=(now_ms - since) // 1000, reason=reason)
                intents += self._alarms.raise_(AlarmKind.DEVICE_SILENT, device, now_ms, silent)
        return intents


@dataclass(frozen=True, slots=True)
class _Sample:
    ts_ms: int
    attempts: int
    failures: int
    crc_errors: int
    timeouts: int


class LineWatch:
    def __init__(self, rules: MeteringSection, alarms: AlarmBook) -> None:
        self._rules = rules
        self._alarms = alarms
        self._samples: dict[str, deque[_Sample]] = {}

    def on_health(self, health: LineHealth) -> list[RecordIntent]:
        samples = self._samples.setdefault(health.line, deque())
        samples.append(_Sample(health.ts_ms, health.attempts, health.failures, health.crc_errors, health.timeouts))
        window_ms = int(self._rules.line_error_window_s * 1000)
        while len(samples) > 2 and health.ts_ms - samples[1].ts_ms >= window_ms:
            samples.popleft()
        first, last = samples[0], samples[-1]
        attempts = last.attempts - first.attempts
        if attempts < self._rules.line_error_min_requests:
            return []
        failures = last.failures - first.failures
        ratio = failures / attempts
        evidence = LineErrorsEvidence(
            attempts=attempts,
            failures=failures,
            crc_errors=last.crc_errors - first.crc_errors,
            timeouts=last.timeouts - first.timeouts,
            window_s=(last.ts_ms - first.ts_ms) // 1000,
            failed_permille=round(ratio * 1000),
        )
        if ratio > self._rules.line_error_ratio:
            return self._alarms.raise_(AlarmKind.LINE_ERRORS, health.line, health.ts_ms, evidence)
        if ratio < self._rules.line_error_ratio / 2:
            return self._alarms.clear(AlarmKind.LINE_ERRORS, health.line, health.ts_ms, evidence)
        return []


class ValueFaultWatch:
    def __init__(self, alarms: AlarmBook) -> None:
        self._alarms = alarms

    def on_faults(self, event: DeviceValueFaults) -> list[RecordIntent]:
        if not event.faults:
            plausible = DeviceValuesPlausible(line=event.line)
            return self._alarms.clear(AlarmKind.DEVICE_VALUE_FAULT, event.device, event.ts_ms, plausible)
        first = event.faults[0]
        evidence = DeviceValueFaultEvidence(
            line=event.line,
            point=first.point,
            register=first.register,
            raw_hex=first.raw_hex,
            reason=first.reason,
            faults=len(event.faults),
        )
        return self._alarms.raise_(AlarmKind.DEVICE_VALUE_FAULT, event.device, event.ts_ms, evidence)


#: The optional reports of a tank gauge, and what the station does without each.
OPTIONAL_GAUGE_REPORTS = {
    "i202": "deliveries are inferred from the inventory's rise (source detected_report_unavailable)",
    "i205": "the gauge's own alarms are not seen",
}


class GaugeReportWatch:
    """Per gauge and optional report: refused or not, kept as a cursor with the event that says so."""

    def __init__(self, cursors: dict[str, int]) -> None:
        self._refused = {key: value for key, value in cursors.items() if key.startswith("gauge_report/")}

    def on_reading(self, device: str, refused: tuple[str, ...], ts_ms: int) -> list[RecordIntent]:
        intents: list[RecordIntent] = []
        for report, without in OPTIONAL_GAUGE_REPORTS.items():
            key = f"gauge_report/{device}/{report}"
            now = int(report in refused)
            if now == self._refused.get(key, 0):
                continue
            self._refused[key] = now
            reason = f"the gauge refuses {report}; {without}" if now else f"the gauge answers {report} again"
            body = GaugeReportUnavailableBody(device=device, report=report, available=not now, reason=reason)
            intents.append(body.intent(ts_ms, Cursor(key, now)))
        return intents
