"""Finding the aortic root's proximal end in a binary aorta mask (``surgtwin.core.plan.tavr``).

The mask's connected parts are walked end to end (geodesic distance inside the mask, double sweep).
An end's axis is the direction along which its first 2 mm hold the most voxels (a cut end is a flat
cap); planar slabs along that axis give its area profile. A root end is not cut by the scan boundary,
is full (the annulus) and widens into the sinuses (area x 1.15 to x 2.2) then narrows (the STJ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan import tavr_geometry as geo
from surgtwin.core.plan.tavr_context import MeasureContext
from surgtwin.core.progress import check


@dataclass
class RootEnd:
    point_idx: np.ndarray  # global voxel index of the end
    touches_border: bool
    axis: np.ndarray | None
    widen: float
    narrow: float
    d_end_mm: float
    root_like: bool
    comp: int
    side: str  # "superior"/"inferior"/... of the end for messages


def describe_side(axis_out) -> str:
    names = (("left", "right"), ("posterior", "anterior"), ("superior", "inferior"))
    k = int(np.argmax(np.abs(axis_out)))
    return names[k][0] if axis_out[k] > 0 else names[k][1]


def directions(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors (Fibonacci sphere)."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = np.pi * (1 + 5 ** 0.5) * k
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def cap_axis(sub: np.ndarray, aff: np.ndarray, d: np.ndarray) -> np.ndarray | None:
    """The vessel axis at a mask end, pointing into the vessel: the direction along which the
    end's first 2 mm hold the most voxels (a cut end is a flat cap; found on a sphere of directions,
    then refined)."""
    near = np.isfinite(d) & (d <= 25.0)
    far = np.isfinite(d) & (d >= 20.0) & (d <= 35.0)
    if near.sum() < 10 or far.sum() < 10:
        return None
    pts = np.argwhere(near) @ aff[:3, :3].T
    rough = aff[:3, :3] @ (np.argwhere(far).mean(0) - np.argwhere(d <= 5.0).mean(0))
    rough /= np.linalg.norm(rough)
    pts = pts[:: max(1, len(pts) // 20000)]
    weight = max(1, len(np.argwhere(near)) // max(len(pts), 1))

    def best(dirs):
        t = pts @ dirs.T
        count = (t <= t.min(0) + 2.0).sum(0)
        return dirs[int(np.argmax(count))], int(count.max()) * weight

    dirs = directions(3000)
    dirs = dirs[dirs @ rough > 0.0]
    n, _ = best(dirs)
    for spread in (0.12, 0.04):
        local = directions(600)
        local = local[local[:, 2] > 0]
        u, v = geo.plane_basis(n)
        cand = n + spread * (local[:, :1] * u + local[:, 1:2] * v)
        cand = np.vstack([n, cand / np.linalg.norm(cand, axis=1, keepdims=True)])
        n, _ = best(cand)
    return n


def end_profile(ctx: MeasureContext, sub: np.ndarray, aff: np.ndarray, d: np.ndarray, end_idx) -> tuple:
    """(axis, widen, narrow, end diameter, t0) of a mask end from planar slabs along its axis."""
    n = cap_axis(sub, aff, d)
    if n is None:
        return None, 0.0, 1.0, 0.0, 0.0
    pts_idx = np.argwhere(np.isfinite(d) & (d <= 70.0))
    dd = d[tuple(pts_idx.T)]
    pts = pts_idx @ aff[:3, :3].T + aff[:3, 3]
    vox = abs(np.linalg.det(aff[:3, :3]))
    t = pts @ n
    t0 = float(t[dd <= 10.0].min())
    edges = np.arange(t0, t0 + 55.0, 1.0)
    counts, _ = np.histogram(t, bins=edges)
    area = counts * vox  # per 1 mm slab
    if np.count_nonzero(area) < 40:
        return n, 0.0, 1.0, 0.0, t0
    a_end = float(np.median(area[1:3]))
    ip = 3 + int(np.argmax(area[3:30]))
    a_peak = float(area[ip])
    a_after = float(area[ip:ip + 20].min())
    return n, a_peak / max(a_end, 1e-6), a_after / max(a_peak, 1e-6), 2 * np.sqrt(a_end / np.pi), t0


def find_root_end(ctx: MeasureContext, mask: np.ndarray, *, cancel=None):
    from scipy.ndimage import find_objects, label

    sp = geo.spacing_of(ctx.affine)
    vox_ml = abs(np.linalg.det(ctx.affine[:3, :3])) / 1000.0
    lab, ncomp = label(mask, structure=np.ones((3, 3, 3)))
    if ncomp == 0:
        raise SurgtwinError("the aorta mask is empty")
    sizes = np.bincount(lab.ravel())[1:]
    keep = [i + 1 for i in np.argsort(-sizes) if sizes[i] >= max(0.05 * sizes.max(), 1.0 / vox_ml)][:4]
    boxes = find_objects(lab)
    ends: list[RootEnd] = []
    shape = np.array(ctx.shape)
    for c in keep:
        check(cancel)
        box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, shape[a])) for a, s in enumerate(boxes[c - 1]))
        sub = lab[box] == c
        aff = geo.crop_affine(ctx.affine, box)
        off = np.array([s.start for s in box])
        first = np.argwhere(sub)[0]
        d0 = geo.geodesic_distance(sub, sp, first)
        a_idx = np.unravel_index(int(np.argmax(np.where(np.isfinite(d0), d0, -1))), sub.shape)
        da = geo.geodesic_distance(sub, sp, np.array(a_idx))
        b_idx = np.unravel_index(int(np.argmax(np.where(np.isfinite(da), da, -1))), sub.shape)
        db = geo.geodesic_distance(sub, sp, np.array(b_idx))
        for e_idx, d in ((a_idx, da), (b_idx, db)):
            near = np.argwhere(np.isfinite(d) & (d <= 8.0)) + off
            touches = bool(np.any(near == 0) or np.any(near == shape - 1))
            axis, widen, narrow, d_end, _ = end_profile(ctx, sub, aff, d, e_idx)
            # a root: a full flat end (the annulus) that widens into the sinuses (area x 1.15 to x 2.2)
            # and narrows again (the sinotubular junction)
            root_like = (axis is not None and 1.15 <= widen <= 2.2 and narrow <= 0.97 and 12.0 <= d_end <= 40.0)
            side = describe_side(-axis) if axis is not None else "end"
            ends.append(RootEnd(np.array(e_idx) + off, touches, axis, widen, narrow, d_end, root_like, c, side))
    good = [e for e in ends if e.root_like and not e.touches_border]
    if good:
        return max(good, key=lambda e: e.widen), lab
    cut = [e for e in ends if e.touches_border]
    if cut:
        where = ", ".join(sorted({e.side for e in cut}))
        raise SurgtwinError(
            f"the aortic root is not in the field of view: the aorta mask is cut by the scan boundary at its {where} "
            "end, and no other end of it widens into the sinuses of Valsalva like an aortic root",
            hint="use a scan that includes the heart and the aortic valve, or give three hinge points")
    raise SurgtwinError("no end of the aorta mask looks like an aortic root (no widening into the sinuses of Valsalva)",
                        hint="give a label map with aortic_root and left_ventricle, or three hinge points")
