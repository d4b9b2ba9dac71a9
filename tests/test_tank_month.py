"""A clean month under a simulated forecourt, without I/O: deliveries are recorded once, and nothing is alarmed.

Two tanks lie under two dispensers: T1 is read by a Veeder-Root gauge (its answers go through the codec, as on
the wire), T2 by a Modbus level probe through its chart. The simulated tanks lose exactly what the nozzles
dispense, warm and cool with the day, and take a tanker's drop every few days. The agent's tank books (the
trackers, fed the gauge's readings every two minutes and each sale as the controller booked it) and the leak test
run on them for thirty days: every delivery must be recorded once with what really arrived, the books must
balance within the gauges' noise, and an honest month must never fail the test.
"""

from __future__ import annotations

import itertools
import random
from zoneinfo import ZoneInfo

import pytest

from agent.contract.records import RecordIntent, RecordType
from agent.station.alarms import AlarmBook
from agent.station.bindings import TankBinding
from agent.station.chart import TankChart
from agent.station.leak_settings import LeakSettings
from agent.station.leak_watch import LeakWatch
from agent.station.settings import TankRulesSection
from agent.station.tank import TankTracker
from agent.station.vcf import Fuel, Product
from drivers.device import DeviceDriver
from drivers.profile_validation import find_profile
from drivers.profiles import shipped_profile_dirs
from drivers.readings import LevelProbeReading
from drivers.veeder_root.frame import Command, decode_response, encode_command
from drivers.veeder_root.reports import decode_deliveries, decode_inventory
from drivers.veeder_root.units import gauge_reading
from simulators.config import SimulatorsConfig
from simulators.forecourt import Sale
from simulators.site import Site

DAY_S = 86_400
POLL_S = 120
EPOCH_MS = 1_772_323_200_000  # 2026-03-01T00:00:00Z, the simulation's start in UTC
ZONE = ZoneInfo("UTC")
PATTERN = {
    "idle_s": [900, 3600],
    "lift_s": [5, 15],
    "volume_l": [5, 60],
    "flow_l_per_min": [20, 50],
    "hang_up_s": [4, 12],
}
DROPS_T1 = [3.5, 10.4, 17.6, 24.3]  # days; each tank sells about 2,300 L a day
DROPS_T2 = [4.6, 12.4, 20.7, 27.3]


def site() -> Site:
    def tank(tank_id: str, product: str, drops: list[float]) -> dict[str, object]:
        return {
            "id": tank_id,
            "product": product,
            "shape": {"diameter_mm": 2800, "length_mm": 8000},
            "volume_l": 25_000,
            "daily_swing_c": 0.3,
            "deliveries": [
                {"at_s": day * DAY_S, "volume_l": 15_000, "duration_s": 1800, "temperature_c": 19.0} for day in drops
            ],
        }

    config = {
        "simulation": {"seed": 20261128, "start": "2026-03-01T00:00:00"},
        "lines": [{"kind": "tcp", "name": "tcp-1", "port": 0}],
        "dispensers": [
            {
                "id": f"D0{d}",
                "line": "tcp-1",
                "controller_unit": d,
                "pattern": PATTERN,
                "nozzles": [
                    {"grade": "92", "price_fen_per_l": 770, "tank": "T1", "meter_error_ppm": 500 * d - 750},
                    {"grade": "0#", "price_fen_per_l": 735, "tank": "T2", "meter_error_ppm": 750 - 500 * d},
                ],
            }
            for d in (1, 2)
        ],
        "tanks": [tank("T1", "gasoline", DROPS_T1), tank("T2", "diesel", DROPS_T2)],
        "tank_gauges": [{"id": "G1", "tanks": ["T1"], "port": 0}],
        "level_probes": [{"tank": "T2", "line": "tcp-1", "unit": 31}],
    }
    return Site(SimulatorsConfig.model_validate(config), lambda: 0.0)


def trackers(simulated: Site) -> dict[str, TankTracker]:
    chart = simulated.tanks["T2"].spec.chart  # the tank's certificate: its chart as the simulator has it
    rows = [(round(h * 1000), round(v * 1000)) for h, v in zip(chart.heights_mm, chart.volumes_l, strict=True)]
    gauge = TankBinding("T1", Fuel(Product.GASOLINE, 745.0), 49_000_000, "tg", gauge_tank=1)
    probe = TankBinding("T2", Fuel(Product.DIESEL, 835.0), 49_000_000, "probe", chart=TankChart(rows))
    return {b.tank: TankTracker(b, {}, TankRulesSection(), ZONE) for b in (gauge, probe)}


def ask(simulated: Site, function: str, sim_s: float) -> bytes:
    command = Command(function, 0)
    answer = simulated.tank_gauges["G1"].answer(encode_command(command), sim_s)
    assert answer is not None
    return decode_response(answer, command)


def new_sales(sales: list[Sale], last_seen: int | None) -> list[Sale]:
    """The sales booked after `last_seen` (all of them the first time), oldest first: the controller's numbers
    only grow here, so they are the tail of the list, found from its end rather than by reading a month of sales
    at every poll."""
    if not sales:
        return []
    since = sales[0].txn_no - 1 if last_seen is None else last_seen
    tail = list(itertools.takewhile(lambda sale: sale.txn_no > since, reversed(sales)))
    return tail[::-1]


@pytest.mark.slow
def test_a_clean_month_records_each_delivery_once_and_raises_nothing() -> None:
    simulated = site()
    books = trackers(simulated)
    t1, t2 = books["T1"], books["T2"]
    watch = LeakWatch(books, LeakSettings(), AlarmBook({}))
    probe_driver = DeviceDriver(find_profile("sim-level-probe", shipped_profile_dirs()))
    tank_of = {f"D0{d}-N{n}": ("T1" if n == 1 else "T2") for d in (1, 2) for n in (1, 2)}
    seen: dict[str, int] = {}
    rng = random.Random(5)
    made: list[RecordIntent] = []
    for step in range(30 * DAY_S // POLL_S):
        sim_s = step * POLL_S
        ts_ms = EPOCH_MS + sim_s * 1000 + rng.randrange(2000)
        simulated.advance_to(sim_s)
        for nozzle, sales in simulated.sales().items():
            for sale in new_sales(sales, seen.get(nozzle)):
                books[tank_of[nozzle]].on_sale(sale.volume_ml, ts_ms)
            seen[nozzle] = sales[-1].txn_no if sales else seen.get(nozzle, 0)
        history = decode_deliveries(ask(simulated, "i202", sim_s)) if step % 5 == 0 else None
        reading = gauge_reading(decode_inventory(ask(simulated, "i201", sim_s)), history, zone=ZONE)
        intents = t1.on_gauge_deliveries(reading.deliveries)
        intents += t1.observe(t1.from_gauge(reading.tanks[0], ts_ms))
        values = simulated.level_probes["T2"].values()
        probe = probe_driver.reading({0: {meaning: value for (_, meaning), value in values.items()}})
        assert isinstance(probe, LevelProbeReading)
        intents += t2.observe(t2.from_probe(probe, ts_ms + 500))
        made += intents + watch.on_books(intents)

    assert [i.body.as_json() for i in made if i.type is RecordType.ALARM] == []
    report = simulated.report()["tanks"]
    for tank, drops, source in (("T1", DROPS_T1, "gauge"), ("T2", DROPS_T2, "detected")):
        deliveries = [i.body.as_json() for i in made if i.type is RecordType.DELIVERY and i.body.tank == tank]
        assert len(deliveries) == len(drops), f"{tank}: each delivery once"
        assert {d["source"] for d in deliveries} == {source}
        delivered = sum(int(d["delivered_20_ml"]) for d in deliveries)  # type: ignore[call-overload]
        truth = report[tank]["delivered_20_ml"]  # type: ignore[index]
        assert abs(delivered - truth) < 0.003 * truth, f"{tank}: {delivered} mL recorded, {truth} mL delivered"
        hours = [i.body.as_json() for i in made if i.type is RecordType.RECONCILIATION and i.body.tank == tank]
        complete = [h for h in hours if h["period"] == "hour" and h["complete"]]
        assert len(complete) >= 29 * 24 - 2 * len(drops)
        worst = max(abs(int(h["variance_ml"])) for h in complete)  # type: ignore[call-overload]
        assert worst < 65_000, f"{tank}: an hour off by {worst} mL, more than a sale under way at its close"
        sold = sum(int(h["sold_20_ml"]) for h in complete)  # type: ignore[call-overload]
        unexplained = int(complete[-1]["cumulative_variance_ml"])  # type: ignore[call-overload]
        assert abs(unexplained) < 0.002 * sold, f"{tank}: {unexplained} mL unexplained of {sold} mL sold"
    tests = [i.body.as_json() for i in made if i.type is RecordType.EVENT]
    assert len(tests) == 2 * 29
    assert {t["status"] for t in tests[-2:]} <= {"pass", "inconclusive"}
