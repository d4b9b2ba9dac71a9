"""Volumes at 20 degC (GB/T 1885, the same tables as ISO 91-2): the only volumes that add up across a day.

Fuel expands about 0.12 % per degree, so a tank that warms by 10 degC in the afternoon "gains" 300 L of
30 kL without a drop arriving. Reconciliation therefore compares volumes corrected to the reference
temperature of 20 degC. The thermal expansion coefficient at 15 degC follows API MPMS 11.1 from the product's
density at 15 degC:  alpha15 = (K0 + K1 * rho15) / rho15^2,  VCF(t) = exp(-alpha15 * dt * (1 + 0.8 * alpha15 * dt))
with dt = t - 15 degC, and V20 = Vt * VCF(t) / VCF(20).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Product(StrEnum):
    GASOLINE = "gasoline"
    DIESEL = "diesel"


#: (K0, K1) of API MPMS 11.1 by product family.
_K: dict[Product, tuple[float, float]] = {
    Product.GASOLINE: (346.4228, 0.4388),
    Product.DIESEL: (186.9696, 0.4862),
}


@dataclass(frozen=True, slots=True)
class Fuel:
    """A product and its density at 15 degC, which fix how its volume changes with temperature."""

    product: Product
    density_15_kg_m3: float

    @property
    def alpha_15(self) -> float:
        k0, k1 = _K[self.product]
        rho = self.density_15_kg_m3
        return (k0 + k1 * rho) / (rho * rho)

    def vcf(self, temperature_c: float) -> float:
        """The volume correction factor to 15 degC."""
        alpha, dt = self.alpha_15, temperature_c - 15.0
        return math.exp(-alpha * dt * (1.0 + 0.8 * alpha * dt))

    def to_20(self, volume_ml: int, temperature_cC: int) -> int:
        """The volume at 20 degC of `volume_ml` at `temperature_cC` (0.01 degC), rounded to the mL."""
        return round(volume_ml * self.vcf(temperature_cC / 100) / self.vcf(20.0))
