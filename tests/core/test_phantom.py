"""Synthetic patients: determinism, HU realism and the known quantities after a DICOM round trip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from surgtwin.core.phantom import CASE_KINDS, generate_case, label_table, write_case
from surgtwin.core.phantom.cardiac import ellipse_perimeter
from surgtwin.resources import sample_root

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sample_root()


def _read_case(kind):
    """The committed case read back from disk: CT via SimpleITK's DICOM series reader, labels from NIfTI."""
    sitk = pytest.importorskip("SimpleITK")
    from surgtwin.core.geometry import volume_from_sitk

    folder = SAMPLES / kind
    if not (folder / "dicom").is_dir():
        pytest.skip(f"{folder} not generated (run scripts/make_sample_cases.py)")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder / "dicom")))
    ct = volume_from_sitk(reader.Execute())
    lab = volume_from_sitk(sitk.ReadImage(str(folder / "labels.nii.gz")))
    table = {it["name"]: it["value"] for it in json.loads((folder / "labels.json").read_text())["labels"]}
    text = (folder / "PROVENANCE.md").read_text()
    known = json.loads(text.split("```json", 1)[1].split("```", 1)[0])
    return ct, lab, table, known


_cache: dict = {}


@pytest.fixture(scope="module")
def committed():
    def get(kind):
        if kind not in _cache:
            _cache[kind] = _read_case(kind)
        return _cache[kind]
    return get


# -- library --------------------------------------------------------------------------------------
def test_same_seed_same_patient_and_new_seed_new_patient():
    a = generate_case("head", 5, pixel_mm=3.0, slice_mm=3.0)
    b = generate_case("head", 5, pixel_mm=3.0, slice_mm=3.0)
    c = generate_case("head", 6, pixel_mm=3.0, slice_mm=3.0)
    assert np.array_equal(a.ct.array, b.ct.array)
    assert np.array_equal(a.labels.array, b.labels.array)
    assert a.known == b.known
    assert a.ct.shape != c.ct.shape or not np.array_equal(a.labels.array, c.labels.array)
    assert a.known["volume_ml"]["brain_white_matter"] != c.known["volume_ml"]["brain_white_matter"]


@pytest.mark.parametrize("kind", CASE_KINDS)
def test_case_types_and_geometry(kind):
    case = generate_case(kind, 2, pixel_mm=3.0, slice_mm=3.0)
    assert case.kind == kind and case.seed == 2
    assert case.ct.array.dtype == np.int16 and case.ct.modality == "CT"
    assert case.labels.array.dtype == np.uint8
    assert case.ct.same_geometry(case.labels)
    assert np.allclose(case.ct.spacing_mm, [3.0, 3.0, 3.0])
    # DICOM stays axial: identity directions
    assert np.allclose(case.ct.direction, [[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    present = set(np.unique(case.labels.array)) - {0}
    assert present == {lab.value for lab in case.labels.labels}
    assert 8.0 <= case.known["noise_sd_hu"] <= 25.0


def test_label_table_is_global_and_snake_case():
    table = label_table()
    names = table.names()
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)
    for n in ("liver", "spleen", "kidney_left", "aorta", "vertebrae", "femur_left", "left_ventricle",
              "aortic_root", "skull", "brain_grey_matter", "tumour", "calcification"):
        assert n in names
    # every case uses the global values
    case = generate_case("cardiac-cta", 1, pixel_mm=3.0, slice_mm=3.0)
    for lab in case.labels.labels:
        assert table.by_name(lab.name).value == lab.value


def test_spacing_drawn_from_seed_within_ranges():
    case = generate_case("head", 9, pixel_mm=None, slice_mm=None)
    assert 0.6 <= case.known["pixel_mm"] <= 1.5
    assert 1.0 <= case.known["slice_mm"] <= 3.0


def test_rejects_unknown_kind():
    from surgtwin.core.errors import SurgtwinError

    with pytest.raises(SurgtwinError, match="unknown phantom kind"):
        generate_case("knee", 1)


def test_write_case_is_byte_identical(tmp_path):
    case = generate_case("head", 4, pixel_mm=3.0, slice_mm=4.0)
    write_case(case, tmp_path / "a")
    write_case(generate_case("head", 4, pixel_mm=3.0, slice_mm=4.0), tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) > 10
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


@pytest.mark.parametrize("kind", CASE_KINDS)
def test_new_patient_from_any_seed_at_1p5_mm(kind):
    """A new seed at 1.5 mm gives a full-size, plausible patient (its speed is in scripts/bench/phantom_bench.py:
    timing is a benchmark, not a test)."""
    case = generate_case(kind, 12345, pixel_mm=1.5, slice_mm=1.5)
    assert case.ct.shape[1] > 100 and case.ct.array.dtype == np.int16
    assert np.allclose(case.ct.spacing_mm, 1.5)
    assert len(np.unique(case.labels.array)) > 8


@pytest.mark.slow
def test_make_sample_cases_regenerates_committed_files_byte_identically(tmp_path):
    import importlib.util

    if not (SAMPLES / "head" / "dicom").is_dir():
        pytest.skip("sample cases not generated")
    spec = importlib.util.spec_from_file_location("msc", ROOT / "scripts" / "make_sample_cases.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path)]) == 0
    for kind in mod.SAMPLE_CASES:
        ours = sorted(p.relative_to(SAMPLES / kind) for p in (SAMPLES / kind).rglob("*") if p.is_file())
        new = sorted(p.relative_to(tmp_path / kind) for p in (tmp_path / kind).rglob("*") if p.is_file())
        assert ours == new
        for f in ours:
            assert (SAMPLES / kind / f).read_bytes() == (tmp_path / kind / f).read_bytes(), f"{kind}/{f}"


# -- committed cases after a DICOM round trip ---------------------------------------------------------
def _median(ct, lab, table, name):
    m = lab.array == table[name]
    assert m.any(), name
    return float(np.median(ct.array[m]))


def test_committed_cases_total_size_under_40_mb():
    if not SAMPLES.is_dir():
        pytest.skip("sample cases not generated")
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total <= 40 * 1024 * 1024


@pytest.mark.parametrize("kind", CASE_KINDS)
def test_round_trip_geometry_and_volumes(committed, kind):
    ct, lab, table, known = committed(kind)
    assert ct.same_geometry(lab, atol_mm=1e-3)
    assert np.allclose(ct.spacing_mm, [known["slice_mm"], known["pixel_mm"], known["pixel_mm"]], atol=1e-4)
    vox_ml = ct.voxel_volume_ml
    for name, ml in known["volume_ml"].items():
        assert float((lab.array == table[name]).sum()) * vox_ml == pytest.approx(ml, rel=1e-3, abs=1e-3), name
    # air outside, a table behind the patient (abdomen, head)
    assert float(np.median(ct.array[lab.array == 0])) < -950


def test_abdomen_hu_ranges(committed):
    ct, lab, table, known = committed("abdomen-pelvis")
    med = lambda n: _median(ct, lab, table, n)  # noqa: E731
    assert -120 <= med("fat") <= -80
    assert 30 <= med("muscle") <= 70
    assert (55 <= med("liver") <= 140) if known["contrast_phase"] != "none" else (55 <= med("liver") <= 65)
    if known["contrast_phase"] == "arterial":
        assert 250 <= med("aorta") <= 400
    assert -900 <= med("lung_right") <= -800
    assert 150 <= float(np.percentile(ct.array[lab.array == table["vertebrae"]], 30)) <= 320  # cancellous
    femur = ct.array[lab.array == table["femur_left"]]
    assert 800 <= float(np.percentile(femur, 95)) <= 1500  # cortical shell
    assert med("medullary_canal") < 60


def test_abdomen_stenosis_from_labels(committed):
    ct, lab, table, known = committed("abdomen-pelvis")

    def area_mm2(centre):
        centre = np.asarray(centre)
        axis = np.asarray(known["stenosis_axis_lps"])
        k = int(round(ct.world_to_index(centre)[0]))
        # where the centre line crosses slice k
        z_k = (ct.affine @ [k, 0, 0, 1])[2]
        p = centre + axis * (z_k - centre[2]) / axis[2]
        jj, ii = np.nonzero(lab.array[k] == table["aorta"])
        pts = ct.index_to_world(np.stack([np.full(len(jj), k), jj, ii], 1))
        near = np.linalg.norm(pts - p, axis=1) < 1.6 * known["stenosis_ref_radius"]
        px = known["pixel_mm"]
        return near.sum() * px * px * abs(axis[2])  # oblique cut -> cross-section

    a_min = area_mm2(known["stenosis_centre_lps"])
    a_ref = area_mm2(known["stenosis_ref_centre_lps"])
    pct = 100 * (1 - np.sqrt(a_min / a_ref))
    assert pct == pytest.approx(known["stenosis_percent"], abs=5.0)
    assert 100 * (1 - a_min / a_ref) == pytest.approx(known["stenosis_area_percent"], abs=7.0)
    # and the lumen is visible in the CT: bright contrast at the reference, narrow at the stenosis
    k = int(round(ct.world_to_index(np.asarray(known["stenosis_centre_lps"]))[0]))
    lumen = ct.array[k][lab.array[k] == table["aorta"]]
    assert np.median(lumen) > 150


def _plane_sample(vol, centre, normal, major, half_mm=22.0, step=0.2):
    from scipy.ndimage import map_coordinates

    n = np.asarray(normal) / np.linalg.norm(normal)
    u = np.asarray(major) - np.dot(major, n) * n
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    g = np.arange(-half_mm, half_mm + 1e-9, step)
    U, V = np.meshgrid(g, g, indexing="ij")
    pts = np.asarray(centre) + U[..., None] * u + V[..., None] * v
    idx = vol.world_to_index(pts.reshape(-1, 3)).T
    vals = map_coordinates(vol.array, idx, order=0, mode="constant", cval=0)
    return vals.reshape(U.shape), U, V


def test_cardiac_annulus_measured_on_its_plane(committed):
    ct, lab, table, known = committed("cardiac-cta")
    vals, U, V = _plane_sample(lab, known["annulus_centre_lps"], known["annulus_normal_lps"],
                               known["annulus_major_axis_lps"])
    lumen = np.isin(vals, [table["left_ventricle"], table["aortic_root"]])
    area = lumen.sum() * 0.2 * 0.2
    assert area == pytest.approx(known["annulus_area_mm2"], rel=0.05)
    # ellipse from second moments of the cut -> perimeter
    x, y = U[lumen], V[lumen]
    cov = np.cov(np.stack([x - x.mean(), y - y.mean()]))
    lam = np.sort(np.linalg.eigvalsh(cov))[::-1]
    a, b = 2 * np.sqrt(lam[0]), 2 * np.sqrt(lam[1])
    assert ellipse_perimeter(a, b) == pytest.approx(known["annulus_perimeter_mm"], rel=0.03)
    assert 2 * a == pytest.approx(known["annulus_diameter_max_mm"], abs=1.2)
    assert 2 * b == pytest.approx(known["annulus_diameter_min_mm"], abs=1.2)
    assert known["annulus_diameter_max_mm"] > known["annulus_diameter_min_mm"]  # slightly elliptic
    # the CT shows contrast in the annulus cut
    hu, _, _ = _plane_sample(ct, known["annulus_centre_lps"], known["annulus_normal_lps"],
                             known["annulus_major_axis_lps"])
    assert 250 <= float(np.median(hu[lumen])) <= 500


@pytest.mark.parametrize("side", ["left", "right"])
def test_cardiac_coronary_heights(committed, side):
    ct, lab, table, known = committed("cardiac-cta")
    n = np.asarray(known["annulus_normal_lps"])
    c = np.asarray(known["annulus_centre_lps"])
    ostium = np.asarray(known[f"coronary_ostium_{side}_centre_lps"])
    rel = ostium - c
    r_wall = np.linalg.norm(rel - np.dot(rel, n) * n)
    from scipy.ndimage import binary_dilation

    # coronary voxels touching the aortic root lumen: the ostium
    root = binary_dilation(lab.array == table["aortic_root"], iterations=2)
    idx = np.argwhere(root & (lab.array == table[f"coronary_artery_{side}"]))
    pts = lab.index_to_world(idx) - c
    w = pts @ n
    rho = np.linalg.norm(pts - w[:, None] * n, axis=1)
    near = (rho <= r_wall + 4.0) & (np.linalg.norm(pts - rel, axis=1) < 5.0)
    assert near.sum() > 5
    h = float(w[near].min())
    assert h == pytest.approx(known[f"coronary_height_{side}_mm"], abs=1.0)


def test_cardiac_hu_ranges(committed):
    ct, lab, table, known = committed("cardiac-cta")
    med = lambda n: _median(ct, lab, table, n)  # noqa: E731
    assert 250 <= med("left_ventricle") <= 450
    assert 250 <= med("ascending_aorta") <= 450
    assert 80 <= med("myocardium") <= 150
    assert -900 <= med("lung_left") <= -800
    assert float(np.percentile(ct.array[lab.array == table["calcification"]], 75)) > 500


def test_head_hu_ranges_and_tumour(committed):
    ct, lab, table, known = committed("head")
    med = lambda n: _median(ct, lab, table, n)  # noqa: E731
    assert 30 <= med("brain_grey_matter") <= 45
    assert 15 <= med("brain_white_matter") <= 32
    assert med("brain_grey_matter") - med("brain_white_matter") >= 5
    assert -5 <= med("ventricles") <= 15
    assert 800 <= float(np.percentile(ct.array[lab.array == table["skull"]], 90)) <= 1800
    assert 200 <= med("vessels") <= 400
    m = lab.array == table["tumour"]
    centroid = lab.index_to_world(np.argwhere(m).mean(axis=0))
    assert np.allclose(centroid, known["tumour_centroid_lps"], atol=0.5)
    assert m.sum() * lab.voxel_volume_ml == pytest.approx(known["volume_ml"]["tumour"], rel=1e-3)
