"""The metering checks, as pure functions: counters that wrap, volumes that must agree, totals that must add up.

Every check takes the counters' wrap points from the device profile (a 16-bit pulse counter wraps after
65,536 pulses, a 32-bit totalizer in centilitres after 42,949,672.95 L), and every tolerance includes the
resolution of what is compared: an encoder of 10 mL per pulse and a controller that reports centilitres can
disagree by two steps on a perfectly honest sale, which at 2 L is 1 %, far above the 0.3 % MPE.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal


def advance(new: int, old: int, modulus: int | None) -> int:
    """How far a counter went from old to new, across at most one wrap."""
    return (new - old) % modulus if modulus else new - old


def signed(difference: int, modulus: int | None) -> int:
    """A difference taken modulo the wrap, read as the nearest signed step (-M/2, M/2]."""
    if not modulus:
        return difference
    difference %= modulus
    return difference - modulus if difference > modulus // 2 else difference


def millilitres(pulses: int, per_pulse: Decimal, factor: Decimal = Decimal(1)) -> int:
    return int((pulses * per_pulse * factor).to_integral_value(ROUND_HALF_EVEN))


@dataclass(frozen=True, slots=True)
class VolumeVerdict:
    """The controller's volume against the encoder's: judged only above the minimum measured quantity."""

    judged: bool
    within: bool
    deviation_ppm: int | None
    allowed_ml: int


def judge_volume(
    volume_ml: int, pulse_volume_ml: int, *, mpe_ppm: int, min_measured_ml: int, resolution_ml: int
) -> VolumeVerdict:
    allowed = volume_ml * mpe_ppm // 1_000_000 + resolution_ml
    deviation = None if pulse_volume_ml <= 0 else round((volume_ml - pulse_volume_ml) * 1_000_000 / pulse_volume_ml)
    if volume_ml < min_measured_ml:
        return VolumeVerdict(False, True, deviation, allowed)
    return VolumeVerdict(True, abs(volume_ml - pulse_volume_ml) <= allowed, deviation, allowed)


SaleStep = Literal["next", "skipped", "backwards"]


def sale_number_step(previous: int, new: int, modulus: int | None) -> tuple[SaleStep, int]:
    """How the controller's sale number moved: to the next, past some (how many), or backwards (by how far)."""
    step = signed(new - previous, modulus)
    if step == 1:
        return "next", 0
    if step > 1:
        return "skipped", step - 1
    return "backwards", -step


Totalizer = Literal["volume_ml", "amount_fen"]
"""A controller's totalizer, by the unit it counts in."""


@dataclass(frozen=True, slots=True)
class Discontinuity:
    counter: Totalizer
    form: Literal["jump", "step_back"]
    before: int
    after: int
    expected: int
    difference: int


def check_totalizer(
    counter: Totalizer, before: int, after: int, *, sold: int, modulus: int | None, tolerance: int
) -> Discontinuity | None:
    """A totalizer must move by exactly the sale (within its resolution), across a wrap if it has one."""
    expected = (before + sold) % modulus if modulus else before + sold
    difference = signed(after - expected, modulus)
    if abs(difference) <= tolerance:
        return None
    return Discontinuity(counter, "jump" if difference > 0 else "step_back", before, after, expected, difference)
