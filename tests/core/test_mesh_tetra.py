"""Lattice tet mesher: valid for scikit-fem, no inverted elements, volumes, regions, HU, quality."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.mesh.tetra import (
    _guard,
    dihedral_angles_deg,
    scaled_jacobians,
    tet_mesh,
    tet_volumes,
)
from surgtwin.core.types import Label, LabelMap, LabelTable, Volume
from tests.core.test_mesh_surfaces import oblique_affine


def bone_implant(reflect: bool = False, spacing=(1.2, 0.8, 0.9)):
    """A long 'femur' ellipsoid with an 'implant' stem inside it (~36 ml bone, ~7 ml implant)."""
    shape = (90, 50, 50)
    k, j, i = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    arr = np.zeros(shape, np.uint8)
    arr[((k - 45) / 40) ** 2 + ((j - 25) / 18) ** 2 + ((i - 25) / 15) ** 2 < 1] = 1
    arr[((k - 50) / 30) ** 2 + ((j - 25) / 7) ** 2 + ((i - 25) / 7) ** 2 < 1] = 2
    lm = LabelMap(arr, oblique_affine(spacing, reflect=reflect),
                  labels=LabelTable([Label(1, "femur"), Label(2, "implant")]))
    ct = Volume(np.where(arr == 1, 700, np.where(arr == 2, 3000, -100)).astype(np.int16), lm.affine)
    return lm, ct


@pytest.fixture(scope="module")
def femur_mesh():
    lm, ct = bone_implant()
    return lm, tet_mesh(lm, "femur", size_mm=2.0, ct=ct)


def test_reference_element_metrics():
    regular = np.array([[0, 0, 0], [1, 0, 0], [0.5, np.sqrt(3) / 2, 0], [0.5, np.sqrt(3) / 6, np.sqrt(2 / 3)]])
    e = np.array([[0, 1, 2, 3]])
    assert scaled_jacobians(regular, e)[0] == pytest.approx(1.0)
    assert dihedral_angles_deg(regular, e)[0] == pytest.approx(np.full(6, np.degrees(np.arccos(1 / 3))))
    assert scaled_jacobians(regular, e[:, [0, 2, 1, 3]])[0] == pytest.approx(-1.0)
    assert tet_volumes(regular, e)[0] == pytest.approx(1 / (6 * np.sqrt(2)))


@pytest.mark.parametrize("reflect", [False, True], ids=["det+", "det-"])
def test_femur_mesh_valid_and_accurate(reflect):
    lm, ct = bone_implant(reflect=reflect)
    m = tet_mesh(lm, ["femur"], size_mm=2.0)
    vols = m.element_volumes_mm3()
    assert np.all(vols > 0)
    assert m.quality.inverted == 0
    assert m.quality.min_scaled_jacobian >= 0.2 - 1e-9
    assert m.quality.min_dihedral_deg > 5.0
    vox_ml = lm.volume_ml("femur")
    assert m.quality.volume_ml["femur"] == pytest.approx(vox_ml, rel=0.03)
    assert set(np.unique(m.regions)) == {1}
    # nodes stay within half an element of the structure's voxels
    centres = lm.index_to_world(np.argwhere(lm.array == 1))
    assert np.all(m.nodes.min(axis=0) > centres.min(axis=0) - 1.0 - lm.spacing_mm.max())
    assert np.all(m.nodes.max(axis=0) < centres.max(axis=0) + 1.0 + lm.spacing_mm.max())


def test_skfem_accepts_mesh_and_integrates_volume(femur_mesh):
    from skfem import Basis, ElementTetP1, Functional

    lm, m = femur_mesh
    sk = m.to_skfem()
    assert sk.p.shape == (3, len(m.nodes)) and sk.t.shape == (4, len(m.elements))
    basis = Basis(sk, ElementTetP1())
    one = Functional(lambda w: 1.0 + 0.0 * w.x[0])
    assert one.assemble(basis) == pytest.approx(m.element_volumes_mm3().sum(), rel=1e-9)


def test_boundary_is_a_closed_outward_surface(femur_mesh):
    import trimesh

    _, m = femur_mesh
    b = m.boundary_faces()
    tm = trimesh.Trimesh(m.nodes, b, process=False)
    assert tm.is_watertight and tm.is_winding_consistent
    assert tm.volume == pytest.approx(m.element_volumes_mm3().sum(), rel=1e-9)


def test_snapping_puts_boundary_nodes_on_the_surface():
    lm, _ = bone_implant()

    def outer_error(m):
        q = lm.world_to_index(m.nodes[np.unique(m.boundary_faces())])
        f = ((q[:, 0] - 45) / 40) ** 2 + ((q[:, 1] - 25) / 18) ** 2 + ((q[:, 2] - 25) / 15) ** 2
        return np.abs(np.sqrt(f) - 1.0).mean()

    snapped = tet_mesh(lm, ["femur", "implant"], size_mm=3.0)
    blocky = tet_mesh(lm, ["femur", "implant"], size_mm=3.0, snap=False)
    assert outer_error(snapped) < 0.6 * outer_error(blocky)  # the rest is the voxel staircase itself
    assert blocky.quality.min_scaled_jacobian == pytest.approx(np.sqrt(2) / np.sqrt(6), rel=1e-6)  # Kuhn


def test_bone_implant_regions_conforming_with_hu():
    lm, ct = bone_implant()
    m = tet_mesh(lm, ["femur", "implant"], size_mm=2.0, ct=ct)
    assert m.region_names == {1: "femur", 2: "implant"}
    assert m.quality.inverted == 0 and np.all(m.element_volumes_mm3() > 0)
    for name in ("femur", "implant"):
        assert m.quality.volume_ml[name] == pytest.approx(m.quality.voxel_volume_ml[name], rel=0.05), name
    # one conforming mesh: its outer boundary is closed (no cracks at the interface)
    import trimesh

    tm = trimesh.Trimesh(m.nodes, m.boundary_faces(), process=False)
    assert tm.is_watertight
    # HU: elements far from any boundary carry their region's value exactly
    hu_f = np.median(m.mean_hu[m.regions == 1])
    hu_i = np.median(m.mean_hu[m.regions == 2])
    assert hu_f == pytest.approx(700, abs=5) and hu_i == pytest.approx(3000, abs=5)
    assert m.mean_hu.shape == (len(m.elements),)


def test_guard_undoes_inverting_moves():
    lm, _ = bone_implant()
    m = tet_mesh(lm, "femur", size_mm=3.0, snap=False)
    rng = np.random.default_rng(0)
    wild = rng.normal(scale=3.0, size=m.nodes.shape)  # would invert many elements
    assert np.any(tet_volumes(m.nodes + wild, m.elements) <= 0)
    safe = _guard(m.nodes, wild, m.elements, 0.2)
    assert np.all(scaled_jacobians(m.nodes + safe, m.elements) >= 0.2)
    assert np.any(safe != 0)


def test_user_errors():
    lm, _ = bone_implant()
    with pytest.raises(SurgtwinError, match="no structure named 'tibia'"):
        tet_mesh(lm, "tibia")
    with pytest.raises(SurgtwinError, match="between 0.05 and 100 mm"):
        tet_mesh(lm, "femur", size_mm=0)
    with pytest.raises(SurgtwinError, match="quarter voxel"):
        tet_mesh(lm, "femur", size_mm=0.1)
    with pytest.raises(SurgtwinError, match="no voxels"):
        tet_mesh(lm, 9)
    with pytest.raises(SurgtwinError, match="twice"):
        tet_mesh(lm, ["femur", 1])


def test_boundary_names_each_surface_triangle_s_element():
    from surgtwin.core.mesh.tetra import tet_mesh
    from surgtwin.services.demo import phantom

    _, lab = phantom(shape=(30, 48, 48), spacing_mm=(4.0, 3.0, 3.0))
    tm = tet_mesh(lab, ["liver", "spleen"], size_mm=4.0)
    faces, elements = tm.boundary()
    assert len(faces) == len(tm.boundary_faces()) == len(elements)
    assert all(set(f) <= set(tm.elements[e]) for f, e in zip(faces, elements, strict=True))
    liver = np.flatnonzero(tm.regions == lab.labels.by_name("liver").value)
    f2, e2 = tm.boundary(liver)  # the liver's own closed surface, interface included
    assert set(tm.regions[e2].tolist()) == {lab.labels.by_name("liver").value} and len(f2) > 100
