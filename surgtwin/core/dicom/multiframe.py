"""Headers from a full pydicom dataset: single-frame fallbacks and multi-frame (enhanced) objects.

Enhanced CT/MR keep geometry and rescale per frame in functional-group sequences; each frame becomes
its own ``SliceHeader`` (``frame_index`` set) so that grouping and sorting treat frames like slices.
"""

from __future__ import annotations

from surgtwin.core.dicom.header import SliceHeader


def _num(value, cast=float):
    if value is None or value == "":
        return None
    try:
        return cast(value)
    except (TypeError, ValueError):
        return None


def _nums(value):
    if value is None or value == "":
        return None
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None


def _first(ds, seq_name):
    seq = ds.get(seq_name)
    if seq is not None and len(seq) > 0:
        return seq[0]
    return None


def _base_header(ds, path: str) -> SliceHeader:
    h = SliceHeader(path=path)
    fm = getattr(ds, "file_meta", None)
    h.transfer_syntax = str(fm.get("TransferSyntaxUID", "")) if fm is not None else ""
    h.sop_class_uid = str(ds.get("SOPClassUID", ""))
    h.sop_instance_uid = str(ds.get("SOPInstanceUID", ""))
    h.modality = str(ds.get("Modality", ""))
    h.series_description = str(ds.get("SeriesDescription", ""))
    it = ds.get("ImageType")
    h.image_type = tuple(str(v) for v in it) if it is not None and not isinstance(it, str) else (
        (str(it),) if it else ()
    )
    h.study_uid = str(ds.get("StudyInstanceUID", ""))
    h.series_uid = str(ds.get("SeriesInstanceUID", ""))
    h.series_number = _num(ds.get("SeriesNumber"), int)
    h.acquisition_number = _num(ds.get("AcquisitionNumber"), int)
    h.instance_number = _num(ds.get("InstanceNumber"), int)
    h.frame_of_reference_uid = str(ds.get("FrameOfReferenceUID", ""))
    h.position = _nums(ds.get("ImagePositionPatient"))
    h.orientation = _nums(ds.get("ImageOrientationPatient"))
    h.pixel_spacing = _nums(ds.get("PixelSpacing"))
    h.slice_thickness = _num(ds.get("SliceThickness"))
    h.gantry_tilt = _num(ds.get("GantryDetectorTilt"))
    h.rows = _num(ds.get("Rows"), int)
    h.columns = _num(ds.get("Columns"), int)
    h.samples_per_pixel = _num(ds.get("SamplesPerPixel"), int) or 1
    h.photometric = str(ds.get("PhotometricInterpretation", ""))
    h.number_of_frames = _num(ds.get("NumberOfFrames"), int) or 1
    h.bits_allocated = _num(ds.get("BitsAllocated"), int)
    h.bits_stored = _num(ds.get("BitsStored"), int)
    h.pixel_representation = _num(ds.get("PixelRepresentation"), int) or 0
    h.rescale_intercept = _num(ds.get("RescaleIntercept")) or 0.0
    slope = _num(ds.get("RescaleSlope"))
    h.rescale_slope = 1.0 if slope is None else slope
    h.modality_lut = "ModalityLUTSequence" in ds
    h.has_pixels = "PixelData" in ds
    return h


def headers_from_dataset(ds, path: str) -> list[SliceHeader]:
    from dataclasses import replace

    base = _base_header(ds, path)
    if base.number_of_frames <= 1:
        return [base]
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None or len(per_frame) != base.number_of_frames:
        # legacy multi-frame without per-frame positions: geometry cannot be known per frame
        return [replace(base, position=None, frame_index=i) for i in range(base.number_of_frames)]
    headers = []
    for i, frame in enumerate(per_frame):
        h = replace(base, frame_index=i, extra={})
        for groups in (shared, frame):
            if groups is None:
                continue
            pos = _first(groups, "PlanePositionSequence")
            if pos is not None and "ImagePositionPatient" in pos:
                h.position = _nums(pos.ImagePositionPatient)
            ori = _first(groups, "PlaneOrientationSequence")
            if ori is not None and "ImageOrientationPatient" in ori:
                h.orientation = _nums(ori.ImageOrientationPatient)
            meas = _first(groups, "PixelMeasuresSequence")
            if meas is not None:
                if "PixelSpacing" in meas:
                    h.pixel_spacing = _nums(meas.PixelSpacing)
                if "SliceThickness" in meas:
                    h.slice_thickness = _num(meas.SliceThickness)
            pvt = _first(groups, "PixelValueTransformationSequence")
            if pvt is not None:
                if "RescaleIntercept" in pvt:
                    h.rescale_intercept = _num(pvt.RescaleIntercept) or 0.0
                if "RescaleSlope" in pvt:
                    slope = _num(pvt.RescaleSlope)
                    h.rescale_slope = 1.0 if slope is None else slope
            ftype = _first(groups, "CTImageFrameTypeSequence") or _first(groups, "MRImageFrameTypeSequence")
            if ftype is not None and "FrameType" in ftype:
                h.image_type = tuple(str(v) for v in ftype.FrameType)
            content = _first(groups, "FrameContentSequence")
            if content is not None and "StackID" in content:
                h.extra["stack_id"] = str(content.StackID)
            if content is not None and "TemporalPositionIndex" in content:
                h.extra["temporal_index"] = int(content.TemporalPositionIndex)
        headers.append(h)
    return headers
