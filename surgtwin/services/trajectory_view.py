"""What the app draws of trajectories and rehearsals (no Qt): the instrument as a cylinder with its
margin, the risk map over the entry surface, the probe's-eye planes at a depth.

Pictures of results only; the metrics come from :mod:`surgtwin.services.trajectory` and
:mod:`surgtwin.services.rehearsal`.
"""

from __future__ import annotations

import numpy as np

#: a unit instrument: a tube along +z from 0 to 1, radius 1 (placed by ``instrument_matrix``)
_UNIT = None


def unit_instrument(sides: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A closed cylinder of radius 1 from z = 0 to z = 1 (scaled and placed by a matrix, so a pose
    update only changes the actor's matrix)."""
    global _UNIT
    if _UNIT is None or len(_UNIT[0]) != 2 * sides + 2:
        from surgtwin.render.glyphs import tube

        v, f, _ = tube(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), 1.0, sides=sides)
        _UNIT = (v, f)
    return _UNIT


def frame(direction) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, d): a right-handed orthonormal frame whose third axis is ``direction``."""
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    ref = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(ref, d)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u), d


def instrument_matrix(start_lps, end_lps, radius_mm: float) -> np.ndarray:
    """4x4 placing ``unit_instrument`` as a cylinder of ``radius_mm`` from ``start`` to ``end``."""
    a, b = np.asarray(start_lps, float), np.asarray(end_lps, float)
    length = float(np.linalg.norm(b - a))
    u, v, d = frame(b - a if length > 1e-9 else (0.0, 0.0, 1.0))
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2] = u * radius_mm, v * radius_mm, d * max(length, 1e-6)
    m[:3, 3] = a
    return m


def probe_planes(entry_lps, target_lps, depth_mm: float):
    """The probe's-eye planes at ``depth_mm`` along entry -> target: (centre, u, v) across the path
    (looking down the instrument) and (centre, u, v) along it (the path running down the screen)."""
    e, t = np.asarray(entry_lps, float), np.asarray(target_lps, float)
    u, v, d = frame(t - e)
    c = e + depth_mm * d
    return (c, u, v), (c, u, d)


def risk_overlay(vertices, faces, normals, entries_lps, risk, *, max_gap_mm: float = 4.0, lift_mm: float = 0.4):
    """The entry surface's faces near the scored candidate entries, lifted ``lift_mm`` along the
    normals (drawn over the skin), with each face's risk (0 safe .. 1 infeasible) from its nearest
    candidate. Returns (vertices, faces, face risk) or None when no face is near."""
    from scipy.spatial import cKDTree

    verts = np.asarray(vertices, float)
    f = np.asarray(faces, np.int64)
    centres = verts[f].mean(axis=1)
    dist, idx = cKDTree(np.asarray(entries_lps, float)).query(centres, distance_upper_bound=max_gap_mm)
    near = np.isfinite(dist)
    if not near.any():
        return None
    f = f[near]
    used, inv = np.unique(f, return_inverse=True)
    out_v = verts[used]
    if normals is not None:
        out_v = out_v + lift_mm * np.asarray(normals, float)[used]
    return out_v, inv.reshape(-1, 3), np.asarray(risk, float)[idx[near]]
