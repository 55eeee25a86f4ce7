"""Materials for finite elements: bone from CT numbers, implant metals.

Bone (per element, from the element's mean HU; ``BoneMaterial``):

1. HU -> apparent density by a linear calibration, ``rho_app [g/cm^3] = a + b * HU``
   (``DensityCalibration``). Default ``a = 0``, ``b = 0.001`` g/cm^3 per HU: water (0 HU) has no
   bone, 1000 HU is 1.0 g/cm^3, cortical bone (~1800 HU) 1.8 g/cm^3. This is an uncalibrated
   approximation (no phantom in the scan); replace it with the scanner's phantom calibration
   (e.g. a K2HPO4 phantom's ``rho = a + b * HU`` converted to apparent density) where one exists.
   The density is clipped to [0, ``rho_max``] (default 2.0 g/cm^3, dense cortical bone), so metal
   artefacts or contrast cannot make bone stiffer than cortical bone.
2. Density -> Young's modulus by a power law ``E = c * rho^p`` (MPa) from Morgan, Bayraktar and
   Keaveny, "Trabecular bone modulus-density relationships depend on anatomic site", J Biomech
   36 (2003) 897-904 (``MORGAN_2003``): femoral neck ``E = 6850 rho^1.49``, vertebra
   ``E = 4730 rho^1.56``, greater trochanter ``15010 rho^2.18``, proximal tibia ``15520 rho^1.93``,
   pooled ``8920 rho^1.83``.
3. A floor ``floor_mpa`` (default 5 MPa) for marrow, fat and soft tissue, where the power law gives
   (nearly) nothing; it keeps the stiffness matrix well posed. Poisson's ratio 0.3.

Implants: the implant library's materials (``surgtwin.core.plan.implants.materials()``: Ti-6Al-4V
110 GPa, CoCrMo 210 GPa, 316L, nitinol, with yield stresses and sources); ``implant_material``
converts one to an ``ElasticMaterial``. ``FALLBACK_IMPLANT_MATERIALS`` holds the two the brief
names for use without the library (tests, other callers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surgtwin.core.errors import SurgtwinError


@dataclass(frozen=True)
class DensityCalibration:
    """Linear HU -> apparent density calibration ``rho_app [g/cm^3] = intercept + slope * HU``."""

    intercept_g_cm3: float = 0.0
    slope_g_cm3_per_hu: float = 0.001

    def __post_init__(self) -> None:
        if not (np.isfinite(self.intercept_g_cm3) and np.isfinite(self.slope_g_cm3_per_hu)):
            raise SurgtwinError("the density calibration must be finite numbers")
        if self.slope_g_cm3_per_hu <= 0:
            raise SurgtwinError(f"the density calibration slope must be positive, got {self.slope_g_cm3_per_hu}",
                                hint="rho_app = a + b * HU with b > 0 (default b = 0.001 g/cm^3 per HU)")

    def density_g_cm3(self, hu) -> np.ndarray:
        return self.intercept_g_cm3 + self.slope_g_cm3_per_hu * np.asarray(hu, dtype=float)

    def to_json(self) -> dict:
        return {"intercept_g_cm3": self.intercept_g_cm3, "slope_g_cm3_per_hu": self.slope_g_cm3_per_hu}


@dataclass(frozen=True)
class DensityModulus:
    """A power law ``E [MPa] = coefficient_mpa * rho_app[g/cm^3] ** exponent``."""

    site: str
    coefficient_mpa: float
    exponent: float
    citation: str

    def modulus_mpa(self, rho_g_cm3) -> np.ndarray:
        rho = np.maximum(np.asarray(rho_g_cm3, dtype=float), 0.0)
        return self.coefficient_mpa * rho ** self.exponent


_MORGAN = "Morgan EF, Bayraktar HH, Keaveny TM. J Biomech 36 (2003) 897-904"
#: Morgan, Bayraktar, Keaveny 2003 (Table 3): site-specific trabecular modulus-density power laws
MORGAN_2003: dict[str, DensityModulus] = {
    "femoral_neck": DensityModulus("femoral_neck", 6850.0, 1.49, _MORGAN),
    "vertebra": DensityModulus("vertebra", 4730.0, 1.56, _MORGAN),
    "greater_trochanter": DensityModulus("greater_trochanter", 15010.0, 2.18, _MORGAN),
    "proximal_tibia": DensityModulus("proximal_tibia", 15520.0, 1.93, _MORGAN),
    "pooled": DensityModulus("pooled", 8920.0, 1.83, _MORGAN),
}


def density_modulus(site: str) -> DensityModulus:
    if site not in MORGAN_2003:
        raise SurgtwinError(f"unknown density-modulus site {site!r}", hint=f"use one of {', '.join(MORGAN_2003)}")
    return MORGAN_2003[site]


def site_for_structure(name: str) -> str:
    """The Morgan 2003 relation for a structure name: vertebrae -> vertebra, tibia -> proximal_tibia,
    femur (and anything else) -> femoral_neck."""
    n = name.lower()
    levels = {f"l{i}" for i in range(1, 6)} | {f"t{i}" for i in range(1, 13)} | {f"c{i}" for i in range(1, 8)}
    if "vertebra" in n or n in levels:
        return "vertebra"
    if "tibia" in n:
        return "proximal_tibia"
    return "femoral_neck"


@dataclass(frozen=True)
class BoneMaterial:
    """Heterogeneous bone: HU -> density (``calibration``) -> modulus (``relation``), floored."""

    calibration: DensityCalibration = DensityCalibration()
    relation: DensityModulus = MORGAN_2003["femoral_neck"]
    floor_mpa: float = 5.0
    rho_max_g_cm3: float = 2.0
    poisson_ratio: float = 0.3

    def __post_init__(self) -> None:
        if not (self.floor_mpa > 0 and np.isfinite(self.floor_mpa)):
            raise SurgtwinError(f"the bone modulus floor must be a positive number of MPa, got {self.floor_mpa}")
        if not (self.rho_max_g_cm3 > 0):
            raise SurgtwinError(f"the maximum bone density must be positive, got {self.rho_max_g_cm3}")
        if not (-1.0 < self.poisson_ratio < 0.5):
            raise SurgtwinError(f"Poisson's ratio must lie in (-1, 0.5), got {self.poisson_ratio}")

    def density_g_cm3(self, hu) -> np.ndarray:
        return np.clip(self.calibration.density_g_cm3(hu), 0.0, self.rho_max_g_cm3)

    def modulus_mpa(self, hu) -> np.ndarray:
        """Young's modulus (MPa) for CT numbers ``hu`` (array)."""
        return np.maximum(self.relation.modulus_mpa(self.density_g_cm3(hu)), self.floor_mpa)

    def to_json(self) -> dict:
        return {"calibration": self.calibration.to_json(),
                "relation": {"site": self.relation.site, "E_mpa": f"{self.relation.coefficient_mpa:g} * "
                             f"rho^{self.relation.exponent:g}", "citation": self.relation.citation},
                "floor_mpa": self.floor_mpa, "rho_max_g_cm3": self.rho_max_g_cm3,
                "poisson_ratio": self.poisson_ratio}


@dataclass(frozen=True)
class ElasticMaterial:
    """A homogeneous linear-elastic material with its yield (0.2 % proof) stress."""

    key: str
    name: str
    youngs_modulus_mpa: float
    poisson_ratio: float
    yield_mpa: float
    source: str = ""

    def to_json(self) -> dict:
        return {"key": self.key, "name": self.name, "youngs_modulus_mpa": self.youngs_modulus_mpa,
                "poisson_ratio": self.poisson_ratio, "yield_mpa": self.yield_mpa, "source": self.source}


#: used when the implant library is not at hand (same values as its materials.json)
FALLBACK_IMPLANT_MATERIALS: dict[str, ElasticMaterial] = {
    "ti6al4v": ElasticMaterial("ti6al4v", "Titanium alloy Ti-6Al-4V", 110_000.0, 0.34, 880.0, "ASTM F136"),
    "cocr": ElasticMaterial("cocr", "Cobalt-chromium-molybdenum alloy", 210_000.0, 0.30, 827.0, "ASTM F1537"),
}
_ALIASES = {"titanium": "ti6al4v", "ti": "ti6al4v", "cocrmo": "cocr", "cobalt-chromium": "cocr"}


def implant_material(key_or_material) -> ElasticMaterial:
    """An implant ``ElasticMaterial`` from a library ``Material`` (``surgtwin.core.plan.implants``),
    a library key (``ti6al4v``, ``cocr``, ``ss316l``, ``nitinol``; aliases ``titanium``, ``cocrmo``)
    or an ``ElasticMaterial``."""
    m = key_or_material
    if isinstance(m, ElasticMaterial):
        return m
    if hasattr(m, "youngs_modulus_gpa"):
        return ElasticMaterial(m.key, m.name, float(m.youngs_modulus_gpa) * 1000.0, float(m.poisson_ratio),
                               float(m.yield_mpa), getattr(m, "standard", ""))
    key = _ALIASES.get(str(m).lower(), str(m).lower())
    try:
        from surgtwin.core.plan.implants import material

        return implant_material(material(key))
    except ImportError:  # the implant library is not installed with this build
        pass
    if key not in FALLBACK_IMPLANT_MATERIALS:
        raise SurgtwinError(f"unknown implant material {m!r}", hint=f"use one of {', '.join(FALLBACK_IMPLANT_MATERIALS)}")
    return FALLBACK_IMPLANT_MATERIALS[key]
