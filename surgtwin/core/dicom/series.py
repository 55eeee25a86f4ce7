"""Group slice headers into series candidates, sort them along the slice normal, and judge them.

Like a 3D Slicer DICOM plugin's ``examine``: every series becomes a ``SeriesCandidate`` with the
geometry it would load with, the warnings a user should read first, and — if it cannot be loaded as
a volume — the reason why. Nothing here reads pixel data.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.dicom.guard import (
    ESSENTIAL,
    MAX_COORD_MM,
    MAX_MATRIX,
    MAX_VOXELS,
    describe_failure,
    is_control,
    tag_label,
)
from surgtwin.core.dicom.header import SliceHeader
from surgtwin.core.dicom.pixels import pixel_module_problem
from surgtwin.core.geometry import affine_from_dicom, orientation_code, plane_name

_POS_TOL_MM = 0.01

NON_VOLUME_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "a DICOM SEG (segmentation) object; load it as a label map, not an image",
    "1.2.840.10008.5.1.4.1.1.481.3": "an RT Structure Set (contours), not an image",
    "1.2.840.10008.5.1.4.1.1.481.5": "an RT Plan, not an image",
    "1.2.840.10008.1.3.10": "a DICOMDIR index file, not an image",
    "1.2.840.10008.5.1.4.1.1.7": "a Secondary Capture (screenshot-like) image, not a volume",
}


@dataclass
class SeriesCandidate:
    """One loadable (or refused) image series. Patient-free: ``summary()`` holds no names or IDs."""

    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    modality: str
    description: str
    series_number: int | None
    headers: list[SliceHeader]
    rows: int
    columns: int
    warnings: list[str] = field(default_factory=list)
    refusal: str | None = None
    affine: np.ndarray | None = None  # (k, j, i) -> LPS of the volume as loaded
    #: positions (mm along the slice normal) of the sorted slices, and of the grid they load onto
    slice_positions_mm: np.ndarray | None = None
    target_positions_mm: np.ndarray | None = None
    tilt_deg: float = 0.0
    split_note: str = ""

    @property
    def loadable(self) -> bool:
        return self.refusal is None

    @property
    def n_files(self) -> int:
        return len({h.path for h in self.headers})

    @property
    def needs_resample(self) -> bool:
        return self.tilt_deg > 0 or (
            self.target_positions_mm is not None
            and self.slice_positions_mm is not None
            and (
                len(self.target_positions_mm) != len(self.slice_positions_mm)
                or not np.allclose(self.target_positions_mm, self.slice_positions_mm, atol=1e-3)
            )
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        n = len(self.target_positions_mm) if self.target_positions_mm is not None else len(self.headers)
        return (n, self.rows, self.columns)

    @property
    def spacing_mm(self) -> tuple[float, float, float] | None:
        if self.affine is None:
            return None
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore

    @property
    def orientation(self) -> str:
        o = self.headers[0].orientation
        return plane_name(o) if o is not None and len(o) == 6 else "unknown"

    @property
    def confidence(self) -> float:
        if not self.loadable:
            return 0.0
        return 0.95 if not self.warnings else 0.7

    def summary(self) -> dict:
        sp = self.spacing_mm
        return {
            "series_uid": self.series_uid,
            "series_number": self.series_number,
            "modality": self.modality,
            "description": self.description,
            "shape_slices_rows_cols": list(self.shape),
            "spacing_mm_slice_row_col": None if sp is None else [round(s, 4) for s in sp],
            "orientation": self.orientation,
            "orientation_code": None if self.affine is None else orientation_code(self.affine),
            "files": self.n_files,
            "frames": len(self.headers),
            "loadable": self.loadable,
            "refusal": self.refusal,
            "warnings": list(self.warnings),
        }


def _refuse(c: SeriesCandidate, reason: str) -> SeriesCandidate:
    c.refusal = reason
    return c


def _split_key(h: SliceHeader):
    o = tuple(np.round(h.orientation, 3)) if h.orientation and len(h.orientation) == 6 else None
    ps = tuple(np.round(h.pixel_spacing, 4)) if h.pixel_spacing else None
    localizer = any(t.upper() == "LOCALIZER" for t in h.image_type)
    return (o, h.rows, h.columns, ps, localizer, h.bits_allocated, h.pixel_representation, h.samples_per_pixel)


def group_series(headers: list[SliceHeader]) -> list[SeriesCandidate]:
    """Group by SeriesInstanceUID, split by orientation/size/spacing/acquisition, judge each part."""
    by_uid: dict[str, list[SliceHeader]] = defaultdict(list)
    for h in headers:
        by_uid[h.series_uid].append(h)
    out: list[SeriesCandidate] = []
    for uid, hs in by_uid.items():
        try:
            out.extend(_group_one(uid, hs))
        except BaseException as exc:  # noqa: BLE001 - one odd series never breaks the scan of the others
            if is_control(exc):
                raise
            out.append(_refuse(_candidate(uid, hs), f"{hs[0].path}: the series could not be examined "
                                                    f"({describe_failure(exc)})"))
    out.sort(key=lambda c: (not c.loadable, -len(c.headers), c.series_number or 0))
    return out


def _geometry_ok(h: SliceHeader) -> bool:
    return bool(h.orientation and h.position and h.pixel_spacing)


def _group_one(uid: str, hs: list[SliceHeader]) -> list[SeriesCandidate]:
    out: list[SeriesCandidate] = []
    for h in hs:
        essential = [k for k in h.malformed if k in ESSENTIAL]
        if essential:  # a corrupt value in one file: the series is refused, never loaded around it
            c = _candidate(uid, hs)
            _warn_malformed(c)
            return [_refuse(c, f"{h.path}: {tag_label(essential[0])} is malformed (unreadable, not finite or "
                               "out of range)")]
    bad = [h for h in hs if not _geometry_ok(h)]
    if bad and len(bad) < len(hs):
        # some files of the series lack geometry: never load the rest as if nothing were missing
        h = bad[0]
        tag = ("ImageOrientationPatient (0020,0037)" if not h.orientation else
               "ImagePositionPatient (0020,0032)" if not h.position else "PixelSpacing (0028,0030)")
        c = _candidate(uid, hs)
        _warn_malformed(c)
        return [_refuse(c, f"{h.path}: {tag} missing, malformed or out of range "
                           f"({len(bad)} of {len(hs)} files of the series)")]
    parts: dict = defaultdict(list)
    for h in hs:
        parts[_split_key(h)].append(h)
    notes = []
    if len(parts) > 1:
        notes = [f"part {i + 1} of {len(parts)} (series mixes orientations or image sizes)" for i in range(len(parts))]
    for i, part in enumerate(parts.values()):
        for c in _split_acquisitions(uid, part):
            if notes:
                c.split_note = notes[i]
                c.warnings.insert(0, f"series split: {notes[i]}")
            out.extend(_split_large_gaps(_examine(c)))
    return out


def _candidate(uid: str, hs: list[SliceHeader]) -> SeriesCandidate:
    h0 = hs[0]
    return SeriesCandidate(
        series_uid=uid,
        study_uid=h0.study_uid,
        frame_of_reference_uid=h0.frame_of_reference_uid,
        modality=h0.modality,
        description=h0.series_description,
        series_number=h0.series_number,
        headers=list(hs),
        rows=int(h0.rows or 0),
        columns=int(h0.columns or 0),
    )


def _normal(h: SliceHeader) -> np.ndarray:
    o = np.asarray(h.orientation, dtype=np.float64)
    return np.cross(o[:3], o[3:6])


def _split_acquisitions(uid: str, hs: list[SliceHeader]) -> list[SeriesCandidate]:
    """Several acquisitions (or temporal positions) at the same positions become separate volumes."""
    h0 = hs[0]
    if h0.orientation is None or len(h0.orientation) != 6 or any(not _position_ok(h) for h in hs):
        return [_candidate(uid, hs)]
    n = _normal(h0)
    s = np.round(np.array([np.dot(n, h.position) for h in hs]) / _POS_TOL_MM).astype(np.int64)
    if len(np.unique(s)) == len(s):
        return [_candidate(uid, hs)]
    for key in ("temporal_index", "stack_id"):
        values = [h.extra.get(key) for h in hs]
        if None not in values and len(set(values)) > 1:
            return _split_by(uid, hs, lambda h, k=key: h.extra[k], key.replace("_", " "))
    acq = [h.acquisition_number for h in hs]
    if None not in acq and len(set(acq)) > 1:
        groups = _split_by(uid, hs, lambda h: h.acquisition_number, "acquisition")
        if all(_unique_positions(g.headers, n) for g in groups):
            return groups
    return [_candidate(uid, hs)]


def _position_ok(h: SliceHeader) -> bool:
    p = h.position
    return p is not None and len(p) == 3 and all(math.isfinite(v) and abs(v) <= MAX_COORD_MM for v in p)


def _unique_positions(hs, n) -> bool:
    s = np.round(np.array([np.dot(n, h.position) for h in hs]) / _POS_TOL_MM).astype(np.int64)
    return len(np.unique(s)) == len(s)


def _split_by(uid, hs, key, what) -> list[SeriesCandidate]:
    groups: dict = defaultdict(list)
    for h in hs:
        groups[key(h)].append(h)
    out = []
    for value, g in sorted(groups.items(), key=lambda kv: str(kv[0])):
        c = _candidate(uid, g)
        c.split_note = f"{what} {value}"
        c.warnings.append(f"series split by {what}: this volume is {what} {value} of {len(groups)}")
        out.append(c)
    return out


#: a gap missing more slices than this (or more than a quarter of the series) is not interpolated:
#: the series is split there into separate candidates instead
MAX_FILLED_SLICES_PER_GAP = 5


def _gap_cuts(s: np.ndarray) -> np.ndarray:
    """Indices after which a gap is too large to fill (floats: a gap of 1e15 mm never overflows)."""
    d = np.diff(s)
    missing = np.rint(d / float(np.median(d))) - 1
    limit = min(MAX_FILLED_SLICES_PER_GAP, max(1, len(s) // 4))
    return np.nonzero(missing > limit)[0]


def _split_large_gaps(c: SeriesCandidate) -> list[SeriesCandidate]:
    if not c.loadable or c.slice_positions_mm is None or len(c.headers) < 2:
        return [c]
    s = c.slice_positions_mm
    d = np.diff(s)
    cuts = _gap_cuts(s)
    if not len(cuts):
        return [c]
    pieces, start = [], 0
    for cut in [*cuts.tolist(), len(s) - 1]:
        pieces.append((start, cut + 1))
        start = cut + 1
    out = []
    for n_piece, (a, b) in enumerate(pieces, 1):
        part = _candidate(c.series_uid, c.headers[a:b])
        part.split_note = f"contiguous part {n_piece} of {len(pieces)}"
        part.warnings = [w for w in c.warnings if not w.startswith(("gap in the series", "non-uniform"))]
        part = _examine(part)
        part.warnings.insert(0, (
            f"series split at large gap(s) ({', '.join(f'{d[k]:.1f} mm after {s[k]:.2f} mm' for k in cuts)}): "
            f"this is contiguous part {n_piece} of {len(pieces)}, {b - a} slice(s) from {s[a]:.2f} to {s[b - 1]:.2f} mm"
        ))
        out.append(part)
    return out


def _warn_malformed(c: SeriesCandidate) -> None:
    """Unreadable values of tags the volume does not depend on are ignored, but never silently."""
    counts = Counter(k for h in c.headers for k in h.malformed if k not in ESSENTIAL)
    for keyword, n in sorted(counts.items()):
        example = next(h.path for h in c.headers if keyword in h.malformed)
        c.warnings.append(f"{tag_label(keyword)} malformed in {n} file(s) (e.g. {example}); ignored")


def _finite(values, limit: float = MAX_COORD_MM) -> bool:
    return all(math.isfinite(v) and abs(v) <= limit for v in values)


def _header_problem(h: SliceHeader) -> str | None:
    """Geometry, rescale and pixel-length checks of one header (reasons name the tag)."""
    if h.extra.get("truncated"):
        return f"file is truncated or corrupt ({h.extra['truncated']})"
    if h.orientation is None or len(h.orientation) != 6 or not _finite(h.orientation, 1.5):
        return "ImageOrientationPatient (0020,0037) missing, malformed or not finite"
    if h.position is None or len(h.position) != 3 or not _finite(h.position):
        return "ImagePositionPatient (0020,0032) missing, malformed or out of range"
    if h.pixel_spacing is None or len(h.pixel_spacing) != 2 or not _finite(h.pixel_spacing) or min(h.pixel_spacing) <= 0:
        return "PixelSpacing (0028,0030) missing, not finite or not positive"
    if not _finite((h.rescale_slope, h.rescale_intercept), math.inf):
        return "RescaleSlope (0028,1053) / RescaleIntercept (0028,1052) not finite"
    if h.rescale_slope == 0:
        return "RescaleSlope (0028,1053) is 0"
    if h.pixel_offset is not None and h.pixel_length is not None:
        need = (h.rows or 0) * (h.columns or 0) * ((h.bits_allocated or 16) // 8)
        if h.pixel_length < need:
            return f"pixel data holds {h.pixel_length} bytes, the image needs {need}"
    return None


def _examine(c: SeriesCandidate) -> SeriesCandidate:  # noqa: C901 - a checklist reads best flat
    hs = c.headers
    h0 = hs[0]
    first = h0.path
    _warn_malformed(c)
    if h0.sop_class_uid in NON_VOLUME_SOP_CLASSES:
        return _refuse(c, f"{first} is {NON_VOLUME_SOP_CLASSES[h0.sop_class_uid]}")
    if not any(h.has_pixels for h in hs):
        return _refuse(c, f"no pixel data ({first} is a non-image object)")
    if any(t.upper() == "LOCALIZER" for t in h0.image_type):
        return _refuse(c, "localizer/scout image (ImageType LOCALIZER): a planning view, not a 3D volume")
    for h in hs:
        problem = pixel_module_problem(h)
        if problem is not None:
            return _refuse(c, f"{h.path}: {problem}")
    if c.rows > MAX_MATRIX or c.columns > MAX_MATRIX or c.rows * c.columns * len(hs) > MAX_VOXELS:
        return _refuse(
            c,
            f"{first}: absurd image size {c.rows}x{c.columns}x{len(hs)} "
            f"(limit {MAX_MATRIX} per side, {MAX_VOXELS} voxels); file header is probably corrupt",
        )
    projection = {"CR", "DX", "MG", "XA", "RF", "IO", "PX", "US", "ES", "XC", "OT", "SC"}
    if c.modality in projection and (h0.orientation is None or h0.position is None):
        return _refuse(c, f"a {c.modality} projection/2D image without 3D patient geometry: not a volume")
    for h in hs:
        reason = _header_problem(h)
        if reason is not None:
            return _refuse(c, f"{h.path}: {reason}")
    o = np.asarray(h0.orientation, dtype=np.float64)
    row, col = o[:3], o[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-2 or abs(np.linalg.norm(col) - 1) > 1e-2 or abs(row @ col) > 1e-2:
        return _refuse(c, f"{first}: ImageOrientationPatient is not two orthogonal unit vectors: {o.tolist()}")
    if h0.modality_lut:
        c.warnings.append("Modality LUT Sequence present and ignored; values use RescaleSlope/Intercept only")

    # duplicates and sort along the normal
    n = np.cross(row / np.linalg.norm(row), col / np.linalg.norm(col))
    seen, unique = set(), []
    for h in hs:
        key = (h.sop_instance_uid, h.frame_index) if h.sop_instance_uid else (h.path, h.frame_index)
        if key not in seen:
            seen.add(key)
            unique.append(h)
    if len(unique) < len(hs):
        c.warnings.append(f"{len(hs) - len(unique)} duplicate file(s) of the same SOP instance ignored")
    unique.sort(key=lambda h: (float(np.dot(n, h.position)), h.instance_number or 0))
    s = np.array([np.dot(n, h.position) for h in unique])
    keep = [0]
    for i in range(1, len(unique)):
        if abs(s[i] - s[keep[-1]]) > _POS_TOL_MM:
            keep.append(i)
    if len(keep) < len(unique):
        dropped = [unique[i] for i in range(len(unique)) if i not in set(keep)]
        c.warnings.append(
            f"{len(dropped)} slice(s) at an already-occupied position dropped "
            f"(e.g. {dropped[0].path} at {s[unique.index(dropped[0])]:.2f} mm)"
        )
    hs = [unique[i] for i in keep]
    s = s[keep]
    c.headers = hs
    spacing_rc = np.asarray(hs[0].pixel_spacing, dtype=np.float64)
    p0 = np.asarray(hs[0].position, dtype=np.float64)

    if len(hs) == 1:
        thick = hs[0].slice_thickness or 1.0
        c.warnings.append(f"single slice: a 1-slice volume with thickness {thick:g} mm")
        c.affine = affine_from_dicom(o, p0, spacing_rc, n * thick)
        c.slice_positions_mm = c.target_positions_mm = s
        return c

    # collinearity of positions and gantry tilt
    pos = np.array([h.position for h in hs], dtype=np.float64)
    span = s[-1] - s[0]
    step_vec = (pos[-1] - pos[0]) / span  # mm of position change per mm along the normal
    resid = pos - (pos[0] + np.outer(s - s[0], step_vec))
    if np.abs(resid).max() > max(0.05, 0.05 * np.median(np.diff(s))):
        worst = int(np.argmax(np.abs(resid).max(axis=1)))
        return _refuse(
            c,
            f"slice positions do not lie on one line (slice {hs[worst].path} is "
            f"{np.abs(resid[worst]).max():.2f} mm off); cannot form a regular volume",
        )
    tilt = float(np.degrees(np.arccos(min(1.0, 1.0 / np.linalg.norm(step_vec)))))
    if tilt > 0.01:
        c.tilt_deg = tilt
        c.warnings.append(
            f"gantry/detector tilt of {tilt:.2f} deg (slices sheared"
            + (f", GantryDetectorTilt={hs[0].gantry_tilt:g}" if hs[0].gantry_tilt else "")
            + "): resampled onto an orthogonal grid; voxels outside the scanned field are filled with the minimum value"
        )

    d = np.diff(s)
    med = float(np.median(d))
    target = s
    gaps = np.nonzero(d > 1.5 * med)[0]
    irregular = np.abs(d - med) > max(0.01 * med, 0.005)
    if len(gaps):
        for gi in gaps[:3]:
            missing = int(round(d[gi] / med)) - 1
            c.warnings.append(
                f"gap in the series: {d[gi]:.2f} mm between slices at {s[gi]:.2f} mm ({hs[gi].path}) and "
                f"{s[gi + 1]:.2f} mm ({hs[gi + 1].path}), about {missing} slice(s) missing; "
                f"the gap is filled by linear interpolation along the normal"
            )
        if len(gaps) > 3:
            c.warnings.append(f"... and {len(gaps) - 3} more gap(s)")
    if np.any(irregular):
        if not len(gaps) or np.any(irregular & (d <= 1.5 * med)):
            c.warnings.append(
                f"non-uniform slice spacing ({d.min():.3f}–{d.max():.3f} mm): resampled to a regular "
                f"{med:.3f} mm grid by linear interpolation along the normal"
            )
        count_f = span / med + 1
        if count_f > len(s) * (MAX_FILLED_SLICES_PER_GAP + 2) + 2:
            # a gap bigger than any that is filled: _split_large_gaps cuts the series there; never build this grid
            if not len(_gap_cuts(s)):
                return _refuse(c, f"a regular grid for these {len(s)} slices would need {count_f:.3g} slices "
                                  "(corrupt positions?)")
        else:
            count = int(round(span / med)) + 1
            if count * c.rows * c.columns > MAX_VOXELS:
                return _refuse(c, f"the resampled grid ({count}x{c.rows}x{c.columns}) is more than the "
                                  f"{MAX_VOXELS} voxels supported")
            target = s[0] + np.arange(count) * med
    c.slice_positions_mm = s
    c.target_positions_mm = target
    step = n * (target[1] - target[0] if len(target) > 1 else med)
    c.affine = affine_from_dicom(o, p0, spacing_rc, step)
    h_th = hs[0].slice_thickness
    if h_th and h_th > 1.5 * med and not len(gaps):
        c.warnings.append(f"overlapping slices: thickness {h_th:g} mm > spacing {med:.3g} mm")
    return c
