"""Reading a label image and its label table: the one set of rules the CLI, the app and cases share.

* **Label table** (names, colours, codes): ``table_path`` when given; else ``<stem>.json`` beside the
  label image (what ``surgtwin segment`` writes, e.g. ``seg.nii.gz`` -> ``seg.json``); else
  ``labels.json`` in the same folder (the sample cases); else none.
* **Values without a table entry** get the name ``label_<value>`` and a palette colour; table
  entries without voxels are kept (a structure may be absent from a scan).
* **Values** must be whole numbers in 0..65535: a float image with fractional values (the CT picked
  by mistake) or negative values is refused with the reason. Whole-valued floats are accepted.
* **Grid**: with a ``reference`` volume, a label image on another grid is resampled onto it
  (nearest neighbour) and the label map says so in ``metadata["warnings"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import report

#: colours of labels that have no table entry
PALETTE = [(230, 90, 80), (90, 170, 230), (240, 200, 80), (120, 200, 120), (200, 120, 220),
           (250, 150, 60), (80, 200, 200), (220, 220, 220)]


def default_color(value: int) -> tuple[int, int, int]:
    return PALETTE[(int(value) - 1) % len(PALETTE)]


def table_path_for(labels_path) -> Path | None:
    """The label table that belongs to ``labels_path`` by the search order above (None if none)."""
    p = Path(labels_path)
    stem = p.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    for cand in (p.with_name(stem + ".json"), p.parent / "labels.json"):
        if cand.is_file():
            return cand
    return None


def integer_labels(array: np.ndarray, *, source) -> np.ndarray:
    """``array`` as uint8/uint16 label values, refusing fractional, negative or too large values."""
    a = np.asarray(array)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise SurgtwinError("the label image holds NaN or infinite values", path=source)
        if not np.all(np.equal(np.mod(a, 1), 0)):
            raise SurgtwinError("the label image has non-integer values", path=source,
                                hint="is this the CT rather than the labels?")
    elif a.dtype.kind not in "iub":
        raise SurgtwinError(f"the label image holds {a.dtype} values, not integers", path=source)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo < 0 or hi > 65535:
        raise SurgtwinError(f"label values must lie in 0..65535, found {lo:g}..{hi:g}", path=source)
    return a.astype(np.uint8 if hi < 256 else np.uint16)


def read_labelmap(path, *, reference=None, table_path=None, progress=None, cancel=None):
    """A ``LabelMap`` from a label image (NIfTI/NRRD/MHA), on ``reference``'s grid when given."""
    from surgtwin.core.io import load_volume
    from surgtwin.core.types import Label, LabelMap, LabelTable

    path = Path(path)
    report(progress, 0.1, f"reading {path.name}")
    vol = load_volume(path, cancel=cancel)
    arr = integer_labels(vol.array, source=path)
    warnings = []
    affine, frame = vol.affine, vol.frame_of_reference_uid
    if reference is not None and not vol.same_geometry(reference, atol_mm=0.05):
        from surgtwin.core.geometry import resample_to

        report(progress, 0.5, "resampling labels onto the image grid")
        vol = resample_to(vol.with_array(arr), reference, interpolation="nearest")
        arr = integer_labels(vol.array, source=path)
        warnings.append(f"{path.name} was on another grid and was resampled onto the image (nearest neighbour)")
    if reference is not None:
        affine, frame = reference.affine.copy(), reference.frame_of_reference_uid
    tpath = Path(table_path) if table_path is not None else table_path_for(path)
    table = LabelTable.load(tpath) if tpath is not None else LabelTable()
    for v in np.unique(arr):
        if v > 0 and int(v) not in table:
            table.add(Label(int(v), f"label_{int(v)}", default_color(int(v))))
    report(progress, 1.0, "labels loaded")
    meta = {"warnings": warnings, "path": str(path)}
    return LabelMap(arr, affine, frame, None, meta, labels=table)
