"""An underground tank in simulated time: what it holds, how warm it is, what flows in and out.

Theory of operation. The tank's state is its product volume at 20 degC (GB/T 1885), because only flows
change it: sales drawn by the nozzles, deliveries, a leak, a meter bypass. The volume at the fuel's
temperature, the product height (through the chart) and so everything a gauge shows follow from it and the
temperature. The temperature is the ground's plus a daily swing, plus what the last deliveries brought,
fading over `relax_h`; a delivery mixes its fuel in by volume as it flows. Water lies at the bottom,
unchanged. Flows are integrated in steps of at most a few minutes only while they run, so an idle month
costs nothing.

Each nozzle drawing on the tank calls `draw` for the fuel it really dispensed (what the customer got, not
what the controller booked), as it flows. A gauge or probe reading a tank first runs the dispensers that
draw on it to the same moment (`add_feeder`), so no fuel in flight is missed. Locks: a dispenser holds its
own lock while it draws (then the tank's), and a reader runs the feeders before it takes the tank's lock,
so locks are always taken dispenser before tank.

Faults (`simulators.faults`): `leak` and `unrecorded_dispensing` are sustained; `delivery` is a one-shot
that starts a drop. The report keeps the true volumes and every litre each cause took, for the tests to
compare with what the agent concluded.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from simulators.faults import Fault, TargetKind
from simulators.fuel import Fuel
from simulators.model import SimulatedModel
from simulators.tank_chart import TankChart

FLOW_STEP_S = 60.0
"""Longest integration step while fuel is delivered (its temperature mixes in as it flows)."""

LEAK_STEP_S = 600.0
"""Longest integration step while only a leak runs (the temperature changes the litres at 20 degC it takes)."""

MAX_REMEMBERED_DELIVERIES = 100
UL_PER_L = 1_000_000
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class TankSpec:
    """A tank as installed and filled when the simulation starts; temperatures in degC, heights in mm.

    `temperature_c` None: the fuel starts at the ground's temperature of that moment of the day.
    `height_noise_mm` and `temperature_noise_c` are the standard deviations of one probe reading, and
    `resolution_mm` its height step; `settle_s` is how long after a drop ends the gauge waits for the level
    to settle before it records the delivery.
    """

    fuel: Fuel
    chart: TankChart
    volume_l: float
    water_mm: float = 0.0
    temperature_c: float | None = None
    ground_c: float = 15.0
    daily_swing_c: float = 0.5
    warmest_hour: float = 15.0
    relax_h: float = 48.0
    height_noise_mm: float = 0.05
    water_noise_mm: float = 0.1
    temperature_noise_c: float = 0.02
    resolution_mm: float = 0.1
    settle_s: float = 300.0

    def __post_init__(self) -> None:
        water_l = self.chart.volume_l(self.water_mm)
        if self.volume_l < 0 or self.volume_l + water_l > self.chart.capacity_l:
            raise ValueError(
                f"volume {self.volume_l} L over {water_l:.0f} L of water does not fit the tank's "
                f"{self.chart.capacity_l:.0f} L"
            )
        if self.relax_h <= 0 or self.resolution_mm <= 0 or self.settle_s < 0:
            raise ValueError("relax_h and resolution_mm must be positive and settle_s not negative")


@dataclass(frozen=True, slots=True)
class TankState:
    """The truth at a moment: product volume at its temperature and at 20 degC, water, heights."""

    at_s: float
    volume_l: float
    volume_20_l: float
    water_l: float
    temperature_c: float
    height_mm: float
    water_mm: float
    delivery_in_progress: bool


@dataclass(frozen=True, slots=True)
class Measurement:
    """What a probe in the tank reads: quantized heights, a temperature to 0.01 degC."""

    height_mm: float
    water_mm: float
    temperature_c: float


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A delivery as it happened: the tank before the drop and once it settled, and what was dropped."""

    number: int
    start: TankState
    end: TankState
    volume_l: float
    volume_20_l: float
    temperature_c: float


@dataclass(slots=True)
class _Drop:
    number: int
    start: TankState
    rate_l_per_s: float
    flows_until_s: float
    settles_at_s: float
    temperature_c: float
    volume_l: float = 0.0
    volume_20_l: float = 0.0


@dataclass(slots=True)
class _Ledger:
    """Litres by cause, at the fuel's temperature as they flowed and at 20 degC."""

    litres: float = 0.0
    litres_20: float = 0.0

    def add(self, litres: float, litres_20: float) -> None:
        self.litres += litres
        self.litres_20 += litres_20

    def to_json(self, name: str) -> dict[str, int]:
        return {f"{name}_ml": round(self.litres * 1000), f"{name}_20_ml": round(self.litres_20 * 1000)}


class Tank(SimulatedModel):
    """One tank; `target` (its id) is what `leak`, `unrecorded_dispensing` and `delivery` aim at."""

    def __init__(self, tank_id: str, spec: TankSpec, *, start: datetime) -> None:
        super().__init__((), has_crc=False)
        self.id = tank_id
        self.target = tank_id
        self.spec = spec
        self.start = start
        self._day_offset_s = start.hour * 3600 + start.minute * 60 + start.second
        self._water_l = spec.chart.volume_l(spec.water_mm)
        initial_c = self._ambient_c(0.0) if spec.temperature_c is None else spec.temperature_c
        self._excess_c = initial_c - self._ambient_c(0.0)
        self._excess_since_s = 0.0
        self._volume_20_l = spec.volume_l * spec.fuel.to_20(initial_c)
        self._feeders: list[SimulatedModel] = []
        self._drops: list[_Drop] = []
        self._deliveries: deque[DeliveryRecord] = deque(maxlen=MAX_REMEMBERED_DELIVERIES)
        self._drop_count = 0
        self._sold = _Ledger()
        self._leaked = _Ledger()
        self._unrecorded = _Ledger()
        self._delivered = _Ledger()

    # -- what the outside sees ------------------------------------------------------------------------------

    def targets(self) -> dict[str, TargetKind]:
        return {self.target: TargetKind.TANK}

    def add_feeder(self, model: SimulatedModel) -> None:
        """A model (a dispenser) that draws on this tank and must be run before the tank is read."""
        if model not in self._feeders:
            self._feeders.append(model)

    def state(self, sim_s: float) -> TankState:
        """The truth at `sim_s` (or at the tank's present, if that is later), fuel in flight included."""
        for feeder in self._feeders:
            feeder.advance_to(sim_s)
        with self.lock:
            self.advance_to(sim_s)
            return self._state()

    def measure(self, state: TankState, rng: random.Random) -> Measurement:
        """One probe reading of `state`: heights with noise, to the probe's resolution; temperature with noise."""
        spec = self.spec

        def quantized(height_mm: float, noise_mm: float) -> float:
            noisy = min(max(0.0, height_mm + rng.gauss(0.0, noise_mm)), spec.chart.top_mm)
            return round(round(noisy / spec.resolution_mm) * spec.resolution_mm, 6)

        water_mm = quantized(state.water_mm, spec.water_noise_mm)
        height_mm = max(water_mm, quantized(state.height_mm, spec.height_noise_mm))
        temperature_c = round(state.temperature_c + rng.gauss(0.0, spec.temperature_noise_c), 2)
        return Measurement(height_mm, water_mm, temperature_c)

    def deliveries(self) -> list[DeliveryRecord]:
        """Deliveries that have settled (the latest 100), oldest first."""
        with self.lock:
            return list(self._deliveries)

    def wall_clock(self, sim_s: float) -> datetime:
        """The station's local time at a simulated second."""
        return self.start + timedelta(seconds=sim_s)

    def report(self) -> dict[str, object]:
        """The truth now and every litre by cause, in mL and 0.01 degC."""
        with self.lock:
            state = self._state()
            return {
                "volume_ml": round(state.volume_l * 1000),
                "volume_20_ml": round(state.volume_20_l * 1000),
                "water_ml": round(state.water_l * 1000),
                "height_um": round(state.height_mm * 1000),
                "water_um": round(state.water_mm * 1000),
                "temperature_cC": round(state.temperature_c * 100),
                "delivery_in_progress": state.delivery_in_progress,
                **self._sold.to_json("sold"),
                **self._leaked.to_json("leaked"),
                **self._unrecorded.to_json("unrecorded"),
                **self._delivered.to_json("delivered"),
                "deliveries": [
                    {
                        "start_s": round(record.start.at_s, 3),
                        "end_s": round(record.end.at_s, 3),
                        "volume_ml": round(record.volume_l * 1000),
                        "volume_20_ml": round(record.volume_20_l * 1000),
                        "temperature_cC": round(record.temperature_c * 100),
                    }
                    for record in self._deliveries
                ],
            }

    # -- flows ----------------------------------------------------------------------------------------------

    def draw(self, from_s: float, to_s: float, volume_ul: int) -> None:
        """A nozzle dispensed `volume_ul` (what really flowed) between `from_s` and `to_s`; a meter bypass,
        if one is on, takes its share along."""
        with self.lock:
            self.advance_to(to_s)
            temperature_c = self.temperature_c(to_s)
            litres = volume_ul / UL_PER_L
            self._sold.add(*self._take_out(litres, temperature_c))
            fraction = self._board.value("unrecorded_dispensing", self.target, "fraction") or 0.0
            bypass_l_per_h = self._board.value("unrecorded_dispensing", self.target, "l_per_h") or 0.0
            bypass_l = fraction * litres + bypass_l_per_h * (to_s - from_s) / 3600
            if bypass_l > 0:
                self._unrecorded.add(*self._take_out(bypass_l, temperature_c))

    def temperature_c(self, sim_s: float) -> float:
        """The fuel's temperature: the ground's with its daily swing, plus what deliveries brought, fading."""
        since_s = max(0.0, sim_s - self._excess_since_s)
        return self._ambient_c(sim_s) + self._excess_c * math.exp(-since_s / (self.spec.relax_h * 3600))

    def _ambient_c(self, sim_s: float) -> float:
        hour = ((self._day_offset_s + sim_s) % SECONDS_PER_DAY) / 3600
        swing = self.spec.daily_swing_c * math.cos(2 * math.pi * (hour - self.spec.warmest_hour) / 24)
        return self.spec.ground_c + swing

    def _take_out(self, litres: float, temperature_c: float) -> tuple[float, float]:
        """Remove `litres` at `temperature_c`, or what is left; returns (litres, litres at 20 degC) taken."""
        factor = self.spec.fuel.to_20(temperature_c)
        litres_20 = min(self._volume_20_l, litres * factor)
        self._volume_20_l -= litres_20
        return litres_20 / factor, litres_20

    def _state(self) -> TankState:
        at_s = self._now_s
        temperature_c = self.temperature_c(at_s)
        volume_l = self._volume_20_l / self.spec.fuel.to_20(temperature_c)
        chart = self.spec.chart
        return TankState(
            at_s=at_s,
            volume_l=volume_l,
            volume_20_l=self._volume_20_l,
            water_l=self._water_l,
            temperature_c=temperature_c,
            height_mm=chart.height_mm(self._water_l + volume_l),
            water_mm=chart.height_mm(self._water_l),
            delivery_in_progress=bool(self._drops),
        )

    # -- the physics ----------------------------------------------------------------------------------------

    def _run_to(self, sim_s: float) -> None:
        while self._now_s < sim_s:
            leak_l_per_h = self._board.value("leak", self.target, "l_per_h") or 0.0
            step_end = min(sim_s, *(self._boundaries()), self._now_s + self._step_s(leak_l_per_h))
            self._flow(self._now_s, step_end, leak_l_per_h)
            self._now_s = step_end
            self._settle()
        self._now_s = max(self._now_s, sim_s)

    def _boundaries(self) -> list[float]:
        ends = [drop.flows_until_s for drop in self._drops if drop.flows_until_s > self._now_s]
        return ends + [drop.settles_at_s for drop in self._drops]

    def _step_s(self, leak_l_per_h: float) -> float:
        if any(drop.flows_until_s > self._now_s for drop in self._drops):
            return FLOW_STEP_S
        return LEAK_STEP_S if leak_l_per_h > 0 else math.inf

    def _flow(self, from_s: float, to_s: float, leak_l_per_h: float) -> None:
        elapsed_s = to_s - from_s
        if leak_l_per_h > 0:
            self._leaked.add(*self._take_out(leak_l_per_h * elapsed_s / 3600, self.temperature_c((from_s + to_s) / 2)))
        for drop in self._drops:
            flowing_s = min(to_s, drop.flows_until_s) - from_s
            if flowing_s > 0:
                self._pour(drop, drop.rate_l_per_s * flowing_s, to_s)

    def _pour(self, drop: _Drop, litres: float, at_s: float) -> None:
        """Add a drop's fuel, as much as fits, and mix its temperature in by volume."""
        inside_c = self.temperature_c(at_s)
        inside_l = self._volume_20_l / self.spec.fuel.to_20(inside_c)
        room_l = self.spec.chart.capacity_l - self._water_l - inside_l
        if litres >= room_l:
            litres, drop.flows_until_s = max(0.0, room_l), at_s
        litres_20 = litres * self.spec.fuel.to_20(drop.temperature_c)
        self._volume_20_l += litres_20
        drop.volume_l += litres
        drop.volume_20_l += litres_20
        self._delivered.add(litres, litres_20)
        if inside_l + litres > 0:
            mixed_c = (inside_l * inside_c + litres * drop.temperature_c) / (inside_l + litres)
            self._excess_c, self._excess_since_s = mixed_c - self._ambient_c(at_s), at_s

    def _settle(self) -> None:
        """Record the drops whose level has settled."""
        for drop in [drop for drop in self._drops if drop.settles_at_s <= self._now_s]:
            self._drops.remove(drop)
            record = DeliveryRecord(
                drop.number, drop.start, self._state(), drop.volume_l, drop.volume_20_l, drop.temperature_c
            )
            self._deliveries.append(record)

    def _happen(self, fault: Fault) -> None:
        """A delivery starts now."""
        duration_s = float(fault.params["duration_s"])
        self._drop_count += 1
        self._drops.append(
            _Drop(
                number=self._drop_count,
                start=self._state(),
                rate_l_per_s=float(fault.params["volume_l"]) / duration_s,
                flows_until_s=self._now_s + duration_s,
                settles_at_s=self._now_s + duration_s + self.spec.settle_s,
                temperature_c=float(fault.params["temperature_c"]),
            )
        )
