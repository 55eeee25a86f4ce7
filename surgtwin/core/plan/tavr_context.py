"""The working context of a TAVR measurement (``surgtwin.core.plan.tavr``): the crop around the root,
the lumen mask and fields on it, the CT; and grid helpers (interface points, heights above a plane)."""

from __future__ import annotations

import numpy as np

from surgtwin.core.plan import tavr_geometry as geo

SIGMA_MM = 0.6  # Gaussian smoothing of masks before reslicing (mm)
STEP_MM = 0.2  # in-plane sampling of the annulus section (mm)


class MeasureContext:
    """The crop (slices), lumen mask, fields and CT shared by the measurement steps."""

    def __init__(self, affine, shape, ct, calcium_hu):
        self.affine = np.asarray(affine, float)
        self.shape = tuple(shape)
        self.ct = ct
        self.calcium_hu = float(calcium_hu)
        self.sources: dict = {}
        self.crop: tuple | None = None  # slices of the working region
        self.lumen: np.ndarray | None = None  # aorta (+ LV) lumen mask on the crop
        self.aorta_field: geo.Field | None = None  # field for sections above the annulus
        self.level_mode = "mask"  # or "ct"
        self.ct_level: float | None = None
        self._d_out = None

    @property
    def d_out(self) -> np.ndarray:
        """Distance (mm) from the lumen mask, on the crop (computed once)."""
        if self._d_out is None:
            from scipy.ndimage import distance_transform_edt

            self._d_out = distance_transform_edt(~self.lumen, sampling=geo.spacing_of(self.crop_affine))
        return self._d_out

    @property
    def crop_affine(self) -> np.ndarray:
        return geo.crop_affine(self.affine, self.crop)

    def set_crop_around(self, mask: np.ndarray, margin_mm: float) -> None:
        sp = geo.spacing_of(self.affine)
        self.crop = geo.crop_slices(mask, np.ceil(margin_mm / sp).astype(int), self.shape)

    def set_crop_box(self, centre_lps, half_mm: float) -> None:
        inv = np.linalg.inv(self.affine)
        c = inv[:3, :3] @ np.asarray(centre_lps, float) + inv[:3, 3]
        h = half_mm / geo.spacing_of(self.affine)
        lo = np.clip(np.floor(c - h), 0, np.array(self.shape) - 1).astype(int)
        hi = np.clip(np.ceil(c + h) + 1, 1, self.shape).astype(int)
        self.crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=False))

    def points(self, mask_crop: np.ndarray) -> np.ndarray:
        a = self.crop_affine
        return np.argwhere(mask_crop) @ a[:3, :3].T + a[:3, 3]


def interface_points(a: np.ndarray, b: np.ndarray, affine) -> np.ndarray:
    """Midpoints (LPS) between face-adjacent voxels of masks a and b."""
    pts = []
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        for x, y in ((a, b), (b, a)):
            idx = np.argwhere(x[tuple(lo)] & y[tuple(hi)]).astype(float)
            idx[:, ax] += 0.5
            pts.append(idx)
    idx = np.concatenate(pts)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def smooth_ct(arr, affine) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(arr.astype(np.float32), SIGMA_MM / geo.spacing_of(affine), mode="nearest")


def plane_heights(aff: np.ndarray, shape, m, direction=None) -> np.ndarray:
    """(x - centre) . direction (default the normal) at every voxel of a grid, by broadcasting."""
    d = m.normal_lps if direction is None else np.asarray(direction, float)
    step = aff[:3, :3].T @ d  # change per index step along each axis
    base = float((aff[:3, 3] - m.centre_lps) @ d)
    k, j, i = (np.arange(n, dtype=np.float64) for n in shape)
    return base + step[0] * k[:, None, None] + step[1] * j[None, :, None] + step[2] * i[None, None, :]
