"""Volumes at 20 degC (GB/T 1885, the same tables as ISO 91-2): the only volumes that add up across a day.

Fuel expands about 0.12 % per degree, so a tank that warms by 10 degC in the afternoon "gains" 300 L of
30 kL without a drop arriving. Reconciliation therefore compares volumes corrected to the reference
temperature of 20 degC.

The method is that of the generalized refined products of API MPMS 11.1 (1980) / ASTM D1250 / IP 200,
Tables 54B (volume to 15 degC against density at 15 degC) and 60B (volume to 20 degC against density at
20 degC), which ISO 91-2 and GB/T 1885 reproduce:

    alpha15 = K0 / rho15^2 + K1 / rho15        (transition band: alpha15 = A + B / rho15^2)
    VCF15(t) = exp(-alpha15 * dt * (1 + 0.8 * alpha15 * dt)),   dt = t - 15 degC
    V20 = Vt * VCF15(t) / VCF15(20)

The constants belong to the *density* band of the product, not to its name: a heavy gasoline or a light
diesel lands in the transition or the jet band, and the wrong constants there cost up to ~0.2 % of the
tank's volume over a 20 K swing. The bands and constants (rho15 in kg/m3, alpha15 per degC; they are the
standard's per-degF constants of the 60 degF tables times 1.8):

    gasoline     653.0  <= rho15 < 770.5    K0 = 346.4228   K1 = 0.4388
    transition   770.5  <= rho15 < 787.5    A = -0.00336312 B = 2680.3206
    jet          787.5  <= rho15 < 839.0    K0 = 594.5418   K1 = 0
    fuel oil     839.0  <= rho15 <= 1075.0  K0 = 186.9696   K1 = 0.4862

Chinese delivery notes give the standard density at 20 degC (标准密度). Table 60B is built from the 15 degC
method: the density at 15 degC is the one whose own VCF turns it into the given density at 20 degC,
rho20 = rho15 * VCF15(20), found by fixed-point iteration (mass is conserved, so density scales with the
inverse of volume). The band is that of rho15.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Product(StrEnum):
    GASOLINE = "gasoline"
    DIESEL = "diesel"


class DensityBand(StrEnum):
    """The density band of Table 54B whose constants a product's expansion follows."""

    GASOLINE = "gasoline"
    TRANSITION = "transition"
    JET = "jet"
    FUEL_OIL = "fuel_oil"


class DensityBasis(StrEnum):
    """Which density the installer gave: at 20 degC (the delivery note's 标准密度) or at 15 degC."""

    AT_20_C = "20C"
    AT_15_C = "15C"


_DENSITY_15_MIN = 653.0
_DENSITY_15_MAX = 1075.0

#: (lower bound of rho15 in kg/m3, band), ascending: a density belongs to the last band it reaches.
_BAND_FLOORS: tuple[tuple[float, DensityBand], ...] = (
    (_DENSITY_15_MIN, DensityBand.GASOLINE),
    (770.5, DensityBand.TRANSITION),
    (787.5, DensityBand.JET),
    (839.0, DensityBand.FUEL_OIL),
)

#: alpha15 = A + K0 / rho^2 + K1 / rho, per band (A is zero except in the transition band, where K0 is B).
_CONSTANTS: dict[DensityBand, tuple[float, float, float]] = {
    DensityBand.GASOLINE: (0.0, 346.4228, 0.4388),
    DensityBand.TRANSITION: (-0.00336312, 2680.3206, 0.0),
    DensityBand.JET: (0.0, 594.5418, 0.0),
    DensityBand.FUEL_OIL: (0.0, 186.9696, 0.4862),
}

_REFERENCE_C = 20.0
_ITERATION_LIMIT = 50
_ITERATION_TOLERANCE_KG_M3 = 1e-9


def band_of(density_15_kg_m3: float) -> DensityBand:
    """The band of a density at 15 degC; outside 653..1075 kg/m3 the tables do not apply."""
    if not _DENSITY_15_MIN <= density_15_kg_m3 <= _DENSITY_15_MAX:
        raise ValueError(
            f"density {density_15_kg_m3:g} kg/m3 at 15 degC is outside the refined-product tables "
            f"({_DENSITY_15_MIN:g}..{_DENSITY_15_MAX:g} kg/m3)"
        )
    band = DensityBand.GASOLINE
    for floor, candidate in _BAND_FLOORS:
        if density_15_kg_m3 >= floor:
            band = candidate
    return band


def alpha_15(density_15_kg_m3: float) -> float:
    """The thermal expansion coefficient at 15 degC, per degC, of the density's band."""
    a, k0, k1 = _CONSTANTS[band_of(density_15_kg_m3)]
    rho = density_15_kg_m3
    return a + k0 / (rho * rho) + k1 / rho


def vcf_15(density_15_kg_m3: float, temperature_c: float) -> float:
    """Table 54B: the factor that turns a volume at `temperature_c` into the volume at 15 degC."""
    alpha, dt = alpha_15(density_15_kg_m3), temperature_c - 15.0
    return math.exp(-alpha * dt * (1.0 + 0.8 * alpha * dt))


def density_15_from_20(density_20_kg_m3: float) -> float:
    """The density at 15 degC of a product whose density at 20 degC is given (the 20 degC tables' first step)."""
    rho15 = density_20_kg_m3
    for _ in range(_ITERATION_LIMIT):
        following = density_20_kg_m3 / vcf_15(min(max(rho15, _DENSITY_15_MIN), _DENSITY_15_MAX), _REFERENCE_C)
        converged = abs(following - rho15) < _ITERATION_TOLERANCE_KG_M3
        rho15 = following
        if converged:
            break
    band_of(rho15)
    return rho15


@dataclass(frozen=True, slots=True)
class Fuel:
    """A product, its density at 15 degC and the density the installer gave, which fix its expansion."""

    product: Product
    density_15_kg_m3: float
    density_basis: DensityBasis = DensityBasis.AT_15_C

    def __post_init__(self) -> None:
        band_of(self.density_15_kg_m3)

    @classmethod
    def from_density_20(cls, product: Product, density_20_kg_m3: float) -> Fuel:
        """A fuel known by its standard density at 20 degC, as GB/T 1885 and the delivery note give it."""
        return cls(product, density_15_from_20(density_20_kg_m3), DensityBasis.AT_20_C)

    @property
    def band(self) -> DensityBand:
        return band_of(self.density_15_kg_m3)

    def vcf(self, temperature_c: float) -> float:
        """The volume correction factor to 15 degC."""
        return vcf_15(self.density_15_kg_m3, temperature_c)

    def vcf_20(self, temperature_c: float) -> float:
        """Table 60B: the factor that turns a volume at `temperature_c` into the volume at 20 degC."""
        return self.vcf(temperature_c) / self.vcf(_REFERENCE_C)

    def to_20(self, volume_ml: int, temperature_cC: int) -> int:
        """The volume at 20 degC of `volume_ml` at `temperature_cC` (0.01 degC), rounded to the mL."""
        return round(volume_ml * self.vcf_20(temperature_cC / 100))
