"""An RT Structure Set (RTSTRUCT) as a ``LabelMap`` on a case's grid.

* Frame of reference: the structure set's, and each ROI's, must be the case's; refused otherwise.
* Each CLOSED_PLANAR contour is rasterised on the slice its plane lies on (``fill_polygon``: voxels
  whose centres lie inside, the rule of ``skimage.draw.polygon``). A contour whose points do not all lie within half a voxel of one
  slice of the grid (an oblique plane, a plane between or beyond the slices) is refused, naming the file
  and the ROI. A slice's contours of one ROI combine by XOR, so holes (inner contours) stay empty.
* POINT and OPEN_* contours mark no volume and are skipped with a warning.
* Label value = ROINumber when every ROI number fits 1..65535 (surgtwin writes the label value there),
  else the ROI's position 1..N. Name from ROIName, colour from ROIDisplayColor, code from
  RTROIIdentificationCodeSequence. Overlapping ROIs (an organ inside the body outline): the smaller wins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from surgtwin.core.dicom.seg_import import check_frame_of_reference
from surgtwin.core.dicom.structures import MAX_VALUE, StructureMasks, clean_name, code_text
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import check, report

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
#: how far (voxels) a contour's points may lie from the slice they are put on
PLANE_TOL_VOX = 0.5


def contour_points(item) -> np.ndarray:
    """ContourData as an (N, 3) float array, read from the raw bytes when pydicom has not parsed them
    (parsing hundreds of thousands of DS numbers one by one is slow)."""
    elem = item.get_item(0x30060050)
    if elem is None:
        return np.zeros((0, 3))
    value = elem.value
    if isinstance(value, bytes | bytearray):
        text = value.decode("ascii", "replace").strip(" \0")
        nums = np.array(text.split("\\"), dtype=float) if text else np.zeros(0)
    else:
        nums = np.asarray(item.ContourData if not isinstance(value, str) else value.split("\\"), dtype=float)
    if nums.size % 3:
        raise ValueError(f"{nums.size} numbers is not a whole number of points")
    return nums.reshape(-1, 3)


def _roi_values(rois) -> list[int]:
    numbers = []
    for r in rois:
        try:
            numbers.append(int(r.ROINumber))
        except (AttributeError, TypeError, ValueError):
            return list(range(1, len(rois) + 1))
    if len(set(numbers)) == len(numbers) and all(0 < v <= MAX_VALUE for v in numbers):
        return numbers
    return list(range(1, len(rois) + 1))


def _codes(ds) -> dict[str, str]:
    """ROI number (as text) -> code, from RTROIObservationsSequence."""
    out = {}
    for obs in ds.get("RTROIObservationsSequence", []):
        seq = obs.get("RTROIIdentificationCodeSequence")
        if seq:
            code = code_text(seq[0].get("CodeValue"), seq[0].get("CodingSchemeDesignator"))
            if code:
                out[str(obs.get("ReferencedROINumber"))] = code
    return out


def _color(rc):
    try:
        c = [int(v) for v in rc.ROIDisplayColor]
        return tuple(min(255, max(0, v)) for v in c) if len(c) == 3 else None
    except (AttributeError, TypeError, ValueError):
        return None


def _spans(y0, x0, y1, x1, n_rows: int, n_cols: int, upper: bool):
    """Row spans ``(j, start, end)`` (inclusive columns) of the even-odd fill, counting a vertex on a
    pixel-centre row with the edge below it (``upper=False``: rows lo <= j < hi) or above it
    (``upper=True``: lo < j <= hi). Each rule alone is a consistent fill; a centre on an edge is inside
    under one of them."""
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    if upper:
        j_first, j_last = np.floor(lo).astype(np.int64) + 1, np.floor(hi).astype(np.int64)
    else:
        j_first, j_last = np.ceil(lo).astype(np.int64), np.ceil(hi).astype(np.int64) - 1
    j_first, j_last = np.maximum(j_first, 0), np.minimum(j_last, n_rows - 1)
    counts = np.maximum(j_last - j_first + 1, 0)
    total = int(counts.sum())
    if total == 0:
        return None
    edge = np.repeat(np.arange(len(y0)), counts)
    j = j_first[edge] + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    x = x0[edge] + (j - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    order = np.lexsort((x, j))
    j, x = j[order], x[order]
    if len(j) % 2 or np.any(j[0::2] != j[1::2]):  # an open or degenerate ring: no defined inside
        return None
    jj, start, end = j[0::2], np.ceil(x[0::2]).astype(np.int64), np.floor(x[1::2]).astype(np.int64)
    start, end = np.maximum(start, 0), np.minimum(end, n_cols - 1)
    keep = start <= end
    return jj[keep], start[keep], end[keep]


def fill_polygon(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
    """``(box, mask)``: the pixels of a ``shape`` image whose centres lie inside the closed polygon or on
    its edges (``rows``, ``cols``: vertex coordinates in pixel indices; the rule of
    ``skimage.draw.polygon``), as a boolean ``mask`` over the 2D ``box`` (a tuple of slices);
    ``(None, None)`` when nothing is filled.

    An even-odd scanline fill over the crossings of each pixel-centre row with the edges: linear in the
    number of edges and filled pixels (``skimage.draw.polygon`` tests every pixel of the bounding box
    against every edge, ~100x slower on a body outline)."""
    y0, x0 = np.asarray(rows, float), np.asarray(cols, float)
    y1, x1 = np.r_[y0[1:], y0[:1]], np.r_[x0[1:], x0[:1]]
    parts = [p for p in (_spans(y0, x0, y1, x1, *shape, upper=u) for u in (False, True)) if p is not None]
    if not parts:
        return None, None
    jj, start, end = (np.concatenate(a) for a in zip(*parts, strict=True))
    if jj.size == 0:
        return None, None
    r0, r1, c0, c1 = int(jj.min()), int(jj.max()) + 1, int(start.min()), int(end.max()) + 1
    diff = np.zeros((r1 - r0, c1 - c0 + 1), np.int32)
    np.add.at(diff, (jj - r0, start - c0), 1)
    np.add.at(diff, (jj - r0, end + 1 - c0), -1)
    return (slice(r0, r1), slice(c0, c1)), np.cumsum(diff[:, :-1], axis=1) > 0


def rasterise_roi(contours, grid, *, path, roi_name: str) -> tuple[np.ndarray, int]:
    """``(mask, n_skipped)``: the ROI's CLOSED_PLANAR contours filled on ``grid``; other types skipped."""
    inv = np.linalg.inv(grid.affine)
    mask = np.zeros(grid.shape, bool)
    skipped = 0
    for n, c in enumerate(contours, start=1):
        kind = str(c.get("ContourGeometricType", "")).upper()
        if kind != "CLOSED_PLANAR":
            skipped += 1
            continue
        try:
            pts = contour_points(c)
        except (ValueError, TypeError) as exc:
            raise SurgtwinError(f"ROI {roi_name!r}, contour {n}: unreadable Contour Data ({exc})", path=path) from None
        if len(pts) < 3:
            continue
        kji = pts @ inv[:3, :3].T + inv[:3, 3]
        k = int(np.rint(0.5 * (kji[:, 0].min() + kji[:, 0].max())))
        off = float(np.max(np.abs(kji[:, 0] - k)))
        if off > PLANE_TOL_VOX:
            raise SurgtwinError(f"ROI {roi_name!r}, contour {n}: its plane does not lie on a slice of the image "
                                f"(its points lie up to {off:.2f} voxels off slice {k})", path=path,
                                hint="the structure set was drawn on another series or orientation; "
                                     "open the case from the series it references")
        if not 0 <= k < grid.shape[0]:
            raise SurgtwinError(f"ROI {roi_name!r}, contour {n}: its plane lies outside the image's slices "
                                f"(slice {k} of 0..{grid.shape[0] - 1})", path=path,
                                hint="open the case from the series the structure set references")
        box, fill = fill_polygon(kji[:, 1], kji[:, 2], grid.shape[1:])
        if box is not None:
            mask[k][box] ^= fill
    return mask, skipped


def read_rtstruct(path, grid, *, dataset=None, progress=None, cancel=None):
    """The RTSTRUCT file ``path`` as a ``LabelMap`` on ``grid`` (the case's image ``Volume``)."""
    import pydicom

    path = Path(path)
    report(progress, 0.02, f"reading {path.name}")
    ds = dataset
    if ds is None:
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as exc:  # noqa: BLE001 - a bad file never ends in a traceback
            raise SurgtwinError(f"cannot read the file as DICOM ({type(exc).__name__})", path=path) from None
    if str(ds.get("SOPClassUID", "")) != RTSTRUCT_SOP_CLASS:
        raise SurgtwinError("not an RT Structure Set", path=path)
    frames = [str(f.get("FrameOfReferenceUID", "")) for f in ds.get("ReferencedFrameOfReferenceSequence", [])]
    rois = list(ds.get("StructureSetROISequence", []))
    if not rois:
        raise SurgtwinError("the structure set has no ROIs", path=path)
    for r in rois:
        uid = str(r.get("ReferencedFrameOfReferenceUID", "") or (frames[0] if frames else ""))
        check_frame_of_reference(uid, grid, path, f"structure set's ROI {clean_name(r.get('ROIName'), '?')!r}")
    contours_by_roi = {str(rc.get("ReferencedROINumber")): rc for rc in ds.get("ROIContourSequence", [])}
    codes = _codes(ds)
    masks = StructureMasks(grid.shape)
    for n, (r, value) in enumerate(zip(rois, _roi_values(rois), strict=True)):
        check(cancel)
        key = str(r.get("ROINumber"))
        name = clean_name(r.get("ROIName"), f"roi_{key}")
        rc = contours_by_roi.get(key)
        mask, skipped = (None, 0) if rc is None else rasterise_roi(rc.get("ContourSequence", []), grid,
                                                                    path=path, roi_name=name)
        if skipped:
            masks.warnings.append(f"{name}: {skipped} contour(s) that are not CLOSED_PLANAR (points, open "
                                  "lines) mark no volume and were skipped")
        masks.add(value, name, mask, color=None if rc is None else _color(rc), code=codes.get(key))
        report(progress, 0.05 + 0.9 * (n + 1) / len(rois), f"ROI {name}")
    report(progress, 1.0, "structure set read")
    return masks.to_labelmap(grid, path=path, source="dicom-rtstruct")
