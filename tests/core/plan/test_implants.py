"""The implant library: watertight parametric meshes with analytic volumes, materials, custom meshes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan import implants
from surgtwin.core.plan.generators import analytic_volume_mm3, stem_head_centre


def test_library_families_and_materials():
    assert set(implants.families()) >= {"pedicle-screw", "hip-stem", "bone-plate", "valve-balloon-expandable",
                                        "valve-self-expanding"}
    ti, cocr, ss = (implants.material(k) for k in ("ti6al4v", "cocr", "ss316l"))
    assert (ti.youngs_modulus_gpa, ti.poisson_ratio, ti.yield_mpa) == (110.0, 0.34, 880.0)
    assert cocr.youngs_modulus_gpa == 210.0 and cocr.poisson_ratio == 0.3
    assert cocr.yield_range_mpa == (450.0, 1000.0) and "F75" in cocr.source
    assert ss.youngs_modulus_gpa == 193.0
    screw = implants.family("pedicle-screw")
    assert len(screw.size_labels()) == 42 and "6.5x45" in screw.size_labels()
    assert implants.family("hip-stem").size_labels() == ["1", "2", "3", "4", "5", "6"]
    assert implants.family("valve-balloon-expandable").size_labels() == ["20", "23", "26", "29"]
    assert implants.family("valve-self-expanding").size_labels() == ["23", "26", "29", "34"]
    with pytest.raises(SurgtwinError, match="unknown implant family 'nail'"):
        implants.family("nail")
    with pytest.raises(SurgtwinError, match="no size '9x45'.*sizes: 4.5x30"):
        screw.implant("9x45")


@pytest.mark.parametrize("name", ["pedicle-screw", "hip-stem", "bone-plate", "valve-balloon-expandable",
                                  "valve-self-expanding"])
def test_every_size_is_a_closed_solid_with_the_expected_volume(name):
    fam = implants.family(name)
    for size in fam.size_labels():
        imp = fam.implant(size)
        q = imp.mesh().quality
        assert q.watertight and q.winding_consistent and q.outward and q.components == 1, (name, size)
        expected = analytic_volume_mm3(fam.generator, imp.params)
        if expected is not None:
            assert q.volume_ml * 1000 == pytest.approx(expected, rel=0.02), (name, size)


def test_screw_dimensions_and_frame():
    imp = implants.family("pedicle-screw").implant("6.5x45")
    v = imp.mesh().vertices
    assert v[:, 2].max() == pytest.approx(45.0)  # tip on the +z axis at the screw length
    assert v[:, 2].min() == pytest.approx(-imp.params["head_height_mm"])
    shank = v[(v[:, 2] > 1) & (v[:, 2] < 40)]
    assert np.hypot(shank[:, 0], shank[:, 1]).max() == pytest.approx(3.25)
    assert imp.material.key == "ti6al4v" and imp.bone_engaging == "z_positive"
    # cylinder + cone + head, analytic
    r, tip = 3.25, 0.8 * 6.5
    exact = math.pi * (r * r * (45 - tip) + r * r * tip / 3 + 5.5 ** 2 * 10)
    assert imp.volume_ml * 1000 == pytest.approx(exact, rel=0.005)


def test_stem_geometry_matches_its_offset_and_neck_angle():
    fam = implants.family("hip-stem")
    for size in fam.size_labels():
        p = fam.params(size)
        head = stem_head_centre(p)
        assert head[0] == pytest.approx(p["offset_mm"])
        angle = math.degrees(math.atan2(head[0], -head[2]))  # neck axis vs the proximal stem axis
        assert 180 - angle == pytest.approx(p["neck_angle_deg"])
        v = fam.implant(size).mesh().vertices
        assert v[:, 2].max() == pytest.approx(p["stem_length_mm"])  # distal tip
        u = head / np.linalg.norm(head)
        assert (v @ u).max() == pytest.approx(np.linalg.norm(head) + p["head_to_trunnion_tip_mm"], abs=0.01)
        at_resection = v[np.abs(v[:, 2]) < 2.0]
        assert np.ptp(at_resection[:, 1]) == pytest.approx(p["proximal_ap_mm"], rel=0.05)


def test_implant_json_round_trip_keeps_the_geometry():
    imp = implants.family("hip-stem").implant("3")
    back = implants.Implant.from_json(imp.to_json())
    assert (back.family, back.size, back.material.key) == ("hip-stem", "3", "ti6al4v")
    np.testing.assert_array_equal(back.mesh().vertices, imp.mesh().vertices)
    with pytest.raises(SurgtwinError, match="malformed implant record"):
        implants.Implant.from_json({"family": "hip-stem"})


def _box_stl(path, size_xyz, *, drop_face=False):
    import trimesh

    box = trimesh.creation.box(extents=size_xyz)
    if drop_face:
        box = trimesh.Trimesh(box.vertices, box.faces[1:], process=False)
    box.export(path)
    return path


def test_custom_implant_accepted_in_mm(tmp_path):
    imp = implants.custom_implant(_box_stl(tmp_path / "cage.stl", (20, 10, 8)), material_key="ti6al4v")
    assert imp.family == "custom" and imp.size == "cage"
    assert imp.volume_ml * 1000 == pytest.approx(1600.0)
    assert imp.mesh().quality.watertight
    back = implants.Implant.from_json(imp.to_json())
    assert back.volume_ml == pytest.approx(imp.volume_ml)


@pytest.mark.parametrize("size, drop, reason", [
    ((20, 10, 8), True, "not a closed surface"),
    ((0.02, 0.01, 0.008), False, "metres"),
    ((20000, 10000, 8000), False, "microns"),
])
def test_custom_implant_refused(tmp_path, size, drop, reason):
    path = _box_stl(tmp_path / "bad.stl", size, drop_face=drop)
    with pytest.raises(SurgtwinError, match=reason) as err:
        implants.custom_implant(path)
    assert err.value.path == str(path)


def test_custom_implant_triangle_limit(tmp_path):
    path = _box_stl(tmp_path / "box.stl", (20, 10, 8))
    with pytest.raises(SurgtwinError, match="12 triangles, more than the 10 allowed"):
        implants.custom_implant(path, max_triangles=10)
    with pytest.raises(SurgtwinError, match="mesh file not found"):
        implants.custom_implant(tmp_path / "missing.stl")
