"""A whole clean day at a busy forecourt, without I/O: the simulated devices' values, made into the agent's
typed readings by its drivers, feed the station logic in simulated time.

Eight dispensers of two nozzles, each with its pump controller and its pulse counter (encoders and vapour
meters), polled every four simulated seconds from midnight to midnight: every sale must become exactly one
transaction with the controller's volume and the encoder's, and with no fault anywhere, no alarm may be
raised. The register codec is left out here (it has tests of its own, and the end-to-end tests run it):
encoding and decoding every register of 16 devices 21,600 times would take minutes, the logic seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from agent.contract.records import RecordType
from agent.field.events import DeviceReading
from agent.station.bindings import NozzleBinding, Tap
from agent.station.settings import MeteringSection
from agent.station.station import Station
from drivers.device import DeviceDriver
from simulators.config import SimulatorsConfig
from simulators.site import Site

DISPENSERS = 8
DAY_S = 86_400
POLL_S = 4.0
PATTERN = {
    "idle_s": [240, 900],
    "lift_s": [5, 15],
    "volume_l": [3, 60],
    "flow_l_per_min": [20, 50],
    "hang_up_s": [4, 12],
}


def by_index(values: dict[tuple[int, str], int | str]) -> dict[int, dict[str, int | str]]:
    """The simulator's values keyed as the profile decoder keys them: {nozzle or channel: {meaning: value}}."""
    nested: dict[int, dict[str, int | str]] = {}
    for (index, meaning), value in values.items():
        nested.setdefault(index, {})[meaning] = value
    return nested


def site_config() -> SimulatorsConfig:
    dispensers: list[dict[str, Any]] = [
        {
            "id": f"D{d:02d}",
            "line": f"line-{d}",
            "controller_unit": 1,
            "pulse_counter_unit": 11,
            "pattern": PATTERN,
            "nozzles": [
                {"grade": "92", "price_fen_per_l": 770, "meter_error_ppm": 400 * (d % 3) - 400},
                {"grade": "95", "price_fen_per_l": 820, "meter_error_ppm": 300 - 200 * (d % 4)},
            ],
        }
        for d in range(1, DISPENSERS + 1)
    ]
    lines = [{"kind": "tcp", "name": f"line-{d}", "port": 0} for d in range(1, DISPENSERS + 1)]
    return SimulatorsConfig.model_validate({"simulation": {"seed": 20261127}, "lines": lines, "dispensers": dispensers})


def bindings() -> list[NozzleBinding]:
    return [
        NozzleBinding(
            f"D{d:02d}-N{n}",
            f"D{d:02d}",
            "92" if n == 1 else "95",
            "T1",
            f"pc{d}",
            n,
            Tap(f"pcm{d}", 2 * n - 1, Decimal(10)),
            Tap(f"pcm{d}", 2 * n, Decimal(10)),
        )
        for d in range(1, DISPENSERS + 1)
        for n in (1, 2)
    ]


@pytest.mark.slow
def test_a_clean_day_gives_every_sale_once_and_no_alarm() -> None:
    """Every sale of the day at 16 nozzles is one transaction, measured twice within the resolutions, and a
    day with honest meters (errors up to 0.08 %) raises not a single alarm."""
    site = Site(site_config(), lambda: 0.0)
    station = Station(bindings(), {}, MeteringSection())
    polled: list[tuple[str, DeviceDriver, Callable[[], dict[tuple[int, str], int | str]]]] = []
    for d in range(1, DISPENSERS + 1):
        dispenser = site.dispensers[f"D{d:02d}"]
        banks = {device.unit: device.bank for device in site.lines[f"line-{d}"]}
        polled.append((f"pc{d}", DeviceDriver(banks[1].profile, [1, 2]), dispenser.controller_values))
        polled.append((f"pcm{d}", DeviceDriver(banks[11].profile, [1, 2, 3, 4]), dispenser.pulse_counter_values))
    made = []
    for step in range(int(DAY_S / POLL_S)):
        site.advance_to(step * POLL_S)
        ts_ms = 1_800_000_000_000 + int(step * POLL_S * 1000)
        for offset, (name, driver, values) in enumerate(polled):
            reading = driver.reading(by_index(values()))
            made += station.on_event(DeviceReading(name, "bus", ts_ms + offset, reading))
        made += station.tick(ts_ms + len(polled))

    alarms = [intent.body.as_json() for intent in made if intent.type == RecordType.ALARM]
    assert alarms == []
    recorded = {
        (intent.body.nozzle, intent.body.txn_no): intent.body.as_json()
        for intent in made
        if intent.type == RecordType.TRANSACTION
    }
    assert len(recorded) == sum(1 for intent in made if intent.type == RecordType.TRANSACTION), "a sale twice"
    sales = site.sales()
    expected = {
        (nozzle, sale.txn_no): sale
        for nozzle, booked in sales.items()
        for sale in booked
        if sale.txn_no > min(sale.txn_no for sale in booked) - 1
    }
    assert set(recorded) == set(expected), "every sale of the day, and nothing else"
    assert len(recorded) >= 16 * 60, "a busy day"
    for key, body in recorded.items():
        sale = expected[key]
        assert body["volume_ml"] == sale.volume_ml
        if body["pulse_volume_ml"] is not None:
            assert abs(body["pulse_volume_ml"] - sale.real_volume_ml) < 20, "a pulse's phase, a pulse of jitter"
            assert abs(body["vapour_ml"] - sale.vapour_ml) <= 10
    unmeasured = [key for key, body in recorded.items() if body["pulse_volume_ml"] is None]
    assert len(unmeasured) <= 16, "only a nozzle's first sale may go unmeasured (no mark before it)"
