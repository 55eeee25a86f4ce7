"""HU -> density -> modulus (Morgan, Bayraktar, Keaveny 2003) against hand-computed values; implant materials."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.sim.materials import (
    MORGAN_2003,
    BoneMaterial,
    DensityCalibration,
    ElasticMaterial,
    density_modulus,
    implant_material,
    site_for_structure,
)


def test_default_calibration_and_femoral_neck_law_by_hand():
    bone = BoneMaterial()
    hu = np.array([-1000.0, -100.0, 0.0, 200.0, 500.0, 1000.0, 1800.0, 3000.0])
    rho = bone.density_g_cm3(hu)
    assert rho == pytest.approx([0, 0, 0, 0.2, 0.5, 1.0, 1.8, 2.0])  # rho = 0.001 HU, clipped to [0, 2]
    e = bone.modulus_mpa(hu)
    # E = 6850 rho^1.49 MPa, by hand: 0.2^1.49 = 0.090894, 0.5^1.49 = 0.356013, 1.8^1.49 = 2.400800,
    # 2.0^1.49 = 2.808890; below the 5 MPa floor for no bone
    assert e == pytest.approx([5.0, 5.0, 5.0, 622.62, 2438.69, 6850.0, 16445.5, 19240.9], rel=2e-5)


def test_vertebra_law_and_a_scanner_calibration_by_hand():
    bone = BoneMaterial(DensityCalibration(0.05, 0.0008), MORGAN_2003["vertebra"], floor_mpa=10.0)
    # rho = 0.05 + 0.0008 HU: 150 HU -> 0.17, 400 HU -> 0.37; E = 4730 rho^1.56
    # 0.17^1.56 = 0.063023, 0.37^1.56 = 0.212029
    assert bone.modulus_mpa([150.0, 400.0]) == pytest.approx([298.10, 1002.90], rel=2e-5)
    assert bone.modulus_mpa([-60.0]) == pytest.approx([10.0])  # rho 0.002 -> 0.29 MPa -> the floor
    assert bone.to_json()["relation"]["E_mpa"] == "4730 * rho^1.56"


def test_morgan_table_and_sites():
    assert {k: (r.coefficient_mpa, r.exponent) for k, r in MORGAN_2003.items()} == {
        "femoral_neck": (6850.0, 1.49), "vertebra": (4730.0, 1.56), "greater_trochanter": (15010.0, 2.18),
        "proximal_tibia": (15520.0, 1.93), "pooled": (8920.0, 1.83)}
    assert "J Biomech 36 (2003) 897" in MORGAN_2003["femoral_neck"].citation
    assert site_for_structure("femur_left") == "femoral_neck"
    assert site_for_structure("vertebrae") == "vertebra" and site_for_structure("L4") == "vertebra"
    assert site_for_structure("tibia_right") == "proximal_tibia"
    with pytest.raises(SurgtwinError, match="unknown density-modulus site"):
        density_modulus("skull")


def test_bad_parameters_refused():
    with pytest.raises(SurgtwinError, match="slope"):
        DensityCalibration(0.0, -0.001)
    with pytest.raises(SurgtwinError, match="floor"):
        BoneMaterial(floor_mpa=0.0)
    with pytest.raises(SurgtwinError, match="Poisson"):
        BoneMaterial(poisson_ratio=0.5)


def test_implant_materials_come_from_the_library():
    ti = implant_material("titanium")
    assert (ti.key, ti.youngs_modulus_mpa, ti.poisson_ratio, ti.yield_mpa) == ("ti6al4v", 110_000.0, 0.34, 880.0)
    cocr = implant_material("cocr")
    assert cocr.youngs_modulus_mpa == 210_000.0 and cocr.yield_mpa == 827.0
    from surgtwin.core.plan.implants import material

    assert implant_material(material("ss316l")).youngs_modulus_mpa == pytest.approx(193_000.0)
    mine = ElasticMaterial("peek", "PEEK", 3600.0, 0.4, 90.0)
    assert implant_material(mine) is mine
    with pytest.raises(SurgtwinError, match="unknown implant material"):
        implant_material("unobtainium")
