"""Contrast-filled vessels at the source resolution, after ``inference.to_source``: walls placed by
the scan's own lumen and surrounding HU, thin vessels followed along their lumen past what the 3 mm
model saw, and bright pieces enclosed by soft tissue taken as the vessels the network missed."""

from __future__ import annotations

import math

import numpy as np

from surgtwin.core.segmentation.inference import (
    HU_BIN_LO,
    HU_BIN_W,
    axis_map,
    label_hu_histogram,
    nearest_index,
)
from surgtwin.core.types import Volume

#: a contrast-bright piece at least this big (ml) lying wholly inside soft structures is a thin vessel
#: the network missed (seeds 9500-9501: head vessels 0.667 -> 0.708 at 5 voxels of 2.5 mm = 0.078 ml)
ENCLOSED_PIECE_ML = 0.075

#: HU below this is air or lung: left out of a vessel's lumen and surroundings statistics
AIR_LUNG_HU = -200.0


def _band_on_source(band: np.ndarray, grid: Volume, volume: Volume, margin: int):
    """The model-grid array ``band`` (0 = none) at each source voxel's nearest model voxel, on the
    source block that covers its non-zero part plus ``margin`` source voxels; (block slices, array)."""
    nz = np.nonzero(band)
    lo = [int(x.min()) for x in nz]
    hi = [int(x.max()) for x in nz]
    amap = axis_map(grid, volume)
    if amap is None:  # oblique: resample the whole band, then crop
        from surgtwin.core.geometry import resample_to

        empty = volume.with_array(np.zeros(volume.shape, np.uint8))
        full = resample_to(grid.with_array(band), empty, interpolation="nearest", default_value=0).array
        nzs = np.nonzero(full)
        if len(nzs[0]) == 0:
            return None, None
        block = tuple(slice(max(int(x.min()) - margin, 0), min(int(x.max()) + 1 + margin, n))
                      for x, n in zip(nzs, volume.shape, strict=True))
        return block, full[block]
    sub = np.pad(band[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1], 1).transpose(amap.inv)
    block, take = [], []
    for c in range(3):
        r = amap.inv[c]
        n = nearest_index(amap.coords[r])
        inside = (n >= lo[r]) & (n <= hi[r])
        sel = np.nonzero(inside)[0]
        if len(sel) == 0:
            return None, None
        blk = slice(max(int(sel.min()) - margin, 0), min(int(sel.max()) + 1 + margin, volume.shape[c]))
        block.append(blk)
        take.append(np.where(inside[blk], n[blk] - lo[r] + 1, 0))
    return tuple(block), np.ascontiguousarray(sub)[np.ix_(*take)]


def _label_hu_percentiles(lab: np.ndarray, hu: np.ndarray, qs, step: int = 2):
    """Per label value, HU percentiles ``qs`` (8 HU bins, every ``step``-th voxel; inf where absent)."""
    cum = np.cumsum(label_hu_histogram(lab, hu, int(lab.max()) + 1, step=step), axis=1)
    total = cum[:, -1:]
    out = []
    for q in qs:
        v = np.argmax(cum >= q * total, axis=1) * HU_BIN_W + HU_BIN_LO + HU_BIN_W / 2
        out.append(np.where(total[:, 0] > 0, v, np.inf))
    return out


def refine_contrast_vessels(src: np.ndarray, volume: Volume, grid: Volume, channels_grid: np.ndarray,
                            vessel_channels, *, min_contrast_hu: float = 100.0, grow_channels=(),
                            grow_mm: float = 0.0) -> np.ndarray:
    """Contrast-filled vessel boundaries at the source resolution (below the model's 3 mm voxel), and
    thin vessels followed a little further than the network saw them.

    For each vessel the network found, the lumen HU (60th percentile of its source voxels) and the
    surroundings (median of the source voxels within one model voxel, 3 mm, that are unlabelled or
    of a soft structure: median HU at least ``min_contrast_hu`` below the lumen) are measured in this
    scan, air and lung left out. Within that band a voxel belongs to the vessel when its HU is
    above their midpoint; voxels of the vessel below it are released to background. Voxels of other
    (non-vessel) structures are never taken there. A vessel whose lumen is not ``min_contrast_hu``
    brighter than its surroundings (a non-contrast scan) is left as the network drew it.

    ``grow_channels`` (thin vessels) then grow by geodesic dilation up to ``grow_mm`` through voxels
    whose HU is between the midpoint and as far above the lumen as the lumen is above the
    surroundings (not bone), that are unlabelled or belong to a structure whose own 90th HU percentile
    in the scan is below the midpoint (a bright tube inside the brain or liver is a vessel, not brain);
    and bright pieces of at least ``ENCLOSED_PIECE_ML`` lying wholly inside such structures (touching
    nothing else but background and vessels) become that vessel wherever they are.
    Changes ``src`` in place and returns it.
    """
    from scipy import ndimage

    vch = [int(c) for c in vessel_channels]
    if not vch:
        return src
    vessel_lab = np.where(np.isin(channels_grid, vch), channels_grid, 0).astype(np.uint8)
    if not vessel_lab.any():
        return src
    band = ndimage.grey_dilation(vessel_lab, size=3)  # each vessel's id, one model voxel around it
    step = float(min(volume.spacing_mm))
    margin = int(math.ceil(grow_mm / step)) if grow_channels else 0
    block, band_src = _band_on_source(band, grid, volume, margin)
    if block is None:
        return src
    lab = src[block]  # a view: changes land in src
    hu = volume.array[block]
    not_air = hu >= AIR_LUNG_HU
    med, p90 = _label_hu_percentiles(lab, hu, (0.5, 0.9))
    thr, top = {}, {}
    for c in vch:
        m = (lab == c) & not_air
        if m.sum() < 2:
            continue
        inside = float(np.percentile(hu[m], 60))
        soft = [k for k in range(1, len(med)) if med[k] < inside - min_contrast_hu and k not in vch]
        ring = (band_src == c) & ((lab == 0) | np.isin(lab, soft)) & not_air
        if ring.sum() < 5:
            continue
        outside = float(np.median(hu[ring]))
        if inside - outside >= min_contrast_hu:
            thr[c] = 0.5 * (inside + outside)
            top[c] = inside + (inside - outside)
    if not thr:
        return src
    in_band = np.isin(band_src, list(thr))
    bid = band_src[in_band]
    cur = lab[in_band]
    h = hu[in_band]
    t = np.array([thr.get(int(i), np.inf) for i in range(256)], np.float32)[bid]
    new = cur.copy()
    free = (cur == 0) | np.isin(cur, vch)
    grow = free & (h >= t)
    new[grow] = bid[grow]
    new[(cur == bid) & (h < t)] = 0
    lab[in_band] = new
    grow_ids = [int(c) for c in grow_channels if int(c) in thr]
    if not grow_ids or grow_mm <= 0:
        return src
    iters = max(1, int(round(grow_mm / step)))
    for c in grow_ids:
        m = lab == c
        if not m.any():
            continue
        idx = np.argwhere(m)
        lo = np.maximum(idx.min(0) - iters, 0)
        hi_ = np.minimum(idx.max(0) + iters + 1, lab.shape)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi_, strict=True))
        lab_b, hu_b = lab[sl], hu[sl]
        takeable = [k for k in range(1, len(p90)) if p90[k] < thr[c] and k not in vch]
        cand = ((lab_b == 0) | np.isin(lab_b, takeable)) & (hu_b >= thr[c]) & (hu_b <= top[c])
        seed = lab_b == c
        grown = ndimage.binary_dilation(seed, iterations=iters, mask=cand | seed)
        lab_b[grown & ~seed] = c
        if takeable:
            min_voxels = max(1, int(math.ceil(ENCLOSED_PIECE_ML * 1000.0 / float(np.prod(volume.spacing_mm)))))
            _enclosed_bright(lab_b, hu_b, c, takeable, vch, thr[c], top[c], min_voxels)
    return src


def _enclosed_bright(lab, hu, c, takeable, vch, lo, hi, min_voxels):
    """Bright pieces (HU lo..hi) lying wholly inside soft structures (touching nothing but those,
    background and vessels) become vessel ``c``: a contrast-filled vessel the network did not see."""
    from scipy import ndimage

    inner = np.isin(lab, takeable) & (hu >= lo) & (hu <= hi)
    if not inner.any():
        return
    comp, n = ndimage.label(inner, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(comp.ravel(), minlength=n + 1)
    ok = sizes >= min_voxels
    ok[0] = False
    # pieces touching any other structure (bone, blood pool) are partial volume of it, not vessels
    ok_ids = [0, *takeable, *vch]
    allowed = np.zeros(max(int(lab.max()), *ok_ids) + 1, bool)
    allowed[ok_ids] = True
    ring = ndimage.grey_dilation(comp, size=3)  # each piece's id spread one voxel out
    bad = np.unique(ring[(ring > 0) & ~allowed[lab] & (comp == 0)])
    ok[bad] = False
    lab[ok[comp] & inner] = c
