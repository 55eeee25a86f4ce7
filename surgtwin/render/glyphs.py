"""Display geometry for planning results (numpy only; no Qt, no VTK): tubes along centerlines, a
slab filling a planar contour (an annulus plane the MPR views cut), small markers. All LPS mm.

These are pictures of results, never inputs to a measurement.
"""

from __future__ import annotations

import numpy as np


def _frames(points: np.ndarray, closed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two unit normals per point, perpendicular to the local tangent, transported along the curve
    (parallel transport: the tube does not twist)."""
    n = len(points)
    if closed:
        tan = np.roll(points, -1, axis=0) - np.roll(points, 1, axis=0)
    else:
        tan = np.gradient(points, axis=0)
    tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-12)
    ref = np.array([0.0, 0.0, 1.0]) if abs(tan[0, 2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.empty_like(points)
    u[0] = np.cross(tan[0], ref)
    u[0] /= np.linalg.norm(u[0])
    for i in range(1, n):
        w = u[i - 1] - np.dot(u[i - 1], tan[i]) * tan[i]
        norm = np.linalg.norm(w)
        u[i] = w / norm if norm > 1e-9 else u[i - 1]
    v = np.cross(tan, u)
    return u, v


def tube(points, radii, *, sides: int = 16, closed: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tube along the polyline ``points`` (N, 3) with radius ``radii`` (scalar or (N,)).

    Returns (vertices, faces, face_point) where ``face_point[f]`` is the index of the polyline point at
    the start of face ``f``'s ring segment (to colour faces by per-point values). Open tubes are capped.
    """
    pts = np.asarray(points, float)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 2:
        raise ValueError("a tube needs at least two 3D points")
    r = np.broadcast_to(np.asarray(radii, float), (len(pts),))
    n = len(pts)
    u, v = _frames(pts, closed)
    ang = np.linspace(0.0, 2.0 * np.pi, sides, endpoint=False)
    ring = np.cos(ang)[None, :, None] * u[:, None, :] + np.sin(ang)[None, :, None] * v[:, None, :]
    verts = (pts[:, None, :] + r[:, None, None] * ring).reshape(-1, 3)
    segs = n if closed else n - 1
    i = np.arange(segs)[:, None]
    j = np.arange(sides)[None, :]
    a = i * sides + j
    b = i * sides + (j + 1) % sides
    c = ((i + 1) % n) * sides + (j + 1) % sides
    d = ((i + 1) % n) * sides + j
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    face_point = np.concatenate([np.repeat(np.arange(segs), sides)] * 2)
    if not closed:
        verts = np.vstack([verts, pts[0], pts[-1]])
        c0, c1 = len(verts) - 2, len(verts) - 1
        first = np.stack([np.full(sides, c0), (j[0] + 1) % sides, j[0]], -1)
        last = np.stack([np.full(sides, c1), (n - 1) * sides + j[0], (n - 1) * sides + (j[0] + 1) % sides], -1)
        faces = np.vstack([faces, first, last])
        face_point = np.concatenate([face_point, np.zeros(sides, int), np.full(sides, n - 2)])
    return verts, faces.astype(np.int64), face_point.astype(np.int64)


def slab(contour, normal, *, thickness_mm: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A closed thin slab filling the planar closed ``contour`` (N, 3) (fan from its centroid),
    ``thickness_mm`` thick along ``normal``: what an MPR slice cuts as the plane's trace."""
    pts = np.asarray(contour, float)
    nrm = np.asarray(normal, float)
    nrm = nrm / np.linalg.norm(nrm)
    n = len(pts)
    half = 0.5 * thickness_mm * nrm
    centre = pts.mean(axis=0)
    verts = np.vstack([pts - half, pts + half, centre - half, centre + half])
    lo_c, hi_c = 2 * n, 2 * n + 1
    k = np.arange(n)
    k1 = (k + 1) % n
    bottom = np.stack([np.full(n, lo_c), k1, k], -1)
    top = np.stack([np.full(n, hi_c), n + k, n + k1], -1)
    side1 = np.stack([k, k1, n + k1], -1)
    side2 = np.stack([k, n + k1, n + k], -1)
    return verts, np.vstack([bottom, top, side1, side2]).astype(np.int64)


def sphere(centre, radius_mm: float, *, rings: int = 8, sectors: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A small UV sphere (a clicked point's marker)."""
    c = np.asarray(centre, float)
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, sectors, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    body = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    verts = np.vstack([[0, 0, 1], body, [0, 0, -1]]) * radius_mm + c
    faces = []
    top, bottom = 0, len(verts) - 1
    for s in range(sectors):
        s1 = (s + 1) % sectors
        faces.append([top, 1 + s, 1 + s1])
        for r in range(rings - 2):
            a, b = 1 + r * sectors + s, 1 + r * sectors + s1
            c_, d = 1 + (r + 1) * sectors + s1, 1 + (r + 1) * sectors + s
            faces += [[a, d, c_], [a, c_, b]]
        last = 1 + (rings - 2) * sectors
        faces.append([bottom, last + s1, last + s])
    return verts, np.asarray(faces, np.int64)
