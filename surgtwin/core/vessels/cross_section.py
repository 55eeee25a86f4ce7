"""Vessel radius from the cross-section perpendicular to the centerline.

The binary mask is resampled on a square grid in the plane normal to the centerline (trilinear
interpolation of the 0/1 mask, so the 0.5 level runs halfway between inside and outside voxel
centres); the area of the connected > 0.5 region around the centerline point gives the
equivalent radius ``sqrt(A / pi)``. On an anisotropic grid (1.5 x 1.5 x 3 mm) this follows a
narrowing far better than the voxel distance map, whose values step by whole voxels.
"""

from __future__ import annotations

import math

import numpy as np


def tangents(points: np.ndarray) -> np.ndarray:
    """Unit tangents of a polyline (central differences; one-sided at the ends)."""
    p = np.asarray(points, float)
    if len(p) < 2:
        return np.tile([0.0, 0.0, 1.0], (len(p), 1))
    t = np.gradient(p, axis=0)
    n = np.linalg.norm(t, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return t / n


def plane_basis(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (u, v) spanning the plane normal to each tangent in ``t`` (n, 3)."""
    t = np.asarray(t, float)
    helper = np.where(np.abs(t[:, [2]]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    u = np.cross(t, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(t, u)
    return u, v


def sample_mask(mask01: np.ndarray, inv_affine: np.ndarray, points_lps: np.ndarray) -> np.ndarray:
    """Trilinear values of the 0/1 ``mask01`` at LPS points (0 outside the grid)."""
    from scipy.ndimage import map_coordinates

    pts = np.asarray(points_lps, float).reshape(-1, 3)
    idx = pts @ inv_affine[:3, :3].T + inv_affine[:3, 3]
    return map_coordinates(mask01, idx.T, order=1, mode="constant", cval=0.0, prefilter=False)


def cross_section_radii(mask01: np.ndarray, affine: np.ndarray, points_lps: np.ndarray,
                        guess_radius_mm: np.ndarray, *, spacing_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(equivalent radius in mm, clean flag) at each centerline point.

    ``guess_radius_mm`` (the inscribed radius) sizes each sampling window. A section is not clean
    when its region touches the window's edge (it runs into another vessel or along the vessel)
    or is far from round (equivalent radius > 1.6 x the inscribed one): an oblique cut.
    """
    from scipy import ndimage

    pts = np.asarray(points_lps, float)
    n = len(pts)
    out = np.zeros(n)
    clean = np.zeros(n, bool)
    if n == 0:
        return out, clean
    inv = np.linalg.inv(affine)
    t = tangents(pts)
    u, v = plane_basis(t)
    fine = float(np.min(spacing_mm))
    coarse = float(np.max(spacing_mm))
    for i in range(n):
        r0 = max(float(guess_radius_mm[i]), 0.5 * fine)
        step = max(fine / 3.0, r0 / 16.0)
        half = 1.8 * r0 + 2.0 * coarse
        m = int(math.ceil(half / step))
        g = np.arange(-m, m + 1) * step
        aa, bb = np.meshgrid(g, g, indexing="ij")
        plane = pts[i] + aa[..., None] * u[i] + bb[..., None] * v[i]
        vals = sample_mask(mask01, inv, plane).reshape(aa.shape)
        inside = vals > 0.5
        lab, nlab = ndimage.label(inside)
        if nlab == 0:
            continue
        c = lab[m, m]
        if c == 0:  # the point sits just outside: take the nearest region
            ii, jj = np.nonzero(inside)
            k = int(np.argmin((ii - m) ** 2 + (jj - m) ** 2))
            c = lab[ii[k], jj[k]]
        region = lab == c
        area = float(region.sum()) * step * step
        out[i] = math.sqrt(area / math.pi)
        edge = region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any()
        clean[i] = (not edge) and out[i] <= 1.6 * r0 + coarse
    return out, clean
