"""From the gauge's reports to the station's typed readings, in integer small units.

The TLS protocol sends numbers in whatever units the console is set up for, and does not say which. This
driver assumes the metric setup Chinese stations use: volumes in litres, heights in millimetres,
temperatures in degrees Celsius; it turns them into mL, micrometres and 0.01 degC, rounding half to even.
A gauge set to US units (gallons, inches, degrees Fahrenheit) must be switched to metric on the console
(its setup menu, or the TLS set-units command): it is a configuration matter, not something to guess.

A gauge's clock shows the station's local time to the minute, without a zone; given the zone it is set to
(`zone`, the station's), delivery times become the contract's RFC 3339 UTC with milliseconds,
`2026-03-01T06:05:00.000Z` for 14:05 in Asia/Shanghai.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, tzinfo

from drivers.readings import DeliveryReport, TankGaugeReading, TankReading
from drivers.veeder_root.reports import AlarmReport, DeliveryHistory, InventoryReport, TankInventory, TankStatus

ML_PER_L = 1000
UM_PER_MM = 1000
CC_PER_C = 100


def _ml(litres: float) -> int:
    return round(litres * ML_PER_L)


def _um(millimetres: float) -> int:
    return round(millimetres * UM_PER_MM)


def _cc(celsius: float) -> int:
    return round(celsius * CC_PER_C)


def utc_ts(moment: datetime, zone: tzinfo) -> str:
    """A gauge's wall-clock time, read in `zone`, as RFC 3339 UTC with milliseconds."""
    return moment.replace(tzinfo=zone).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def tank_reading(tank: TankInventory) -> TankReading:
    """One tank of an inventory report in mL, micrometres and 0.01 degC."""
    return TankReading(
        tank=tank.tank,
        volume_ml=_ml(tank.volume),
        height_um=_um(tank.height),
        water_um=_um(tank.water),
        temperature_cC=_cc(tank.temperature),
        ullage_ml=_ml(tank.ullage),
        tc_volume_ml=_ml(tank.tc_volume),
        water_volume_ml=None if tank.water_volume is None else _ml(tank.water_volume),
        delivery_in_progress=TankStatus.DELIVERY_IN_PROGRESS in tank.status,
        leak_test_in_progress=TankStatus.LEAK_TEST_IN_PROGRESS in tank.status,
        invalid_height=TankStatus.INVALID_HEIGHT in tank.status,
    )


def delivery_reports(history: DeliveryHistory, zone: tzinfo = UTC) -> tuple[DeliveryReport, ...]:
    """Every delivery of a delivery report, in the gauge's order, in mL, micrometres and 0.01 degC; `zone` is
    the time zone the gauge's clock is set to."""
    return tuple(
        DeliveryReport(
            tank=tank.tank,
            start_ts=utc_ts(delivery.start, zone),
            end_ts=utc_ts(delivery.end, zone),
            start_volume_ml=_ml(delivery.start_volume),
            end_volume_ml=_ml(delivery.end_volume),
            start_temperature_cC=_cc(delivery.start_temperature),
            end_temperature_cC=_cc(delivery.end_temperature),
            start_height_um=_um(delivery.start_height),
            end_height_um=_um(delivery.end_height),
            start_water_um=_um(delivery.start_water),
            end_water_um=_um(delivery.end_water),
        )
        for tank in history.tanks
        for delivery in tank.deliveries
    )


def gauge_reading(
    inventory: InventoryReport,
    history: DeliveryHistory | None = None,
    alarms: AlarmReport | None = None,
    tanks: Collection[int] = (),
    zone: tzinfo = UTC,
) -> TankGaugeReading:
    """The reading of one poll; only the tanks in `tanks` when it is not empty. Alarms are texts such as
    `tank 1: overfill alarm (04)`. A tank the gauge had no valid data for is absent. `zone` is the time zone
    the gauge's clock is set to."""

    def wanted(tank: int) -> bool:
        return not tanks or tank in tanks

    return TankGaugeReading(
        tanks=tuple(tank_reading(tank) for tank in inventory.tanks if wanted(tank.tank)),
        deliveries=tuple(
            report for report in (() if history is None else delivery_reports(history, zone)) if wanted(report.tank)
        ),
        alarms=tuple(str(alarm) for alarm in (() if alarms is None else alarms.alarms) if wanted(alarm.tank)),
    )
