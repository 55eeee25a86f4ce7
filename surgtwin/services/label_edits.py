"""Label-map edits as reversible diffs (no Qt): paint, erase, threshold paint, keep largest island, smooth.

Each function computes a ``LabelEdit`` (the bounding box it touches with the voxels before and after)
without changing the array; ``apply``/``revert`` write it. The UI wraps these in QUndoCommands, so
every edit is undoable and costs memory only for the box it touches. Indices are (k, j, i).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surgtwin.core.errors import SurgtwinError


@dataclass
class LabelEdit:
    description: str
    box: tuple[slice, slice, slice]
    before: np.ndarray
    after: np.ndarray

    @property
    def n_changed(self) -> int:
        return int(np.count_nonzero(self.before != self.after))

    def apply(self, array: np.ndarray) -> None:
        array[self.box] = self.after

    def revert(self, array: np.ndarray) -> None:
        array[self.box] = self.before


def _brush_box(shape, centre_kji, radius_vox, axis):
    box = []
    for ax in range(3):
        c = int(round(centre_kji[ax]))
        r = 0 if ax == axis else int(np.ceil(radius_vox[ax]))
        box.append(slice(max(0, c - r), min(shape[ax], c + r + 1)))
    return tuple(box)


def brush_mask(shape, spacing_mm, centre_kji, radius_mm: float, axis: int | None):
    """(box, mask) of a disc in the slice normal to array ``axis`` (a ball when ``axis`` is None)."""
    spacing = np.asarray(spacing_mm, dtype=float)
    radius_vox = radius_mm / spacing
    box = _brush_box(shape, centre_kji, radius_vox, axis)
    grids = np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij")
    d2 = sum(((g - centre_kji[ax]) * spacing[ax]) ** 2 for ax, g in enumerate(grids) if ax != axis)
    return box, d2 <= radius_mm**2 + 1e-9


def paint(labels: np.ndarray, spacing_mm, centre_kji, radius_mm: float, value: int, *, axis: int | None = 0,
          image: np.ndarray | None = None, hu_range: tuple[float, float] | None = None,
          overwrite: bool = True) -> LabelEdit:
    """Paint ``value`` in a disc/ball; with ``hu_range`` only where the image lies in [lo, hi] (threshold
    paint); with ``overwrite=False`` only over background. ``value=0`` erases."""
    if value < 0:
        raise SurgtwinError(f"label value must be >= 0, got {value}")
    box, mask = brush_mask(labels.shape, spacing_mm, centre_kji, radius_mm, axis)
    before = labels[box].copy()
    if hu_range is not None:
        if image is None:
            raise SurgtwinError("threshold paint needs the image")
        lo, hi = sorted(hu_range)
        im = image[box]
        mask &= (im >= lo) & (im <= hi)
    if not overwrite:
        mask &= before == 0
    after = before.copy()
    after[mask] = value
    kind = "Erase" if value == 0 else ("Threshold paint" if hu_range is not None else "Paint")
    return LabelEdit(kind, box, before, after)


def erase(labels: np.ndarray, spacing_mm, centre_kji, radius_mm: float, *, only_value: int | None = None,
          axis: int | None = 0) -> LabelEdit:
    """Set a disc/ball to background (only voxels of ``only_value`` when given)."""
    box, mask = brush_mask(labels.shape, spacing_mm, centre_kji, radius_mm, axis)
    before = labels[box].copy()
    if only_value is not None:
        mask &= before == only_value
    after = before.copy()
    after[mask] = 0
    return LabelEdit("Erase", box, before, after)


def merge(edits: list[LabelEdit], labels: np.ndarray, description: str) -> LabelEdit:
    """One edit covering a brush stroke (several edits applied in order on ``labels``' current state)."""
    if not edits:
        raise SurgtwinError("nothing to merge")
    box = tuple(slice(min(e.box[a].start for e in edits), max(e.box[a].stop for e in edits)) for a in range(3))
    # the edits are already applied on ``labels``: rebuild the state before them by reverting in reverse order
    now = labels[box].copy()
    original = now.copy()
    for e in reversed(edits):
        rel = tuple(slice(e.box[a].start - box[a].start, e.box[a].stop - box[a].start) for a in range(3))
        original[rel] = e.before
    return LabelEdit(description, box, original, now)


def _structure_box(labels: np.ndarray, value: int, pad: int = 0):
    from scipy import ndimage

    mask = labels == value
    objs = ndimage.find_objects(mask.astype(np.uint8))
    if not objs or objs[0] is None:
        raise SurgtwinError(f"label {value} is empty", hint="choose a structure that has voxels")
    return tuple(slice(max(0, s.start - pad), min(n, s.stop + pad)) for s, n in zip(objs[0], labels.shape,
                                                                                    strict=True))


def keep_largest_island(labels: np.ndarray, value: int) -> LabelEdit:
    """Remove every connected component (6-connectivity) of ``value`` but the largest."""
    from scipy import ndimage

    box = _structure_box(labels, value)
    before = labels[box].copy()
    comp, n = ndimage.label(before == value)
    after = before.copy()
    if n > 1:
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        after[(comp > 0) & (comp != int(np.argmax(sizes)))] = 0
    return LabelEdit("Keep largest island", box, before, after)


def smooth(labels: np.ndarray, value: int, *, radius_vox: int = 1) -> LabelEdit:
    """Morphological closing then opening of ``value`` (grows only into background)."""
    from scipy import ndimage

    r = int(radius_vox)
    box = _structure_box(labels, value, pad=r + 1)
    before = labels[box].copy()
    mask = before == value
    ball = ndimage.generate_binary_structure(3, 1)
    ball = ndimage.iterate_structure(ball, r)
    sm = ndimage.binary_opening(ndimage.binary_closing(mask, ball), ball)
    after = before.copy()
    after[mask & ~sm] = 0
    after[sm & ~mask & (before == 0)] = value
    return LabelEdit("Smooth", box, before, after)
