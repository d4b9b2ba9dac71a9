"""The simulated tank gauge without I/O: what it answers about a tank that leaks, sells and takes deliveries.

Commands go in as bytes and answers come out as bytes, decoded with the agent's codec, at simulated moments
set by hand. The probe has its default noise (0.05 mm height, 0.02 degC) and resolution (0.1 mm), so the
gauge's figures are compared with the truth within what such a probe can tell.
"""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from drivers.readings import TankGaugeReading
from drivers.veeder_root import Command, TlsChecksumError
from drivers.veeder_root.frame import decode_response, encode_command
from drivers.veeder_root.reports import decode_alarms, decode_deliveries, decode_inventory
from drivers.veeder_root.units import gauge_reading
from simulators.faults import make_fault
from simulators.fuel import Fuel, Product
from simulators.tank_chart import TankChart
from simulators.tank_gauge import TankGauge
from simulators.tanks import Tank, TankSpec

HOUR = 3600.0
GASOLINE = Fuel(Product.GASOLINE, 745.0)


def tank() -> Tank:
    spec = TankSpec(
        fuel=GASOLINE,
        chart=TankChart.horizontal_cylinder(2500, 6000),
        volume_l=15_000.0,
        water_mm=20.0,
        temperature_c=15.0,
        daily_swing_c=0.0,
    )
    return Tank("T1", spec, start=datetime(2026, 3, 1))


def poll(gauge: TankGauge, sim_s: float) -> TankGaugeReading:
    """i201, i202 and i205 for every tank at `sim_s`, as the agent's client decodes them."""
    answers = []
    for function in ("i201", "i202", "i205"):
        command = Command(function)
        answer = gauge.answer(encode_command(command), sim_s)
        assert answer is not None
        answers.append(decode_response(answer, command))
    return gauge_reading(decode_inventory(answers[0]), decode_deliveries(answers[1]), decode_alarms(answers[2]))


def deliver(model: Tank, at_s: float, volume_l: float) -> None:
    model.advance_to(at_s)
    params = {"volume_l": volume_l, "duration_s": 1800.0, "temperature_c": 15.0}
    model.inject(make_fault("delivery", "T1", params, model.targets()), at_s)


class TestDeliveries:
    def test_reported_once_settled_and_exactly_once(self) -> None:
        """In progress from the drop to its settling (i201 bit), then one i202 record that never changes."""
        model = tank()
        gauge = TankGauge("G1", [model], rng=random.Random(1))
        deliver(model, 600.0, 8_000.0)
        flowing, settling = poll(gauge, 1_500.0), poll(gauge, 600.0 + 1800.0 + 299.0)
        for reading in (flowing, settling):
            assert reading.tanks[0].delivery_in_progress
            assert reading.deliveries == ()
        settled = poll(gauge, 600.0 + 1800.0 + 300.0)
        assert not settled.tanks[0].delivery_in_progress
        (report,) = settled.deliveries
        assert (report.tank, report.start_ts, report.end_ts) == (
            1,
            "2026-03-01T00:10:00.000Z",
            "2026-03-01T00:45:00.000Z",
        )
        assert report.start_volume_ml == pytest.approx(15_000_000, abs=2_000)
        assert report.end_volume_ml - report.start_volume_ml == pytest.approx(8_000_000, abs=3_000)
        assert poll(gauge, 10 * HOUR).deliveries == (report,)

    def test_most_recent_first(self) -> None:
        model = tank()
        gauge = TankGauge("G1", [model], rng=random.Random(1))
        deliver(model, 600.0, 3_000.0)
        (first,) = poll(gauge, 2 * HOUR).deliveries
        deliver(model, 3 * HOUR, 4_000.0)
        assert poll(gauge, 5 * HOUR).deliveries[1:] == (first,)
        assert poll(gauge, 5 * HOUR).deliveries[0].start_ts == "2026-03-01T03:00:00.000Z"


class TestLeak:
    def test_the_gauge_sees_a_leak_at_its_rate(self) -> None:
        """0.757 L/h and no sales: the least-squares slope of a day of TC volumes is -0.757 L/h at 20 degC."""
        model = tank()
        gauge = TankGauge("G1", [model], rng=random.Random(7))
        model.inject(make_fault("leak", "T1", {"l_per_h": 0.757}, model.targets()), 0.0)
        hours = [step / 6 for step in range(24 * 6 + 1)]
        litres = [poll(gauge, hour * HOUR).tanks[0].tc_volume_ml / 1000 for hour in hours]
        mean_h, mean_l = sum(hours) / len(hours), sum(litres) / len(litres)
        slope = sum((h - mean_h) * (v - mean_l) for h, v in zip(hours, litres, strict=True)) / sum(
            (h - mean_h) ** 2 for h in hours
        )
        assert slope == pytest.approx(-0.757 * GASOLINE.to_20(15.0), abs=0.03)
        assert model.report()["leaked_ml"] == 18_168


class TestAnswers:
    def test_alarms_from_the_fixed_setup(self) -> None:
        """Above 90 % full the gauge reports an overfill alarm."""
        model = tank()
        gauge = TankGauge("G1", [model], rng=random.Random(1))
        deliver(model, 0.0, 12_000.0)
        assert poll(gauge, HOUR).alarms == ("tank 1: overfill alarm (04)",)

    def test_unknown_commands_are_refused(self) -> None:
        gauge = TankGauge("G1", [tank()])
        assert gauge.answer(b"\x01i90200", 0.0) == b"\x019999FF1B\x03"
        assert gauge.answer(b"\x01x20100", 0.0) == b"\x019999FF1B\x03"

    def test_crc_noise_spoils_the_checksum_only(self) -> None:
        gauge = TankGauge("G1", [tank()])
        gauge.link.corrupt_crc_rate = 1.0
        answer = gauge.answer(b"\x01i20500", 0.0)
        assert answer is not None
        with pytest.raises(TlsChecksumError):
            decode_response(answer, Command("i205"))

    def test_dead_is_silent(self) -> None:
        gauge = TankGauge("G1", [tank()])
        gauge.link.dead = True
        assert gauge.answer(b"\x01i20100", 0.0) is None
