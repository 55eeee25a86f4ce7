"""Implants on voxel grids: exact inside tests by ray crossings, labels for the tet mesher, and the
point samples the live checks use.

``inside_grid(vertices_kji, faces, shape)`` marks the voxels of a grid whose centres lie inside a
closed triangle surface given in that grid's continuous index coordinates (voxel centre = integer
index). Rays run along the first index axis through every (j, i) column; each triangle crossed adds
its orientation sign from the crossing on, and a voxel is inside where the sum (the winding number)
is non-zero. This is exact for any affine grid (anisotropic, oblique, mirrored: an affine map keeps
lines and crossings), and the union of overlapping closed bodies comes out right. The rays are
shifted by ~1e-7 voxel so that no ray passes exactly through a mesh edge or vertex.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from surgtwin.core.errors import SurgtwinError

_RAY_SHIFT = np.array([3.1415926e-7, 2.7182818e-7])
#: candidate (triangle, column) pairs handled per chunk (memory bound)
_CHUNK = 2_000_000


def inside_grid(vertices_kji, faces, shape) -> np.ndarray:
    """Bool mask of ``shape`` (K, J, NI): voxel centres inside the closed surface (index coordinates)."""
    v = np.asarray(vertices_kji, np.float64).reshape(-1, 3)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    K, J, NI = (int(s) for s in shape)
    out = np.zeros((K, J, NI), bool)
    if len(f) == 0 or K == 0 or J == 0 or NI == 0:
        return out
    p = v[f]  # (F, 3 corners, 3 coords)
    q = p[:, :, 1:] - _RAY_SHIFT  # (j, i) of the corners; rays at integer (j, i) == corners shifted
    area = ((q[:, 1, 0] - q[:, 0, 0]) * (q[:, 2, 1] - q[:, 0, 1])
            - (q[:, 1, 1] - q[:, 0, 1]) * (q[:, 2, 0] - q[:, 0, 0]))
    lo = np.ceil(q.min(axis=1)).astype(np.int64)
    hi = np.floor(q.max(axis=1)).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [J - 1, NI - 1])
    nj, ni = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    keep = (nj > 0) & (ni > 0) & (np.abs(area) > 1e-14) & (p[:, :, 0].min(axis=1) < K)
    tri = np.flatnonzero(keep)
    counts = (nj * ni)[tri]
    diff = np.zeros((K + 1) * J * NI, np.int32)
    ends = np.cumsum(counts)
    start = 0
    while start < len(tri):  # chunks of triangles with a bounded number of candidate columns
        stop = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + _CHUNK, side="right"))
        stop = max(stop, start + 1)
        _crossings(tri[start:stop], counts[start:stop], lo, ni, q, p, area, (K, J, NI), diff)
        start = stop
    wind = np.cumsum(diff.reshape(K + 1, J, NI)[:K], axis=0, dtype=np.int32)
    np.not_equal(wind, 0, out=out)
    return out


def _crossings(tri, counts, lo, ni, q, p, area, shape, diff) -> None:
    K, J, NI = shape
    t = np.repeat(tri, counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    local = np.arange(len(t)) - first
    jj = lo[t, 0] + local // ni[t]
    ii = lo[t, 1] + local % ni[t]
    # barycentric coordinates of the (shifted) ray in the triangle's (j, i) projection
    a, b, c = q[t, 0], q[t, 1], q[t, 2]
    w0 = (b[:, 0] - jj) * (c[:, 1] - ii) - (b[:, 1] - ii) * (c[:, 0] - jj)
    w1 = (c[:, 0] - jj) * (a[:, 1] - ii) - (c[:, 1] - ii) * (a[:, 0] - jj)
    w2 = (a[:, 0] - jj) * (b[:, 1] - ii) - (a[:, 1] - ii) * (b[:, 0] - jj)
    ar = area[t]
    hit = np.where(ar > 0, (w0 > 0) & (w1 > 0) & (w2 > 0), (w0 < 0) & (w1 < 0) & (w2 < 0))
    if not np.any(hit):
        return
    t, jj, ii, w0, w1, w2, ar = t[hit], jj[hit], ii[hit], w0[hit], w1[hit], w2[hit], ar[hit]
    k = (w0 * p[t, 0, 0] + w1 * p[t, 1, 0] + w2 * p[t, 2, 0]) / ar
    kc = np.clip(np.ceil(k), 0, K).astype(np.int64)  # first voxel centre past the crossing
    sign = np.where(ar > 0, 1, -1).astype(np.int32)
    np.add.at(diff, (kc * J + jj) * NI + ii, sign)


def mesh_in_grid(vertices_lps, faces, affine, shape) -> tuple[np.ndarray, tuple[slice, ...]]:
    """(mask, slices): the voxels of the grid (``affine``: index (k, j, i) -> LPS, ``shape``) inside a
    closed LPS surface, computed in the surface's bounding box only: ``full[slices] = mask``."""
    idx = np.asarray(vertices_lps, np.float64) @ np.linalg.inv(affine)[:3, :3].T + np.linalg.inv(affine)[:3, 3]
    lo = np.maximum(np.floor(idx.min(axis=0)).astype(int), 0)
    hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return np.zeros((0, 0, 0), bool), tuple(slice(0, 0) for _ in range(3))
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    return inside_grid(idx - lo, faces, tuple(int(b - a) for a, b in zip(lo, hi, strict=True))), sl


def voxelise(placed, reference) -> np.ndarray:
    """Bool mask on ``reference``'s grid (a ``Volume``/``LabelMap``): voxels whose centres lie inside
    the placed implant (any grid orientation and spacing; exact to the voxel centres)."""
    m = placed.world_mesh()
    mask = np.zeros(reference.shape, bool)
    sub, sl = mesh_in_grid(m.vertices, m.faces, reference.affine, reference.shape)
    if sub.size:
        mask[sl] = sub
    return mask


#: label values given to implants in ``implant_labels`` (the first free value from here)
IMPLANT_LABEL_START = 100


def implant_labels(case_labels, placements, *, start: int = IMPLANT_LABEL_START):
    """A copy of ``case_labels`` with each placed implant painted in as its own structure, named
    ``implant_<id>``, with the first free label values from ``start`` (100); implant voxels replace
    what was there (bone the implant occupies). For ``surgtwin.core.mesh.tet_mesh(labels,
    ["femur_left", "implant_1"], ...)`` to mesh bone and implant together."""
    from surgtwin.core.types import Label, LabelMap, LabelTable

    placements = list(placements)
    if not placements:
        raise SurgtwinError("no implant placed: nothing to add to the label map")
    used = {lab.value for lab in case_labels.labels}
    names = set(case_labels.labels.names())
    values, v = [], int(start)
    for p in placements:
        while v in used:
            v += 1
        if f"implant_{p.id}" in names:
            raise SurgtwinError(f"the label map already has a structure named 'implant_{p.id}'")
        values.append(v)
        used.add(v)
    top = max(values)
    if top > 65535:
        raise SurgtwinError("too many label values for the implants (above 65535)")
    dtype = case_labels.array.dtype if top <= np.iinfo(case_labels.array.dtype).max else np.uint16
    arr = case_labels.array.astype(dtype, copy=True)
    table = LabelTable(list(case_labels.labels))
    for p, val in zip(placements, values, strict=True):
        mask = voxelise(p, case_labels)
        if not mask.any():
            raise SurgtwinError(f"implant {p.id} ({p.name}) lies outside the image or is smaller than a voxel",
                                hint="move it into the image or use a finer grid")
        arr[mask] = val
        table.add(Label(val, f"implant_{p.id}", (200, 200, 210)))
    return LabelMap(arr, case_labels.affine.copy(), case_labels.frame_of_reference_uid, None,
                    dict(case_labels.metadata), labels=table)


#: contact is read this far outside the implant's surface, along its normal (mm)
CONTACT_OFFSET_MM = 0.5


@dataclass(frozen=True, eq=False)
class ImplantSamples:
    """Points of an implant in its local frame, made once per implant for the live checks.

    ``volume_points`` (N, 3): centres of a regular grid of ``spacing_mm`` inside the implant, each
    standing for ``point_volume_mm3`` (the mesh volume / N, so the points add up to the implant's
    volume exactly); ``engaging`` (N,) the ones meant to lie in bone;
    ``surface_points`` / ``surface_normals`` (M, 3): area-uniform points on the surface with their
    outward unit normals; ``surface_engaging`` (M,)."""

    volume_points: np.ndarray
    engaging: np.ndarray
    spacing_mm: float
    point_volume_mm3: float
    surface_points: np.ndarray
    surface_normals: np.ndarray
    surface_engaging: np.ndarray

    @cached_property
    def lookup_points(self) -> np.ndarray:
        """(3, N + 2M) float32: the volume points, the surface points and the contact points
        (``CONTACT_OFFSET_MM`` outside along the normals), as coordinate rows for fast transforms."""
        contact = self.surface_points + CONTACT_OFFSET_MM * self.surface_normals
        return np.ascontiguousarray(np.concatenate([self.volume_points, self.surface_points, contact]).T,
                                    dtype=np.float32)


def engaging_mask(points: np.ndarray, rule: str) -> np.ndarray:
    """Which local points are meant to lie in bone under the implant's ``bone_engaging`` rule."""
    if rule == "z_positive":
        return points[:, 2] >= 0
    return np.full(len(points), rule == "all")


def sample_implant(implant, *, max_points: int = 40_000, min_spacing_mm: float = 0.4,
                   surface_points: int = 10_000, seed: int = 0) -> ImplantSamples:
    """Sample ``implant``'s volume on a grid (spacing chosen so about ``max_points`` fall inside, but
    not finer than ``min_spacing_mm``) and its surface (area-uniform, fixed ``seed``)."""
    m = implant.mesh()
    v, f = m.vertices, m.faces
    vol = max(implant.volume_ml * 1000.0, 1e-9)
    h = max(min_spacing_mm, (vol / max_points) ** (1 / 3))
    lo = v.min(axis=0) + h / 2  # cell-centred: a slab of n * h holds n layers of points
    shape = tuple(int(n) for n in np.ceil((v.max(axis=0) - lo) / h).astype(int) + 1)
    inside = inside_grid((v - lo) / h, f, shape)
    pts = np.argwhere(inside) * h + lo
    if len(pts) == 0:
        raise SurgtwinError(f"implant {implant.label} is thinner than the sampling step {h:.2g} mm")
    tri = v[f]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    areas = 0.5 * np.linalg.norm(cross, axis=1)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(f), size=surface_points, p=areas / areas.sum())
    r1, r2 = rng.random(surface_points), rng.random(surface_points)
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    sp = tri[pick, 0] + r1[:, None] * (tri[pick, 1] - tri[pick, 0]) + r2[:, None] * (tri[pick, 2] - tri[pick, 0])
    sn = cross[pick] / np.maximum(np.linalg.norm(cross[pick], axis=1, keepdims=True), 1e-30)
    rule = implant.bone_engaging
    return ImplantSamples(pts, engaging_mask(pts, rule), float(h), vol / len(pts), sp, sn, engaging_mask(sp, rule))
