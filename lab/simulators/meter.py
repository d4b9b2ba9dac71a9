"""How a dispenser's two counts of one encoder shaft differ on an honest sale, and how a cheat moves them apart.

Theory of operation. The pump controller and the independent pulse counter watch the same encoder shaft, so an
honest dispenser's two volumes differ only by quantisation, never by the meter itself:

- the counter counts pulses cumulatively: a sale is the pulses between two rest points, and the shaft's phase
  at each rest point is wherever the last sale left it, so the count is the real volume / mL per pulse give or
  take the fraction of a pulse at both ends (a triangular error of variance q^2/6 for pulses of q mL);
- the controller counts its own pulses (of the same or a finer encoder channel) from zero at each sale, from a
  phase of its own, then turns them into volume by its calibration (K-factor) and rounds that to its display
  resolution, half up: another q_c^2/6 from the phase, and r^2/12 from the rounding when the calibrated volume
  does not fall on the display's steps;
- near the rest points the shaft rocks as the pump stops: a single-channel counter may count one pulse more
  than the shaft turned (`stop_jitter_probability`), while the controller's quadrature input does not.

What a cheat changes is the controller's arithmetic: a K-factor off by b scales its volume by 1 + b, an
injection board adds pulses only the controller sees. Both are the `factor` the forecourt applies to the
metered volume as it flows. `EXACT` turns every quantisation off but the display's rounding, for tests that
pin arithmetic to the millilitre.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulators.fuelling import round_half_up

UL_PER_ML = 1000


@dataclass(frozen=True, slots=True)
class MeterNoise:
    """The quantisations between a controller's and a counter's volume of one sale.

    `controller_ml_per_pulse`: the controller's own pulse (None: the counter's, one encoder for both);
    `controller_phase`: the controller starts each sale at a random phase of its pulse (False: on an edge);
    `stop_jitter_probability`: the chance that the counter counts one pulse more as the pump stops."""

    controller_ml_per_pulse: float | None = None
    controller_phase: bool = True
    stop_jitter_probability: float = 0.02

    def __post_init__(self) -> None:
        if self.controller_ml_per_pulse is not None and not self.controller_ml_per_pulse > 0:
            raise ValueError(f"controller_ml_per_pulse must be above 0, got {self.controller_ml_per_pulse}")
        if not 0 <= self.stop_jitter_probability <= 1:
            raise ValueError(f"stop_jitter_probability must be within 0..1, got {self.stop_jitter_probability}")

    def controller_pulse_ul(self, counter_ml_per_pulse: float) -> float:
        return (self.controller_ml_per_pulse or counter_ml_per_pulse) * UL_PER_ML

    def start_phase_ul(self, counter_ml_per_pulse: float, rng: random.Random) -> float:
        """Where in its pulse the controller's count of a new sale starts."""
        return rng.uniform(0, self.controller_pulse_ul(counter_ml_per_pulse)) if self.controller_phase else 0.0

    def stop_jitter_pulses(self, rng: random.Random) -> int:
        """Pulses the counter counts as the shaft rocks when the pump stops."""
        return 1 if self.stop_jitter_probability and rng.random() < self.stop_jitter_probability else 0


EXACT = MeterNoise(controller_phase=False, stop_jitter_probability=0.0)


def controller_volume_ml(metered_ul: float, phase_ul: float, pulse_ul: float, resolution_ml: int) -> int:
    """What the controller shows for the calibrated volume `metered_ul`: its whole pulses from its start phase,
    rounded half up to its display resolution."""
    counted_ul = math.floor((phase_ul + metered_ul) / pulse_ul + 1e-9) * pulse_ul
    return round_half_up(round(counted_ul), resolution_ml * UL_PER_ML) * resolution_ml


def counter_pulses(counted_ul: float, ml_per_pulse: float) -> int:
    """The counter's cumulative pulses for the volume its encoder channel saw."""
    return math.floor(counted_ul / (ml_per_pulse * UL_PER_ML) + 1e-9)


@dataclass(slots=True)
class Encoder:
    """A counter's channel on one nozzle's encoder, for sales simulated whole (benches, tests): the volume its
    shaft turned and the pulses it counted beyond that."""

    noise: MeterNoise
    ml_per_pulse: float
    turned_ul: float = 0.0
    jitter_pulses: int = 0

    @property
    def pulses(self) -> int:
        return counter_pulses(self.turned_ul, self.ml_per_pulse) + self.jitter_pulses

    def sale(self, real_ul: float, factor: float, resolution_ml: int, rng: random.Random) -> tuple[int, int]:
        """A whole sale of `real_ul`, the controller calibrated `factor` times too generous: returns the
        controller's volume (mL) and the pulses the counter counted for it, as the forecourt gives them."""
        before = self.pulses
        phase_ul = self.noise.start_phase_ul(self.ml_per_pulse, rng)
        shown_ml = controller_volume_ml(
            real_ul * factor, phase_ul, self.noise.controller_pulse_ul(self.ml_per_pulse), resolution_ml
        )
        self.turned_ul += real_ul
        self.jitter_pulses += self.noise.stop_jitter_pulses(rng)
        return shown_ml, self.pulses - before
