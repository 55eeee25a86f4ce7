"""Watertight triangle solids for implants, built directly (no mesh booleans, no extra dependency).

* ``revolve(profile_rz)``: a solid or a hollow tube of revolution about +z (screws, valve frames);
* ``loft(path, ...)``: elliptical sections swept along a polyline path (a curved hip stem in one piece);
* ``extrude_region(vertices_2d, triangles_2d, z0, z1)``: a triangulated 2D region with holes between
  two planes; ``plate_region`` makes the region of a straight bone plate with round screw holes.

Every function returns ``(vertices (N, 3) float64, faces (M, 3) int64)`` wound counter-clockwise seen
from outside (outward right-hand normals): closed 2-manifolds, so ``surgtwin.core.mesh.check_mesh``
reports them watertight with a positive volume.
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.errors import SurgtwinError


def _oriented(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip every face when the enclosed signed volume is negative (inward normals)."""
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    if float(np.einsum("ij,ij->i", v0, np.cross(v1, v2)).sum()) < 0:
        faces = faces[:, ::-1]
    return vertices, np.ascontiguousarray(faces, dtype=np.int64)


def _ring_quads(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two triangles per segment between rings ``a`` and ``b`` (vertex ids, same length, cyclic)."""
    a1, b1 = np.roll(a, -1), np.roll(b, -1)
    return np.concatenate([np.stack([a, a1, b1], 1), np.stack([a, b1, b], 1)])


def _fan(centre: int, ring: np.ndarray) -> np.ndarray:
    return np.stack([np.full(len(ring), centre), np.roll(ring, -1), ring], 1)


def revolve(profile_rz, *, segments: int = 64, closed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Revolve a profile of (r, z) points about the z axis.

    Open profile (``closed=False``): it starts and ends on the axis (r = 0 there, r > 0 between):
    a solid (a screw: head, shank, conical tip). Closed profile (``closed=True``): a polygon with
    r > 0 everywhere: a hollow body (a tube wall). Consecutive points may share r or z (flat faces).
    """
    p = np.asarray(profile_rz, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3 or segments < 8:
        raise SurgtwinError("a revolve profile needs at least 3 (r, z) points and 8 segments")
    if closed:
        if np.any(p[:, 0] <= 0):
            raise SurgtwinError("a closed revolve profile must stay off the axis (r > 0)")
        rings = p
    else:
        if p[0, 0] != 0 or p[-1, 0] != 0 or np.any(p[1:-1, 0] <= 0):
            raise SurgtwinError("an open revolve profile must start and end on the axis (r = 0) and stay off it")
        rings = p[1:-1]
    t = 2 * np.pi * np.arange(segments) / segments
    c, s = np.cos(t), np.sin(t)
    verts = [np.stack([r * c, r * s, np.full(segments, z)], 1) for r, z in rings]
    ids = np.arange(len(rings) * segments).reshape(len(rings), segments)
    faces = [_ring_quads(ids[n], ids[n + 1]) for n in range(len(rings) - 1)]
    if closed:
        faces.append(_ring_quads(ids[-1], ids[0]))
    else:
        n0 = len(rings) * segments
        verts += [np.array([[0.0, 0.0, p[0, 1]]]), np.array([[0.0, 0.0, p[-1, 1]]])]
        faces += [_fan(n0, ids[0]), _fan(n0 + 1, ids[-1])[:, ::-1]]
    return _oriented(np.concatenate(verts), np.concatenate(faces))


def loft(centres, tangents, half_a, half_b, binormal, *, segments: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Elliptical sections swept along a path, capped at both ends.

    Section ``n`` is centred at ``centres[n]``, normal to ``tangents[n]``, with semi-axis ``half_a[n]``
    along ``binormal x tangent`` and ``half_b[n]`` along ``binormal`` (the path bends in the plane
    normal to ``binormal``). A section with both semi-axes 0 is a point (a pole: a rounded tip).
    The caller keeps the path's bend radius above the in-plane semi-axis (sections must not cross).
    """
    P = np.asarray(centres, np.float64)
    T = np.asarray(tangents, np.float64)
    T = T / np.linalg.norm(T, axis=1, keepdims=True)
    a = np.asarray(half_a, np.float64)
    b = np.asarray(half_b, np.float64)
    bn = np.asarray(binormal, np.float64) / np.linalg.norm(binormal)
    if len(P) < 2 or not (len(P) == len(T) == len(a) == len(b)):
        raise SurgtwinError("a loft needs at least 2 sections with one tangent and two semi-axes each")
    t = 2 * np.pi * np.arange(segments) / segments
    c, s = np.cos(t), np.sin(t)
    verts, rings = [], []
    n = 0
    for k in range(len(P)):
        if a[k] <= 0 and b[k] <= 0:
            if 0 < k < len(P) - 1:
                raise SurgtwinError("only the first and last loft sections may be points")
            verts.append(P[k][None])
            rings.append(np.array([n]))
            n += 1
            continue
        ax = np.cross(bn, T[k])
        ax /= np.linalg.norm(ax)
        verts.append(P[k] + np.outer(a[k] * c, ax) + np.outer(b[k] * s, bn))
        rings.append(np.arange(n, n + segments))
        n += segments
    faces = []
    for k in range(len(rings) - 1):
        r0, r1 = rings[k], rings[k + 1]
        if len(r0) == 1:
            faces.append(_fan(int(r0[0]), r1))
        elif len(r1) == 1:
            faces.append(_fan(int(r1[0]), r0)[:, ::-1])
        else:
            faces.append(_ring_quads(r0, r1))
    vs = np.concatenate(verts)
    for ring, sign in ((rings[0], -1), (rings[-1], 1)):
        if len(ring) > 1:  # a flat cap: a fan around the section centre
            centre = len(vs)
            vs = np.concatenate([vs, vs[ring].mean(axis=0)[None]])
            fan = _fan(centre, ring)
            faces.append(fan if sign < 0 else fan[:, ::-1])
    return _oriented(vs, np.concatenate(faces))


def plate_region(length: float, width: float, hole_x, hole_radius: float, *,
                 segments: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A triangulated rectangle ``[-length/2, length/2] x [-width/2, width/2]`` with round holes of
    ``hole_radius`` centred at ``(x, 0)`` for x in ``hole_x``. Each hole sits in a width x width square
    cell whose boundary samples are the hole's rays (corners included), so neighbouring pieces share
    their edge vertices and the triangulation is conforming. Returns (vertices (N, 2), triangles)."""
    if segments % 8:
        raise SurgtwinError("plate hole segments must be a multiple of 8")
    h = width / 2.0
    xs = sorted(float(x) for x in hole_x)
    if hole_radius >= h or any(b - a < width for a, b in zip(xs, xs[1:], strict=False)):
        raise SurgtwinError("plate holes overlap or do not fit the plate width")
    if xs and (xs[0] - h < -length / 2 or xs[-1] + h > length / 2):
        raise SurgtwinError("plate holes run past the plate ends")
    t = 2 * np.pi * np.arange(segments) / segments
    c, s = np.cos(t), np.sin(t)
    sq = h / np.maximum(np.abs(c), np.abs(s))
    on_right = (c > 0) & (np.abs(c) >= np.abs(s) - 1e-12)  # the cell's x = +h edge, corners included
    right = np.sort(sq[on_right] * s[on_right])
    pts: dict[tuple[float, float], int] = {}

    def vid(x: float, y: float) -> int:
        key = (round(x, 9), round(y, 9))
        if key not in pts:
            pts[key] = len(pts)
        return pts[key]

    tris: list[tuple[int, int, int]] = []

    def strip(x0: float, x1: float) -> None:  # rectangle between two cell edges sharing the y samples
        if x1 - x0 <= 1e-9:
            return
        for y0, y1 in zip(right[:-1], right[1:], strict=True):
            a, b, cc, d = vid(x0, y0), vid(x1, y0), vid(x1, y1), vid(x0, y1)
            tris.extend([(a, b, cc), (a, cc, d)])

    x_prev = -length / 2.0
    for xc in xs:
        strip(x_prev, xc - h)
        ring_in = [vid(xc + hole_radius * c[n], hole_radius * s[n]) for n in range(segments)]
        ring_out = [vid(xc + sq[n] * c[n], sq[n] * s[n]) for n in range(segments)]
        for n in range(segments):
            m = (n + 1) % segments
            tris.extend([(ring_in[n], ring_out[n], ring_out[m]), (ring_in[n], ring_out[m], ring_in[m])])
        x_prev = xc + h
    strip(x_prev, length / 2.0)
    v2 = np.array(list(pts), dtype=np.float64)
    f2 = np.array(tris, dtype=np.int64)
    e1, e2 = v2[f2[:, 1]] - v2[f2[:, 0]], v2[f2[:, 2]] - v2[f2[:, 0]]
    ccw = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] > 0
    f2[~ccw] = f2[~ccw][:, ::-1]
    return v2, f2


def extrude_region(vertices_2d, triangles_2d, z0: float, z1: float) -> tuple[np.ndarray, np.ndarray]:
    """A 2D triangulated region (holes allowed) extruded from z0 to z1 > z0: the region's triangles
    at both ends plus a wall quad on every boundary edge (an edge used by one triangle)."""
    v2 = np.asarray(vertices_2d, np.float64)
    f2 = np.asarray(triangles_2d, np.int64)
    n = len(v2)
    verts = np.concatenate([np.c_[v2, np.full(n, z0)], np.c_[v2, np.full(n, z1)]])
    e = np.concatenate([f2[:, [0, 1]], f2[:, [1, 2]], f2[:, [2, 0]]])
    key = np.minimum(e[:, 0], e[:, 1]) * n + np.maximum(e[:, 0], e[:, 1])
    uniq, counts = np.unique(key, return_counts=True)
    boundary = e[np.isin(key, uniq[counts == 1])]
    walls = np.concatenate([np.stack([boundary[:, 0], boundary[:, 1], boundary[:, 1] + n], 1),
                            np.stack([boundary[:, 0], boundary[:, 1] + n, boundary[:, 0] + n], 1)])
    return _oriented(verts, np.concatenate([f2[:, ::-1], f2 + n, walls]))
