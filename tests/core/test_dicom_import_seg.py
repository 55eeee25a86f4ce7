"""DICOM SEG and RTSTRUCT written by other tools, read into a case's labels (services.dicom_export)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from surgtwin.core.case import Case, SourceRef
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.types import Volume
from surgtwin.services import dicom_export, pipeline
from tests.core.test_dicom_export import blob_labels, phi_series

#: pydicom's rtstruct.dcm (no file meta, written by "pydicom"): its frame of reference
PYDICOM_FOR = "1.2.826.0.1.3680043.8.498.2010020400001.2"


def rt_case(*, frame=PYDICOM_FOR, z0=-210.0, dz=10.0, n=6) -> Case:
    """An empty CT grid around pydicom's rtstruct.dcm: 5 mm voxels over x, y in -250..250, slices from z0."""
    affine = np.array([[0, 0, 5.0, -250], [0, 5.0, 0, -250], [dz, 0, 0, z0], [0, 0, 0, 1]])
    vol = Volume(np.zeros((n, 101, 101), np.int16), affine, frame, "CT")
    return Case(vol, SourceRef(kind="dicom", frame_of_reference_uid=frame))


def test_pydicom_rtstruct_imports():
    path = get_testdata_file("rtstruct.dcm")
    case = rt_case()
    assert dicom_export.segmentation_kind(path) == "rtstruct"
    lm = dicom_export.import_segmentation(case, path)
    assert lm.labels.names() == ["patient", "Isocenter 1", "Isocenter 2"]
    assert lm.labels.by_name("patient").color == (220, 160, 120)
    per_slice = lm.mask("patient").sum(axis=(1, 2))
    # slice z=-200: the rectangle x -200..200, y -150..150 mm: 81 x 61 voxel centres (centres on an edge
    # count, as in skimage.draw.polygon); z=-190 and -180: the same rectangle with a vertex mid-side
    assert per_slice.tolist() == [0, 81 * 61, 81 * 61, 81 * 61, 0, 0]
    assert any("Isocenter 1" in w and "not CLOSED_PLANAR" in w for w in lm.metadata["warnings"])
    assert any("empty in this image" in w and "Isocenter 2" in w for w in lm.metadata["warnings"])
    dicom_export.apply_segmentation(case, lm, path=path)
    assert case.labels.labels.names() == lm.labels.names()
    prov = case.item("labels").provenance
    assert prov.method == "import" and prov.parameters == {"format": "dicom-rtstruct", "file": "rtstruct.dcm"}


def test_rtstruct_refusals(tmp_path):
    path = get_testdata_file("rtstruct.dcm")
    with pytest.raises(SurgtwinError, match="another frame of reference") as err:
        dicom_export.import_segmentation(rt_case(frame="1.2.3.4"), path)
    assert "rtstruct.dcm" in str(err.value) and "patient" in str(err.value) and err.value.hint
    with pytest.raises(SurgtwinError, match="no DICOM frame of reference"):
        dicom_export.import_segmentation(rt_case(frame=None), path)
    # slices -260..-220: the contours at z=-200..-180 lie beyond the last one
    with pytest.raises(SurgtwinError, match="outside the image's slices") as err:
        dicom_export.import_segmentation(rt_case(z0=-260.0, n=5), path)
    assert "'patient'" in str(err.value) and "rtstruct.dcm" in str(err.value)
    # an oblique contour: its points lie on several slices
    ds = pydicom.dcmread(path, force=True)
    c = ds.ROIContourSequence[0].ContourSequence[0]
    pts = np.asarray(c.ContourData, float).reshape(-1, 3)
    pts[:, 2] += np.linspace(0, 12, len(pts))
    c.ContourData = [f"{v:.2f}" for v in pts.ravel()]
    bad = tmp_path / "oblique.dcm"
    ds.save_as(bad)
    with pytest.raises(SurgtwinError, match="does not lie on a slice") as err:
        dicom_export.import_segmentation(rt_case(), bad)
    assert "oblique.dcm" in str(err.value) and "'patient', contour 1" in str(err.value)


@pytest.fixture()
def ct(tmp_path):
    """A small CT series (reverse slice order in the files does not matter) and its case."""
    folder = tmp_path / "ct"
    phi_series(folder, shape=(8, 32, 30))
    case = pipeline.new_case(folder)
    files = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    order = np.argsort([float(d.ImagePositionPatient[2]) for d in files])
    return case, [files[i] for i in order]


def _highdicom_seg(sources, pixels, descriptions, **kw):
    import highdicom as hd
    from highdicom.seg import Segmentation

    return Segmentation(sources, pixels, kw.pop("segmentation_type", "BINARY"), descriptions, hd.UID(), 5, hd.UID(),
                        1, "other tool", "other model", "1.0", "42", **kw)


def _description(number, label, value, scheme, meaning, kind="AUTOMATIC"):
    import highdicom as hd
    from highdicom.seg import SegmentDescription
    from pydicom.sr.codedict import codes

    algo = hd.AlgorithmIdentificationSequence(name="other", family=codes.cid7162.ArtificialIntelligence, version="1")
    return SegmentDescription(number, label, codes.SCT.Organ, hd.sr.CodedConcept(value, scheme, meaning), kind,
                              algorithm_identification=algo)


def test_highdicom_seg_from_another_tool(ct, tmp_path):
    """A SEG built with highdicom's own API (as another tool would): two overlapping segments, slices in
    descending order, an SRT code; values become segment numbers, the smaller segment wins overlaps."""
    case, sources = ct
    n, rows, cols = case.volume.shape
    big = np.zeros((n, rows, cols), bool)
    big[1:7, 4:28, 5:25] = True
    small = np.zeros_like(big)
    small[3:5, 10:14, 10:16] = True
    pixels = np.stack([big, small], axis=-1).astype(np.uint8)[::-1]  # frames in descending slice order
    seg = _highdicom_seg(sources[::-1], pixels, [
        _description(1, "Body", "T-D0050", "SRT", "Tissue"),
        _description(2, "Liver lesion", "C3099", "NCIt", "Liver lesion")])
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    lm = dicom_export.import_segmentation(case, path)
    assert [(lab.value, lab.name, lab.code) for lab in lm.labels] == [
        (1, "Body", "SRT:T-D0050"), (2, "Liver lesion", "NCIt:C3099")]
    want = np.where(small, 2, np.where(big, 1, 0))
    np.testing.assert_array_equal(lm.array, want)
    assert any("Liver lesion overlaps Body" in w for w in lm.metadata["warnings"])


def test_fractional_seg_and_a_seg_on_other_slices(ct, tmp_path):
    """A FRACTIONAL SEG is thresholded at 0.5; one drawn on every other slice of a coarser series in the
    same frame of reference is resampled onto the case (nearest neighbour), with a warning."""
    case, sources = ct
    n, rows, cols = case.volume.shape
    prob = np.zeros((n, rows, cols), np.float32)
    prob[2:6, 8:20, 8:20] = 0.7
    prob[2:6, 20:24, 8:20] = 0.3
    seg = _highdicom_seg(sources, prob, [_description(1, "liver", "10200004", "SCT", "Liver")],
                         segmentation_type="FRACTIONAL")
    seg.save_as(tmp_path / "frac.dcm")
    lm = dicom_export.import_segmentation(case, tmp_path / "frac.dcm")
    np.testing.assert_array_equal(lm.array, (prob >= 0.5).astype(np.uint8))
    assert lm.labels[1].code == "SCT:10200004"
    # a coarser series of the same frame of reference (same factory name -> same FoR UID): 4 mm slices
    coarse = phi_series(tmp_path / "coarse", shape=(4, 16, 15), pixel_spacing=(1.6, 1.4), slice_spacing=4.0,
                        origin=(-10.0 + 0.4, -20.0 + 0.35, 30.0 + 1.0), seed=5)
    csrc = [pydicom.dcmread(p) for p in coarse.files]
    csrc.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    mask = np.zeros((4, 16, 15), np.uint8)
    mask[1:3, 4:10, 4:10] = 1
    _highdicom_seg(csrc, mask, [_description(1, "kidney", "64033007", "SCT", "Kidney")]).save_as(tmp_path / "c.dcm")
    lm2 = dicom_export.import_segmentation(case, tmp_path / "c.dcm")
    assert "resampled" in lm2.metadata["warnings"][0]
    # 2 coarse slices of 4 mm cover 4 fine slices of 2 mm; 6x6 coarse pixels cover 12x12 fine ones
    assert int(lm2.mask("kidney").sum()) == 4 * 12 * 12


def test_seg_refusals(ct, tmp_path):
    case, sources = ct
    arr = blob_labels(case.volume).array
    seg = _highdicom_seg(sources, (arr == 3).astype(np.uint8), [_description(1, "x", "10200004", "SCT", "Liver")])
    seg.FrameOfReferenceUID = "1.2.3.999"
    seg.save_as(tmp_path / "other_for.dcm")
    with pytest.raises(SurgtwinError, match="another frame of reference") as err:
        dicom_export.import_segmentation(case, tmp_path / "other_for.dcm")
    assert "other_for.dcm" in str(err.value) and err.value.hint
    with pytest.raises(SurgtwinError, match="not a DICOM Segmentation or RT Structure Set"):
        dicom_export.import_segmentation(case, sources[0].filename)
    (tmp_path / "junk.dcm").write_bytes(b"\0" * 300)
    with pytest.raises(SurgtwinError, match="junk.dcm"):
        dicom_export.import_segmentation(case, tmp_path / "junk.dcm")
    with pytest.raises(SurgtwinError, match="no such file"):
        dicom_export.import_segmentation(case, tmp_path / "missing.dcm")
