"""From the gauge's reports to the station's typed readings, in integer small units.

The TLS protocol sends numbers in whatever units the console is set up for, and does not say which. This
driver assumes the metric setup Chinese stations use: volumes in litres, heights in millimetres,
temperatures in degrees Celsius; it turns them into mL, micrometres and 0.01 degC, rounding half to even.
A gauge set to US units (gallons, inches, degrees Fahrenheit) must be switched to metric on the console
(its setup menu, or the TLS set-units command): it is a configuration matter, not something to guess.

A gauge's clock shows the station's local time to the minute, without a zone; given the zone it is set to
(`zone`, the station's), delivery times become the contract's RFC 3339 UTC with milliseconds,
`2026-03-01T06:05:00.000Z` for 14:05 in Asia/Shanghai.

Every value is judged on the way: NaN, infinity (a probe in fault) and values outside the plausible range of
their unit (drivers.profiles.PLAUSIBLE_BY_UNIT) become ValueFaults naming the tank and field, with the
field's eight hex digits, and the tank or delivery they belong to is left out of the reading.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import UTC, datetime, tzinfo

from drivers.errors import DeviceValueFault
from drivers.profiles import plausible_range
from drivers.readings import DeliveryReport, TankGaugeReading, TankReading, ValueFault
from drivers.veeder_root.fields import encode_float
from drivers.veeder_root.reports import (
    AlarmReport,
    Delivery,
    DeliveryHistory,
    InventoryReport,
    TankInventory,
    TankStatus,
)

ML_PER_L = 1000
UM_PER_MM = 1000
CC_PER_C = 100
SIGNED_ML = (-(10**13), 10**13)
"""Ullage may be reported below zero by an overfilled tank's chart; it is only passed along."""


class ValueJudge:
    """Turns a report's floats into small units, noting each one that cannot be true (NaN, infinity, outside the
    plausible range of its unit) as a ValueFault; the reading built from the sane values leaves those out."""

    def __init__(self) -> None:
        self.faults: list[ValueFault] = []

    def ml(self, what: str, litres: float, bounds: tuple[int, int] | None = None) -> int | None:
        return self._small(what, litres, ML_PER_L, bounds or plausible_range("volume_ml"))

    def um(self, what: str, millimetres: float) -> int | None:
        return self._small(what, millimetres, UM_PER_MM, plausible_range("height_um"))

    def cc(self, what: str, celsius: float) -> int | None:
        return self._small(what, celsius, CC_PER_C, plausible_range("temperature_cC"))

    def _small(self, what: str, value: float, factor: int, bounds: tuple[int, int]) -> int | None:
        raw_hex = encode_float(value)
        if not math.isfinite(value):
            self.faults.append(
                ValueFault(what, None, raw_hex, "not a number (NaN)" if math.isnan(value) else "infinite")
            )
            return None
        small = round(value * factor)
        low, high = bounds
        if not low <= small <= high:
            self.faults.append(ValueFault(what, None, raw_hex, f"{small} is outside the plausible {low}..{high}"))
            return None
        return small


def utc_ts(moment: datetime, zone: tzinfo) -> str:
    """A gauge's wall-clock time, read in `zone`, as RFC 3339 UTC with milliseconds."""
    return moment.replace(tzinfo=zone).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def tank_reading(tank: TankInventory, judge: ValueJudge | None = None) -> TankReading | None:
    """One tank of an inventory report in mL, micrometres and 0.01 degC; None if a value cannot be true (the
    judge, if given, says which)."""
    judge = judge or ValueJudge()
    before = len(judge.faults)
    name = f"tank {tank.tank}"
    volume_ml = judge.ml(f"{name} volume", tank.volume)
    height_um = judge.um(f"{name} height", tank.height)
    water_um = judge.um(f"{name} water", tank.water)
    temperature_cC = judge.cc(f"{name} temperature", tank.temperature)
    ullage_ml = judge.ml(f"{name} ullage", tank.ullage, SIGNED_ML)
    tc_volume_ml = judge.ml(f"{name} TC volume", tank.tc_volume)
    water_volume_ml = None if tank.water_volume is None else judge.ml(f"{name} water volume", tank.water_volume)
    if len(judge.faults) > before:
        return None
    assert volume_ml is not None and height_um is not None and water_um is not None and temperature_cC is not None
    return TankReading(
        tank=tank.tank,
        volume_ml=volume_ml,
        height_um=height_um,
        water_um=water_um,
        temperature_cC=temperature_cC,
        ullage_ml=ullage_ml,
        tc_volume_ml=tc_volume_ml,
        water_volume_ml=water_volume_ml,
        delivery_in_progress=TankStatus.DELIVERY_IN_PROGRESS in tank.status,
        leak_test_in_progress=TankStatus.LEAK_TEST_IN_PROGRESS in tank.status,
        invalid_height=TankStatus.INVALID_HEIGHT in tank.status,
    )


def _delivery_report(tank: int, delivery: Delivery, zone: tzinfo, judge: ValueJudge) -> DeliveryReport | None:
    before = len(judge.faults)
    name = f"tank {tank} delivery {delivery.start:%y%m%d%H%M}"
    values = (
        judge.ml(f"{name} start volume", delivery.start_volume),
        judge.ml(f"{name} end volume", delivery.end_volume),
        judge.cc(f"{name} start temperature", delivery.start_temperature),
        judge.cc(f"{name} end temperature", delivery.end_temperature),
        judge.um(f"{name} start height", delivery.start_height),
        judge.um(f"{name} end height", delivery.end_height),
        judge.um(f"{name} start water", delivery.start_water),
        judge.um(f"{name} end water", delivery.end_water),
    )
    judge.ml(f"{name} start TC volume", delivery.start_tc_volume)
    judge.ml(f"{name} end TC volume", delivery.end_tc_volume)
    if len(judge.faults) > before:
        return None
    sane = [value for value in values if value is not None]
    return DeliveryReport(tank, utc_ts(delivery.start, zone), utc_ts(delivery.end, zone), *sane)


def delivery_reports(
    history: DeliveryHistory, zone: tzinfo = UTC, judge: ValueJudge | None = None
) -> tuple[DeliveryReport, ...]:
    """Every delivery of a delivery report whose values can be true, in the gauge's order, in mL, micrometres
    and 0.01 degC; `zone` is the time zone the gauge's clock is set to."""
    judge = judge or ValueJudge()
    reports = (
        _delivery_report(tank.tank, delivery, zone, judge) for tank in history.tanks for delivery in tank.deliveries
    )
    return tuple(report for report in reports if report is not None)


def gauge_reading(
    inventory: InventoryReport,
    history: DeliveryHistory | None = None,
    alarms: AlarmReport | None = None,
    tanks: Collection[int] = (),
    zone: tzinfo = UTC,
    *,
    refused: tuple[str, ...] = (),
) -> TankGaugeReading:
    """The reading of one poll; only the tanks in `tanks` when it is not empty. Alarms are texts such as
    `tank 1: overfill alarm (04)`. A tank the gauge had no valid data for is absent. `zone` is the time zone
    the gauge's clock is set to; `refused` the optional reports the gauge refused.

    A tank or delivery with a value that cannot be true (NaN, infinity, out of range) is left out, and
    DeviceValueFault names each such value, carrying the reading of the rest as `partial`."""

    def wanted(tank: int) -> bool:
        return not tanks or tank in tanks

    judge = ValueJudge()
    judged = (tank_reading(tank, judge) for tank in inventory.tanks if wanted(tank.tank))
    deliveries = (
        ()
        if history is None
        else delivery_reports(
            DeliveryHistory(history.at, tuple(t for t in history.tanks if wanted(t.tank))), zone, judge
        )
    )
    reading = TankGaugeReading(
        tanks=tuple(tank for tank in judged if tank is not None),
        deliveries=deliveries,
        alarms=tuple(str(alarm) for alarm in (() if alarms is None else alarms.alarms) if wanted(alarm.tank)),
        refused=refused,
    )
    if judge.faults:
        raise DeviceValueFault(tuple(judge.faults), reading)
    return reading
