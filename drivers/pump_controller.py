"""A pump controller, read through its profile: what each nozzle is doing and its last completed sale.

Controllers differ in register maps but not in what they know, so the agent sees one typed reading whatever
the model. All of a poll's registers are read back to back and decoded together; a transaction's fields
come from one read whenever the profile keeps them in one block, so they cannot be torn between two sales.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from drivers.profiles import DeviceKind, Profile, ProfileError, ReadRequest


class RegisterReader(Protocol):
    def read_registers(self, unit: int, function: int, address: int, count: int) -> tuple[int, ...]: ...


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
class PumpControllerReading:
    nozzles: tuple[NozzleReading, ...]
    k_factor: int | None = None
    firmware_id: int | None = None


def _int(values: dict[str, int | str], meaning: str) -> int | None:
    value = values.get(meaning)
    return value if isinstance(value, int) else None


def _required(values: dict[str, int | str], meaning: str) -> int:
    value = values[meaning]
    assert isinstance(value, int), meaning
    return value


class PumpControllerDriver:
    """Binds a pump-controller profile to the nozzles in use and plans the poll's reads once."""

    def __init__(self, profile: Profile, nozzles: Sequence[int]) -> None:
        if profile.kind != DeviceKind.PUMP_CONTROLLER:
            raise ProfileError(f"profile {profile.name} is a {profile.kind}, not a pump_controller")
        self.profile = profile
        self.nozzles = tuple(sorted(set(nozzles)))
        self._placements = profile.placements(self.nozzles)
        self.requests: tuple[ReadRequest, ...] = tuple(profile.plan_reads(self.nozzles))

    def read(self, master: RegisterReader, unit: int) -> PumpControllerReading:
        image: dict[tuple[int, int], int] = {}
        for request in self.requests:
            registers = master.read_registers(unit, request.function, request.address, request.count)
            image.update(((request.function, request.address + i), value) for i, value in enumerate(registers))
        return self.reading(self.profile.decode(self._placements, image))

    def reading(self, values: dict[int, dict[str, int | str]]) -> PumpControllerReading:
        device = values.get(0, {})
        nozzles = tuple(
            NozzleReading(
                nozzle=number,
                state=str(values[number]["state"]),
                txn_no=_required(values[number], "txn_no"),
                txn_volume_ml=_required(values[number], "txn_volume_ml"),
                txn_amount_fen=_required(values[number], "txn_amount_fen"),
                txn_price_fen_per_l=_required(values[number], "txn_price_fen_per_l"),
                totalizer_volume_ml=_required(values[number], "totalizer_volume_ml"),
                totalizer_amount_fen=_int(values[number], "totalizer_amount_fen"),
                current_volume_ml=_int(values[number], "current_volume_ml"),
                current_amount_fen=_int(values[number], "current_amount_fen"),
                price_fen_per_l=_int(values[number], "price_fen_per_l"),
            )
            for number in self.nozzles
        )
        return PumpControllerReading(nozzles, _int(device, "k_factor"), _int(device, "firmware_id"))
