"""The three TLS reports a station needs, as values in the gauge's own units and as data fields, without I/O.

Layouts (computer format, per the Veeder-Root serial interface manuals, e.g. TLS-300/350 576013-635 and
TLS2 577013-767, sections "In-Tank Inventory Report", "Delivery Report", "In-Tank Status Report"), after the
echoed six-character command and before `&&`:

- `i201TT` inventory: `YYMMDDHHmm`, then per tank `TT` (decimal) `p` (product code, one character) `ssss`
  (status bits, hex: bit 0 delivery in progress, bit 1 leak test in progress, bit 2 invalid fuel height)
  `NN` (hex count of the eight-character float fields that follow), then the floats: volume, TC volume,
  ullage, height, water, temperature, water volume. Older consoles send six (no water volume); fields past
  the seventh are skipped.
- `i202TT` deliveries: `YYMMDDHHmm`, then per tank `TT` `p` `dd` (decimal count of deliveries), then per
  delivery start `YYMMDDHHmm`, end `YYMMDDHHmm`, `NN` (hex) and the floats: start volume, start TC volume,
  start water, start temperature, end volume, end TC volume, end water, end temperature, start height, end
  height (further fields skipped).
- `i205TT` active alarms: `YYMMDDHHmm`, then per tank `TT` `nn` (hex count) and `nn` two-digit alarm type
  numbers (decimal; the tank alarm table below).

A tank the gauge has no valid data for (its floats filled with question marks) is listed in `unavailable`
instead of `tanks`; a delivery with such a field is left out. Decoders raise TlsFrameError naming the field
for anything else that does not fit the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntFlag

from drivers.veeder_root.errors import TlsFrameError
from drivers.veeder_root.fields import FieldReader, encode_datetime, encode_float

INVENTORY = "i201"
DELIVERIES = "i202"
ALARMS = "i205"
INVENTORY_FIELDS = 7
MIN_INVENTORY_FIELDS = 6
DELIVERY_FIELDS = 10


class TankStatus(IntFlag):
    """The i201 tank status bits."""

    DELIVERY_IN_PROGRESS = 0x0001
    LEAK_TEST_IN_PROGRESS = 0x0002
    INVALID_HEIGHT = 0x0004


#: Tank alarm type numbers as i205 reports them (the TLS2 manual's table); others read "alarm (NN)".
TANK_ALARMS: dict[int, str] = {
    3: "high water alarm",
    4: "overfill alarm",
    5: "low product alarm",
    8: "invalid fuel level alarm",
    9: "probe out alarm",
    11: "delivery needed warning",
    12: "maximum product alarm",
    13: "gross leak test fail alarm",
    14: "periodic leak test fail alarm",
    15: "annual leak test fail alarm",
    27: "cold temperature warning",
}


@dataclass(frozen=True, slots=True)
class TankInventory:
    """One tank in an i201 answer, in the gauge's units (volumes, heights, temperature as it is set up)."""

    tank: int
    product: str
    status: TankStatus
    volume: float
    tc_volume: float
    ullage: float
    height: float
    water: float
    temperature: float
    water_volume: float | None = None


@dataclass(frozen=True, slots=True)
class InventoryReport:
    at: datetime
    tanks: tuple[TankInventory, ...]
    unavailable: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery in an i202 answer: the tank before the drop and after it settled, in the gauge's units."""

    start: datetime
    end: datetime
    start_volume: float
    start_tc_volume: float
    start_water: float
    start_temperature: float
    end_volume: float
    end_tc_volume: float
    end_water: float
    end_temperature: float
    start_height: float
    end_height: float


@dataclass(frozen=True, slots=True)
class TankDeliveries:
    tank: int
    product: str
    deliveries: tuple[Delivery, ...]


@dataclass(frozen=True, slots=True)
class DeliveryHistory:
    at: datetime
    tanks: tuple[TankDeliveries, ...]


@dataclass(frozen=True, slots=True)
class TankAlarm:
    tank: int
    alarm_type: int

    def __str__(self) -> str:
        name = TANK_ALARMS.get(self.alarm_type, "alarm")
        return f"tank {self.tank}: {name} ({self.alarm_type:02d})"


@dataclass(frozen=True, slots=True)
class AlarmReport:
    at: datetime
    alarms: tuple[TankAlarm, ...]
    tanks: tuple[int, ...] = ()


def _floats(reader: FieldReader, tank: int, minimum: int, used: int, what: str) -> list[float] | None:
    """The first `used` of a tank's NN float fields (at least `minimum` must come); None if one of the first
    `minimum` is unavailable. A field past `minimum` that is unavailable ends the list there."""
    where = f"tank {tank} {what} field count"
    count = reader.hexadecimal(2, where)
    if count < minimum:
        raise TlsFrameError(f"{reader.context}: {where} is {count}, the layout has at least {minimum}")
    values = [reader.single(f"tank {tank} {what} field {index + 1}") for index in range(count)][:used]
    present: list[float] = []
    for value in values:
        if value is None:
            break
        present.append(value)
    return present if len(present) >= minimum else None


def decode_inventory(data: bytes) -> InventoryReport:
    """The data of an `i201TT` answer."""
    reader = FieldReader(data, INVENTORY)
    at = reader.moment("date and time")
    tanks: list[TankInventory] = []
    unavailable: list[int] = []
    while not reader.exhausted:
        tank = reader.decimal(2, "tank number")
        product = reader.take(1, f"tank {tank} product code")
        status = TankStatus(reader.hexadecimal(4, f"tank {tank} status bits"))
        values = _floats(reader, tank, MIN_INVENTORY_FIELDS, INVENTORY_FIELDS, "inventory")
        if values is None:
            unavailable.append(tank)
            continue
        volume, tc_volume, ullage, height, water, temperature = values[:MIN_INVENTORY_FIELDS]
        water_volume = values[6] if len(values) == INVENTORY_FIELDS else None
        tanks.append(
            TankInventory(tank, product, status, volume, tc_volume, ullage, height, water, temperature, water_volume)
        )
    return InventoryReport(at, tuple(tanks), tuple(unavailable))


def encode_inventory(report: InventoryReport) -> bytes:
    """The data of an `i201TT` answer; tanks in `unavailable` get question marks."""
    parts = [encode_datetime(report.at)]
    for tank in report.tanks:
        floats = [tank.volume, tank.tc_volume, tank.ullage, tank.height, tank.water, tank.temperature]
        if tank.water_volume is not None:
            floats.append(tank.water_volume)
        parts.append(f"{tank.tank:02d}{tank.product}{int(tank.status):04X}{len(floats):02X}")
        parts.extend(encode_float(value) for value in floats)
    for number in report.unavailable:
        parts.append(f"{number:02d}?0000{INVENTORY_FIELDS:02X}" + "?" * 8 * INVENTORY_FIELDS)
    return "".join(parts).encode("ascii")


def decode_deliveries(data: bytes) -> DeliveryHistory:
    """The data of an `i202TT` answer."""
    reader = FieldReader(data, DELIVERIES)
    at = reader.moment("date and time")
    tanks: list[TankDeliveries] = []
    while not reader.exhausted:
        tank = reader.decimal(2, "tank number")
        product = reader.take(1, f"tank {tank} product code")
        count = reader.decimal(2, f"tank {tank} delivery count")
        deliveries: list[Delivery] = []
        for _ in range(count):
            start = reader.moment(f"tank {tank} delivery start")
            end = reader.moment(f"tank {tank} delivery end")
            values = _floats(reader, tank, DELIVERY_FIELDS, DELIVERY_FIELDS, "delivery")
            if values is not None:
                deliveries.append(Delivery(start, end, *values))
        tanks.append(TankDeliveries(tank, product, tuple(deliveries)))
    return DeliveryHistory(at, tuple(tanks))


def encode_deliveries(history: DeliveryHistory) -> bytes:
    """The data of an `i202TT` answer."""
    parts = [encode_datetime(history.at)]
    for tank in history.tanks:
        parts.append(f"{tank.tank:02d}{tank.product}{len(tank.deliveries):02d}")
        for delivery in tank.deliveries:
            floats = (
                delivery.start_volume,
                delivery.start_tc_volume,
                delivery.start_water,
                delivery.start_temperature,
                delivery.end_volume,
                delivery.end_tc_volume,
                delivery.end_water,
                delivery.end_temperature,
                delivery.start_height,
                delivery.end_height,
            )
            parts.append(encode_datetime(delivery.start) + encode_datetime(delivery.end) + f"{len(floats):02X}")
            parts.extend(encode_float(value) for value in floats)
    return "".join(parts).encode("ascii")


def decode_alarms(data: bytes) -> AlarmReport:
    """The data of an `i205TT` answer; `tanks` lists every tank reported, with alarms or without."""
    reader = FieldReader(data, ALARMS)
    at = reader.moment("date and time")
    alarms: list[TankAlarm] = []
    tanks: list[int] = []
    while not reader.exhausted:
        tank = reader.decimal(2, "tank number")
        count = reader.hexadecimal(2, f"tank {tank} alarm count")
        alarms.extend(TankAlarm(tank, reader.decimal(2, f"tank {tank} alarm type")) for _ in range(count))
        tanks.append(tank)
    return AlarmReport(at, tuple(alarms), tuple(tanks))


def encode_alarms(report: AlarmReport) -> bytes:
    """The data of an `i205TT` answer: every tank in `tanks`, each with its alarms."""
    parts = [encode_datetime(report.at)]
    for tank in report.tanks:
        types = [alarm.alarm_type for alarm in report.alarms if alarm.tank == tank]
        parts.append(f"{tank:02d}{len(types):02X}" + "".join(f"{alarm_type:02d}" for alarm_type in types))
    return "".join(parts).encode("ascii")
