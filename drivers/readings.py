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


Reading = PumpControllerReading | PulseCounterReading | PressureReading
