"""The DICOM loader against generated series with known truth, and against SimpleITK."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, JPEG2000Lossless, RLELossless

import surgtwin
from surgtwin.core.dicom.scan import scan
from surgtwin.core.geometry import volume_from_sitk
from tests.dicom_factory import write_enhanced_ct, write_series


def sitk_volume(folder, series_uid=None):
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(folder), series_uid or "")
    reader.SetFileNames(names)
    return volume_from_sitk(reader.Execute())


def expected_affine(t):
    o = np.asarray(t.orientation, float)
    a = np.eye(4)
    a[:3, 0] = t.positions[1] - t.positions[0]
    a[:3, 1] = o[3:] * t.pixel_spacing[0]
    a[:3, 2] = o[:3] * t.pixel_spacing[1]
    a[:3, 3] = t.positions[0]
    return a


@pytest.mark.parametrize(
    "orientation",
    [
        (1, 0, 0, 0, 1, 0),  # axial
        (1, 0, 0, 0, 0, -1),  # coronal
        (0, 1, 0, 0, 0, -1),  # sagittal
        (1, 0, 0, 0, -1, 0),  # axial, flipped columns: the normal points to the feet (descending)
        (0.9659258, 0.2588190, 0, -0.2588190, 0.9659258, 0),  # oblique (15 deg about S)
    ],
)
def test_uniform_series_matches_truth_and_simpleitk(tmp_path, orientation):
    t = write_series(tmp_path / "s", orientation=orientation)
    vol = surgtwin.load_volume(tmp_path / "s")
    assert vol.modality == "CT" and vol.shape == t.hu.shape
    np.testing.assert_array_equal(vol.array, t.hu)
    np.testing.assert_allclose(vol.affine, expected_affine(t), atol=1e-5)
    ref = sitk_volume(tmp_path / "s")
    np.testing.assert_array_equal(vol.array, ref.array)
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-4)
    assert vol.metadata["warnings"] == []
    # world <-> index round trip through the affine
    p = vol.index_to_world([3, 5, 7])
    np.testing.assert_allclose(vol.world_to_index(p), [3, 5, 7], atol=1e-9)


@pytest.mark.parametrize(
    "kwargs,dtype",
    [
        (dict(ts=ImplicitVRLittleEndian), np.int16),
        (dict(ts=ExplicitVRBigEndian), np.int16),
        (dict(unsigned=True), np.int16),  # 12-bit unsigned, intercept -1024 -> fits int16
        (dict(slope=0.5, intercept=-1000.0), np.float32),
        (dict(compress=RLELossless), np.int16),
    ],
)
def test_encodings_and_rescale(tmp_path, kwargs, dtype):
    t = write_series(tmp_path / "s", **kwargs)
    vol = surgtwin.load_volume(tmp_path / "s")
    assert vol.array.dtype == dtype or (dtype == np.int16 and vol.array.dtype == np.int32)
    np.testing.assert_allclose(vol.array, t.hu, atol=1e-4)
    ref = sitk_volume(tmp_path / "s")
    np.testing.assert_allclose(vol.array, ref.array, atol=1e-3)
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-4)


def test_jpeg2000_lossless(tmp_path):
    pytest.importorskip("openjpeg", reason="pylibjpeg-openjpeg encoder not installed")
    t = write_series(tmp_path / "s", compress=JPEG2000Lossless, shape=(4, 32, 32))
    vol = surgtwin.load_volume(tmp_path / "s")
    np.testing.assert_array_equal(vol.array, t.hu)
    np.testing.assert_allclose(vol.affine, sitk_volume(tmp_path / "s").affine, atol=1e-4)


def test_int16_output_when_range_fits(tmp_path):
    t = write_series(tmp_path / "s", unsigned=True)
    vol = surgtwin.load_volume(tmp_path / "s")
    assert vol.array.dtype == np.int16
    np.testing.assert_array_equal(vol.array, t.hu)


def test_gantry_tilt_is_detected_and_resampled(tmp_path):
    # tan(tilt) * slice spacing = one row pixel (0.8 mm) per slice: the correction is an exact shift
    tilt = float(np.degrees(np.arctan(0.4)))
    t = write_series(tmp_path / "s", tilt_deg=tilt, slice_spacing=2.0, pixel_spacing=(0.8, 0.7), shuffle=False)
    cands = surgtwin.find_series(tmp_path / "s")
    assert abs(cands[0].tilt_deg - tilt) < 0.05
    vol = surgtwin.load_volume(tmp_path / "s")
    assert any("tilt" in w for w in vol.metadata["warnings"])
    # the loaded grid is orthogonal: slice axis along the normal with the true spacing along it
    np.testing.assert_allclose(vol.affine[:3, 0], [0, 0, 2.0], atol=1e-6)
    assert abs(vol.affine[:3, 0] @ vol.affine[:3, 1]) < 1e-9
    for k in range(vol.shape[0]):
        # source slice k starts k rows further along +column direction: its row j sits at target row j + k
        np.testing.assert_allclose(vol.array[k, k:, :], t.hu[k, : t.hu.shape[1] - k, :], atol=1)
        assert np.all(vol.array[k, :k, :] == -1024)
    with pytest.raises(surgtwin.SurgtwinError, match="resampl"):
        surgtwin.load_volume(tmp_path / "s", allow_resample=False)


def test_gap_is_named_and_filled(tmp_path):
    pos = [0, 2, 4, 6, 10, 12, 14, 16]  # the slice at 8 mm is missing
    t = write_series(tmp_path / "s", shape=(8, 16, 16), positions_mm=pos)
    cand = surgtwin.find_series(tmp_path / "s")[0]
    assert any("gap" in w and "1 slice(s) missing" in w for w in cand.warnings)
    vol = surgtwin.load_volume(tmp_path / "s")
    assert vol.shape[0] == 9
    np.testing.assert_allclose(vol.spacing_mm[0], 2.0)
    np.testing.assert_array_equal(vol.array[:4], t.hu[:4])
    np.testing.assert_array_equal(vol.array[5:], t.hu[4:])
    np.testing.assert_allclose(vol.array[4], np.rint((t.hu[3] + t.hu[4]) / 2), atol=1)


def test_huge_gap_splits_instead_of_inventing_slices(tmp_path):
    pos = [0, 2, 4, 6, 200, 202, 204]
    write_series(tmp_path / "s", shape=(7, 16, 16), positions_mm=pos)
    cands = surgtwin.find_series(tmp_path / "s")
    assert sorted(c.shape[0] for c in cands) == [3, 4]
    assert all("split at large gap" in c.warnings[0] for c in cands)
    assert surgtwin.load_volume(tmp_path / "s").shape[0] == 4


def test_non_uniform_spacing_is_resampled_with_warning(tmp_path):
    pos = [0, 1.0, 2.0, 3.0, 4.5, 6.0, 7.5, 9.0]
    write_series(tmp_path / "s", shape=(8, 16, 16), positions_mm=pos)
    vol = surgtwin.load_volume(tmp_path / "s")
    assert any("non-uniform" in w for w in vol.metadata["warnings"])
    extent = (vol.shape[0] - 1) * vol.spacing_mm[0]
    assert abs(extent - 9.0) <= vol.spacing_mm[0]
    with pytest.raises(surgtwin.SurgtwinError):
        surgtwin.load_volume(tmp_path / "s", allow_resample=False)


def test_duplicates_are_dropped_with_warning(tmp_path):
    t = write_series(tmp_path / "s", shape=(6, 16, 16))
    shutil.copy(t.files[0], tmp_path / "s" / "copy_of_first.dcm")  # same SOP instance twice
    # a different SOP instance at an occupied position
    write_series(tmp_path / "s", shape=(1, 16, 16), name="dup", seed=0, hu=t.hu[:1] * 0)
    vol = surgtwin.load_volume(tmp_path / "s", series_uid=t.series_uid)
    assert vol.shape == t.hu.shape
    assert any("duplicate" in w for w in vol.metadata["warnings"])


def test_mixed_folder_localizer_and_series_choice(tmp_path):
    big = write_series(tmp_path / "d", shape=(10, 16, 16), name="big")
    small = write_series(tmp_path / "d", shape=(4, 20, 20), name="small", seed=3)
    write_series(tmp_path / "d", shape=(1, 16, 16), name="scout", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                 orientation=(0, 1, 0, 0, 0, -1))
    (tmp_path / "d" / "notes.txt").write_text("not dicom")
    result = scan(tmp_path / "d")
    assert len(result.candidates) == 3
    scout = [c for c in result.candidates if not c.loadable]
    assert len(scout) == 1 and "localizer" in scout[0].refusal
    assert any(f.endswith("notes.txt") for f, _ in result.skipped)
    assert surgtwin.load_volume(tmp_path / "d").shape == big.hu.shape
    np.testing.assert_array_equal(surgtwin.load_volume(tmp_path / "d", series_uid=small.series_uid).array, small.hu)
    with pytest.raises(surgtwin.SurgtwinError, match="no series with SeriesInstanceUID"):
        surgtwin.load_volume(tmp_path / "d", series_uid="1.2.3.4")


def test_acquisitions_at_same_positions_are_split(tmp_path):
    write_series(tmp_path / "d", shape=(5, 16, 16), name="a", acquisition_numbers=[1] * 5)
    # same series UID, second acquisition at the same positions
    t2 = write_series(tmp_path / "x", shape=(5, 16, 16), name="a", seed=0, acquisition_numbers=[2] * 5)
    for f in t2.files:
        shutil.move(f, tmp_path / "d" / f"acq2_{f.name}")
    cands = surgtwin.find_series(tmp_path / "d")
    assert len(cands) == 2 and all(c.shape[0] == 5 for c in cands)
    assert all("acquisition" in c.warnings[0] for c in cands)


def test_enhanced_multiframe(tmp_path):
    t = write_enhanced_ct(tmp_path / "mf" / "enhanced.dcm")
    vol = surgtwin.load_volume(tmp_path / "mf")
    np.testing.assert_array_equal(vol.array, t.hu)
    np.testing.assert_allclose(vol.affine[:3, 3], t.positions[0])
    np.testing.assert_allclose(vol.spacing_mm, [2.5, 0.9, 0.8])


def test_single_file_path_loads_its_series_member(tmp_path):
    t = write_series(tmp_path / "s", shape=(3, 8, 8))
    vol = surgtwin.load_volume(t.files[0])
    assert vol.shape == (1, 8, 8)


def test_header_scan_speed_smoke(tmp_path):
    """Not a timed test: checks the lean scanner handled the files (no pydicom fallback needed)."""
    t = write_series(tmp_path / "s", shape=(5, 8, 8))
    from surgtwin.core.dicom.header import read_headers

    h = read_headers(str(t.files[0]))[0]
    assert h.pixel_offset is not None and h.rows == 8 and h.position is not None
