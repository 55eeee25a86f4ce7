"""The CT series writer: valid DICOM (dciodvfy), geometry per the types.py convention, determinism."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from surgtwin.core.dicom.write import write_ct_series
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.types import Volume
from surgtwin.resources import sample_root

SAMPLES = sample_root()


def _volume(shape=(4, 24, 20)):
    rng = np.random.default_rng(0)
    arr = rng.integers(-1024, 2000, size=shape).astype(np.int16)
    aff = np.eye(4)
    aff[:3, 0] = [0, 0, 2.5]
    aff[:3, 1] = [0, 0.7, 0]
    aff[:3, 2] = [0.6, 0, 0]
    aff[:3, 3] = [-10.25, 20.5, -33.0]
    return Volume(arr, aff, modality="CT")


def _write(vol, folder, **kw):
    args = dict(patient_name="PHANTOM^TEST", patient_id="PHANTOM-TEST", study_description="study",
                series_description="series", uid_seed="unit-test")
    args.update(kw)
    return write_ct_series(vol, folder, **args)


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip_pixels_and_geometry(tmp_path, compress):
    pydicom = pytest.importorskip("pydicom")
    vol = _volume()
    paths = _write(vol, tmp_path, compress=compress)
    assert len(paths) == vol.shape[0]
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        hu = ds.pixel_array.astype(np.int32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.array_equal(hu, vol.array[k])
        assert np.allclose([float(v) for v in ds.ImagePositionPatient], vol.affine @ [k, 0, 0, 1][:4][:3]
                           if False else (vol.affine @ np.array([k, 0, 0, 1]))[:3])
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert [float(v) for v in ds.PixelSpacing] == [0.7, 0.6]
        assert float(ds.SliceThickness) == 2.5
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
        assert str(ds.PatientName).startswith("PHANTOM^")
    # SimpleITK gives back the same volume and affine
    sitk = pytest.importorskip("SimpleITK")
    from surgtwin.core.geometry import volume_from_sitk

    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(tmp_path)))
    back = volume_from_sitk(r.Execute())
    assert np.array_equal(back.array, vol.array)
    assert np.allclose(back.affine, vol.affine, atol=1e-6)


def test_uids_deterministic_and_seed_dependent(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    vol = _volume()
    a = _write(vol, tmp_path / "a")
    b = _write(vol, tmp_path / "b")
    c = _write(vol, tmp_path / "c", uid_seed="other")
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
    da, dc = pydicom.dcmread(a[0]), pydicom.dcmread(c[0])
    assert da.StudyInstanceUID != dc.StudyInstanceUID
    uids = {pydicom.dcmread(p).SOPInstanceUID for p in a}
    assert len(uids) == len(a)
    assert len({da.StudyInstanceUID, da.SeriesInstanceUID, da.FrameOfReferenceUID}) == 3


def test_refuses_real_looking_names_and_oblique_stacks(tmp_path):
    with pytest.raises(SurgtwinError, match="PHANTOM"):
        _write(_volume(), tmp_path, patient_name="Doe^John")
    vol = _volume()
    aff = vol.affine.copy()
    aff[:3, 0] = [0, 1.0, 2.5]  # gantry tilt
    with pytest.raises(SurgtwinError, match="perpendicular"):
        _write(Volume(vol.array, aff), tmp_path)


def _dciodvfy(path):
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return out.stdout + out.stderr


@pytest.mark.parametrize("compress", [True, False])
def test_dciodvfy_reports_no_errors(tmp_path, compress):
    paths = _write(_volume(), tmp_path, compress=compress)
    report = _dciodvfy(paths[1])
    assert "Error" not in report, report


@pytest.mark.parametrize("kind", ["abdomen-pelvis", "cardiac-cta", "head"])
def test_committed_series_valid_and_synthetic(kind):
    pydicom = pytest.importorskip("pydicom")
    files = sorted((SAMPLES / kind / "dicom").glob("*.dcm"))
    if not files:
        pytest.skip("sample cases not generated")
    for p in (files[0], files[len(files) // 2], files[-1]):
        report = _dciodvfy(p)
        assert "Error" not in report, f"{p}: {report}"
    series = set()
    for p in files:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        assert str(ds.PatientName).startswith("PHANTOM^"), p
        assert ds.Modality == "CT"
        series.add(ds.SeriesInstanceUID)
    assert len(series) == 1
