"""The simulated tank's physics: a horizontal cylinder, and fuel that grows with heat as GB/T 1885 says.

Everything here is in litres, metres and degrees Celsius as floats: this is the true world the gauge and the
agent only see through their errors, and `month` adds those errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EXPANSION_K = {"gasoline": (346.4228, 0.4388), "diesel": (186.9696, 0.4862)}
"""(K0, K1) of API MPMS 11.1 per product, for alpha_15 = (K0 + K1 * rho_15) / rho_15**2."""


def expansion_per_k(product: str, density_15: float) -> float:
    """Thermal expansion coefficient alpha_15 (1/K) of a product of this density (kg/m3) at 15 degC."""
    k0, k1 = EXPANSION_K[product]
    return (k0 + k1 * density_15) / density_15**2


def to_20(volume_l: float, temperature_c: float, alpha: float) -> float:
    """A volume at its temperature, as it would be at 20 degC: V20 = Vt * VCF(t) / VCF(20)."""
    return volume_l * _vcf(alpha, temperature_c) / _vcf(alpha, 20.0)


def from_20(volume_20_l: float, temperature_c: float, alpha: float) -> float:
    return volume_20_l * _vcf(alpha, 20.0) / _vcf(alpha, temperature_c)


def _vcf(alpha: float, temperature_c: float) -> float:
    dt = temperature_c - 15.0
    return math.exp(-alpha * dt * (1.0 + 0.8 * alpha * dt))


@dataclass(frozen=True, slots=True)
class Cylinder:
    """A horizontal cylindrical tank, the usual steel tank of a station; its chart is exact here, so that the
    only volume errors are the ones the simulator adds on purpose."""

    diameter_m: float
    length_m: float

    @classmethod
    def of_capacity(cls, capacity_l: float, diameter_m: float) -> Cylinder:
        return cls(diameter_m, capacity_l / 1000.0 / (math.pi * diameter_m**2 / 4.0))

    def volume_l(self, height_m: float) -> float:
        r = self.diameter_m / 2.0
        h = min(max(height_m, 0.0), self.diameter_m)
        segment = r * r * math.acos((r - h) / r) - (r - h) * math.sqrt(max(2.0 * r * h - h * h, 0.0))
        return segment * self.length_m * 1000.0

    def surface_m2(self, height_m: float) -> float:
        """The liquid surface at this height: how many litres one metre of level is worth, divided by 1000."""
        h = min(max(height_m, 0.0), self.diameter_m)
        return 2.0 * self.length_m * math.sqrt(max(h * (self.diameter_m - h), 0.0))

    def height_m(self, volume_l: float, guess_m: float) -> float:
        """The level that holds this volume: Newton's method from a nearby level, which the last hour gives."""
        h = min(max(guess_m, 0.01 * self.diameter_m), 0.99 * self.diameter_m)
        for _ in range(8):
            step = (self.volume_l(h) - volume_l) / (1000.0 * self.surface_m2(h))
            h = min(max(h - step, 1e-4), self.diameter_m - 1e-4)
            if abs(step) < 1e-7:
                break
        return h
