"""Implants on voxel grids: exact inside tests on anisotropic, oblique and mirrored grids; implant labels
for the tet mesher; the point samples of the live checks."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan import implants
from surgtwin.core.plan.pose import PlacedImplant, Pose
from surgtwin.core.plan.voxelise import implant_labels, inside_grid, sample_implant, voxelise
from surgtwin.core.types import Label, LabelMap, LabelTable, Volume


def grid(spacing=(0.9, 0.5, 0.6), shape=(80, 120, 110), reflect=False):
    from scipy.spatial.transform import Rotation

    a = np.eye(4)
    a[:3, :3] = Rotation.from_rotvec([0.3, -0.5, 0.7]).as_matrix() @ np.diag(spacing)
    if reflect:
        a[:3, 0] *= -1
    a[:3, 3] = [-20.0, 15.0, 40.0]
    return Volume(np.zeros(shape, np.int16), a)


def screw_radius(p, z):
    """The analytic screw's radius at local height z (head, shank, conical tip)."""
    r, L, tip = p["diameter_mm"] / 2, p["length_mm"], p["tip_length_factor"] * p["diameter_mm"]
    return np.where(z < 0, p["head_diameter_mm"] / 2, np.where(z < L - tip, r, r * (L - z) / tip))


@pytest.mark.parametrize("reflect", [False, True])
def test_voxelised_screw_matches_the_analytic_solid(reflect):
    ref = grid(reflect=reflect)
    imp = implants.family("pedicle-screw").implant("6.5x45")
    centre = ref.index_to_world(np.array(ref.shape) / 2)
    placed = PlacedImplant("1", "s", imp, Pose.from_rotvec([25, -40, 10], centre - [0, 0, 15]))
    mask = voxelise(placed, ref)
    # the analytic inside test at every voxel centre, in the screw's local frame
    kji = np.argwhere(np.ones(ref.shape, bool))
    local = placed.pose.inverse().apply(ref.index_to_world(kji))
    p = imp.params
    z, rho = local[:, 2], np.hypot(local[:, 0], local[:, 1])
    ideal = ((z >= -p["head_height_mm"]) & (z <= p["length_mm"]) & (rho <= screw_radius(p, z))).reshape(ref.shape)
    wrong = mask != ideal
    # every disagreement lies within one voxel of the surface (the mesh is a 64-gon of the ideal solid)
    near = np.abs(rho - screw_radius(p, z)).reshape(ref.shape) < 0.9
    near |= (np.minimum(np.abs(z + p["head_height_mm"]), np.abs(z)) < 0.9).reshape(ref.shape)
    assert wrong.sum() < 0.02 * ideal.sum() and np.all(near[wrong])
    vol = mask.sum() * ref.voxel_volume_ml * 1000
    exact = np.pi * (3.25 ** 2 * (45 - 5.2) + 3.25 ** 2 * 5.2 / 3 + 5.5 ** 2 * 10)
    layer = imp.mesh().quality.area_mm2 * ref.voxel_volume_ml ** (1 / 3) * 10  # one voxel layer, mm^3
    assert abs(vol - exact) < min(layer, 0.02 * exact)


def test_inside_grid_sphere_and_partly_outside():
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=5, radius=10.0)  # within 0.02 mm of the sphere
    kji = np.argwhere(np.ones((31, 31, 31), bool)).reshape(31, 31, 31, 3)
    r = np.linalg.norm(kji - 15.0, axis=-1)
    mask = inside_grid(s.vertices + 15.0, s.faces, (31, 31, 31))
    wrong = mask != (r <= 10)
    assert np.all(np.abs(r[wrong] - 10) < 0.02) and wrong.sum() < 40
    # centred on the grid's first plane: the half inside the grid, rays entering from outside
    half = inside_grid(s.vertices + [0.0, 15.0, 15.0], s.faces, (31, 31, 31))
    r0 = np.linalg.norm(kji - [0, 15, 15], axis=-1)
    wrong = half != (r0 <= 10)
    assert np.all(np.abs(r0[wrong] - 10) < 0.02)


def test_stem_and_valve_voxelise_to_their_mesh_volume():
    ref = grid(spacing=(0.8, 0.7, 0.75), shape=(280, 300, 300))
    centre = ref.index_to_world(np.array(ref.shape) / 2)
    for fam, size in (("hip-stem", "4"), ("valve-self-expanding", "29"), ("bone-plate", "8-hole")):
        imp = implants.family(fam).implant(size)
        placed = PlacedImplant("1", "x", imp, Pose.from_rotvec([10, 70, -30], centre))
        vol = voxelise(placed, ref).sum() * ref.voxel_volume_ml * 1000
        assert vol == pytest.approx(imp.volume_ml * 1000, rel=0.03), fam


def bone_block():
    """A 40 x 30 x 60 mm 'bone' box on an oblique anisotropic grid."""
    from tests.core.test_mesh_surfaces import oblique_affine

    a = oblique_affine((1.2, 0.8, 0.9))
    shape = (70, 100, 90)
    arr = np.zeros(shape, np.uint8)
    lm = LabelMap(arr, a, labels=LabelTable([Label(1, "bone")]))
    local = lm.index_to_world(np.argwhere(np.ones(shape, bool))) - lm.index_to_world(np.array(shape) / 2)
    arr[(np.all(np.abs(local) < [20, 15, 30], axis=1)).reshape(shape)] = 1
    return lm, lm.index_to_world(np.array(shape) / 2)


def test_implant_labels_for_the_tet_mesher():
    from surgtwin.core.mesh import tet_mesh

    lm, centre = bone_block()
    imp = implants.family("pedicle-screw").implant("6.5x40")
    placed = PlacedImplant("7", "screw", imp, Pose.from_axis(centre - [0, 0, 20], [0, 0, 1]))
    out = implant_labels(lm, [placed])
    lab = out.labels.by_name("implant_7")
    assert lab.value == 100 and out.labels.names() == ["bone", "implant_7"]
    assert np.array_equal(out.array == 100, voxelise(placed, lm))
    assert lm.array.max() == 1  # the input is untouched
    tm = tet_mesh(out, ["bone", "implant_7"], size_mm=1.5)
    # the whole screw (head at 20-30 mm below the centre) lies in the 60 mm high block
    assert tm.quality.volume_ml["implant_7"] == pytest.approx(imp.volume_ml, rel=0.15)
    assert tm.quality.inverted == 0
    with pytest.raises(SurgtwinError, match="outside the image"):
        implant_labels(lm, [PlacedImplant("8", "far", imp, Pose.from_rotvec([0, 0, 0], centre + 500))])
    with pytest.raises(SurgtwinError, match="no implant placed"):
        implant_labels(lm, [])


def test_samples_add_up_to_the_implant():
    for fam, size in (("pedicle-screw", "5x35"), ("hip-stem", "2"), ("bone-plate", "4-hole")):
        imp = implants.family(fam).implant(size)
        s = sample_implant(imp)
        assert len(s.volume_points) * s.point_volume_mm3 == pytest.approx(imp.volume_ml * 1000)
        assert len(s.volume_points) * s.spacing_mm ** 3 == pytest.approx(imp.volume_ml * 1000, rel=0.05)
        assert 10_000 < len(s.volume_points) < 80_000
        assert np.allclose(np.linalg.norm(s.surface_normals, axis=1), 1)
        if fam == "bone-plate":
            assert not s.engaging.any()
        else:
            assert np.array_equal(s.engaging, s.volume_points[:, 2] >= 0)
