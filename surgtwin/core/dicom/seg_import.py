"""A DICOM Segmentation (SEG) as a ``LabelMap`` on a case's grid (highdicom reads it).

* Frame of reference: must be the case's; anything else is refused (a SEG of another scan would land
  on the wrong anatomy).
* Segments become labels: name from SegmentLabel, colour from RecommendedDisplayCIELabValue, code from
  SegmentedPropertyTypeCodeSequence. The label value is the segment number, or the value surgtwin
  recorded in SegmentDescription when every segment has one (a round trip keeps the values).
* Geometry: each segment's volume (``Segmentation.get_volume``) is put on the case grid exactly when
  the grids share voxels (any slice order, a subset of slices), else resampled (nearest neighbour) with
  a warning. FRACTIONAL segments are thresholded at 0.5. Overlapping segments: the smaller wins.
"""

from __future__ import annotations

from pathlib import Path

from surgtwin.core.dicom.grid_placement import GridPlacement
from surgtwin.core.dicom.structures import (
    MAX_VALUE,
    VALUE_TAG,
    StructureMasks,
    clean_name,
    code_text,
    rgb_from_cielab,
)
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import check, report

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def check_frame_of_reference(uid: str | None, grid, path, what: str) -> None:
    """Refuse a ``what`` whose frame of reference is not ``grid``'s (or when either is unknown)."""
    if not grid.frame_of_reference_uid:
        raise SurgtwinError(f"the case's image has no DICOM frame of reference, so the {what} cannot be "
                            "placed on it safely", path=path,
                            hint="open the case from the DICOM series the segmentation was drawn on")
    if not uid:
        raise SurgtwinError(f"the {what} names no frame of reference", path=path,
                            hint="it cannot be placed on the image safely; export it again with its frame of reference")
    if str(uid) != str(grid.frame_of_reference_uid):
        raise SurgtwinError(f"the {what} belongs to another frame of reference than the case's image "
                            "(it was drawn on a different scan or registration)", path=path,
                            hint="open the case from the series it was drawn on, or register it to this scan first")


def _segment_values(segments) -> list[int]:
    """Label values for the segments: surgtwin's recorded values when all are present and valid."""
    numbers = [int(s.SegmentNumber) for s in segments]
    recorded = []
    for s in segments:
        text = str(s.get("SegmentDescription", "") or "")
        if not text.startswith(VALUE_TAG):
            return numbers
        try:
            recorded.append(int(text[len(VALUE_TAG):]))
        except ValueError:
            return numbers
    if len(set(recorded)) == len(recorded) and all(0 < v <= MAX_VALUE for v in recorded):
        return recorded
    return numbers


def read_seg(path, grid, *, progress=None, cancel=None):
    """The SEG file ``path`` as a ``LabelMap`` on ``grid`` (the case's image ``Volume``)."""
    import highdicom as hd
    import numpy as np

    path = Path(path)
    report(progress, 0.02, f"reading {path.name}")
    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # noqa: BLE001 - a bad file never ends in a traceback
        raise SurgtwinError(f"cannot read the file as a DICOM Segmentation ({type(exc).__name__}: "
                            f"{str(exc)[:120]})", path=path) from None
    check_frame_of_reference(seg.get("FrameOfReferenceUID"), grid, path, "segmentation")
    segments = list(seg.SegmentSequence)
    if not segments:
        raise SurgtwinError("the segmentation has no segments", path=path)
    if any(int(s.SegmentNumber) > MAX_VALUE for s in segments):
        raise SurgtwinError(f"segment numbers over {MAX_VALUE} do not fit a label map", path=path)
    values = _segment_values(segments)
    fractional = str(seg.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL"
    masks = StructureMasks(grid.shape)
    placements: dict = {}
    for n, (item, value) in enumerate(zip(segments, values, strict=True)):
        check(cancel)
        number = int(item.SegmentNumber)
        name = clean_name(item.get("SegmentLabel"), f"segment_{number}")
        code = None
        if item.get("SegmentedPropertyTypeCodeSequence"):
            c = item.SegmentedPropertyTypeCodeSequence[0]
            code = code_text(c.get("CodeValue") or c.get("LongCodeValue"), c.get("CodingSchemeDesignator"))
        color = rgb_from_cielab(item.RecommendedDisplayCIELabValue) if "RecommendedDisplayCIELabValue" in item else None
        mask = None
        try:
            vol = seg.get_volume(segment_numbers=[number], combine_segments=False)
        except Exception as exc:  # noqa: BLE001
            if _has_no_frames(seg, number):
                vol = None
            else:
                raise SurgtwinError(f"segment {number} ({name}): its frames do not form a regular 3D grid "
                                    f"({type(exc).__name__}: {str(exc)[:100]})", path=path,
                                    hint="only SEGs of parallel, evenly spaced slices can be imported") from None
        if vol is not None:
            arr = np.asarray(vol.array)
            arr = arr[..., 0] if arr.ndim == 4 else arr
            src_mask = arr >= 0.5 if fractional else arr > 0
            key = (np.round(np.asarray(vol.affine, float), 6).tobytes(), src_mask.shape)
            if key not in placements:
                placements[key] = GridPlacement.between(vol.affine, src_mask.shape, grid)
            mask, lost = placements[key].place(src_mask)
            if lost:
                masks.warnings.append(f"{name}: {lost} voxels lie outside the image and were left out")
        masks.add(value, name, mask, color=color, code=code)
        report(progress, 0.1 + 0.85 * (n + 1) / len(segments), f"segment {name}")
    notes = []
    if any(not p.exact for p in placements.values()):
        notes.append(f"{path.name} lies on another grid than the image and was resampled onto it (nearest neighbour)")
    report(progress, 1.0, "segmentation read")
    return masks.to_labelmap(grid, path=path, source="dicom-seg", notes=notes)


def _has_no_frames(seg, number: int) -> bool:
    """True when segment ``number`` has no frames (an empty segment, its frames omitted)."""
    try:
        for fg in seg.PerFrameFunctionalGroupsSequence:
            if int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber) == number:
                return False
        return True
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return False
