"""CT synthesis: Hounsfield units per tissue, texture, patient table, partial-volume blur and
scanner-like correlated noise.

``Tissue`` gives the HU of a label's deep part (zone 0), of its rim (zone 1: cortex, wall, rim
enhancement) and of an optional zone 2 (e.g. gas in bowel), plus the amplitude of a coarse texture
(organ heterogeneity) and of a fine one (trabecular bone, stool).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from surgtwin.core.phantom.shapes import Canvas, smooth_noise

AIR_HU = -1000.0
HU_MIN, HU_MAX = -1024, 3071  # 12-bit stored range with RescaleIntercept -1024
_SLAB_VOXELS = 1 << 20  # voxels per slab of the slab-wise passes (a few MB: stays in cache)


@dataclass(frozen=True)
class Tissue:
    hu: float
    rim_hu: float | None = None
    zone2_hu: float | None = None
    coarse_sd: float = 0.0
    fine_sd: float = 0.0


def _lut(tissues: dict[int, Tissue]):
    hu = np.full((3, 256), AIR_HU, np.float32)
    coarse = np.zeros(256, np.float32)
    fine = np.zeros(256, np.float32)
    for v, t in tissues.items():
        hu[0, v] = t.hu
        hu[1, v] = t.hu if t.rim_hu is None else t.rim_hu
        hu[2, v] = t.hu if t.zone2_hu is None else t.zone2_hu
        coarse[v] = t.coarse_sd
        fine[v] = t.fine_sd
    return hu, coarse, fine


def table_mask(canvas: Canvas, *, gap_mm: float = 1.0):
    """(shell, foam) boolean masks of a curved carbon-fibre patient table just behind the patient.

    The table belongs to the scanner, so it is built in LPS (not the patient's rotated frame): its
    top touches the most posterior body voxel and it spans the full slice range.
    """
    body = canvas.labels > 0
    rows_with_body = np.nonzero(body.any(axis=(0, 2)))[0]
    A = canvas.affine
    ny, nx = canvas.shape[1], canvas.shape[2]
    y = A[1, 1] * np.arange(ny) + A[1, 3]  # axial grid: rows run along +y (posterior)
    x = A[0, 2] * np.arange(nx) + A[0, 3]
    y_back = y[rows_with_body.max()] if len(rows_with_body) else y[-1]
    xc = 0.5 * (x[0] + x[-1])
    top = y_back + gap_mm - (x - xc) ** 2 / (2 * 700.0)  # concave cradle, radius 700 mm
    depth = y[:, None] - top[None, :]  # mm below the table top surface (rows, cols)
    inside = (depth >= 0) & (depth <= 45.0) & (np.abs(x - xc)[None, :] <= 225.0)
    shell = inside & ((depth <= 2.5) | (depth >= 42.5) | (np.abs(x - xc)[None, :] >= 221.0))
    foam = inside & ~shell
    return shell, foam


def synthesize(canvas: Canvas, tissues: dict[int, Tissue], rng, *, noise_sd: float,
               add_table: bool = True) -> np.ndarray:
    """int16 HU image of the painted canvas.

    Element-wise steps and the in-plane noise filter run slab by slab (cache-sized blocks of
    slices); the random draws and the results are the same as whole-volume passes.
    """
    spacing = np.linalg.norm(canvas.affine[:3, :3], axis=0)  # (slice, row, column) mm
    hu, coarse, fine = _lut(tissues)
    lab = canvas.labels
    nz = lab.shape[0]
    step = max(1, int(_SLAB_VOXELS // max(1, lab[0].size)))
    slabs = [slice(k, min(k + step, nz)) for k in range(0, nz, step)]
    present = np.bincount(lab.ravel(), minlength=256) > 0
    # organ heterogeneity (~6 mm blobs) and fine texture (trabeculae, stool, fat strands: white
    # noise here, given a ~1 mm grain by the partial-volume blur below)
    cn = smooth_noise(lab.shape, 6.0 / spacing, rng) if coarse[present].any() else None
    fn = rng.standard_normal(lab.shape, dtype=np.float32) if fine[present].any() else None
    hu_flat = hu.ravel()
    img = np.empty(lab.shape, np.float32)
    for sk in slabs:
        lk = lab[sk]
        combined = np.minimum(canvas.zone[sk], 2).astype(np.intp) * 256 + lk
        ik = hu_flat.take(combined)
        if cn is not None:
            ik += coarse.take(lk) * cn[sk]
        if fn is not None:
            ik += 1.6 * fine.take(lk) * fn[sk]
        img[sk] = ik
    del cn, fn
    if add_table:
        shell, foam = table_mask(canvas)
        img2 = img.reshape(lab.shape[0], -1)
        free = (lab == 0).reshape(lab.shape[0], -1)
        for m, v in ((shell, 250.0), (foam, -880.0)):
            sel = np.broadcast_to(m.ravel()[None, :], img2.shape) & free
            img2[sel] = v
    # partial-volume blur: in-plane point spread ~0.6 mm, slice profile ~0.4 x thickness
    sig = np.array([0.4 * spacing[0], 0.6, 0.6]) / spacing
    img = gaussian_filter(img, sig, mode="nearest")
    # correlated noise: band-pass (difference of Gaussians) in-plane, slight correlation in z
    w = rng.standard_normal(lab.shape, dtype=np.float32)
    px = spacing[1:]
    n = np.empty(lab.shape, np.float32)
    for sk in slabs:  # in-plane only (no filtering along the slices): slab by slab is exact
        wk = w[sk]
        n[sk] = gaussian_filter(wk, (0.0, *(0.55 / px)), mode="wrap", truncate=3.0) - 0.6 * gaussian_filter(
            wk, (0.0, *(1.6 / px)), mode="wrap", truncate=3.0)
    del w
    n *= noise_sd / max(float(n.std()), 1e-6)
    img += n
    return np.clip(np.rint(img), HU_MIN, HU_MAX).astype(np.int16)
