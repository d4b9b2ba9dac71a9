"""Tank vapour-space pressure judged per sensor: a summary every interval, three rules, a daily record.

Theory of operation. A sealed stage-II system breathes: the vapour space sits a little above or below the
atmosphere and moves with fuelling, deliveries and the temperature. Three patterns say it does not work:

- zero pressure: readings that stay within +-`zero_band_pa` for longer than `zero_run_s` (a vent left open, a
  broken P/V valve, a sensor tube off). The run is measured in time, from its first reading to its last, and a
  gap without readings longer than `max_gap_s` ends it: a sensor that says nothing has not said zero. The warning
  is raised as the run passes the limit and cleared by the first reading outside the band; a day in which the
  warning held is a zero day, and `zero_alarm_days` of them in a row raise the alarm;
- over-pressure: a reading above the P/V valve's opening pressure plus `over_margin_pa` means the valve does not
  open (or the vent line is blocked). The warning is raised at once; the alarm if it lasts `over_alarm_s`
  without a reading at or below the limit or a gap; both clear at the first reading at or below the limit;
- out of band: more than `band_share_permille` of a day's readings outside `band_low_pa`..`band_high_pa` make a
  band warning day, `band_alarm_days` of them in a row the alarm; a day within clears both.

Each sensor's readings are summed up into a `tank_pressure` record per `record_interval_s` (aligned to the clock);
the day's figures are the sum of its intervals, so a restart, which replays the open day's interval records from
the history, gives the very day record an uninterrupted run gives. The day record also carries the consecutive
warning days. A day without any reading (the sensor was offline) judges nothing and changes no count.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from fractions import Fraction

from agent.contract.evidence import (
    BandDaysEvidence,
    OverPressureEvidence,
    TankPressureZeroAlarmEvidence,
    TankPressureZeroWarningEvidence,
)
from agent.contract.records import (
    AlarmKind,
    RecordIntent,
    TankPressureBody,
    format_ts,
    parse_ts,
)
from agent.station.alarms import AlarmBook
from agent.station.pressure_settings import PressureSettings
from drivers.readings import PressureReading


@dataclass(slots=True)
class _Summary:
    """Readings summed over an interval or a day."""

    start_ms: int
    readings: int = 0
    sum_pa: int = 0
    min_pa: int | None = None
    max_pa: int | None = None
    outside_band: int = 0
    over_pressure: int = 0
    zero_run_s: int = 0

    def add_summary(self, other: _Summary) -> None:
        """Add an interval to a day; the day's mean is the mean of the interval records, as a resumed day
        knows it."""
        self.readings += other.readings
        self.sum_pa += (other.mean_pa or 0) * other.readings
        self.outside_band += other.outside_band
        self.over_pressure += other.over_pressure
        self.zero_run_s = max(self.zero_run_s, other.zero_run_s)
        for value in (other.min_pa, other.max_pa):
            if value is not None:
                self.min_pa = value if self.min_pa is None else min(self.min_pa, value)
                self.max_pa = value if self.max_pa is None else max(self.max_pa, value)

    @property
    def mean_pa(self) -> int | None:
        return round(Fraction(self.sum_pa, self.readings)) if self.readings else None


def _summary_of(body: TankPressureBody) -> _Summary:
    return _Summary(
        start_ms=parse_ts(body.start),
        readings=body.readings,
        sum_pa=body.mean_pa * body.readings if body.mean_pa is not None else 0,
        min_pa=body.min_pa,
        max_pa=body.max_pa,
        outside_band=body.outside_band,
        over_pressure=body.over_pressure,
        zero_run_s=body.zero_run_s,
    )


@dataclass(slots=True)
class _Sensor:
    """One sensor's open interval, open day, runs in progress and warning days."""

    interval: _Summary | None = None
    day: _Summary | None = None
    last_ms: int | None = None
    zero_since_ms: int | None = None
    zero_run_s: int = 0
    """How long the current zero run has lasted, or the last one once it ended."""
    over_since_ms: int | None = None
    over_last_ms: int | None = None
    over_max_pa: int | None = None
    zero_warning_days: int = 0
    band_warning_days: int = 0


class PressureWatch:
    """Judges every pressure sensor's readings as they come, and its day when the caller closes it.

    The open day is everything since the last `close_day`, which the caller calls in order at the station's
    local day boundary; a day at or before the last day record in the history is not closed again."""

    def __init__(self, settings: PressureSettings, alarms: AlarmBook, history: list[TankPressureBody]) -> None:
        """`history`: the `tank_pressure` bodies, oldest first, of each sensor's last day record and the interval
        records after it (more is harmless)."""
        self._rules = settings
        self._alarms = alarms
        self._sensors: dict[str, _Sensor] = {}
        self._last_closed: datetime.date | None = None
        for body in history:
            self._resume(body)

    def _resume(self, body: TankPressureBody) -> None:
        sensor = self._sensors.setdefault(body.device, _Sensor())
        if body.period == "day":
            sensor.day = None
            sensor.zero_warning_days = body.zero_warning_days or 0
            sensor.band_warning_days = body.band_warning_days or 0
            day = datetime.date.fromisoformat(body.day or "")
            self._last_closed = max(day, self._last_closed or day)
            return
        summary = _summary_of(body)
        if sensor.day is None:
            sensor.day = _Summary(summary.start_ms)
        sensor.day.add_summary(summary)

    def on_reading(self, device: str, reading: PressureReading, ts_ms: int) -> list[RecordIntent]:
        """Count a reading; the interval record it closes, and the zero and over-pressure alarms it decides."""
        rules = self._rules
        sensor = self._sensors.setdefault(device, _Sensor())
        out = self._flush(device, sensor, ts_ms)
        if sensor.interval is None:
            slot_ms = rules.record_interval_s * 1000
            sensor.interval = _Summary(ts_ms - ts_ms % slot_ms)
        gap = sensor.last_ms is None or ts_ms - sensor.last_ms > rules.max_gap_s * 1000
        sensor.last_ms = ts_ms
        pressure = reading.pressure_pa
        interval = sensor.interval
        interval.readings += 1
        interval.sum_pa += pressure
        interval.min_pa = pressure if interval.min_pa is None else min(interval.min_pa, pressure)
        interval.max_pa = pressure if interval.max_pa is None else max(interval.max_pa, pressure)
        interval.outside_band += not rules.band_low_pa <= pressure <= rules.band_high_pa
        out += self._judge_zero(device, sensor, pressure, gap, ts_ms)
        interval.zero_run_s = max(interval.zero_run_s, sensor.zero_run_s if sensor.zero_since_ms is not None else 0)
        if pressure > rules.over_limit_pa:
            interval.over_pressure += 1
            return out + self._over(device, sensor, pressure, gap, ts_ms)
        return out + self._not_over(device, sensor, ts_ms)

    def _judge_zero(self, device: str, sensor: _Sensor, pressure: int, gap: bool, ts_ms: int) -> list[RecordIntent]:
        """Zero pressure is judged by how long it lasted, so a gap in the readings starts the run anew."""
        band = self._rules.zero_band_pa
        if -band <= pressure <= band:
            if sensor.zero_since_ms is None or gap:
                sensor.zero_since_ms = ts_ms
            sensor.zero_run_s = (ts_ms - sensor.zero_since_ms) // 1000
        evidence = TankPressureZeroWarningEvidence(
            pressure_pa=pressure,
            run_s=sensor.zero_run_s,
            band_pa=band,
            since=None if sensor.zero_since_ms is None else format_ts(sensor.zero_since_ms),
        )
        if not -band <= pressure <= band:
            sensor.zero_since_ms = None
            return self._alarms.clear(AlarmKind.TANK_PRESSURE_ZERO_WARNING, device, ts_ms, evidence)
        if sensor.zero_run_s > self._rules.zero_run_s:
            return self._alarms.raise_(AlarmKind.TANK_PRESSURE_ZERO_WARNING, device, ts_ms, evidence)
        return []

    def _over(self, device: str, sensor: _Sensor, pressure: int, gap: bool, ts_ms: int) -> list[RecordIntent]:
        if sensor.over_since_ms is None or gap:
            sensor.over_since_ms, sensor.over_max_pa = ts_ms, pressure
        sensor.over_last_ms = ts_ms
        sensor.over_max_pa = max(sensor.over_max_pa or pressure, pressure)
        evidence = self._over_evidence(sensor)
        lasted = ts_ms - sensor.over_since_ms >= self._rules.over_alarm_s * 1000
        return [
            *self._alarms.raise_(AlarmKind.TANK_PRESSURE_OVER_WARNING, device, ts_ms, evidence),
            *(self._alarms.raise_(AlarmKind.TANK_PRESSURE_OVER_ALARM, device, ts_ms, evidence) if lasted else []),
        ]

    def _not_over(self, device: str, sensor: _Sensor, ts_ms: int) -> list[RecordIntent]:
        evidence = self._over_evidence(sensor)
        sensor.over_since_ms = sensor.over_last_ms = sensor.over_max_pa = None
        return [
            *self._alarms.clear(AlarmKind.TANK_PRESSURE_OVER_ALARM, device, ts_ms, evidence),
            *self._alarms.clear(AlarmKind.TANK_PRESSURE_OVER_WARNING, device, ts_ms, evidence),
        ]

    def _over_evidence(self, sensor: _Sensor) -> OverPressureEvidence:
        """The over-pressure spell so far (or just ended); nulls if the agent saw none since it started."""
        since, last = sensor.over_since_ms, sensor.over_last_ms
        return OverPressureEvidence(
            max_pa=sensor.over_max_pa,
            limit_pa=self._rules.over_limit_pa,
            duration_s=None if since is None or last is None else (last - since) // 1000,
            since=None if since is None else format_ts(since),
        )

    def tick(self, ts_ms: int) -> list[RecordIntent]:
        """The interval records whose end `ts_ms` has passed: call it now and then, and before a clean stop, so
        that the last interval of a sensor gone quiet is not held back until it speaks again."""
        return [intent for device, sensor in self._sensors.items() for intent in self._flush(device, sensor, ts_ms)]

    def _flush(self, device: str, sensor: _Sensor, now_ms: int) -> list[RecordIntent]:
        """The record of the sensor's open interval once `now_ms` is past its end; its figures join the day."""
        interval = sensor.interval
        if interval is None:
            return []
        end_ms = interval.start_ms + self._rules.record_interval_s * 1000
        if now_ms < end_ms:
            return []
        sensor.interval = None
        if sensor.day is None:
            sensor.day = _Summary(interval.start_ms)
        sensor.day.add_summary(interval)
        body = _body(device, interval, end_ms)
        return [body.intent(end_ms)]

    def close_day(self, day: datetime.date, ts_ms: int) -> list[RecordIntent]:
        """Each sensor's day record for the local day `day` (closed at `ts_ms`, its boundary) and the daily rules'
        alarms. Call it before the first reading past the boundary."""
        if self._last_closed is not None and day <= self._last_closed:
            return []
        self._last_closed = day
        out: list[RecordIntent] = []
        for device, sensor in self._sensors.items():
            out += self._flush(device, sensor, ts_ms)
            summary = sensor.day or _Summary(ts_ms)
            sensor.day = None
            share: int | None = None
            if summary.readings:
                out_of_band = summary.outside_band * 1000 > self._rules.band_share_permille * summary.readings
                share = round(Fraction(summary.outside_band * 1000, summary.readings))
                sensor.band_warning_days = sensor.band_warning_days + 1 if out_of_band else 0
                zero_day = summary.zero_run_s > self._rules.zero_run_s
                sensor.zero_warning_days = sensor.zero_warning_days + 1 if zero_day else 0
            body = _body(
                device,
                summary,
                ts_ms,
                day=day,
                share=share,
                zero_warning_days=sensor.zero_warning_days,
                band_warning_days=sensor.band_warning_days,
            )
            out.append(body.intent(ts_ms))
            if share is not None:
                out += self._judge_days(device, day.isoformat(), body, share, ts_ms)
        return out

    def _judge_days(
        self, device: str, day: str, body: TankPressureBody, share_permille: int, ts_ms: int
    ) -> list[RecordIntent]:
        """The daily rules on a day with readings (`share_permille` of them outside the band)."""
        rules, alarms = self._rules, self._alarms
        zero_days = body.zero_warning_days or 0
        band_days = body.band_warning_days or 0
        zero_evidence = TankPressureZeroAlarmEvidence(
            day=day, zero_run_s=body.zero_run_s, warning_days=zero_days, alarm_days=rules.zero_alarm_days
        )
        band_evidence = BandDaysEvidence(
            day=day,
            readings=body.readings,
            outside_band=body.outside_band,
            outside_band_permille=share_permille,
            limit_permille=rules.band_share_permille,
            band_low_pa=rules.band_low_pa,
            band_high_pa=rules.band_high_pa,
            warning_days=band_days,
        )
        return [
            *alarms.judge(
                AlarmKind.TANK_PRESSURE_ZERO_ALARM, device, ts_ms, zero_days >= rules.zero_alarm_days, zero_evidence
            ),
            *alarms.judge(AlarmKind.TANK_PRESSURE_BAND_WARNING, device, ts_ms, band_days > 0, band_evidence),
            *alarms.judge(
                AlarmKind.TANK_PRESSURE_BAND_ALARM, device, ts_ms, band_days >= rules.band_alarm_days, band_evidence
            ),
        ]


def _body(
    device: str,
    summary: _Summary,
    end_ms: int,
    *,
    day: datetime.date | None = None,
    share: int | None = None,
    zero_warning_days: int | None = None,
    band_warning_days: int | None = None,
) -> TankPressureBody:
    """An interval record, or a day record when `day` is given."""
    return TankPressureBody(
        device=device,
        period="interval" if day is None else "day",
        day=None if day is None else day.isoformat(),
        start=format_ts(summary.start_ms),
        end=format_ts(end_ms),
        readings=summary.readings,
        mean_pa=summary.mean_pa,
        min_pa=summary.min_pa,
        max_pa=summary.max_pa,
        outside_band=summary.outside_band,
        over_pressure=summary.over_pressure,
        zero_run_s=summary.zero_run_s,
        outside_band_permille=share,
        zero_warning_days=zero_warning_days,
        band_warning_days=band_warning_days,
    )
