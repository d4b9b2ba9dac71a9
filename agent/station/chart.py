"""A tank's strapping table (容积表): the volume at each height, interpolated in between.

A level probe gives heights; only the tank's chart turns them into volumes. Charts come from the tank's
calibration certificate, row by row, and are validated where the config is read (heights strictly rising,
volumes not falling); here they are only used.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence


class TankChart:
    def __init__(self, rows: Sequence[tuple[int, int]]) -> None:
        """`rows`: (height in micrometres, volume in mL), heights strictly rising."""
        self._heights = [height for height, _ in rows]
        self._volumes = [volume for _, volume in rows]

    @property
    def capacity_ml(self) -> int:
        return self._volumes[-1]

    def volume_ml(self, height_um: int) -> int:
        """The volume at `height_um`, linearly between the two rows around it; clamped to the chart."""
        heights, volumes = self._heights, self._volumes
        if height_um <= heights[0]:
            return volumes[0]
        if height_um >= heights[-1]:
            return volumes[-1]
        upper = bisect_right(heights, height_um)
        h0, h1 = heights[upper - 1], heights[upper]
        v0, v1 = volumes[upper - 1], volumes[upper]
        return v0 + (v1 - v0) * (height_um - h0) // (h1 - h0)
