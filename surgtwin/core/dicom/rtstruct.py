"""Label maps as DICOM RT Structure Sets (RTSTRUCT), written with pydicom (highdicom has no RT module).

Each structure becomes an ROI whose contours are the outlines of its mask on every slice
(``skimage.measure.find_contours`` at 0.5 on the zero-padded slice, so a contour runs half a voxel
outside the voxel centres it encloses and a mask touching the image edge still gets a closed contour),
as CLOSED_PLANAR polygons in LPS mm, each referencing its CT slice's SOP instance. Holes are
contours of their own: a reader combines a slice's contours of one ROI by XOR (what
``rtstruct_import`` does). ROINumber is the surgtwin label value; the SNOMED code, where known, is
in RTROIIdentificationCodeSequence.

Written in Implicit VR Little Endian: Contour Data of a long outline exceeds the 64 KiB an explicit-VR
DS element can hold.
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.dicom import implicit_le as le
from surgtwin.core.dicom.structures import coded_category, coded_type
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import check, report

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
#: the SOP class RT objects conventionally put in RT Referenced Study Sequence
STUDY_COMPONENT_CLASS = "1.2.840.10008.3.1.2.3.1"
RTSTRUCT_SERIES_NUMBER = 9200
PATIENT_KEYWORDS = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
                    "PatientIdentityRemoved", "DeidentificationMethod")
TYPE2_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                  "ReferringPhysicianName", "StudyID", "AccessionNumber")
STUDY_KEYWORDS = ("StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                  "AccessionNumber", "StudyDescription")
#: contour simplification (pixels): 0 keeps every vertex find_contours makes except collinear ones
DEFAULT_TOLERANCE_PX = 0.0


def slice_contours(mask2d: np.ndarray, tolerance_px: float = DEFAULT_TOLERANCE_PX) -> list[np.ndarray]:
    """Closed outlines of a 2D mask as (N, 2) arrays of (row, column) indices, last point not repeated."""
    from skimage.measure import approximate_polygon, find_contours

    rows, cols = np.flatnonzero(mask2d.any(axis=1)), np.flatnonzero(mask2d.any(axis=0))
    if rows.size == 0:
        return []
    r0, c0 = int(rows[0]), int(cols[0])
    crop = np.asarray(mask2d[r0:int(rows[-1]) + 1, c0:int(cols[-1]) + 1], np.uint8)
    offset = np.array([r0 - 1.0, c0 - 1.0])  # the crop is padded by one pixel
    out = []
    for c in find_contours(np.pad(crop, 1), 0.5):
        c = approximate_polygon(c, tolerance=tolerance_px)
        if len(c) > 1 and c[0, 0] == c[-1, 0] and c[0, 1] == c[-1, 1]:
            c = c[:-1]
        if len(c) >= 3:
            out.append(c + offset)
    return out


def ds_text(values: np.ndarray) -> str:
    """Numbers as one backslash-separated DS value (2 decimals: 0.01 mm), built without pydicom's
    per-number objects (a structure set holds hundreds of thousands of numbers)."""
    text = "\\".join(map("{:.2f}".format, np.asarray(values, float).ravel().tolist()))
    return text.replace("-0.00", "0.00")


def dicom_now() -> tuple[str, str]:
    """(DA, TM) of the local time now."""
    from datetime import datetime

    now = datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def _item(**attrs):
    from pydicom.dataset import Dataset

    ds = Dataset()
    for k, v in attrs.items():
        setattr(ds, k, v)
    return ds


def _code_item(triple):
    value, scheme, meaning = triple
    return _item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning[:64])


def _base_dataset(source, series_uid: str, sop_uid: str, label: str):
    """File meta, SOP common, patient, study, RT series, equipment, frame of reference modules."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ImplicitVRLittleEndian

    from surgtwin.core.dicom.seg_export import MANUFACTURER, MODEL_NAME, software_version

    ref = source.headers[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds = _item()
    ds.file_meta = meta
    ds.SpecificCharacterSet = ref.get("SpecificCharacterSet", "ISO_IR 100")
    date, time = dicom_now()
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SOPClassUID = RTSTRUCT_SOP_CLASS
    ds.SOPInstanceUID = sop_uid
    for kw in (*PATIENT_KEYWORDS, *STUDY_KEYWORDS):
        if kw in ref:
            ds[kw] = ref[kw]
        elif kw in TYPE2_KEYWORDS:
            setattr(ds, kw, None)
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = RTSTRUCT_SERIES_NUMBER
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.SeriesDescription = "surgtwin structures"
    ds.OperatorsName = None
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = software_version()
    ds.FrameOfReferenceUID = source.frame_of_reference_uid
    ds.PositionReferenceIndicator = ref.get("PositionReferenceIndicator", None)
    ds.InstanceNumber = 1
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = label[:64]
    ds.StructureSetDate, ds.StructureSetTime = date, time
    return ds


def _roi_contour_item(value: int, color, contour_items: list[bytes]) -> bytes:
    elems = [le.text(0x3006002A, "\\".join(str(int(c)) for c in color))]
    if contour_items:
        elems.append(le.sequence(0x30060040, contour_items))  # ContourSequence
    elems.append(le.text(0x30060084, str(int(value))))  # ReferencedROINumber
    return le.item(*elems)


def _contour_item(ref: tuple[str, str], number: int, lps: np.ndarray) -> bytes:
    image = le.item(le.uid(0x00081150, ref[0]), le.uid(0x00081155, ref[1]))
    return le.item(le.sequence(0x30060016, [image]),  # ContourImageSequence
                   le.text(0x30060042, "CLOSED_PLANAR"),
                   le.text(0x30060046, str(len(lps))),  # NumberOfContourPoints
                   le.text(0x30060048, str(number)),  # ContourNumber
                   le.text(0x30060050, ds_text(lps)))  # ContourData


def build_rtstruct(labels, source, *, values: list[int], algorithm_kind: str = "MANUAL",
                   series_uid: str | None = None, label: str = "SURGTWIN",
                   tolerance_px: float = DEFAULT_TOLERANCE_PX, progress=None, cancel=None) -> tuple:
    """An RT Structure Set (a pydicom Dataset) of the structures ``values`` of ``labels`` on
    ``source``'s images (``labels`` on the source grid, slice ``k`` = ``source.headers[k]``).
    Returns ``(dataset, number_of_contours)``; the dataset must be saved Implicit VR Little Endian."""
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    if not values:
        raise SurgtwinError("there are no structures to export", hint="check the structure names")
    if labels.shape[0] != len(source.headers):
        raise SurgtwinError(f"the labels have {labels.shape[0]} slices, the source series {len(source.headers)}")
    ds = _base_dataset(source, series_uid or generate_uid(), generate_uid(), label)
    refs = list(zip(source.sop_class_uids, source.sop_instance_uids, strict=True))
    series = _item(SeriesInstanceUID=source.series_uid,
                   ContourImageSequence=Sequence([_item(ReferencedSOPClassUID=c, ReferencedSOPInstanceUID=u)
                                                  for c, u in refs]))
    study = _item(ReferencedSOPClassUID=STUDY_COMPONENT_CLASS, ReferencedSOPInstanceUID=source.study_uid,
                  RTReferencedSeriesSequence=Sequence([series]))
    ds.ReferencedFrameOfReferenceSequence = Sequence([_item(FrameOfReferenceUID=source.frame_of_reference_uid,
                                                            RTReferencedStudySequence=Sequence([study]))])
    A = labels.affine
    arr = labels.array
    rois, roi_contours, observations = [], [], []
    n_contours = 0
    for n, value in enumerate(values):
        check(cancel)
        lab = labels.labels[value] if value in labels.labels else None
        name = lab.name if lab is not None else f"label_{value}"
        rois.append(_item(ROINumber=int(value), ReferencedFrameOfReferenceUID=source.frame_of_reference_uid,
                          ROIName=name[:64], ROIGenerationAlgorithm=algorithm_kind))
        items: list[bytes] = []
        mask = arr == value
        for k in np.flatnonzero(mask.any(axis=(1, 2))):
            for c in slice_contours(mask[k], tolerance_px):
                kji = np.c_[np.full(len(c), float(k)), c]
                items.append(_contour_item(refs[k], len(items) + 1, kji @ A[:3, :3].T + A[:3, 3]))
        n_contours += len(items)
        roi_contours.append(_roi_contour_item(value, lab.color if lab is not None else (255, 0, 0), items))
        obs = _item(ObservationNumber=n + 1, ReferencedROINumber=int(value), ROIObservationLabel=name[:16],
                    RTROIInterpretedType="ORGAN" if coded_category(name)[0] != "49755003" else None,
                    ROIInterpreter=None)
        obs.RTROIIdentificationCodeSequence = Sequence([_code_item(coded_type(name, lab.code if lab else None))])
        observations.append(obs)
        report(progress, (n + 1) / len(values), f"contours of {name}")
    ds.StructureSetROISequence = Sequence(rois)
    ds[0x30060039] = le.raw_sequence(0x30060039, le.sequence_value(roi_contours))  # ROIContourSequence
    ds.RTROIObservationsSequence = Sequence(observations)
    return ds, n_contours
