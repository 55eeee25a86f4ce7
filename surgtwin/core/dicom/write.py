"""Write a ``Volume`` of HU as a real CT Image Storage series (one file per slice).

Geometry follows ``surgtwin.core.types``: slice ``k``'s ImagePositionPatient is
``affine @ (k, 0, 0, 1)``; ImageOrientationPatient is (row cosine = affine column 2 normalised,
column cosine = affine column 1 normalised); PixelSpacing = [row spacing, column spacing] =
[|affine column 1|, |affine column 2|]. Output is deterministic: UIDs derive from ``uid_seed`` and
dates/times are fixed, so writing the same volume twice gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import report

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
#: our own implementation identity, so that files do not change with the pydicom version
IMPLEMENTATION_VERSION_NAME = "SURGTWIN_1"
FIXED_DATE = "20260101"
FIXED_TIME = "120000"


def _uid(seed: str, *parts) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(seed), *(str(p) for p in parts)]))


def _ds(value: float) -> str:
    """A DICOM decimal string (max 16 characters) with as many digits as fit."""
    v = float(value)
    if v == 0:
        return "0"
    for digits in range(10, 0, -1):
        s = f"{v:.{digits}f}".rstrip("0").rstrip(".")
        if s == "-0":
            s = "0"
        if len(s) <= 16:
            return s
    raise SurgtwinError(f"value {value} does not fit a DICOM decimal string")


def write_ct_series(volume, folder, *, patient_name: str, patient_id: str, study_description: str,
                    series_description: str, uid_seed: str, series_number: int = 1,
                    body_part: str | None = None, contrast_agent: str | None = None,
                    compress: bool = True, kvp: float = 120.0, window=(40.0, 400.0),
                    progress=None) -> list[Path]:
    """Write ``volume`` (HU, any integer/float dtype) to ``folder`` as ``IM%04d.dcm`` files.

    ``compress``: RLE Lossless transfer syntax (encoded by pydicom itself, deterministically);
    otherwise Explicit VR Little Endian. Stored values are HU + 1024 in 12 bits (0..4095), with
    RescaleIntercept -1024, RescaleSlope 1. Returns the written paths in slice order.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless

    arr = np.asarray(volume.array)
    if arr.ndim != 3:
        raise SurgtwinError(f"a CT series needs a 3D volume, got {arr.ndim} dimensions")
    A = np.asarray(volume.affine, float)
    spacing = np.linalg.norm(A[:3, :3], axis=0)
    row_cos = A[:3, 2] / spacing[2]
    col_cos = A[:3, 1] / spacing[1]
    if abs(float(row_cos @ col_cos)) > 1e-4:
        raise SurgtwinError("the volume's row and column axes are not orthogonal; DICOM needs them to be")
    normal = np.cross(row_cos, col_cos)
    if abs(abs(float(normal @ (A[:3, 0] / spacing[0]))) - 1.0) > 1e-4:
        raise SurgtwinError("the volume's slice axis is not perpendicular to its image plane (gantry tilt)",
                            hint="resample to an orthogonal grid before writing DICOM")
    if not patient_name.upper().startswith("PHANTOM^"):
        # this writer exists for synthetic data; refuse anything that might be a real person's name
        raise SurgtwinError(f"patient_name {patient_name!r} must start with 'PHANTOM^' (synthetic data only)")
    hu = np.rint(np.asarray(arr, dtype=np.float64))
    stored = np.clip(hu + 1024.0, 0, 4095).astype(np.uint16)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = _uid(uid_seed, "study")
    series_uid = _uid(uid_seed, "series", series_number)
    for_uid = volume.frame_of_reference_uid or _uid(uid_seed, "frame-of-reference")
    impl_uid = "1.2.826.0.1.3680043.8.498.1"  # pydicom's documented implementation root
    iop = [*row_cos, *col_cos]
    nz = arr.shape[0]
    paths = []
    for k in range(nz):
        pos = A[:3, :3] @ np.array([k, 0.0, 0.0]) + A[:3, 3]
        sop_uid = _uid(uid_seed, "image", series_number, k)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = impl_uid
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME

        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceCreationDate = FIXED_DATE
        ds.InstanceCreationTime = FIXED_TIME
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = FIXED_DATE
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = FIXED_TIME
        ds.AccessionNumber = ""
        ds.Modality = "CT"
        ds.Manufacturer = "surgtwin"
        ds.InstitutionName = "surgtwin synthetic phantom"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = study_description[:64]
        ds.SeriesDescription = series_description[:64]
        ds.ManufacturerModelName = "surgtwin.core.phantom"
        ds.PatientName = patient_name
        ds.PatientID = patient_id[:64]
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.PatientIdentityRemoved = "NO"
        ds.PatientComments = "Synthetic phantom: no real person's data."
        if contrast_agent:
            ds.ContrastBolusAgent = contrast_agent[:64]
        if body_part:
            ds.BodyPartExamined = body_part[:16]
        else:
            ds.Laterality = ""  # type 2C: unknown body part, so say "unpaired/unknown" explicitly
        ds.SliceThickness = _ds(spacing[0])
        ds.KVP = _ds(kvp)
        ds.SoftwareVersions = "surgtwin phantom"
        ds.ReconstructionDiameter = _ds(max(arr.shape[1] * spacing[1], arr.shape[2] * spacing[2]))
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = int(series_number)
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(v) for v in pos]
        ds.ImageOrientationPatient = [_ds(v) for v in iop]
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds(float(pos @ normal))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = int(arr.shape[1])
        ds.Columns = int(arr.shape[2])
        ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[2])]
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.WindowCenter = _ds(window[0])
        ds.WindowWidth = _ds(window[1])
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        frame = np.ascontiguousarray(stored[k])
        if compress:
            ds.compress(RLELossless, frame, encoding_plugin="pydicom", generate_instance_uid=False)
            ds.file_meta.ImplementationClassUID = impl_uid
            ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        else:
            ds.PixelData = frame.tobytes()
            ds["PixelData"].VR = "OW"
        path = folder / f"IM{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        if k % 16 == 0:
            report(progress, (k + 1) / nz, f"writing DICOM slice {k + 1}/{nz}")
    report(progress, 1.0, "DICOM series written")
    return paths
