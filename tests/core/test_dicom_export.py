"""DICOM export (services.dicom_export): SEG, RTSTRUCT and Secondary Capture that reference the source,
round trips back into a label map, dciodvfy/dcmdump conformance, de-identification and refusals."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from surgtwin.core.case import Provenance
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.types import Label, LabelMap, LabelTable
from surgtwin.services import dicom_export, pipeline
from tests.dicom_factory import write_series

#: identifying values put into the source series (and searched for in every exported byte)
PHI = {"PatientName": "DOE^JANE^Q", "PatientID": "MRN-4711-XY", "PatientBirthDate": "19610412",
       "AccessionNumber": "ACC-998877", "InstitutionName": "St Example Hospital",
       "ReferringPhysicianName": "WHO^DOCTOR", "StudyDate": "20240229", "StudyID": "STUDY-31337",
       "OperatorsName": "OPERATOR^OLGA", "StationName": "CTSTATION7", "PatientComments": "lives at Elm St"}
RGB = np.dstack([np.tile(np.arange(48, dtype=np.uint8) * 5, (40, 1))] * 3)


def phi_series(folder: Path, *, shape=(10, 40, 36), orientation=(1, 0, 0, 0, 1, 0), **kw):
    """A small CT series (dicom_factory) with identifying values and a private element in every file."""
    truth = write_series(folder, shape=shape, orientation=orientation, name="phi", **kw)
    for f in truth.files:
        ds = pydicom.dcmread(f)
        for key, value in PHI.items():
            setattr(ds, key, value)
        ds.PatientSex = "F"
        ds.StudyTime = "083000"
        ds.add_new(0x00091010, "LO", "private note DOE")
        ds.save_as(f, enforce_file_format=True)
    return truth


def blob_labels(volume) -> LabelMap:
    """Three structures: a ring (a hole in it), a block touching the image edge, a one-voxel speck."""
    n, rows, cols = volume.shape
    k, j, i = np.meshgrid(np.arange(n), np.arange(rows), np.arange(cols), indexing="ij")
    arr = np.zeros(volume.shape, np.uint8)
    r2 = (j - rows / 2) ** 2 + (i - cols / 2) ** 2
    arr[(r2 < (0.35 * rows) ** 2) & (r2 > (0.15 * rows) ** 2) & (k >= 1) & (k < n - 1)] = 3
    arr[(j < 6) & (i >= cols - 8) & (k < n // 2)] = 7
    arr[n // 2, rows // 2, cols // 2] = 12
    table = LabelTable([Label(3, "liver", (200, 80, 60), "SCT:10200004"), Label(7, "kidney_left", (90, 170, 230)),
                        Label(12, "tumour", (250, 250, 0), "SCT:108369006")])
    return LabelMap(arr, volume.affine.copy(), volume.frame_of_reference_uid, None, {}, labels=table)


def small_case(tmp_path: Path, **kw):
    folder = tmp_path / "src" / "dicom"
    phi_series(folder, **kw)
    case = pipeline.new_case(folder)
    case.set_labels(blob_labels(case.volume), Provenance("manual"))
    return case


@pytest.fixture()
def case(tmp_path):
    return small_case(tmp_path)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def assert_same_labels(got: LabelMap, want: LabelMap) -> None:
    np.testing.assert_array_equal(got.array, want.array)
    assert np.abs(got.affine - want.affine).max() < 1e-4
    assert [(lab.value, lab.name, lab.code) for lab in got.labels] == [
        (lab.value, lab.name, lab.code) for lab in want.labels]


def test_seg_and_rtstruct_round_trip_exactly(case, tmp_path):
    res = dicom_export.export_dicom(case, tmp_path / "out", snapshots=[])
    assert [p.name for p in res.files["seg"]] == ["seg.dcm"] and [p.name for p in res.files["rtstruct"]] == [
        "rtstruct.dcm"]
    assert "ct" not in res.files and "sc" not in res.files and not res.deidentified
    assert res.counts["segments"] == res.counts["rois"] == 3 and res.counts["contours"] > 10
    seg_back = dicom_export.import_segmentation(case, res.files["seg"][0])
    assert_same_labels(seg_back, case.labels)
    assert [lab.color for lab in seg_back.labels] == [lab.color for lab in case.labels.labels]
    rt_back = dicom_export.import_segmentation(case, res.files["rtstruct"][0])
    # contours run through voxel-edge midpoints, so filling voxel centres inside gives the mask back
    for lab in case.labels.labels:
        assert dice(rt_back.mask(lab.value), case.labels.mask(lab.value)) == 1.0, lab.name
    assert_same_labels(rt_back, case.labels)
    assert rt_back.metadata["warnings"] == [] and seg_back.metadata["warnings"] == []


def test_empty_and_untabled_structures_round_trip(case, tmp_path):
    """A table entry without voxels (an absent organ) and voxels without a table entry both survive."""
    lab = case.labels
    table = LabelTable([*lab.labels, Label(20, "spleen", (1, 2, 3), "SCT:78961009")])
    arr = lab.array.copy()
    arr[0, 0, 0] = 33
    case.set_labels(LabelMap(arr, lab.affine, lab.frame_of_reference_uid, None, {}, labels=table), Provenance("manual"))
    res = dicom_export.export_dicom(case, tmp_path / "out", snapshots=[])
    for f in (res.files["seg"][0], res.files["rtstruct"][0]):
        back = dicom_export.import_segmentation(case, f)
        np.testing.assert_array_equal(back.array, arr)
        assert [(x.value, x.name) for x in back.labels] == [(3, "liver"), (7, "kidney_left"), (12, "tumour"),
                                                            (20, "spleen"), (33, "label_33")]
        assert back.metadata["warnings"] == ["empty in this image: spleen"]


def test_objects_reference_the_source(case, tmp_path):
    res = dicom_export.export_dicom(case, tmp_path / "out", snapshots=[("axial", RGB)])
    ct = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((tmp_path / "src" / "dicom").iterdir())]
    sops = {str(d.SOPInstanceUID) for d in ct}
    src = ct[0]
    seg = pydicom.dcmread(res.files["seg"][0])
    rt = pydicom.dcmread(res.files["rtstruct"][0])
    sc = pydicom.dcmread(res.files["sc"][0])
    for ds in (seg, rt, sc):
        assert ds.StudyInstanceUID == src.StudyInstanceUID
        assert ds.PatientID == src.PatientID
    assert seg.FrameOfReferenceUID == rt.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    assert {str(r.ReferencedSOPInstanceUID) for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence} <= sops
    ref = rt.ReferencedFrameOfReferenceSequence[0]
    assert ref.FrameOfReferenceUID == src.FrameOfReferenceUID
    series = ref.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == src.SeriesInstanceUID
    assert {str(r.ReferencedSOPInstanceUID) for r in series.ContourImageSequence} == sops
    contour_refs = {str(c.ContourImageSequence[0].ReferencedSOPInstanceUID)
                    for rc in rt.ROIContourSequence for c in rc.ContourSequence}
    assert contour_refs <= sops
    assert [int(r.ROINumber) for r in rt.StructureSetROISequence] == [3, 7, 12]
    assert {str(r.ReferencedSOPInstanceUID) for r in sc.SourceImageSequence} == sops
    assert sc.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    np.testing.assert_array_equal(sc.pixel_array, RGB)
    assert res.series_uids["seg"] == seg.SeriesInstanceUID and len(set(res.series_uids.values())) == 3


def test_oblique_source_round_trips(tmp_path):
    """A sagittal-ish oblique series (rows and slices not along LPS axes) still round-trips exactly."""
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    case = small_case(tmp_path, orientation=(0, c, s, 0, -s, c), shape=(8, 30, 28))
    res = dicom_export.export_dicom(case, tmp_path / "out", snapshots=[])
    for f in (res.files["seg"][0], res.files["rtstruct"][0]):
        assert_same_labels(dicom_export.import_segmentation(case, f), case.labels)


def test_structures_subset(case, tmp_path):
    res = dicom_export.export_dicom(case, tmp_path / "out", structures=["kidney_left"], snapshots=[])
    back = dicom_export.import_segmentation(case, res.files["seg"][0])
    assert back.labels.names() == ["kidney_left"]
    np.testing.assert_array_equal(back.mask("kidney_left"), case.labels.mask("kidney_left"))
    assert int((back.array > 0).sum()) == int(case.labels.mask("kidney_left").sum())
    with pytest.raises(SurgtwinError, match="no structure named 'spleen'"):
        dicom_export.export_dicom(case, tmp_path / "out2", structures=["spleen"], snapshots=[])


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_deidentified_export_has_no_phi_and_references_resolve(case, tmp_path):
    src_files = sorted((tmp_path / "src" / "dicom").iterdir())
    src = [pydicom.dcmread(p, stop_before_pixels=True) for p in src_files]
    secret_uids = {str(src[0].StudyInstanceUID), str(src[0].SeriesInstanceUID), str(src[0].FrameOfReferenceUID)}
    secret_uids |= {str(d.SOPInstanceUID) for d in src}
    res = dicom_export.export_dicom(case, tmp_path / "out", deidentify=True, snapshots=[("a", RGB), ("b", RGB)])
    files = _files(tmp_path / "out")
    assert len(files) == 2 + 2 + len(src_files) and len(res.files["ct"]) == len(src_files)
    needles = [v.encode() for v in PHI.values()] + [b"DOE", b"private note"]
    needles += [u.encode() for u in secret_uids]
    for f in files:
        data = f.read_bytes()
        leaked = [n.decode() for n in needles if n in data]
        assert not leaked, f"{f.name} holds {leaked}"
    ct = [pydicom.dcmread(p) for p in res.files["ct"]]
    seg = pydicom.dcmread(res.files["seg"][0])
    rt = pydicom.dcmread(res.files["rtstruct"][0])
    scs = [pydicom.dcmread(p) for p in res.files["sc"]]
    ct_sops = {str(d.SOPInstanceUID) for d in ct}
    assert len(ct_sops) == len(ct) and all(d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID for d in ct)
    for ds in (seg, rt, *scs, *ct):
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert ds.StudyInstanceUID == ct[0].StudyInstanceUID == res.study_uid
        assert ds.PatientName == ct[0].PatientName and ds.PatientID == ct[0].PatientID
        assert not ds.get("PatientBirthDate") and not ds.get("InstitutionName", "").startswith("St Example")
        assert all(not (e.tag.group % 2) for e in ds.iterall())  # no private elements
    assert seg.FrameOfReferenceUID == rt.FrameOfReferenceUID == ct[0].FrameOfReferenceUID == res.frame_of_reference_uid
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct[0].SeriesInstanceUID
    assert {str(r.ReferencedSOPInstanceUID) for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence} <= ct_sops
    series = rt.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ct[0].SeriesInstanceUID
    assert {str(r.ReferencedSOPInstanceUID) for r in series.ContourImageSequence} == ct_sops
    assert {str(c.ContourImageSequence[0].ReferencedSOPInstanceUID)
            for rc in rt.ROIContourSequence for c in rc.ContourSequence} <= ct_sops
    for sc in scs:
        assert {str(r.ReferencedSOPInstanceUID) for r in sc.SourceImageSequence} == ct_sops
    # the exported set is self-consistent: a case made from the exported CT takes the SEG back exactly
    case2 = pipeline.new_case(tmp_path / "out" / "ct")
    np.testing.assert_allclose(case2.volume.array, case.volume.array)
    back = dicom_export.import_segmentation(case2, res.files["seg"][0])
    np.testing.assert_array_equal(back.array, case.labels.array)
    np.testing.assert_array_equal(dicom_export.import_segmentation(case2, res.files["rtstruct"][0]).array,
                                  case.labels.array)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (CI installs dicom3tools and dcmtk)")
    return path


def _dciodvfy(exe: str, f: Path) -> tuple[list[str], list[str]]:
    out = subprocess.run([exe, str(f)], capture_output=True, text=True, timeout=60)
    lines = (out.stdout + out.stderr).splitlines()
    return [x for x in lines if x.startswith("Error")], [x for x in lines if x.startswith("Warning")]


@pytest.fixture()
def exported(tmp_path):
    """Every kind of object, de-identified, from a complete CT series (core.dicom.write)."""
    from surgtwin.core.dicom.write import write_ct_series
    from surgtwin.core.types import Volume

    vol = Volume(np.zeros((10, 40, 36), np.int16), np.diag([2.5, 0.8, 0.7, 1.0]), "1.2.826.0.1.3680043.8.498.77")
    write_ct_series(vol, tmp_path / "ct", patient_name="PHANTOM^EXPORT", patient_id="PHANTOM-EXPORT",
                    study_description="export test", series_description="export test", uid_seed="export",
                    body_part="ABDOMEN")
    case = pipeline.new_case(tmp_path / "ct")
    case.set_labels(blob_labels(case.volume), Provenance("manual"))
    res = dicom_export.export_dicom(case, tmp_path / "out", deidentify=True, snapshots=[("a", RGB)])
    return [res.files["seg"][0], res.files["rtstruct"][0], res.files["sc"][0], res.files["ct"][0]]


def test_dciodvfy_reports_no_errors(exported):
    exe = _tool("dciodvfy")
    for f in exported:
        errors, warnings = _dciodvfy(exe, f)
        assert not errors, f"{f.name}: {errors}"
        assert not warnings, f"{f.name}: {warnings}"  # measured: none for SEG, RTSTRUCT, SC and CT


def test_dciodvfy_deidentified_ct_adds_no_errors(case, tmp_path):
    """The factory's series lacks type 2 attributes; de-identifying it must not add problems."""
    exe = _tool("dciodvfy")
    res = dicom_export.export_dicom(case, tmp_path / "out", deidentify=True, snapshots=[("a", RGB)])
    src = sorted((tmp_path / "src" / "dicom").iterdir())[0]
    src_errors = {e for e in _dciodvfy(exe, src)[0] if "Dicom dataset contains" not in e}
    out_errors = {e for e in _dciodvfy(exe, res.files["ct"][0])[0] if "Dicom dataset contains" not in e}
    assert out_errors <= src_errors
    for f in (res.files["seg"][0], res.files["rtstruct"][0]):
        assert not _dciodvfy(exe, f)[0], f.name
    # without a body part in the source, the SC's laterality is unknown: an empty value, and a warning
    # (Study Time is never emptied: tests/core/test_deidentify_times.py)
    sc_errors, sc_warnings = _dciodvfy(exe, res.files["sc"][0])
    assert not sc_errors
    assert all("<Laterality>" in w for w in sc_warnings), sc_warnings


def test_dcmdump_reads_every_object(exported):
    exe = _tool("dcmdump")
    for f in exported:
        out = subprocess.run([exe, "-q", str(f)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{f.name}: {out.stderr[:300]}"
        assert "E:" not in out.stderr and "W:" not in out.stderr, f"{f.name}: {out.stderr[:300]}"


def test_refusals(case, tmp_path):
    # no labels
    bare = pipeline.new_case(tmp_path / "src" / "dicom")
    with pytest.raises(SurgtwinError, match="no labels"):
        dicom_export.export_dicom(bare, tmp_path / "o1", snapshots=[])
    # the output folder holds other files
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(SurgtwinError, match="not empty"):
        dicom_export.export_dicom(case, tmp_path / "busy", snapshots=[])
    # a bad snapshot leaves no partial output
    with pytest.raises(SurgtwinError, match="RGB uint8"):
        dicom_export.export_dicom(case, tmp_path / "o2", snapshots=[("grey", np.zeros((4, 4), np.uint8))])
    assert not (tmp_path / "o2").exists() and not list(tmp_path.glob(".o2.partial-*"))
    # the source series is gone
    shutil.move(tmp_path / "src", tmp_path / "moved")
    with pytest.raises(SurgtwinError, match="no longer on disk") as err:
        dicom_export.export_dicom(case, tmp_path / "o3", snapshots=[])
    assert "src" in str(err.value) and err.value.hint


def test_refuses_an_image_source_and_a_resampled_grid(tmp_path):
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_to_sitk

    case = small_case(tmp_path)
    sitk.WriteImage(volume_to_sitk(case.volume), str(tmp_path / "ct.nii.gz"))
    nifti = pipeline.new_case(tmp_path / "ct.nii.gz")
    nifti.set_labels(blob_labels(nifti.volume), Provenance("manual"))
    with pytest.raises(SurgtwinError, match="not made from a DICOM series"):
        dicom_export.export_dicom(nifti, tmp_path / "o1", snapshots=[])
    # uneven slices: the loader resamples onto a regular grid, so labels lie on no source slice
    folder = tmp_path / "uneven"
    phi_series(folder, positions_mm=[0, 2, 4, 6, 9, 11, 13, 15, 17, 19])
    uneven = pipeline.new_case(folder)
    uneven.set_labels(blob_labels(uneven.volume), Provenance("manual"))
    with pytest.raises(SurgtwinError, match="grid does not match its source"):
        dicom_export.export_dicom(uneven, tmp_path / "o2", snapshots=[])


def test_cancel_leaves_nothing(case, tmp_path):
    from surgtwin.core.progress import Cancelled, CancelToken

    token = CancelToken()
    seen = []

    def progress(f, msg):
        seen.append(msg)
        if "contours" in msg:
            token.cancel()

    with pytest.raises(Cancelled):
        dicom_export.export_dicom(case, tmp_path / "out", snapshots=[], progress=progress, cancel=token)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


def test_export_step_is_registered(case, tmp_path):
    out = pipeline.run_step(case, "export", out=tmp_path / "out", snapshots=False)
    assert out.summary["files"] == {"seg": 1, "rtstruct": 1} and out.summary["counts"]["segments"] == 3


@pytest.mark.slow  # ~15 s: a sample case's 13 structures, ~15 000 contours
def test_sample_case_round_trip(tmp_path):
    sample = next(s for s in pipeline.sample_cases() if s.name == "head")
    case = pipeline.new_case(sample.folder)
    res = dicom_export.export_dicom(case, tmp_path / "out", snapshots=[])
    assert_same_labels(dicom_export.import_segmentation(case, res.files["seg"][0]), case.labels)
    rt = dicom_export.import_segmentation(case, res.files["rtstruct"][0])
    worst = min(dice(rt.mask(lab.value), case.labels.mask(lab.value)) for lab in case.labels.labels)
    assert worst == 1.0  # measured: every structure comes back voxel for voxel
