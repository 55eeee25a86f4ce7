"""Surfaces from label maps: closed, outward, LPS-placed, volume and centroid against the voxels."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import Cancelled, CancelToken
from surgtwin.core.types import Label, LabelMap, LabelTable
from surgtwin.resources import sample_root

SAMPLE_CASES = ("abdomen-pelvis", "cardiac-cta", "head")
SAMPLE_ROOT = sample_root()


def rotation(ax_deg: float, ay_deg: float, az_deg: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", [ax_deg, ay_deg, az_deg], degrees=True).as_matrix()


def oblique_affine(spacing_kji=(2.5, 0.8, 0.7), reflect: bool = False) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = rotation(20, -30, 15) @ np.diag(spacing_kji)
    if reflect:
        a[:3, 0] *= -1  # slices stacked the other way: negative determinant
    a[:3, 3] = [12.0, -40.0, 85.0]
    return a


def ellipsoids_labelmap(affine: np.ndarray, shape=(60, 72, 84)) -> LabelMap:
    """Three smooth structures: 'liver' (~64 ml), 'kidney' (~25 ml, touching liver), 'spleen' small."""
    k, j, i = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    arr = np.zeros(shape, np.uint8)
    arr[((k - 30) / 20) ** 2 + ((j - 34) / 25) ** 2 + ((i - 30) / 22) ** 2 < 1] = 1
    arr[((k - 30) / 17) ** 2 + ((j - 34) / 19) ** 2 + ((i - 64) / 14) ** 2 < 1] = 2
    arr[((k - 12) / 5) ** 2 + ((j - 10) / 6) ** 2 + ((i - 70) / 5) ** 2 < 1] = 3
    table = LabelTable([Label(1, "liver", (200, 80, 60)), Label(2, "kidney", (180, 60, 200)),
                        Label(3, "spleen", (100, 20, 20))])
    return LabelMap(arr, affine, labels=table)


def label_centroid_lps(lm: LabelMap, value: int) -> np.ndarray:
    return lm.index_to_world(np.argwhere(lm.array == value).mean(axis=0))


def assert_surface_matches_voxels(lm: LabelMap, meshes: dict, *, min_ml: float = 20.0, rel_tol: float = 0.03,
                                  min_thickness_voxels: float = 2.0):
    """Every mesh closed and outward; for compact structures >= ``min_ml`` the mesh volume within ``rel_tol``
    of the voxel volume and the centroid within one voxel.

    "Compact" means a mean thickness 2V/A of at least ``min_thickness_voxels`` voxels. Sheets thinner than
    that (cortical grey matter, CSF, skin: about one voxel thick) cannot keep their voxel volume in a
    smoothed surface, whatever the mesher; for them only closure and the centroid are checked.
    """
    voxel_size = float(lm.spacing_mm.max())
    checked = 0
    for m in meshes.values():
        q = m.quality
        assert q.watertight and q.winding_consistent and q.outward, (m.name, q)
        vox_ml = lm.volume_ml(m.label)
        assert q.voxel_volume_ml == pytest.approx(vox_ml)
        if vox_ml >= min_ml:
            d = np.linalg.norm(np.asarray(q.centroid_lps) - label_centroid_lps(lm, m.label))
            thickness_mm = 2 * q.volume_ml * 1000 / q.area_mm2
            if thickness_mm < min_thickness_voxels * voxel_size:
                assert d <= 2 * voxel_size, (m.name, d)
                continue
            assert abs(q.volume_ml - vox_ml) <= rel_tol * vox_ml, (m.name, q.volume_ml, vox_ml)
            assert d <= voxel_size, (m.name, d)
            checked += 1
    return checked


@pytest.fixture(scope="module")
def surfaces_lib():
    from surgtwin.core.mesh.surfaces import surfaces_from_labels

    return surfaces_from_labels


@pytest.mark.parametrize("reflect", [False, True], ids=["det+", "det-"])
def test_oblique_anisotropic_volume_centroid_and_outward(surfaces_lib, reflect):
    lm = ellipsoids_labelmap(oblique_affine(reflect=reflect))
    assert (np.linalg.det(lm.affine[:3, :3]) < 0) == reflect
    meshes = surfaces_lib(lm)
    assert list(meshes) == ["liver", "kidney", "spleen"]
    assert assert_surface_matches_voxels(lm, meshes) == 2  # liver and kidney are >= 20 ml
    for m in meshes.values():
        # outward normals: on these convex shapes every vertex normal points away from the centroid
        c = np.asarray(m.quality.centroid_lps)
        assert np.all(np.einsum("ij,ij->i", m.normals, m.vertices - c) > 0), m.name
        assert m.faces.min() >= 0 and m.faces.max() < len(m.vertices)
        assert m.color == lm.labels[m.label].color


def test_vertices_are_in_lps_mm(surfaces_lib):
    lm = ellipsoids_labelmap(oblique_affine())
    mesh = surfaces_lib(lm, labels=["kidney"])["kidney"]
    centres = lm.index_to_world(np.argwhere(lm.array == 2))
    lo, hi = centres.min(axis=0), centres.max(axis=0)
    vox = lm.spacing_mm.max()
    assert np.all(mesh.vertices.min(axis=0) > lo - vox) and np.all(mesh.vertices.max(axis=0) < hi + vox)
    assert np.all(mesh.vertices.min(axis=0) < lo + vox) and np.all(mesh.vertices.max(axis=0) > hi - vox)


def test_both_reflections_give_mirror_images(surfaces_lib):
    a = surfaces_lib(ellipsoids_labelmap(oblique_affine(reflect=False)), labels=[1])["liver"]
    b = surfaces_lib(ellipsoids_labelmap(oblique_affine(reflect=True)), labels=[1])["liver"]
    assert a.quality.volume_ml == pytest.approx(b.quality.volume_ml, rel=1e-6)
    assert a.quality.area_mm2 == pytest.approx(b.quality.area_mm2, rel=1e-6)


def test_decimation_to_budget_keeps_closed_volume(surfaces_lib):
    lm = ellipsoids_labelmap(oblique_affine())
    full = surfaces_lib(lm, labels=["liver"])["liver"]
    dec = surfaces_lib(lm, labels=["liver"], target_triangles=2000)["liver"]
    assert full.n_triangles > 10000
    assert 1500 <= dec.n_triangles <= 2100
    assert dec.quality.watertight and dec.quality.outward
    assert abs(dec.quality.volume_error) < 0.03


def test_no_smoothing_is_blockier_but_closed(surfaces_lib):
    lm = ellipsoids_labelmap(oblique_affine())
    raw = surfaces_lib(lm, labels=["liver"], smoothing_iterations=0)["liver"]
    smooth = surfaces_lib(lm, labels=["liver"])["liver"]
    assert raw.quality.watertight
    assert raw.quality.area_mm2 > smooth.quality.area_mm2 * 1.02  # staircase has more area


def test_label_touching_border_and_edge_contact_are_closed(surfaces_lib):
    arr = np.zeros((20, 20, 20), np.uint8)
    arr[2:8, 2:8, 2:8] = 1
    arr[8:14, 8:14, 2:8] = 1  # touches the first block along an edge only: non-manifold for surface nets
    arr[10:20, 0:6, 0:6] = 2  # touches the volume border
    lm = LabelMap(arr, np.diag([2.0, 1.0, 1.0, 1.0]), labels=LabelTable([Label(1, "a"), Label(2, "b")]))
    meshes = surfaces_lib(lm)
    assert meshes["a"].quality.method.startswith("surface-nets (edge contacts closed")
    for m in meshes.values():
        assert m.quality.watertight and m.quality.outward, m.name
        assert m.quality.volume_ml == pytest.approx(lm.volume_ml(m.label), rel=0.06)


def test_unknown_or_absent_structure_is_a_user_error(surfaces_lib):
    lm = ellipsoids_labelmap(oblique_affine())
    with pytest.raises(SurgtwinError, match="no structure named 'heart'"):
        surfaces_lib(lm, labels=["heart"])
    with pytest.raises(SurgtwinError, match="label 7"):
        surfaces_lib(lm, labels=[7])
    empty = LabelMap(np.zeros((5, 5, 5), np.uint8), np.eye(4))
    with pytest.raises(SurgtwinError, match="no labelled voxels"):
        surfaces_lib(empty)


def test_progress_and_cancel(surfaces_lib):
    lm = ellipsoids_labelmap(oblique_affine(), shape=(40, 50, 90))
    seen = []
    surfaces_lib(lm, progress=lambda f, m: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    token = CancelToken()

    def cancel_midway(f, m):
        if f > 0.3:
            token.cancel()

    with pytest.raises(Cancelled):
        surfaces_lib(lm, progress=cancel_midway, cancel=token)


def _load_case(case: str) -> LabelMap:
    from surgtwin.core.io import load_volume

    d = SAMPLE_ROOT / case
    if not (d / "labels.nii.gz").is_file() or not (d / "labels.json").is_file():
        pytest.skip(f"sample case {case!r} not generated yet (needs {d}/labels.nii.gz and labels.json)")
    vol = load_volume(d / "labels.nii.gz")
    return LabelMap(vol.array.astype(np.int32), vol.affine, labels=LabelTable.load(d / "labels.json"))


@pytest.mark.slow
@pytest.mark.parametrize("case", SAMPLE_CASES)
def test_sample_case_surfaces(surfaces_lib, case):
    lm = _load_case(case)
    meshes = surfaces_lib(lm)
    assert meshes
    # most structures of each case are compact organs/bones and get the 3 % volume check
    assert assert_surface_matches_voxels(lm, meshes) >= 5


def test_check_mesh_agrees_with_trimesh(surfaces_lib):
    from surgtwin.core.mesh.checks import check_mesh

    m = surfaces_lib(ellipsoids_labelmap(oblique_affine()), labels=["kidney"])["kidney"]
    for faces in (m.faces, m.faces[7:], np.r_[m.faces[:3, ::-1], m.faces[3:]]):
        q = check_mesh(m.vertices, faces)
        tm = __import__("trimesh").Trimesh(m.vertices, faces, process=False, validate=False)
        assert q.watertight == tm.is_watertight and q.winding_consistent == tm.is_winding_consistent
        assert q.components == tm.body_count and q.euler_number == tm.euler_number
        assert q.area_mm2 == pytest.approx(tm.area, rel=1e-9)
        if tm.is_watertight and tm.is_winding_consistent:  # (an inconsistent surface has no volume)
            assert q.volume_ml == pytest.approx(abs(tm.volume) / 1000, rel=1e-9)
            assert np.allclose(q.centroid_lps, tm.center_mass, atol=1e-6)
