"""Classical segmentation that needs no model: bone and contrast-filled vessels from HU.

* Vessels: voxels in the contrast band ``vessel_hu`` (default 150–600 HU), thin bridges cut by an
  opening, then the connected component that contains ``seed_lps`` (a point in a vessel, e.g. in the
  aorta); without a seed, the largest component of the band that is not bone.
* Bone: voxels at or above ``bone_hu`` (default 300 HU) that are not the vessel, components smaller
  than ``min_bone_ml`` dropped; marrow (>= ``marrow_hu``) that the cortex encloses is added (after a
  small closing, in 3D and slice by slice), since trabecular bone and contrast overlap in HU.

Works on the source grid (no resampling), so the label map has exactly the input's geometry.
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import CancelToken, ProgressFn, check, report
from surgtwin.core.types import Label, LabelMap, LabelTable, Volume

BONE = Label(1, "bone", (241, 214, 145), "SCT:272673000")
VESSELS = Label(2, "vessels", (220, 60, 60), "SCT:59820001")

_CONN26 = np.ones((3, 3, 3), bool)


def _components(mask: np.ndarray):
    from scipy import ndimage

    return ndimage.label(mask, structure=_CONN26)


def segment_classical(
    volume: Volume,
    *,
    bone_hu: float = 300.0,
    vessel_hu: tuple[float, float] = (150.0, 600.0),
    seed_lps=None,
    vessels: bool = True,
    min_bone_ml: float = 1.0,
    marrow_hu: float = -100.0,
    max_marrow_radius_mm: float = 20.0,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> LabelMap:
    """Bone (label 1) and contrast vessels (label 2) of a CT volume in HU."""
    from scipy import ndimage

    hu = volume.array
    if not np.issubdtype(hu.dtype, np.number):
        raise SurgtwinError(f"the volume's voxels are not numbers ({hu.dtype})")
    lo, hi = float(vessel_hu[0]), float(vessel_hu[1])
    if not lo < hi:
        raise SurgtwinError(f"vessel_hu {vessel_hu} is empty", hint="give (low, high) HU with low < high")
    out = np.zeros(volume.shape, dtype=np.uint8)
    vessel = np.zeros(volume.shape, dtype=bool)
    report(progress, 0.05, "thresholding")
    dense = hu >= max(bone_hu, hi)  # surely bone (or metal): above the contrast band
    if vessels:
        band = (hu >= lo) & (hu < hi)
        check(cancel)
        # cut thin bridges (trabecular bone touching a vessel) and keep away from dense bone
        band &= ~ndimage.binary_dilation(dense, structure=_CONN26)
        band = ndimage.binary_opening(band, structure=ndimage.generate_binary_structure(3, 1))
        check(cancel)
        report(progress, 0.35, "vessel components")
        lab, n = _components(band)
        if n:
            if seed_lps is not None:
                idx = np.round(volume.world_to_index(np.asarray(seed_lps, float))).astype(int)
                if np.any(idx < 0) or np.any(idx >= np.asarray(volume.shape)):
                    raise SurgtwinError(f"the vessel seed {list(seed_lps)} (LPS mm) lies outside the volume",
                                        hint="pick a point inside the scan, e.g. in the aorta")
                win = tuple(slice(max(int(i) - 2, 0), int(i) + 3) for i in idx)
                cand = lab[win][lab[win] > 0]
                if cand.size == 0:
                    raise SurgtwinError(
                        f"no contrast-filled voxels ({lo:g}–{hi:g} HU) near the vessel seed {list(seed_lps)}",
                        hint="move the seed into a contrast-filled vessel, or adjust vessel_hu")
                keep = int(np.bincount(cand).argmax())
            else:
                sizes = np.bincount(lab.ravel())
                sizes[0] = 0
                keep = int(sizes.argmax())
            vessel = lab == keep
            # give back the rim the opening took off, inside the band
            vessel = ndimage.binary_dilation(vessel, structure=ndimage.generate_binary_structure(3, 1)) & (
                (hu >= lo) & (hu < hi))
    check(cancel)
    report(progress, 0.6, "bone components")
    bone = (hu >= bone_hu) & ~vessel
    lab, n = _components(bone)
    if n:
        sizes = np.bincount(lab.ravel()) * volume.voxel_volume_ml
        sizes[0] = 0
        bone = np.isin(lab, np.flatnonzero(sizes >= min_bone_ml))
        check(cancel)
        report(progress, 0.75, "filling marrow")
        # trabecular bone (150-300 HU) overlaps contrast blood in HU: take it only where the cortex
        # encloses it (closing seals small cortical gaps; holes filled in 3D and slice by slice)
        ball = ndimage.generate_binary_structure(3, 1)
        shell = ndimage.binary_closing(bone, structure=ball, iterations=2)
        filled = ndimage.binary_fill_holes(shell)
        for k in range(filled.shape[0]):
            filled[k] = ndimage.binary_fill_holes(filled[k])
        # a marrow cavity is narrow (femoral canal, vertebral body); a wide enclosed space is a body
        # cavity that bone happens to surround (the cranium around the brain, the pelvic ring in a slice)
        holes = filled & ~shell
        hole_lab, n_holes = ndimage.label(holes)
        if n_holes:
            depth = ndimage.distance_transform_edt(holes, sampling=volume.spacing_mm)
            max_depth = ndimage.maximum(depth, hole_lab, index=np.arange(1, n_holes + 1))
            narrow = np.flatnonzero(np.asarray(max_depth) <= max_marrow_radius_mm) + 1
            holes = np.isin(hole_lab, narrow)
        bone = (bone | ((shell | holes) & (hu >= marrow_hu))) & ~vessel
    out[bone] = BONE.value
    out[vessel] = VESSELS.value
    report(progress, 1.0, "done")
    return LabelMap(out, volume.affine.copy(), frame_of_reference_uid=volume.frame_of_reference_uid, modality="SEG",
                    metadata={"source": "surgtwin classical segmentation"}, labels=LabelTable([BONE, VESSELS]))
