"""What the field devices say, typed: one reading per poll, whatever the device model.

Counters on real devices wrap (a 32-bit totalizer in centilitres wraps after 42,949,672.95 L). Each reading
therefore carries, next to its counts, where they wrap; the profile knows it from the register type and
scale, and the station logic needs it to tell a wrap from a reset or a tamper.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NozzleReading:
    nozzle: int
    state: str
    txn_no: int
    txn_volume_ml: int
    txn_amount_fen: int
    txn_price_fen_per_l: int
    totalizer_volume_ml: int
    totalizer_amount_fen: int | None = None
    current_volume_ml: int | None = None
    current_amount_fen: int | None = None
    price_fen_per_l: int | None = None


@dataclass(frozen=True, slots=True)
class ControllerCounters:
    """Where a controller model's counters wrap (None: they do not, as far as we know), and the smallest
    volume step it reports, which bounds how exactly its volumes can agree with anything else."""

    txn_no_modulus: int | None = None
    totalizer_volume_modulus_ml: int | None = None
    totalizer_amount_modulus_fen: int | None = None
    volume_resolution_ml: int = 1


@dataclass(frozen=True, slots=True)
class PumpControllerReading:
    nozzles: tuple[NozzleReading, ...]
    k_factor: int | None = None
    firmware_id: int | None = None
    counters: ControllerCounters = ControllerCounters()


@dataclass(frozen=True, slots=True)
class ChannelCount:
    channel: int
    count: int


@dataclass(frozen=True, slots=True)
class PulseCounterReading:
    """Cumulative pulse counts of a counter module's channels (liquid encoders, vapour flow meters)."""

    channels: tuple[ChannelCount, ...]
    count_modulus: int | None = None
    firmware_id: int | None = None

    def count(self, channel: int) -> int | None:
        return next((c.count for c in self.channels if c.channel == channel), None)


@dataclass(frozen=True, slots=True)
class PressureReading:
    """A tank vapour-space pressure sensor."""

    pressure_pa: int
    temperature_cC: int | None = None
    firmware_id: int | None = None


@dataclass(frozen=True, slots=True)
class TankReading:
    """One tank as a tank gauge reports it, in integer small units: mL, micrometres, 0.01 degC.

    `volume_ml` is the gross volume at the fuel's temperature by the gauge's own chart; the agent computes
    the volume at 20 degC itself (GB/T 1885), so `tc_volume_ml`, whose reference temperature depends on how
    the gauge was set up, is only passed along."""

    tank: int
    volume_ml: int
    height_um: int
    water_um: int
    temperature_cC: int
    ullage_ml: int | None = None
    tc_volume_ml: int | None = None
    water_volume_ml: int | None = None
    delivery_in_progress: bool = False
    leak_test_in_progress: bool = False
    invalid_height: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A delivery the gauge itself detected (Veeder-Root i202): the tank before and after the drop."""

    tank: int
    start_ts: str
    end_ts: str
    start_volume_ml: int
    end_volume_ml: int
    start_temperature_cC: int
    end_temperature_cC: int
    start_height_um: int
    end_height_um: int
    start_water_um: int
    end_water_um: int


@dataclass(frozen=True, slots=True)
class TankGaugeReading:
    """A tank gauge poll: every tank's inventory, the deliveries the gauge has on record, its active alarms, and
    the optional reports (`i202`, `i205`) the gauge refuses, whose absence is then no news."""

    tanks: tuple[TankReading, ...]
    deliveries: tuple[DeliveryReport, ...] = ()
    alarms: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LevelProbeReading:
    """A magnetostrictive level probe read over Modbus: heights and temperature; the tank chart gives volumes."""

    oil_height_um: int
    water_height_um: int
    temperature_cC: int


@dataclass(frozen=True, slots=True)
class ValueFault:
    """A value a device sent that cannot be true: not a number, infinite, or outside the point's plausible range.

    Transmitters say "sensor fault" with NaN, and a broken register map reads as huge numbers; such a value
    must become a device alarm, never a sale or an inventory. `raw_hex` is the registers (or the gauge field)
    exactly as they came, so the evidence shows what the device said without a float that JSON cannot carry."""

    point: str
    """What the value was meant to be: the profile's meaning (`nozzle 2 txn_volume_ml`) or the gauge's field."""
    register: int | None
    """The first register's address (Modbus); None for a gauge's field."""
    raw_hex: str
    reason: str


Reading = PumpControllerReading | PulseCounterReading | PressureReading | TankGaugeReading | LevelProbeReading
