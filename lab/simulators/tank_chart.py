"""A simulated tank's shape as its strapping chart: height (mm) to volume (L), linear between rows.

A real tank's chart is a calibration table that only approximates its shape; in the simulation the chart
*is* the shape, so the gauge's volumes and the tank's true contents agree exactly and a test sees only what
it injected (noise, leaks, unrecorded dispensing), not interpolation error. The same rows, written with
`to_csv`, go into the agent's config (`chart_file`, `height_mm,volume_l` rows), so both sides use one chart.
A horizontal cylinder's chart is computed from its diameter and length at a fixed height step.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from itertools import pairwise


class TankChart:
    """Rows of (height mm, volume L): heights strictly rising from 0, volumes rising."""

    def __init__(self, rows: Sequence[tuple[float, float]]) -> None:
        if len(rows) < 2:
            raise ValueError(f"a chart needs at least two rows, got {len(rows)}")
        self.heights_mm = [float(height) for height, _ in rows]
        self.volumes_l = [float(volume) for _, volume in rows]
        if self.heights_mm[0] != 0 or self.volumes_l[0] < 0:
            raise ValueError(f"a chart starts at height 0 with a volume >= 0, got {rows[0]}")
        for index, ((h0, v0), (h1, v1)) in enumerate(pairwise(rows), start=1):
            if not (h1 > h0 and v1 > v0):
                raise ValueError(f"chart row {index} {(h1, v1)}: heights and volumes must both rise, after {(h0, v0)}")

    @classmethod
    def horizontal_cylinder(cls, diameter_mm: float, length_mm: float, step_mm: float = 10.0) -> TankChart:
        """The chart of a horizontal cylinder with flat ends, a row every `step_mm` and one at the top."""
        if diameter_mm <= 0 or length_mm <= 0 or not 0 < step_mm <= diameter_mm:
            raise ValueError(
                f"diameter {diameter_mm} mm and length {length_mm} mm must be positive, "
                f"step {step_mm} mm positive and at most the diameter"
            )
        radius = diameter_mm / 2
        steps = math.ceil(diameter_mm / step_mm)
        heights = [min(index * step_mm, diameter_mm) for index in range(steps + 1)]

        def litres(height: float) -> float:
            segment_mm2 = radius**2 * math.acos((radius - height) / radius) - (radius - height) * math.sqrt(
                max(0.0, 2 * radius * height - height**2)
            )
            return segment_mm2 * length_mm / 1e6

        return cls([(height, round(litres(height), 3)) for height in heights])

    @property
    def capacity_l(self) -> float:
        return self.volumes_l[-1]

    @property
    def top_mm(self) -> float:
        return self.heights_mm[-1]

    def volume_l(self, height_mm: float) -> float:
        """The volume at `height_mm`, clamped to the chart."""
        return _interpolate(self.heights_mm, self.volumes_l, height_mm)

    def height_mm(self, volume_l: float) -> float:
        """The height at which the tank holds `volume_l`, clamped to the chart."""
        return _interpolate(self.volumes_l, self.heights_mm, volume_l)

    def to_csv(self) -> str:
        """The chart as `height_mm,volume_l` lines with a header, for the agent's `chart_file`."""
        lines = [
            "height_mm,volume_l",
            *(f"{h:g},{v:.3f}" for h, v in zip(self.heights_mm, self.volumes_l, strict=True)),
        ]
        return "\n".join(lines) + "\n"


def _interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    upper = bisect_right(xs, x)
    x0, x1, y0, y1 = xs[upper - 1], xs[upper], ys[upper - 1], ys[upper]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
