"""The simulated tank without I/O: its chart, the volume at 20 degC, and every flow in and out of it.

Unless a test says otherwise the tank is a 2.5 m x 6 m horizontal cylinder holding 15,000 L of gasoline
(745 kg/m3 at 15 degC) at a steady 15 degC over 20 mm of water, and time moves only through `advance_to`,
so the litres below are exact. The dispenser runs the forecourt tests' script: rest 1 s, lifted 1 s, 10 L at
60 L/min from second 2 to 12, hung up 5 s, and again (a sale every 17 s).
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import datetime

import pytest

from drivers.profile_validation import find_profile
from drivers.profiles import shipped_profile_dirs
from simulators.faults import make_fault
from simulators.forecourt import Dispenser, NozzleSpec
from simulators.fuel import Fuel, Product
from simulators.fuelling import FuellingPattern
from simulators.tank_chart import TankChart
from simulators.tanks import Tank, TankSpec

GASOLINE = Fuel(Product.GASOLINE, 745.0)
CYLINDER = TankChart.horizontal_cylinder(2500, 6000)
START = datetime(2026, 3, 1)
HOUR = 3600.0
SCRIPT = FuellingPattern(idle_s=(1, 1), lift_s=(1, 1), volume_l=(10, 10), flow_l_per_min=(60, 60), hang_up_s=(5, 5))
SALE_S = 17.0
AT_15C = GASOLINE.to_20(15.0)


def spec(**changes: object) -> TankSpec:
    steady = TankSpec(
        fuel=GASOLINE, chart=CYLINDER, volume_l=15_000.0, water_mm=20.0, temperature_c=15.0, daily_swing_c=0.0
    )
    return replace(steady, **changes)  # type: ignore[arg-type]


def tank(**changes: object) -> Tank:
    return Tank("T1", spec(**changes), start=START)


def inject(model: Tank, kind: str, **params: float) -> None:
    model.inject(make_fault(kind, "T1", params, model.targets()), model.now_s)


def report(model: Tank) -> dict[str, int]:
    return {key: value for key, value in model.report().items() if isinstance(value, int)}


def dispenser(source: Tank, nozzles: int = 1) -> Dispenser:
    """D01 with its first nozzle drawing on `source` (a second nozzle, if any, on nothing)."""
    model = Dispenser(
        "D01",
        [NozzleSpec("92", 770, al_spread=0.0) for _ in range(nozzles)],
        find_profile("sim-pump-controller", shipped_profile_dirs()),
        pattern=SCRIPT,
        rng=random.Random(1),
        sources={1: source},
    )
    source.add_feeder(model)
    return model


class TestChart:
    def test_horizontal_cylinder(self) -> None:
        """pi r^2 L when full, half of it at half height, a row every 10 mm."""
        assert CYLINDER.capacity_l == pytest.approx(math.pi * 1.25**2 * 6 * 1000, rel=1e-6)
        assert CYLINDER.volume_l(1250) == pytest.approx(CYLINDER.capacity_l / 2, abs=0.001)
        assert len(CYLINDER.heights_mm) == 251

    def test_height_and_volume_are_inverse(self) -> None:
        for height_mm in (0.0, 3.7, 20.0, 640.25, 1250.0, 2499.9, 2500.0):
            assert CYLINDER.height_mm(CYLINDER.volume_l(height_mm)) == pytest.approx(height_mm, abs=1e-6)

    def test_csv_for_the_agent(self) -> None:
        """`height_mm,volume_l` rows, as the agent's chart_file takes them."""
        lines = CYLINDER.to_csv().splitlines()
        assert lines[:3] == ["height_mm,volume_l", "0,0.000", "10,12.634"]
        assert lines[-1] == "2500,29452.431"

    def test_a_chart_must_rise(self) -> None:
        with pytest.raises(ValueError, match=r"chart row 2 \(20, 10\): heights and volumes must both rise"):
            TankChart([(0, 0), (10, 12), (20, 10)])


class TestVolumeAt20:
    def test_gb_t_1885(self) -> None:
        """Gasoline of 745 kg/m3 at 15 degC: 1 L at 30 degC is 0.9877 L at 20 degC, as the tables say."""
        assert GASOLINE.to_20(20.0) == 1.0
        assert GASOLINE.to_20(30.0) == pytest.approx(0.9877, abs=2e-4)
        assert GASOLINE.to_20(10.0) > 1.0

    def test_the_daily_swing_moves_the_volume_not_the_volume_at_20(self) -> None:
        """Warmest at 15:00, coolest at 03:00, 1 degC either way: the fuel expands, its mass stays."""
        model = tank(temperature_c=None, daily_swing_c=1.0)
        model.advance_to(3 * HOUR)
        cool = model.state(3 * HOUR)
        warm = model.state(15 * HOUR)
        assert (cool.temperature_c, warm.temperature_c) == (pytest.approx(14.0), pytest.approx(16.0))
        assert warm.volume_20_l == cool.volume_20_l
        expected_l = cool.volume_20_l / GASOLINE.to_20(16.0) - cool.volume_20_l / GASOLINE.to_20(14.0)
        assert warm.volume_l - cool.volume_l == pytest.approx(expected_l)
        assert 30 < expected_l < 40
        assert warm.height_mm > cool.height_mm

    def test_water_lies_under_the_product(self) -> None:
        state = tank().state(0.0)
        assert state.water_l == pytest.approx(CYLINDER.volume_l(20.0))
        assert state.height_mm == pytest.approx(CYLINDER.height_mm(state.water_l + 15_000.0))
        assert state.volume_l == pytest.approx(15_000.0)


class TestSales:
    def test_sales_lower_the_tank_by_their_real_volume(self) -> None:
        model = tank()
        pumps = dispenser(model)
        state = model.state(3 * SALE_S)
        sold_ml = sum(sale.real_volume_ml for sale in pumps.sales()["D01-N1"])
        assert sold_ml == 30_000
        assert report(model)["sold_ml"] == sold_ml
        assert state.volume_20_l == pytest.approx((15_000.0 - 30.0) * AT_15C)

    def test_fuel_in_flight_is_drawn_before_a_reading(self) -> None:
        """Half-way through the second fuelling (second 24), 15 L have left the tank though 10 L are booked."""
        model = tank()
        pumps = dispenser(model)
        assert model.state(SALE_S + 7.0).volume_l == pytest.approx(15_000.0 - 15.0)
        assert [sale.real_volume_ml for sale in pumps.sales()["D01-N1"]] == [10_000]

    def test_a_nozzle_without_a_tank_draws_on_nothing(self) -> None:
        model = tank()
        pumps = dispenser(model, nozzles=2)
        model.state(SALE_S)
        assert len(pumps.sales()["D01-N2"]) == 1
        assert report(model)["sold_ml"] == 10_000


class TestLeak:
    def test_a_leak_takes_its_rate_while_nothing_is_sold(self) -> None:
        """0.757 L/h (0.2 gal/h) for a day: 18.168 L gone at 15 degC, and nothing else."""
        model = tank()
        inject(model, "leak", l_per_h=0.757)
        state = model.state(24 * HOUR)
        numbers = report(model)
        assert numbers["leaked_ml"] == 18_168
        assert numbers["sold_ml"] == numbers["unrecorded_ml"] == 0
        assert state.volume_20_l == pytest.approx((15_000.0 - 18.168) * AT_15C, abs=1e-6)

    def test_a_cleared_leak_stops(self) -> None:
        model = tank()
        inject(model, "leak", l_per_h=2.0)
        model.advance_to(HOUR)
        model.clear("leak", "T1", HOUR)
        model.advance_to(10 * HOUR)
        assert report(model)["leaked_ml"] == 2_000


class TestUnrecordedDispensing:
    def test_a_share_of_the_sales(self) -> None:
        """A 1 % bypass takes 100 mL with every 10 L sale, and no sale is booked for it."""
        model = tank()
        pumps = dispenser(model)
        inject(model, "unrecorded_dispensing", fraction=0.01)
        model.state(3 * SALE_S)
        assert len(pumps.sales()["D01-N1"]) == 3
        assert report(model)["unrecorded_ml"] == 300
        assert model.state(3 * SALE_S).volume_20_l == pytest.approx((15_000.0 - 30.3) * AT_15C)

    def test_a_flow_while_fuelling(self) -> None:
        """6 L/h through the bypass during each 10 s fuelling: 50 mL over three sales."""
        model = tank()
        dispenser(model)
        inject(model, "unrecorded_dispensing", fraction=0.0, l_per_h=6.0)
        model.state(3 * SALE_S)
        assert report(model)["unrecorded_ml"] == 50


class TestDeliveries:
    def test_a_delivery_fills_and_warms_the_tank(self) -> None:
        """8,000 L at 25 degC into 15,000 L at 15 degC: the mix is at 18.48 degC, then fades toward 15."""
        model = tank()
        inject(model, "delivery", volume_l=8_000, duration_s=1800, temperature_c=25.0)
        assert model.state(900).delivery_in_progress
        settled = model.state(1800 + 300)
        assert not settled.delivery_in_progress
        assert settled.temperature_c == pytest.approx((15_000 * 15 + 8_000 * 25) / 23_000, abs=0.05)
        assert settled.volume_20_l == pytest.approx(15_000 * AT_15C + 8_000 * GASOLINE.to_20(25.0), abs=0.01)
        assert report(model)["delivered_ml"] == 8_000_000
        assert model.state(30 * 24 * HOUR).temperature_c == pytest.approx(15.0, abs=0.01)

    def test_the_record_waits_for_the_level_to_settle(self) -> None:
        model = tank()
        inject(model, "delivery", volume_l=5_000, duration_s=600, temperature_c=15.0)
        model.advance_to(600 + 299)
        assert model.deliveries() == []
        model.advance_to(600 + 300)
        (record,) = model.deliveries()
        assert (record.start.at_s, record.end.at_s) == (0.0, 900.0)
        assert record.end.volume_l - record.start.volume_l == pytest.approx(5_000.0)

    def test_a_tank_takes_no_more_than_it_holds(self) -> None:
        model = tank()
        inject(model, "delivery", volume_l=20_000, duration_s=600, temperature_c=15.0)
        state = model.state(900)
        assert state.volume_l + state.water_l == pytest.approx(CYLINDER.capacity_l)
        assert report(model)["delivered_ml"] == round((CYLINDER.capacity_l - state.water_l - 15_000.0) * 1000)

    def test_a_spec_that_does_not_fit_is_refused(self) -> None:
        with pytest.raises(ValueError, match="volume 30000 L over 36 L of water does not fit the tank's 29452 L"):
            spec(volume_l=30_000)
