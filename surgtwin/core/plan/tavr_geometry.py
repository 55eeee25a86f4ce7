"""Geometry for the TAVR measurement (``surgtwin.core.plan.tavr``): crops, plane reslices, contours,
calipers, plane fits and geodesic distances inside a mask. Pure numpy/scipy/scikit-image; LPS mm.

A *field* is a 3D float array on a (cropped) grid with its index -> LPS affine (``Field``): a
Gaussian-smoothed binary mask (its 0.5 level is the mask's boundary) or a smoothed CT (HU).
``Field.section`` reslices it on a plane (centre, in-plane unit axes u, v) by trilinear
interpolation at a fine spacing; ``closed_contour`` takes the marching-squares contour
(``skimage.measure.find_contours``) that encloses the centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def crop_slices(mask: np.ndarray, margin_vox, shape=None) -> tuple[slice, ...]:
    """The bounding box of ``mask`` grown by ``margin_vox`` (per axis), clipped to the array."""
    idx = np.argwhere(mask)
    shape = mask.shape if shape is None else shape
    m = np.broadcast_to(np.asarray(margin_vox, int), (3,))
    lo = np.maximum(idx.min(0) - m, 0)
    hi = np.minimum(idx.max(0) + m + 1, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=False))


def crop_affine(affine: np.ndarray, slices) -> np.ndarray:
    """The affine of ``array[slices]``."""
    a = np.array(affine, np.float64)
    a[:3, 3] = affine[:3, :3] @ np.array([s.start for s in slices], float) + affine[:3, 3]
    return a


def spacing_of(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(affine[:3, :3], axis=0)


def smooth_mask(mask: np.ndarray, affine: np.ndarray, sigma_mm: float) -> np.ndarray:
    """A Gaussian-smoothed float32 copy of a boolean mask (sigma in mm on each axis)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(mask.astype(np.float32), sigma_mm / spacing_of(affine), mode="constant", truncate=3.0)


def plane_basis(normal, hint=None) -> tuple[np.ndarray, np.ndarray]:
    """Unit in-plane axes (u, v) with u x v = normal; u toward ``hint`` projected (default: the LPS
    axis least parallel to the normal)."""
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    if hint is None or np.linalg.norm(np.asarray(hint, float) - np.dot(hint, n) * n) < 1e-6:
        hint = np.eye(3)[int(np.argmin(np.abs(n)))]
    u = np.asarray(hint, float) - np.dot(hint, n) * n
    u /= np.linalg.norm(u)
    return u, np.cross(n, u)


@dataclass
class Field:
    """A 3D float field on a grid: ``array`` (k, j, i) and its index -> LPS ``affine``."""

    array: np.ndarray
    affine: np.ndarray

    def section(self, centre, u, v, half_mm: float, step_mm: float, cval: float = 0.0):
        """(image, coordinates): the field on the plane ``centre + a u + b v`` for a, b in
        ``coordinates`` (mm); image[ia, ib] (rows along u, columns along v)."""
        from scipy.ndimage import map_coordinates

        xs = np.arange(-half_mm, half_mm + step_mm / 2, step_mm)
        a, b = np.meshgrid(xs, xs, indexing="ij")
        pts = np.asarray(centre, float) + a[..., None] * np.asarray(u, float) + b[..., None] * np.asarray(v, float)
        inv = np.linalg.inv(self.affine)
        idx = pts.reshape(-1, 3) @ inv[:3, :3].T + inv[:3, 3]
        img = map_coordinates(self.array, idx.T, order=1, mode="constant", cval=cval)
        return img.reshape(a.shape), xs

    def values_at(self, points_lps) -> np.ndarray:
        from scipy.ndimage import map_coordinates

        inv = np.linalg.inv(self.affine)
        idx = np.asarray(points_lps, float).reshape(-1, 3) @ inv[:3, :3].T + inv[:3, 3]
        return map_coordinates(self.array, idx.T, order=1, mode="constant", cval=0.0)


def closed_contour(img: np.ndarray, xs: np.ndarray, level: float, point_ab=(0.0, 0.0)) -> np.ndarray | None:
    """The smallest closed ``level`` contour of ``img`` that encloses ``point_ab`` (plane mm), as
    (N, 2) plane coordinates (a, b), last point not repeated; None when there is none."""
    from skimage.measure import find_contours, points_in_poly

    step = float(xs[1] - xs[0])
    best, best_area = None, np.inf
    for c in find_contours(img, level):
        if len(c) < 8 or not np.allclose(c[0], c[-1]):
            continue
        ab = xs[0] + c[:-1] * step
        if not points_in_poly(np.asarray([point_ab], float), ab)[0]:
            continue
        area = abs(polygon_area(ab))
        if area < best_area:
            best, best_area = ab, area
    return best


def fourier_smooth(p: np.ndarray, harmonics: int = 12, n: int = 512) -> np.ndarray:
    """A closed contour resampled at ``n`` points equally spaced in arc length and low-pass filtered
    to ``harmonics`` Fourier harmonics (elliptic Fourier truncation): removes the voxel staircase
    that inflates the perimeter while keeping the shape (an ellipse needs one harmonic)."""
    q = np.vstack([p, p[:1]])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(q, axis=0), axis=1))])
    t = np.linspace(0.0, s[-1], n, endpoint=False)
    z = np.interp(t, s, q[:, 0]) + 1j * np.interp(t, s, q[:, 1])
    f = np.fft.fft(z)
    k = np.fft.fftfreq(n, 1.0 / n)
    f[np.abs(k) > harmonics] = 0.0
    zs = np.fft.ifft(f)
    return np.stack([zs.real, zs.imag], 1)


def polygon_area(p: np.ndarray) -> float:
    """Signed shoelace area of a closed polygon (N, 2) (last point not repeated)."""
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def polygon_perimeter(p: np.ndarray) -> float:
    return float(np.sum(np.linalg.norm(np.roll(p, -1, axis=0) - p, axis=1)))


def polygon_centroid(p: np.ndarray) -> np.ndarray:
    x, y = p[:, 0], p[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    a = 0.5 * cross.sum()
    if abs(a) < 1e-12:
        return p.mean(0)
    return np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (6 * a)


def calipers(p: np.ndarray, step_deg: float = 0.25) -> dict:
    """Feret (caliper) diameters of a polygon: the widest and narrowest parallel-line widths and
    their directions (angle of the measuring direction, degrees from the first plane axis)."""
    ang = np.radians(np.arange(0.0, 180.0, step_deg))
    d = np.stack([np.cos(ang), np.sin(ang)], 1)
    proj = p @ d.T
    width = proj.max(0) - proj.min(0)
    imax, imin = int(np.argmax(width)), int(np.argmin(width))
    return {"max": float(width[imax]), "min": float(width[imin]), "max_dir": d[imax], "min_dir": d[imin]}


def radial_diameters(p: np.ndarray, centre_ab, n_angles: int = 360) -> np.ndarray:
    """Diameters through ``centre_ab`` along ``n_angles / 2`` directions: r(theta) + r(theta + pi),
    where r is the distance from the centre to the contour along the ray (the farthest crossing)."""
    q = np.asarray(p, float) - np.asarray(centre_ab, float)
    # densify so that every angular bin holds a point
    seg = np.roll(q, -1, axis=0) - q
    n_sub = np.maximum(1, np.ceil(np.linalg.norm(seg, axis=1) / 0.1)).astype(int)
    t = np.concatenate([np.arange(k) / k for k in n_sub])
    base = np.repeat(np.arange(len(q)), n_sub)
    dense = q[base] + seg[base] * t[:, None]
    th = np.arctan2(dense[:, 1], dense[:, 0])
    r = np.hypot(dense[:, 0], dense[:, 1])
    bins = ((th + np.pi) / (2 * np.pi) * n_angles).astype(int) % n_angles
    rmax = np.full(n_angles, np.nan)
    np.fmax.at(rmax, bins, r)
    ok = np.isfinite(rmax)
    if not ok.all():
        k = np.arange(n_angles)
        rmax = np.interp(k, k[ok], rmax[ok], period=n_angles)
    half = n_angles // 2
    return rmax[:half] + rmax[half:]


def fit_plane(points: np.ndarray, *, iterations: int = 3, clip_mm: float = 1.5):
    """(centre, unit normal, rms mm) of a least-squares plane through (N, 3) points (SVD), refitted
    ``iterations`` times without points farther than ``clip_mm`` (and 3 rms)."""
    pts = np.asarray(points, float)
    keep = np.ones(len(pts), bool)
    c = pts.mean(0)
    n = np.array([0.0, 0.0, 1.0])
    rms = 0.0
    for _ in range(max(1, iterations)):
        sel = pts[keep]
        c = sel.mean(0)
        _, _, vt = np.linalg.svd(sel - c, full_matrices=False)
        n = vt[2]
        dist = (pts - c) @ n
        rms = float(np.sqrt(np.mean(dist[keep] ** 2)))
        new = np.abs(dist) <= max(min(clip_mm, 3 * rms), 1e-6)
        if new.sum() < 3 or np.array_equal(new, keep):
            break
        keep = new
    return c, n, rms


def geodesic_distance(mask: np.ndarray, spacing, sources) -> np.ndarray:
    """Shortest-path distance (mm) inside ``mask`` (26-connected voxel graph, edge lengths in mm)
    from the voxels ``sources`` ((M, 3) indices); ``inf`` outside the mask or unreachable."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    shape = mask.shape
    node = np.full(shape, -1, np.int64)
    flat = np.flatnonzero(mask)
    node.ravel()[flat] = np.arange(len(flat))
    rows, cols, w = [], [], []
    sp = np.asarray(spacing, float)
    for dk in (0, 1):
        for dj in (-1, 0, 1):
            for di in (-1, 0, 1):
                off = (dk, dj, di)
                if off <= (0, 0, 0):
                    continue
                src = tuple(slice(max(0, -o), shape[a] - max(0, o)) for a, o in enumerate(off))
                dst = tuple(slice(max(0, o), shape[a] - max(0, -o)) for a, o in enumerate(off))
                a, b = node[src], node[dst]
                ok = (a >= 0) & (b >= 0)
                rows.append(a[ok])
                cols.append(b[ok])
                w.append(np.full(int(ok.sum()), float(np.linalg.norm(sp * np.array(off)))))
    n = len(flat)
    g = coo_matrix((np.concatenate(w), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()
    src_nodes = node[tuple(np.asarray(sources, int).reshape(-1, 3).T)]
    src_nodes = src_nodes[src_nodes >= 0]
    d = dijkstra(g, directed=False, indices=src_nodes, min_only=True)
    out = np.full(shape, np.inf)
    out.ravel()[flat] = d
    return out


def iso_points(field: np.ndarray, affine: np.ndarray, select: np.ndarray, level: float = 0.5):
    """Sub-voxel points on the ``level`` surface of a smooth ``field`` near the voxels ``select``
    (one Newton step along the gradient), with the unit gradient (pointing to higher values), LPS."""
    g = np.stack(np.gradient(field), -1)  # per index step
    idx = np.argwhere(select)
    v = field[tuple(idx.T)]
    gi = g[tuple(idx.T)]
    # gradient in LPS: d f / d x = J^-T (d f / d index)
    jinv_t = np.linalg.inv(affine[:3, :3]).T
    gw = gi @ jinv_t.T
    norm = np.linalg.norm(gw, axis=1)
    ok = norm > 1e-6
    idx, v, gw, norm = idx[ok], v[ok], gw[ok], norm[ok]
    p = idx @ affine[:3, :3].T + affine[:3, 3]
    p = p + ((level - v) / norm ** 2)[:, None] * gw
    return p, gw / norm[:, None]
