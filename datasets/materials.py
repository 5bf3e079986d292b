"""Materials and their X-ray attenuation at the two effective energies we simulate.

Mass attenuation coefficients (cm^2/g, coherent scattering included) at 40 keV and 80 keV,
the effective energies of a ~80/160 kVp dual-energy line scanner's low and high channels.
Values for elements, water, glass and cellulose are rounded from NIST Standard Reference
Database 126 (Hubbell & Seltzer, "X-Ray Mass Attenuation Coefficients"). Polymers (PLA,
ABS, nylon, POM, PE) use the NIST value of the chemically closest listed compound (PMMA,
polystyrene, nylon-6, polyethylene); brass and zinc alloy are mass-weighted mixtures of
their elements. Densities are typical handbook values; ``cotton`` and ``paper`` are bulk
densities of loosely packed material, not of the fibre. Printed parts use PLA at their
infill fraction (see ``density_scale`` in the synthetic engine). Effective atomic numbers use
the power-law mixture rule (Spiers; exponent 2.94) on each material's composition by mass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

E_LOW_KEV: Final[float] = 40.0
E_HIGH_KEV: Final[float] = 80.0


@dataclass(frozen=True)
class Material:
    """A material: density (g/cm^3) and mass attenuation (cm^2/g) at the low and high energy."""

    name: str
    density: float
    mu_low: float
    mu_high: float
    kind: str  # "organic", "inorganic" or "metal": what a pseudo-colour display should show
    z_eff: float  # effective atomic number (power-law mixture rule, exponent 2.94)

    @property
    def lin_low(self) -> float:
        """Linear attenuation at the low energy, per cm."""
        return self.mu_low * self.density

    @property
    def lin_high(self) -> float:
        """Linear attenuation at the high energy, per cm."""
        return self.mu_high * self.density


MATERIALS: Final[dict[str, Material]] = {
    m.name: m
    for m in (
        Material("pla", 1.24, 0.236, 0.174, "organic", 6.6),
        Material("abs", 1.05, 0.222, 0.170, "organic", 5.8),
        Material("nylon", 1.14, 0.238, 0.176, "organic", 6.1),
        Material("pom", 1.41, 0.245, 0.175, "organic", 6.9),
        Material("polyethylene", 0.94, 0.229, 0.178, "organic", 5.4),
        Material("paper", 0.80, 0.245, 0.176, "organic", 6.9),
        Material("cotton", 0.25, 0.245, 0.176, "organic", 6.9),
        Material("wood", 0.60, 0.245, 0.176, "organic", 6.9),
        Material("water", 1.00, 0.268, 0.184, "organic", 7.4),
        Material("glass", 2.50, 0.463, 0.197, "inorganic", 11.6),
        Material("aluminium", 2.70, 0.568, 0.202, "inorganic", 13.0),
        Material("steel", 7.87, 3.629, 0.595, "metal", 26.0),
        Material("copper", 8.96, 4.862, 0.763, "metal", 29.0),
        Material("brass", 8.50, 4.950, 0.776, "metal", 29.5),
        Material("zinc_alloy", 6.60, 5.100, 0.800, "metal", 30.0),
        Material("lead", 11.35, 14.36, 2.419, "metal", 82.0),
    )
}


def material(name: str) -> Material:
    """Look a material up by name; the error lists the known ones."""
    try:
        return MATERIALS[name]
    except KeyError:
        raise KeyError(f"Unknown material {name!r}. Known: {', '.join(sorted(MATERIALS))}") from None
