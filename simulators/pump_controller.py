"""A simulated pump controller: nozzles that fuel cars on a random schedule, behind a Modbus register map.

Cars arrive at each nozzle after a random idle time, the nozzle is lifted, fuel flows at a realistic rate
(20-50 L/min by default) until the sale's volume, the nozzle is hung up and the controller books the sale:
its transaction number goes up by one and its totalizers by the sale. Time is simulated: `time_scale` 10 runs
ten simulated seconds per real one, so a demo minute holds a busy forecourt hour's worth of short sales.

The registers are laid out by the same profile file that the agent reads, encoded with the profile codec; the
tests check the layout against hand-written addresses, so a codec bug cannot hide on both sides.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from drivers.profiles import Placement, Profile, Scope
from simulators.modbus_slave import RegisterMap

CENTILITRE_ML = 10
MAX_REMEMBERED_SALES = 1000


@dataclass(frozen=True, slots=True)
class FuellingPattern:
    """How customers behave at a nozzle, in simulated seconds and litres."""

    idle_s: tuple[float, float] = (20.0, 120.0)
    lift_s: tuple[float, float] = (3.0, 10.0)
    volume_l: tuple[float, float] = (5.0, 60.0)
    flow_l_per_min: tuple[float, float] = (20.0, 50.0)
    hang_up_s: tuple[float, float] = (2.0, 5.0)


@dataclass(slots=True)
class _Nozzle:
    number: int
    price_fen_per_l: int
    state: str = "idle"
    next_change_s: float = 0.0
    target_ml: int = 0
    flow_ml_per_s: float = 0.0
    started_s: float = 0.0
    current_ml: int = 0
    txn_no: int = 0
    txn_volume_ml: int = 0
    txn_amount_fen: int = 0
    txn_price_fen_per_l: int = 0
    totalizer_volume_ml: int = 0
    totalizer_amount_fen: int = 0
    completed: list[tuple[int, int]] = field(default_factory=list)


def amount_fen(volume_ml: int, price_fen_per_l: int) -> int:
    """Money for a volume, rounded half up to the fen as a dispenser's display does."""
    return (volume_ml * price_fen_per_l + 500) // 1000


class SimulatedPumpController:
    """A Modbus register bank whose values follow the simulated fuellings; read it and time moves on."""

    def __init__(
        self,
        profile: Profile,
        prices_fen_per_l: Sequence[int],
        pattern: FuellingPattern,
        rng: random.Random,
        *,
        time_scale: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        first_txn_no: int = 1000,
        first_totalizer_ml: int = 12_345_670,
    ) -> None:
        self.profile = profile
        self.pattern = pattern
        self._rng = rng
        self._time_scale = time_scale
        self._monotonic = monotonic
        self._started = monotonic()
        self._lock = threading.Lock()
        self.nozzles = [
            _Nozzle(
                number,
                price,
                txn_no=first_txn_no + 100 * number,
                totalizer_volume_ml=first_totalizer_ml * number,
                totalizer_amount_fen=amount_fen(first_totalizer_ml * number, price),
            )
            for number, price in enumerate(prices_fen_per_l, start=1)
        ]
        for nozzle in self.nozzles:
            nozzle.next_change_s = self._draw(pattern.idle_s)
        self.k_factor = 10_000
        self.firmware_id = 0x0102
        self._placements = profile.placements(range(1, len(self.nozzles) + 1))
        self._registers = RegisterMap()
        self._zero_fill()
        self._publish()

    def sim_seconds(self) -> float:
        return (self._monotonic() - self._started) * self._time_scale

    def read(self, function: int, address: int, count: int) -> list[int]:
        self.advance()
        return self._registers.read(function, address, count)

    def write(self, address: int, values: Sequence[int]) -> None:
        self._registers.write(address, values)

    def advance(self) -> None:
        """Bring every nozzle up to the present simulated moment and refresh the registers."""
        now = self.sim_seconds()
        with self._lock:
            for nozzle in self.nozzles:
                self._step(nozzle, now)
            self._publish()

    def completed_sales(self) -> dict[int, list[tuple[int, int]]]:
        """(txn_no, volume_ml) of the latest sales booked, per nozzle, for tests to compare with records."""
        with self._lock:
            return {nozzle.number: list(nozzle.completed) for nozzle in self.nozzles}

    def _draw(self, bounds: tuple[float, float]) -> float:
        return self._rng.uniform(*bounds)

    def _step(self, nozzle: _Nozzle, now: float) -> None:
        while now >= nozzle.next_change_s:
            at = nozzle.next_change_s
            if nozzle.state == "idle":
                nozzle.state, nozzle.next_change_s = "lifted", at + self._draw(self.pattern.lift_s)
            elif nozzle.state == "lifted":
                litres = self._draw(self.pattern.volume_l)
                nozzle.target_ml = max(1, round(litres * 100)) * CENTILITRE_ML
                nozzle.flow_ml_per_s = self._draw(self.pattern.flow_l_per_min) * 1000 / 60
                nozzle.state, nozzle.started_s, nozzle.current_ml = "fuelling", at, 0
                nozzle.next_change_s = at + nozzle.target_ml / nozzle.flow_ml_per_s
            elif nozzle.state == "fuelling":
                self._book(nozzle)
                nozzle.state, nozzle.next_change_s = "finished", at + self._draw(self.pattern.hang_up_s)
            else:
                nozzle.state, nozzle.next_change_s = "idle", at + self._draw(self.pattern.idle_s)
        if nozzle.state == "fuelling":
            flowed = int((now - nozzle.started_s) * nozzle.flow_ml_per_s)
            nozzle.current_ml = min(nozzle.target_ml, flowed // CENTILITRE_ML * CENTILITRE_ML)

    def _book(self, nozzle: _Nozzle) -> None:
        volume = nozzle.target_ml
        money = amount_fen(volume, nozzle.price_fen_per_l)
        nozzle.current_ml = volume
        nozzle.txn_no += 1
        nozzle.txn_volume_ml, nozzle.txn_amount_fen = volume, money
        nozzle.txn_price_fen_per_l = nozzle.price_fen_per_l
        nozzle.totalizer_volume_ml += volume
        nozzle.totalizer_amount_fen += money
        nozzle.completed.append((nozzle.txn_no, volume))
        del nozzle.completed[:-MAX_REMEMBERED_SALES]

    def _values(self, placed: Placement) -> int | str:
        meaning = placed.point.meaning
        if placed.point.scope == Scope.DEVICE:
            return self.k_factor if meaning == "k_factor" else self.firmware_id
        nozzle = self.nozzles[placed.nozzle - 1]
        if meaning == "current_amount_fen":
            return amount_fen(nozzle.current_ml, nozzle.price_fen_per_l)
        if meaning == "current_volume_ml":
            return nozzle.current_ml
        value: int | str = getattr(nozzle, meaning)
        return value

    def _publish(self) -> None:
        for placed in self._placements:
            words = self.profile.encode(placed, self._wrapped(placed, self._values(placed)))
            self._registers.set(placed.point.function, placed.address, words)

    def _wrapped(self, placed: Placement, value: int | str) -> int | str:
        """Counters wrap at the register's width, as a real controller's do."""
        if isinstance(value, str) or placed.point.type not in ("u16", "u32", "u64"):
            return value
        modulus = int(Decimal(1 << (16 * placed.point.width)) * placed.point.scale)
        return value % modulus

    def _zero_fill(self) -> None:
        """Answer zeros across the gaps inside the map and to the end of each nozzle's block, as controllers
        do for reserved registers."""
        by_function: dict[int, list[int]] = {}
        for placed in self._placements:
            by_function.setdefault(placed.point.function, []).extend(
                range(placed.address, placed.address + placed.point.width)
            )
        block = self.profile.document.nozzle_block
        block_end = 0 if block is None else block.base + len(self.nozzles) * block.stride - 1
        for function, addresses in by_function.items():
            low, high = min(addresses), max(*addresses, block_end)
            self._registers.set(function, low, [0] * (high - low + 1))
