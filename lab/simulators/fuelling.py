"""How customers use a nozzle, as a table: idle -> lifted -> fuelling -> finished -> idle.

A nozzle rests for a random time, is lifted, fuel flows at a random rate until a random volume, it is hung up
(the controller books the sale here), and it rests again. Every phase but fuelling lasts a time drawn from the
pattern; fuelling lasts as long as the volume takes at the flow. The durations and volumes are simulated
seconds and litres, drawn uniformly from [low, high] ranges, with defaults a busy forecourt shows: 20-50 L/min
(the range of car dispensers), 5-60 L a sale.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

Range = tuple[float, float]


class Phase(StrEnum):
    """A nozzle's phase; the names are the profile's nozzle state names."""

    IDLE = "idle"
    LIFTED = "lifted"
    FUELLING = "fuelling"
    FINISHED = "finished"


#: Where each phase leads when its time is up.
NEXT_PHASE: dict[Phase, Phase] = {
    Phase.IDLE: Phase.LIFTED,
    Phase.LIFTED: Phase.FUELLING,
    Phase.FUELLING: Phase.FINISHED,
    Phase.FINISHED: Phase.IDLE,
}

#: Phases in which the nozzle hangs in its holster: no fuel may flow through the meter.
HUNG_UP = frozenset({Phase.IDLE, Phase.FINISHED})


@dataclass(frozen=True, slots=True)
class FuellingPattern:
    """Customer behaviour at a nozzle: [low, high] ranges in simulated seconds, litres and litres per minute."""

    idle_s: Range = (20.0, 120.0)
    lift_s: Range = (3.0, 10.0)
    volume_l: Range = (5.0, 60.0)
    flow_l_per_min: Range = (20.0, 50.0)
    hang_up_s: Range = (2.0, 5.0)

    def __post_init__(self) -> None:
        for name in ("idle_s", "lift_s", "volume_l", "flow_l_per_min", "hang_up_s"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be [low, high] with 0 <= low <= high, got [{low}, {high}]")
        for name in ("volume_l", "flow_l_per_min"):
            if getattr(self, name)[0] <= 0:
                raise ValueError(f"{name} must start above 0, got {list(getattr(self, name))}: a sale moves fuel")

    def held_s(self, phase: Phase) -> Range:
        """How long a phase other than fuelling lasts."""
        return {Phase.IDLE: self.idle_s, Phase.LIFTED: self.lift_s, Phase.FINISHED: self.hang_up_s}[phase]


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, halves away from zero, for non-negative inputs."""
    return (2 * numerator + denominator) // (2 * denominator)


def amount_fen(volume_ml: int, price_fen_per_l: int) -> int:
    """Money for a volume, rounded half up to the fen as a dispenser's display does."""
    return round_half_up(volume_ml * price_fen_per_l, 1000)
