"""A tank gauge (automatic tank gauge console) that answers in the Veeder-Root TLS computer format, without I/O.

It reads its tanks through their probes (`Tank.measure`, fresh noise on every command) and answers the three
inquiries a station needs, built with the same encoders the agent decodes with (`drivers.veeder_root`):

- `i201TT` inventory: volume = chart(product height) - chart(water height), TC volume at 20 degC from the
  measured temperature, ullage = capacity - chart(product height), and the delivery-in-progress bit from
  the moment a drop starts until it has settled;
- `i202TT` deliveries: each tank's last ten settled deliveries, most recent first, each measured once
  when it is first reported and the same ever after, as a console keeps its delivery records;
- `i205TT` active alarms, from a fixed setup: overfill above 90 % of capacity, low product below 10 %,
  delivery needed below 20 %, high water above 50 mm.

Anything else is answered `9999FF1B`, and so are the optional reports in `refuses` (`i202`, `i205`), as a
console answers a report that is switched off or that its firmware lacks; a tank number it does not have
gets question marks in i201 and empty blocks in i202 and i205; a command without the right security code
gets silence. Units are metric: litres,
millimetres, degrees Celsius; its clock is the station's local time. Link faults on its target
(`G1/tank_gauge`): `dead` keeps it silent, `crc_noise` spoils the checksum of that share of answers, and
`slow` is carried out by the server that moves its bytes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime

from drivers.veeder_root.errors import TlsFrameError
from drivers.veeder_root.frame import (
    CHECKSUM_CHARS,
    ERROR_ANSWER,
    decode_command,
    encode_response,
)
from drivers.veeder_root.reports import (
    ALARMS,
    DELIVERIES,
    INVENTORY,
    AlarmReport,
    Delivery,
    DeliveryHistory,
    InventoryReport,
    TankAlarm,
    TankDeliveries,
    TankInventory,
    TankStatus,
    encode_alarms,
    encode_deliveries,
    encode_inventory,
)
from simulators.faults import Fault, TargetKind, device_target
from simulators.fuel import Product
from simulators.modbus_slave import SlaveFaults
from simulators.model import SimulatedModel
from simulators.tanks import DeliveryRecord, Measurement, Tank, TankState

PRODUCT_CODES = {Product.GASOLINE: "1", Product.DIESEL: "2"}
REPORTED_DELIVERIES = 10
OVERFILL_SHARE = 0.90
LOW_PRODUCT_SHARE = 0.10
DELIVERY_NEEDED_SHARE = 0.20
HIGH_WATER_MM = 50.0
OVERFILL, LOW_PRODUCT, HIGH_WATER, DELIVERY_NEEDED = 4, 5, 3, 11


class TankGauge(SimulatedModel):
    """A console with probes in `tanks` (gauge tank 1 is the first); `answer` takes one command frame."""

    def __init__(
        self,
        gauge_id: str,
        tanks: Sequence[Tank],
        *,
        security_code: str = "",
        refuses: frozenset[str] = frozenset(),
        rng: random.Random | None = None,
    ) -> None:
        self.target = device_target(gauge_id, TargetKind.TANK_GAUGE)
        super().__init__([self.target], has_crc=True)
        if not tanks:
            raise ValueError(f"tank gauge {gauge_id} has no tanks: give it at least one")
        self.id = gauge_id
        self.tanks = dict(enumerate(tanks, start=1))
        self.security_code = security_code
        self.refuses = refuses
        """The optional reports it answers with the error answer; change it while it runs."""
        self._rng = rng or random.Random(0)
        self._reported: dict[tuple[int, int], Delivery] = {}

    @property
    def link(self) -> SlaveFaults:
        """The link faults its server carries out (the delay of `slow`)."""
        return self.link_faults[self.target]

    def targets(self) -> dict[str, TargetKind]:
        return {self.target: TargetKind.TANK_GAUGE}

    def answer(self, frame: bytes, sim_s: float) -> bytes | None:
        """The answer to one command frame at `sim_s`, or None when the gauge keeps silent."""
        with self.lock:
            self.advance_to(sim_s)
            if self.link.dead:
                return None
            try:
                command = decode_command(frame, self.security_code)
            except TlsFrameError:
                return ERROR_ANSWER
            if command is None:
                return None
            build = {INVENTORY: self._inventory, DELIVERIES: self._deliveries, ALARMS: self._alarms}.get(
                command.function
            )
            if build is None or command.function in self.refuses:
                return ERROR_ANSWER
            return self._damaged(encode_response(command, build(command.tank)))

    # -- the reports ----------------------------------------------------------------------------------------

    def _numbers(self, tank: int) -> list[int]:
        return list(self.tanks) if tank == 0 else [tank]

    def _clock(self) -> datetime:
        first = next(iter(self.tanks.values()))
        return first.wall_clock(self._now_s).replace(second=0, microsecond=0)

    def _inventory(self, asked: int) -> bytes:
        inventories: list[TankInventory] = []
        unavailable: list[int] = []
        for number in self._numbers(asked):
            tank = self.tanks.get(number)
            if tank is None:
                unavailable.append(number)
                continue
            state = tank.state(self._now_s)
            inventories.append(self._inventory_of(number, tank, state, tank.measure(state, self._rng)))
        return encode_inventory(InventoryReport(self._clock(), tuple(inventories), tuple(unavailable)))

    def _inventory_of(self, number: int, tank: Tank, state: TankState, seen: Measurement) -> TankInventory:
        chart = tank.spec.chart
        total_l = chart.volume_l(seen.height_mm)
        water_l = chart.volume_l(seen.water_mm)
        volume_l = max(0.0, total_l - water_l)
        status = TankStatus.DELIVERY_IN_PROGRESS if state.delivery_in_progress else TankStatus(0)
        return TankInventory(
            tank=number,
            product=PRODUCT_CODES[tank.spec.fuel.product],
            status=status,
            volume=volume_l,
            tc_volume=volume_l * tank.spec.fuel.to_20(seen.temperature_c),
            ullage=chart.capacity_l - total_l,
            height=seen.height_mm,
            water=seen.water_mm,
            temperature=seen.temperature_c,
            water_volume=water_l,
        )

    def _deliveries(self, asked: int) -> bytes:
        blocks: list[TankDeliveries] = []
        for number in self._numbers(asked):
            tank = self.tanks.get(number)
            if tank is None:
                blocks.append(TankDeliveries(number, "0", ()))
                continue
            tank.state(self._now_s)
            records = tank.deliveries()[-REPORTED_DELIVERIES:][::-1]
            reported = tuple(self._reported_delivery(number, tank, record) for record in records)
            blocks.append(TankDeliveries(number, PRODUCT_CODES[tank.spec.fuel.product], reported))
        return encode_deliveries(DeliveryHistory(self._clock(), tuple(blocks)))

    def _reported_delivery(self, number: int, tank: Tank, record: DeliveryRecord) -> Delivery:
        key = (number, record.number)
        if key not in self._reported:
            before, after = tank.measure(record.start, self._rng), tank.measure(record.end, self._rng)
            start, end = (
                self._inventory_of(number, tank, record.start, before),
                self._inventory_of(number, tank, record.end, after),
            )
            self._reported[key] = Delivery(
                start=tank.wall_clock(record.start.at_s).replace(second=0, microsecond=0),
                end=tank.wall_clock(record.end.at_s).replace(second=0, microsecond=0),
                start_volume=start.volume,
                start_tc_volume=start.tc_volume,
                start_water=start.water,
                start_temperature=start.temperature,
                end_volume=end.volume,
                end_tc_volume=end.tc_volume,
                end_water=end.water,
                end_temperature=end.temperature,
                start_height=start.height,
                end_height=end.height,
            )
        return self._reported[key]

    def _alarms(self, asked: int) -> bytes:
        alarms: list[TankAlarm] = []
        for number in self._numbers(asked):
            tank = self.tanks.get(number)
            if tank is not None:
                alarms.extend(TankAlarm(number, code) for code in _active_alarms(tank, tank.state(self._now_s)))
        return encode_alarms(AlarmReport(self._clock(), tuple(alarms), tuple(self._numbers(asked))))

    def _damaged(self, answer: bytes) -> bytes:
        """The answer with its checksum spoilt, at the `crc_noise` rate."""
        if not self._rng.random() < self.link.corrupt_crc_rate:
            return answer
        checksum_at = len(answer) - 1 - CHECKSUM_CHARS
        spoilt = int(answer[checksum_at:-1], 16) ^ 0x0101
        return answer[:checksum_at] + b"%04X" % spoilt + answer[-1:]

    def _run_to(self, sim_s: float) -> None:
        self._now_s = sim_s

    def _happen(self, fault: Fault) -> None:
        raise AssertionError(f"a tank gauge has no one-shot fault, got {fault.kind}")


def _active_alarms(tank: Tank, state: TankState) -> list[int]:
    share = (state.volume_l + state.water_l) / tank.spec.chart.capacity_l
    active = [
        (HIGH_WATER, state.water_mm > HIGH_WATER_MM),
        (OVERFILL, share > OVERFILL_SHARE),
        (LOW_PRODUCT, share < LOW_PRODUCT_SHARE),
        (DELIVERY_NEEDED, share < DELIVERY_NEEDED_SHARE),
    ]
    return [code for code, on in active if on]
