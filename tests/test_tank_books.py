"""A tank's books kept from gauge and probe readings: inventories, deliveries once, hourly and daily balances."""

from __future__ import annotations

from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from agent.contract.records import RecordIntent, RecordType, format_ts, parse_ts
from agent.station.bindings import TankBinding
from agent.station.chart import TankChart
from agent.station.settings import TankRulesSection
from agent.station.tank import TankTracker
from agent.station.vcf import Fuel, Product
from drivers.readings import DeliveryReport, LevelProbeReading, TankReading

GASOLINE = Fuel(Product.GASOLINE, 745.0)
T0 = parse_ts("2026-03-02T08:00:00.000Z")
POLL_MS = 10_000
UTC = ZoneInfo("UTC")


def gauge_tracker(cursors: dict[str, int] | None = None, **rules: int) -> TankTracker:
    binding = TankBinding("T1", GASOLINE, 30_000_000, "tg", gauge_tank=1)
    return TankTracker(binding, cursors or {}, TankRulesSection(**rules), UTC)


def reading(volume_ml: int, *, delivering: bool = False, temperature_cC: int = 2000) -> TankReading:
    return TankReading(
        tank=1,
        volume_ml=volume_ml,
        height_um=volume_ml // 15,
        water_um=0,
        temperature_cC=temperature_cC,
        delivery_in_progress=delivering,
    )


def of_type(intents: list[RecordIntent], kind: RecordType) -> list[RecordIntent]:
    return [intent for intent in intents if intent.type is kind]


def test_sales_balance_the_hour_and_a_missing_sale_shows_as_variance() -> None:
    tracker = gauge_tracker()
    volume = 20_000_000
    intents: list[RecordIntent] = []
    for step in range(3 * 360 + 1):
        ts = T0 + step * POLL_MS
        if step % 30 == 15:  # a 40 L sale every five minutes, booked as it is hung up
            volume -= 40_000
            tracker.on_sale(40_000, ts)
        if step == 500:  # 25 L leave the tank without a sale, in the second hour
            volume -= 25_000
        intents += tracker.observe(tracker.from_gauge(reading(volume), ts))
    hours = [i.body.as_json() for i in of_type(intents, RecordType.RECONCILIATION) if i.body.period == "hour"]
    assert [h["start"] for h in hours] == [format_ts(T0), format_ts(T0 + 3_600_000), format_ts(T0 + 7_200_000)]
    assert [h["variance_ml"] for h in hours] == [0, 25_000, 0]
    assert [h["cumulative_variance_ml"] for h in hours] == [0, 25_000, 25_000]
    assert [h["sales"] for h in hours] == [12, 12, 12]
    assert hours[0]["complete"] is False  # the agent started within it
    assert hours[1]["complete"] is True
    assert all(h["sold_20_ml"] == 480_000 for h in hours)


@pytest.mark.parametrize("gauge_clock_offset_ms", [0, 420_000, -420_000])
def test_a_gauge_delivery_is_booked_once_in_the_hour_whose_level_shows_it(gauge_clock_offset_ms: int) -> None:
    """Whatever the gauge's own clock says: it may be minutes off the agent's."""
    tracker = gauge_tracker()
    volume = 10_000_000
    delivery = DeliveryReport(
        tank=1,
        start_ts=format_ts(T0 + 3_300_000 + gauge_clock_offset_ms),
        end_ts=format_ts(T0 + 4_300_000 + gauge_clock_offset_ms),
        start_volume_ml=10_000_000,
        end_volume_ml=20_000_000,
        start_temperature_cC=2000,
        end_temperature_cC=2000,
        start_height_um=0,
        end_height_um=0,
        start_water_um=0,
        end_water_um=0,
    )
    intents: list[RecordIntent] = []
    for step in range(3 * 360 + 1):
        ts = T0 + step * POLL_MS
        rising = T0 + 3_300_000 <= ts < T0 + 4_300_000
        if rising:
            volume += 100_000
        reports = (delivery,) if ts >= T0 + 4_600_000 else ()  # the gauge reports it five minutes after
        intents += tracker.on_gauge_deliveries(reports)
        intents += tracker.observe(tracker.from_gauge(reading(volume, delivering=rising), ts))
    deliveries = of_type(intents, RecordType.DELIVERY)
    assert len(deliveries) == 1
    assert deliveries[0].body.source == "gauge"
    assert deliveries[0].body.delivered_20_ml == 10_000_000
    assert deliveries[0].cursors[0].key == "tank/T1/gauge_deliveries_to_ms"
    hours = [i.body.as_json() for i in of_type(intents, RecordType.RECONCILIATION) if i.body.period == "hour"]
    assert [h["variance_ml"] for h in hours] == [0, 0, 0]
    assert hours[0]["delivered_20_ml"] == 10_000_000  # the first hour stayed open until the gauge reported
    assert hours[0]["closing_ts"] == format_ts(T0 + 4_600_000)
    assert hours[1]["opening_ts"] == format_ts(T0 + 4_600_000)
    assert hours[1]["delivered_20_ml"] == 0

    restarted = gauge_tracker({deliveries[0].cursors[0].key: deliveries[0].cursors[0].value})
    assert restarted.on_gauge_deliveries((delivery,)) == []


def test_a_delivery_the_gauge_never_reports_is_recorded_as_detected() -> None:
    tracker = gauge_tracker(delivery_report_wait_s=1800)
    volume = 10_000_000
    intents: list[RecordIntent] = []
    for step in range(2 * 360):
        ts = T0 + step * POLL_MS
        if 60 <= step < 120:
            volume += 100_000
        intents += tracker.on_gauge_deliveries(())
        intents += tracker.observe(tracker.from_gauge(reading(volume), ts))
    (delivery,) = of_type(intents, RecordType.DELIVERY)
    assert delivery.body.source == "detected"
    assert delivery.body.delivered_20_ml == 6_000_000
    assert delivery.body.start == format_ts(T0 + 59 * POLL_MS)


def probe_tracker() -> TankTracker:
    # a box tank: 1 mm holds 10 L
    chart = TankChart([(0, 0), (3_000_000, 30_000_000)])
    binding = TankBinding("T2", Fuel(Product.DIESEL, 840.0), 30_000_000, "probe", chart=chart)
    return TankTracker(binding, {}, TankRulesSection(), ZoneInfo("Asia/Shanghai"))


def test_a_probe_tank_sees_a_delivery_once_and_noise_never() -> None:
    tracker = probe_tracker()
    height_um = 1_000_000
    intents: list[RecordIntent] = []
    for step in range(6 * 360):
        ts = T0 + step * POLL_MS
        noise = (step * 7919 % 11 - 5) * 10  # +-50 um: +-0.5 L
        if 1000 <= step < 1090:  # 15 minutes at 1000 L/min
            height_um += 16_667
        if step % 60 == 0:
            tracker.on_sale(30_000, ts)
            height_um -= 3_000
        level = tracker.from_probe(LevelProbeReading(height_um + noise, 0, 2000), ts)
        intents += tracker.observe(level)
    (delivery,) = of_type(intents, RecordType.DELIVERY)
    assert delivery.body.source == "detected"
    assert abs(int(delivery.body.delivered_20_ml) - 15_000_000) < 20_000
    hours = [i.body.as_json() for i in of_type(intents, RecordType.RECONCILIATION) if i.body.period == "hour"]
    assert len(hours) == 5
    assert all(abs(int(h["variance_ml"])) < 2_000 for h in hours)


def test_the_day_closes_at_local_midnight_and_inventories_follow_the_rules() -> None:
    tracker = probe_tracker()
    start = parse_ts("2026-03-02T15:00:00.000Z")  # 23:00 in Shanghai
    intents: list[RecordIntent] = []
    for step in range(2 * 360):
        ts = start + step * POLL_MS
        level = tracker.from_probe(LevelProbeReading(1_000_000 - step * 100, 0, 1500 + step * 2), ts)
        intents += tracker.observe(level)
    (day,) = [i.body.as_json() for i in of_type(intents, RecordType.RECONCILIATION) if i.body.period == "day"]
    assert day["start"] == "2026-03-01T16:00:00.000Z"
    assert day["end"] == "2026-03-02T16:00:00.000Z"
    inventories = of_type(intents, RecordType.TANK_INVENTORY)
    gaps = [b.ts_ms - a.ts_ms for a, b in pairwise(inventories)]
    assert inventories[0].ts_ms == start
    assert all(gap <= 600_000 for gap in gaps)  # at least every ten minutes
    assert min(gaps) < 600_000  # and sooner when the temperature moved a degree
    assert inventories[0].body.volume_ml == 10_000_000
    assert inventories[0].body.volume_20_ml > 10_000_000  # diesel at 15 degC is more at 20 degC


def test_a_silent_gauge_makes_its_hours_incomplete_and_only_those() -> None:
    tracker = gauge_tracker()
    intents: list[RecordIntent] = []
    for step in range(3 * 360 + 1):
        if 400 <= step < 520:  # twenty minutes without a reading, in the second hour
            continue
        intents += tracker.observe(tracker.from_gauge(reading(20_000_000), T0 + step * POLL_MS))
    hours = [i.body.as_json() for i in of_type(intents, RecordType.RECONCILIATION) if i.body.period == "hour"]
    assert [h["complete"] for h in hours] == [False, False, True]
