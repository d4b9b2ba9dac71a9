"""One dispenser's physics, shared by its pump controller and its pulse-counter module.

On a real forecourt the controller and the pulse counter never talk: both watch the same fuel. The
controller meters it (with its meter's error, and whatever a cheat added) and books each sale; the counter
only counts the encoder's pulses and the vapour meter's pulses. The agent's metering checks live in the gap
between the two, so the simulation keeps one truth per nozzle, the fuel really dispensed, and derives both
devices' registers from it:

- real volume grows linearly while a nozzle fuels, at the fuelling's flow, up to its volume;
- the liquid channel counts floor(volume its encoder saw / mL per pulse), plus a pulse now and then as the
  pump stops, the vapour channel the same for the vapour recovered, which is the real volume times the
  nozzle's A/L ratio (a little different each fuelling);
- the controller sees real x (1 + meter_error_ppm / 1e6) x (1 + injection / 100), counts it in its own pulses
  from its own phase and, when the nozzle is hung up, books the sale in its own resolution: number + 1,
  volume, amount, price, and both totalizers. `simulators.meter` says how rude the two counts are.

Volumes are microlitres inside; a sale's real volume is any number of them, not a whole centilitre.
Nozzle n's channels are 2n - 1 (liquid) and 2n (vapour). A nozzle with a fuel source (its tank) draws what
really flows from it as it flows. Faults (`simulators.faults`) act on this model.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from drivers.profiles import DeviceKind, Profile, ProfileError
from simulators.banks import DeviceBank, ProfiledRegisters, Values
from simulators.faults import Fault, TargetKind, device_target, nozzle_target
from simulators.fuelling import HUNG_UP, NEXT_PHASE, FuellingPattern, Phase, amount_fen, round_half_up
from simulators.meter import UL_PER_ML, MeterNoise, controller_volume_ml, counter_pulses
from simulators.model import SimulatedModel

MAX_REMEMBERED_SALES = 1000
CONTROLLER_FIRMWARE_ID = 0x0102
PULSE_COUNTER_FIRMWARE_ID = 0x0100


@dataclass(frozen=True, slots=True)
class NozzleSpec:
    """A nozzle as installed: its grade and price, how well it recovers vapour, how its meter errs, and where
    the controller's counters stand when the simulation begins."""

    grade: str
    price_fen_per_l: int
    al_ratio: float = 1.10
    al_spread: float = 0.01
    meter_error_ppm: int = 0
    first_txn_no: int = 0
    first_totalizer_ml: int = 0


class FuelSource(Protocol):
    """Where a nozzle's fuel comes from (`simulators.tanks.Tank`)."""

    def draw(self, from_s: float, to_s: float, volume_ul: int) -> None:
        """`volume_ul` really flowed out between `from_s` and `to_s`."""
        ...


@dataclass(frozen=True, slots=True)
class Sale:
    """A sale as the controller booked it, next to what really flowed: the report's line per sale."""

    txn_no: int
    volume_ml: int
    real_volume_ml: int
    vapour_ml: int

    def to_json(self) -> list[int]:
        return [self.txn_no, self.volume_ml, self.real_volume_ml, self.vapour_ml]


@dataclass(slots=True)
class _Nozzle:
    number: int
    target: str
    spec: NozzleSpec
    rng: random.Random
    phase: Phase = Phase.IDLE
    phase_until_s: float = 0.0
    at_s: float = 0.0
    target_ul: int = 0
    flow_ul_per_s: float = 0.0
    started_s: float = 0.0
    al_noise: float = 1.0
    delivered_ul: int = 0
    metered_ul: float = 0.0
    phase_ul: float = 0.0
    """Where in its pulse the controller's count of this fuelling started."""
    stop_jitter_pulses: int = 0
    """Pulses the counter counted as the pump stopped, over the dispenser's life."""
    vapour_ul: float = 0.0
    liquid_counted_ul: float = 0.0
    vapour_counted_ul: float = 0.0
    txn_no: int = 0
    txn_volume_ml: int = 0
    txn_amount_fen: int = 0
    txn_price_fen_per_l: int = 0
    totalizer_volume_ml: int = 0
    totalizer_amount_fen: int = 0
    current_volume_ml: int = 0
    skip_next: int = 0
    sales: deque[Sale] = field(default_factory=lambda: deque(maxlen=MAX_REMEMBERED_SALES))


class Dispenser(SimulatedModel):
    """A dispenser's nozzles in simulated time, with the register values of its controller and pulse counter.

    `controller_bank(clock)` and `pulse_counter_bank(clock)` are the Modbus register banks; reading one runs
    the dispenser up to `clock()`. Without I/O, call `advance_to(sim_s)` and read the banks with a clock
    that returns 0, or look at `sales()`.
    """

    def __init__(
        self,
        dispenser_id: str,
        nozzles: Iterable[NozzleSpec],
        controller_profile: Profile,
        *,
        pulse_counter_profile: Profile | None = None,
        pattern: FuellingPattern | None = None,
        ml_per_pulse: float = 10.0,
        vapour_ml_per_pulse: float = 10.0,
        rng: random.Random | None = None,
        has_crc: bool = True,
        sources: Mapping[int, FuelSource] | None = None,
        meter: MeterNoise | None = None,
    ) -> None:
        """`sources`: the tank each nozzle (by number, from 1) draws on; nozzles without one draw on nothing.
        `meter`: how the controller's and the counter's counts of a sale differ (default: as a real one's)."""
        self.controller_target = device_target(dispenser_id, TargetKind.CONTROLLER)
        self.pulse_counter_target = device_target(dispenser_id, TargetKind.PULSE_COUNTER)
        wired = [self.controller_target] + ([] if pulse_counter_profile is None else [self.pulse_counter_target])
        super().__init__(wired, has_crc=has_crc)
        rng = rng or random.Random(0)
        self.id = dispenser_id
        self.pattern = pattern or FuellingPattern()
        self.ml_per_pulse = ml_per_pulse
        self.vapour_ml_per_pulse = vapour_ml_per_pulse
        self.sources = dict(sources or {})
        self.meter = meter or MeterNoise()
        self._controller_pulse_ul = self.meter.controller_pulse_ul(ml_per_pulse)
        self.k_factor = round(100_000 / ml_per_pulse)
        self.nozzles = [
            _Nozzle(
                number,
                nozzle_target(dispenser_id, number),
                spec,
                random.Random(rng.getrandbits(64)),
                txn_no=spec.first_txn_no,
                totalizer_volume_ml=spec.first_totalizer_ml,
                totalizer_amount_fen=amount_fen(spec.first_totalizer_ml, spec.price_fen_per_l),
            )
            for number, spec in enumerate(nozzles, start=1)
        ]
        if not self.nozzles:
            raise ValueError(f"dispenser {dispenser_id} has no nozzles: give it at least one")
        for nozzle in self.nozzles:
            nozzle.phase_until_s = nozzle.rng.uniform(*self.pattern.idle_s)
        self.controller = ProfiledRegisters(_checked_controller(controller_profile), range(1, len(self.nozzles) + 1))
        self._resolution_ml = _volume_resolution_ml(controller_profile)
        self._txn_no_modulus = _modulus(controller_profile, "txn_no")
        self.pulse_counter = (
            None
            if pulse_counter_profile is None
            else ProfiledRegisters(
                _checked_counter(pulse_counter_profile, dispenser_id, len(self.nozzles)),
                range(1, pulse_counter_profile.capacity + 1),
            )
        )

    # -- what the outside sees ------------------------------------------------------------------------------

    def targets(self) -> dict[str, TargetKind]:
        """The names faults can aim at on this dispenser."""
        named = {nozzle.target: TargetKind.NOZZLE for nozzle in self.nozzles}
        named[self.controller_target] = TargetKind.CONTROLLER
        if self.pulse_counter is not None:
            named[self.pulse_counter_target] = TargetKind.PULSE_COUNTER
        return named

    def controller_bank(self, clock: Callable[[], float]) -> DeviceBank:
        return DeviceBank(self, self.controller_target, self.controller, self.controller_values, clock)

    def pulse_counter_bank(self, clock: Callable[[], float]) -> DeviceBank:
        if self.pulse_counter is None:
            raise ValueError(f"dispenser {self.id} has no pulse counter: give it a pulse_counter_profile")
        return DeviceBank(self, self.pulse_counter_target, self.pulse_counter, self.pulse_counter_values, clock)

    def sales(self) -> dict[str, list[Sale]]:
        """The latest sales booked (up to 1000 a nozzle), oldest first, by nozzle id."""
        with self.lock:
            return {nozzle.target: list(nozzle.sales) for nozzle in self.nozzles}

    def phases(self) -> dict[str, str]:
        """What each nozzle is doing now (idle, lifted, fuelling, finished), by nozzle id."""
        with self.lock:
            return {nozzle.target: str(nozzle.phase) for nozzle in self.nozzles}

    def controller_values(self) -> Values:
        with self.lock:
            k_factor = self._board.value("calibration_change", self.controller_target, "k_factor")
            values: dict[tuple[int, str], int | str] = {
                (0, "k_factor"): int(k_factor or self.k_factor),
                (0, "firmware_id"): self._firmware_id(self.controller_target, CONTROLLER_FIRMWARE_ID),
            }
            for nozzle in self.nozzles:
                values.update(
                    {
                        (nozzle.number, "state"): str(nozzle.phase),
                        (nozzle.number, "price_fen_per_l"): nozzle.spec.price_fen_per_l,
                        (nozzle.number, "current_volume_ml"): nozzle.current_volume_ml,
                        (nozzle.number, "current_amount_fen"): amount_fen(
                            nozzle.current_volume_ml, nozzle.spec.price_fen_per_l
                        ),
                        (nozzle.number, "txn_no"): nozzle.txn_no,
                        (nozzle.number, "txn_volume_ml"): nozzle.txn_volume_ml,
                        (nozzle.number, "txn_amount_fen"): nozzle.txn_amount_fen,
                        (nozzle.number, "txn_price_fen_per_l"): nozzle.txn_price_fen_per_l,
                        (nozzle.number, "totalizer_volume_ml"): nozzle.totalizer_volume_ml,
                        (nozzle.number, "totalizer_amount_fen"): nozzle.totalizer_amount_fen,
                    }
                )
            return values

    def pulse_counter_values(self) -> Values:
        """Cumulative pulses per channel: nozzle n's liquid on 2n - 1, its vapour on 2n, unwired channels 0."""
        with self.lock:
            capacity = 0 if self.pulse_counter is None else self.pulse_counter.profile.capacity
            values: dict[tuple[int, str], int | str] = dict.fromkeys(((c, "count") for c in range(1, capacity + 1)), 0)
            values[(0, "firmware_id")] = self._firmware_id(self.pulse_counter_target, PULSE_COUNTER_FIRMWARE_ID)
            for nozzle in self.nozzles:
                values[(2 * nozzle.number - 1, "count")] = (
                    counter_pulses(nozzle.liquid_counted_ul, self.ml_per_pulse) + nozzle.stop_jitter_pulses
                )
                values[(2 * nozzle.number, "count")] = int(
                    nozzle.vapour_counted_ul // (self.vapour_ml_per_pulse * UL_PER_ML)
                )
            return values

    # -- the physics ----------------------------------------------------------------------------------------

    def _run_to(self, sim_s: float) -> None:
        for nozzle in self.nozzles:
            while nozzle.phase_until_s <= sim_s:
                self._flow(nozzle, nozzle.phase_until_s, ending=nozzle.phase is Phase.FUELLING)
                self._enter(nozzle, NEXT_PHASE[nozzle.phase], nozzle.phase_until_s)
            self._flow(nozzle, sim_s)
        self._now_s = sim_s

    def _enter(self, nozzle: _Nozzle, phase: Phase, at_s: float) -> None:
        nozzle.phase = phase
        if phase is Phase.FUELLING:
            held_s = self._start_fuelling(nozzle, at_s)
        else:
            if phase is Phase.FINISHED:
                self._book(nozzle)
            held_s = nozzle.rng.uniform(*self.pattern.held_s(phase))
        nozzle.phase_until_s = at_s + held_s

    def _start_fuelling(self, nozzle: _Nozzle, at_s: float) -> float:
        """Draw the fuelling (a volume, a flow, this fuelling's A/L, the controller's phase) and return how long
        it lasts."""
        nozzle.target_ul = max(UL_PER_ML, round(nozzle.rng.uniform(*self.pattern.volume_l) * 1_000_000))
        nozzle.flow_ul_per_s = nozzle.rng.uniform(*self.pattern.flow_l_per_min) * 1_000_000 / 60
        nozzle.al_noise = max(0.0, nozzle.rng.gauss(1.0, nozzle.spec.al_spread))
        nozzle.phase_ul = self.meter.start_phase_ul(self.ml_per_pulse, nozzle.rng)
        nozzle.started_s = at_s
        nozzle.delivered_ul, nozzle.metered_ul, nozzle.vapour_ul = 0, 0.0, 0.0
        nozzle.current_volume_ml = 0
        return nozzle.target_ul / nozzle.flow_ul_per_s

    def _flow(self, nozzle: _Nozzle, sim_s: float, *, ending: bool = False) -> None:
        """What flows through the nozzle's meters from its last moment up to `sim_s`."""
        target = nozzle.target
        encoder_works = self._board.find("encoder_failure", target) is None
        if nozzle.phase is Phase.FUELLING:
            flowed = nozzle.target_ul if ending else int((sim_s - nozzle.started_s) * nozzle.flow_ul_per_s)
            delta_ul = min(nozzle.target_ul, flowed) - nozzle.delivered_ul
            nozzle.delivered_ul += delta_ul
            source = self.sources.get(nozzle.number)
            if source is not None and delta_ul > 0:
                source.draw(nozzle.at_s, sim_s, delta_ul)
            nozzle.metered_ul += delta_ul * self._metering_factor(nozzle)
            vapour_ul = delta_ul * self._al_ratio(nozzle)
            nozzle.vapour_ul += vapour_ul
            nozzle.vapour_counted_ul += vapour_ul
            if encoder_works:
                nozzle.liquid_counted_ul += delta_ul
                if ending:
                    nozzle.stop_jitter_pulses += self.meter.stop_jitter_pulses(nozzle.rng)
            nozzle.current_volume_ml = self._shown_ml(nozzle)
        elif nozzle.phase in HUNG_UP and encoder_works:
            ghost_l_per_min = self._board.value("ghost_pulses", target, "l_per_min") or 0.0
            nozzle.liquid_counted_ul += ghost_l_per_min * 1_000_000 / 60 * (sim_s - nozzle.at_s)
        nozzle.at_s = sim_s

    def _metering_factor(self, nozzle: _Nozzle) -> float:
        injection_percent = self._board.value("pulse_injection", nozzle.target, "percent") or 0.0
        return (1 + nozzle.spec.meter_error_ppm / 1e6) * (1 + injection_percent / 100)

    def _al_ratio(self, nozzle: _Nozzle) -> float:
        if self._board.find("vapour_failure", nozzle.target) is not None:
            return 0.0
        ratio = self._board.value("al_ratio", nozzle.target, "value")
        return (nozzle.spec.al_ratio if ratio is None else ratio) * nozzle.al_noise

    def _shown_ml(self, nozzle: _Nozzle) -> int:
        return controller_volume_ml(nozzle.metered_ul, nozzle.phase_ul, self._controller_pulse_ul, self._resolution_ml)

    def _book(self, nozzle: _Nozzle) -> None:
        """The controller books the sale as the nozzle is hung up."""
        volume_ml = self._shown_ml(nozzle)
        price = nozzle.spec.price_fen_per_l
        money = amount_fen(volume_ml, price)
        nozzle.txn_no += 1 + nozzle.skip_next
        nozzle.skip_next = 0
        nozzle.txn_volume_ml, nozzle.txn_amount_fen, nozzle.txn_price_fen_per_l = volume_ml, money, price
        nozzle.totalizer_volume_ml += volume_ml
        nozzle.totalizer_amount_fen += money
        nozzle.current_volume_ml = volume_ml
        nozzle.sales.append(
            Sale(
                nozzle.txn_no % self._txn_no_modulus,
                volume_ml,
                round_half_up(nozzle.delivered_ul, UL_PER_ML),
                round(nozzle.vapour_ul / UL_PER_ML),
            )
        )

    # -- faults ---------------------------------------------------------------------------------------------

    def _happen(self, fault: Fault) -> None:
        if fault.kind == "controller_reboot":
            for nozzle in self.nozzles:
                nozzle.txn_no = nozzle.totalizer_volume_ml = nozzle.totalizer_amount_fen = 0
            return
        nozzle = next(n for n in self.nozzles if n.target == fault.target)
        if fault.kind == "totalizer_tamper":
            nozzle.totalizer_volume_ml += int(fault.params["delta_ml"])
        elif fault.kind == "skip_transactions":
            nozzle.skip_next += int(fault.params["count"])


def _modulus(profile: Profile, meaning: str) -> int:
    """Where the register of a counter wraps (practically never for a signed or float one)."""
    point = profile.point(meaning)
    return (None if point is None else point.modulus) or 1 << 64


def _volume_resolution_ml(profile: Profile) -> int:
    """The smallest volume step the controller's transaction volume register shows."""
    point = profile.point("txn_volume_ml")
    return 1 if point is None or point.type == "f32" else max(1, int(point.scale))


def _checked_controller(profile: Profile) -> Profile:
    if profile.kind != DeviceKind.PUMP_CONTROLLER:
        raise ProfileError(f"profile {profile.name} is a {profile.kind}, not a pump_controller")
    state = profile.point("state")
    missing = {str(phase) for phase in Phase} - set((state.states or {}).values() if state else ())
    if missing:
        raise ProfileError(
            f"profile {profile.name}: its state table has no {', '.join(sorted(missing))}; the simulated "
            f"controller shows every phase of {', '.join(Phase)}"
        )
    return profile


def _checked_counter(profile: Profile, dispenser_id: str, nozzles: int) -> Profile:
    if profile.kind != DeviceKind.PULSE_COUNTER:
        raise ProfileError(f"profile {profile.name} is a {profile.kind}, not a pulse_counter")
    if profile.capacity < 2 * nozzles:
        raise ProfileError(
            f"profile {profile.name} has {profile.capacity} channels; dispenser {dispenser_id}'s {nozzles} "
            f"nozzles need {2 * nozzles} (liquid and vapour each): use a bigger counter or fewer nozzles"
        )
    return profile
