"""How much a fuel's volume grows with temperature: the volume at 20 degC of GB/T 1885 (ISO 91-2).

The simulated tanks keep the volume at 20 degC as their state, since only flows change it, and show the
volume at the fuel's temperature from it. The expansion coefficient at 15 degC follows API MPMS 11.1 from
the density at 15 degC, alpha15 = (K0 + K1 * rho15) / rho15^2, VCF(t) = exp(-alpha15 * dt * (1 + 0.8 *
alpha15 * dt)) with dt = t - 15 degC, and V20 = Vt * VCF(t) / VCF(20). The agent computes the same thing on
its own (the simulators never import the agent), so a slip in either shows up as a difference in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Product(StrEnum):
    GASOLINE = "gasoline"
    DIESEL = "diesel"


#: API MPMS 11.1 constants (K0, K1) per product family.
EXPANSION_CONSTANTS: dict[Product, tuple[float, float]] = {
    Product.GASOLINE: (346.4228, 0.4388),
    Product.DIESEL: (186.9696, 0.4862),
}

#: A typical density at 15 degC, kg/m3, when the config gives none.
TYPICAL_DENSITY_15: dict[Product, float] = {Product.GASOLINE: 745.0, Product.DIESEL: 835.0}

REFERENCE_C = 20.0


@dataclass(frozen=True, slots=True)
class Fuel:
    product: Product
    density_15_kg_m3: float

    def __post_init__(self) -> None:
        if not 500 <= self.density_15_kg_m3 <= 1100:
            raise ValueError(f"density {self.density_15_kg_m3} kg/m3 at 15 degC is not a fuel's (500..1100)")

    def _vcf(self, temperature_c: float) -> float:
        k0, k1 = EXPANSION_CONSTANTS[self.product]
        alpha = (k0 + k1 * self.density_15_kg_m3) / self.density_15_kg_m3**2
        dt = temperature_c - 15.0
        return math.exp(-alpha * dt * (1.0 + 0.8 * alpha * dt))

    def to_20(self, temperature_c: float) -> float:
        """V20 / Vt: what one litre at `temperature_c` is at 20 degC."""
        return self._vcf(temperature_c) / self._vcf(REFERENCE_C)
