"""A device read through its profile: plan the reads once, then each poll is bytes in, a typed reading out.

All of a poll's registers are read back to back and decoded together; a transaction's fields come from one
request whenever the profile keeps them in one block, so they cannot be torn between two sales.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from drivers.profiles import DeviceKind, Profile, ReadRequest
from drivers.readings import (
    ChannelCount,
    ControllerCounters,
    LevelProbeReading,
    NozzleReading,
    PressureReading,
    PulseCounterReading,
    PumpControllerReading,
    Reading,
)

Values = dict[int, dict[str, int | str]]


@dataclass(frozen=True, slots=True)
class RegisterRead:
    """One read a poll asks of its line: the unit, and the request the profile planned."""

    unit: int
    request: ReadRequest


class RegisterReader(Protocol):
    def read_registers(self, unit: int, function: int, address: int, count: int) -> tuple[int, ...]: ...


def _int(values: dict[str, int | str], meaning: str) -> int | None:
    value = values.get(meaning)
    return value if isinstance(value, int) else None


def _required(values: dict[str, int | str], meaning: str) -> int:
    value = values[meaning]
    if not isinstance(value, int):
        raise TypeError(f"{meaning} decoded to {value!r}, not an integer")
    return value


class DeviceDriver:
    """Binds a profile to the nozzles or channels in use; reads and decodes one poll."""

    def __init__(self, profile: Profile, indices: Iterable[int] = ()) -> None:
        self.profile = profile
        self.indices = tuple(sorted(set(indices)))
        self._decoding = profile.decoding(profile.placements(self.indices))
        self.requests: tuple[ReadRequest, ...] = tuple(profile.plan_reads(self.indices))
        self._slices = tuple(self._slice(point.registers) for point in self._decoding.points)
        """Where each point's registers are in the answers: (request, first, end)."""
        self._counters = self._controller_counters()
        self._count_modulus = self._modulus("count")
        self._last: tuple[int, tuple[tuple[int, ...], ...], Reading] | None = None
        """The unit, its answers and their reading at the last poll that decoded cleanly."""

    def read(self, master: RegisterReader, unit: int) -> Reading:
        """One poll, each read waited for in turn."""
        answers = tuple(
            master.read_registers(unit, request.function, request.address, request.count) for request in self.requests
        )
        return self.reading_of(unit, answers)

    def reads(self, unit: int) -> tuple[RegisterRead, ...]:
        """A poll's reads of `unit`, in `read`'s order, for a line that sends them without waiting and makes their
        answers into the reading with `reading_of`."""
        return tuple(RegisterRead(unit, request) for request in self.requests)

    def reading_of(self, unit: int, answers: tuple[tuple[int, ...], ...]) -> Reading:
        """The reading the answers to `requests` make. Answers word for word the same as the last poll's are the
        same reading (readings are immutable), so it is given again without decoding: an idle dispenser reads the
        same all day."""
        last = self._last
        if last is not None and last[0] == unit and last[1] == answers:
            return last[2]
        words = (answers[request][first:end] for request, first, end in self._slices)
        reading = self.reading(self._decoding.decode_words(words))
        self._last = (unit, answers, reading)
        return reading

    def _slice(self, registers: tuple[tuple[int, int], ...]) -> tuple[int, int, int]:
        (function, address), width = registers[0], len(registers)
        for index, request in enumerate(self.requests):
            first = address - request.address
            if request.function == function and first >= 0 and first + width <= request.count:
                return index, first, first + width
        raise ValueError(f"no planned read covers registers {registers}")  # plan_reads covers every point

    def reading(self, values: Values) -> Reading:
        kind = self.profile.kind
        device = values.get(0, {})
        if kind == DeviceKind.PUMP_CONTROLLER:
            nozzles = tuple(_nozzle(number, values[number]) for number in self.indices)
            return PumpControllerReading(nozzles, _int(device, "k_factor"), _int(device, "firmware_id"), self._counters)
        if kind == DeviceKind.PULSE_COUNTER:
            channels = tuple(ChannelCount(number, _required(values[number], "count")) for number in self.indices)
            return PulseCounterReading(channels, self._count_modulus, _int(device, "firmware_id"))
        if kind == DeviceKind.LEVEL_PROBE:
            return LevelProbeReading(
                _required(device, "oil_height_um"),
                _required(device, "water_height_um"),
                _required(device, "temperature_cC"),
            )
        return PressureReading(
            _required(device, "pressure_pa"), _int(device, "temperature_cC"), _int(device, "firmware_id")
        )

    def _modulus(self, meaning: str) -> int | None:
        point = self.profile.point(meaning)
        return None if point is None else point.modulus

    def _controller_counters(self) -> ControllerCounters:
        volume = self.profile.point("txn_volume_ml")
        return ControllerCounters(
            txn_no_modulus=self._modulus("txn_no"),
            totalizer_volume_modulus_ml=self._modulus("totalizer_volume_ml"),
            totalizer_amount_modulus_fen=self._modulus("totalizer_amount_fen"),
            volume_resolution_ml=1 if volume is None or volume.type == "f32" else max(1, int(volume.scale)),
        )


def _nozzle(number: int, values: dict[str, int | str]) -> NozzleReading:
    return NozzleReading(
        nozzle=number,
        state=str(values["state"]),
        txn_no=_required(values, "txn_no"),
        txn_volume_ml=_required(values, "txn_volume_ml"),
        txn_amount_fen=_required(values, "txn_amount_fen"),
        txn_price_fen_per_l=_required(values, "txn_price_fen_per_l"),
        totalizer_volume_ml=_required(values, "totalizer_volume_ml"),
        totalizer_amount_fen=_int(values, "totalizer_amount_fen"),
        current_volume_ml=_int(values, "current_volume_ml"),
        current_amount_fen=_int(values, "current_amount_fen"),
        price_fen_per_l=_int(values, "price_fen_per_l"),
    )
