"""The loader on real DICOM that nobody here wrote: pydicom's own test files, pydicom-data and the
totalsegmentator sdist's Siemens CT series. Geometry and values are checked against SimpleITK."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

import surgtwin
from surgtwin.core.dicom.scan import scan
from surgtwin.core.geometry import volume_from_sitk

pytestmark = pytest.mark.network


def sitk_series(folder, uid=""):
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder), uid))
    return volume_from_sitk(r.Execute())


def sitk_file(path):
    return volume_from_sitk(sitk.ReadImage(str(path)))


def test_totalsegmentator_jpeg2000_ct_series(totalseg_reference):
    folder = totalseg_reference / "example_ct_dicom"
    cands = surgtwin.find_series(folder)
    assert len(cands) == 1 and cands[0].loadable and cands[0].shape == (20, 512, 512)
    vol = surgtwin.load_volume(folder)
    assert vol.modality == "CT" and vol.array.dtype == np.int16
    ref = sitk_series(folder)
    np.testing.assert_array_equal(vol.array, ref.array)
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-4)
    # HU sanity on a real abdomen: air outside, soft tissue inside
    assert vol.array.min() <= -1000 and -200 < np.median(vol.array[:, 200:300, 200:300]) < 200


def test_pydicom_dicomdir_tree_candidates(pydicom_testfiles):
    root = pydicom_testfiles / "dicomdirtests"
    result = scan(root)
    by_desc: dict = {}
    for c in result.candidates:
        by_desc.setdefault(c.description.strip(), []).append(c)
    # descending-position CT with two acquisition numbers but distinct positions: one 5-slice volume
    gated = by_desc["SmartScore - Gated 0.5 sec"]
    assert len(gated) == 1 and gated[0].loadable and gated[0].shape[0] == 5 and not gated[0].warnings
    folder = root / "98892001" / "CT5N"
    vol = surgtwin.load_volume(folder)
    ref = sitk_series(folder)
    np.testing.assert_array_equal(vol.array, ref.array)
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-4)
    # the CT with a 202 mm gap is split, not interpolated
    brain = by_desc["Routine Brain"]
    assert sorted(c.shape[0] for c in brain) == [1, 3]
    assert all(any("large gap" in w for w in c.warnings) for c in brain)
    # two-orientation scout: refused as localizer
    scouts = by_desc["Scout"]
    assert scouts and all(not c.loadable and "localizer" in c.refusal for c in scouts)
    # rotating-orientation MR is split by orientation, never stacked
    pilot = by_desc["T/S/C RF FAST PILOT"]
    assert len(pilot) >= 3 and all(c.shape[0] == 1 for c in pilot)
    # projection radiographs refused; files without pixel data and DICOMDIRs skipped with reasons
    assert all(not c.loadable for c in result.candidates if c.modality == "CR")
    skipped = dict(result.skipped)
    assert any("DICOMDIR" in p for p in skipped) and any("TINY_ALPHA" in p for p in skipped)


@pytest.mark.parametrize(
    "name",
    ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm",
     "MR_small_implicit.dcm", "MR_small_expb.dcm"],
)
def test_pydicom_encodings_match_uncompressed(pydicom_testfiles, name):
    ref = surgtwin.load_volume(pydicom_testfiles / "MR_small.dcm")
    vol = surgtwin.load_volume(pydicom_testfiles / name)
    np.testing.assert_array_equal(vol.array, ref.array)
    np.testing.assert_allclose(vol.affine, ref.affine)


def test_pydicom_secondary_capture_refused(pydicom_testfiles):
    with pytest.raises(surgtwin.SurgtwinError, match="Secondary Capture"):
        surgtwin.load_volume(pydicom_testfiles / "JPEG2000.dcm")


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_pydicom_single_files_match_simpleitk(pydicom_testfiles, name):
    vol = surgtwin.load_volume(pydicom_testfiles / name)
    ref = sitk_file(pydicom_testfiles / name)
    np.testing.assert_allclose(vol.array, ref.array)
    np.testing.assert_allclose(vol.affine[:3, 1:], ref.affine[:3, 1:], atol=1e-4)  # in-plane axes + origin


def test_pydicom_truncated_file(pydicom_testfiles):
    with pytest.raises(surgtwin.SurgtwinError, match="MR_truncated.dcm"):
        surgtwin.load_volume(pydicom_testfiles / "MR_truncated.dcm")


def test_pydicom_data_enhanced_ct_multiframe(pydicom_data):
    vol = surgtwin.load_volume(pydicom_data / "eCT_Supplemental.dcm")
    assert vol.shape == (2, 512, 512) and vol.modality == "CT"
    np.testing.assert_allclose(vol.spacing_mm[0], 10.0)
    assert -1100 < vol.array.min() and vol.array.max() < 4000


@pytest.mark.parametrize("name", ["emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm", "emri_small_big_endian.dcm"])
def test_pydicom_data_legacy_multiframe_refused_consistently(pydicom_data, name):
    """emri_small is a multi-frame MR without per-frame positions: every encoding gets the same refusal."""
    cands = surgtwin.find_series(pydicom_data / name)
    assert cands and not cands[0].loadable and "ImageOrientationPatient" in cands[0].refusal


def test_pydicom_data_truncated_j2k(pydicom_data):
    with pytest.raises(surgtwin.SurgtwinError, match="truncated or corrupt"):
        surgtwin.load_volume(pydicom_data / "emri_small_jpeg_2k_lossless_too_short.dcm")


@pytest.mark.parametrize("pair", [("MR2_UNCR.dcm", "MR2_J2KR.dcm"), ("693_UNCR.dcm", "693_J2KR.dcm")])
def test_pydicom_data_lossless_j2k_equals_uncompressed(pydicom_data, pair):
    a = surgtwin.load_volume(pydicom_data / pair[0])
    b = surgtwin.load_volume(pydicom_data / pair[1])
    np.testing.assert_array_equal(a.array, b.array)
    ref = sitk_file(pydicom_data / pair[0])
    np.testing.assert_allclose(a.array, ref.array, rtol=1e-6)
