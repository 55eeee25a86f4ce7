"""Mesh checks and repair: watertight, winding, outward normals, volume, area, centroid.

``check_mesh`` is vectorised NumPy (one sort of the directed edge keys, signed-tetrahedron sums,
sparse connected components); it reports the same quantities trimesh's cached properties would
(``is_watertight``, ``is_winding_consistent``, ``volume``, ``center_mass``, ``area``, ``body_count``,
``euler_number``) at a fraction of the cost. ``repair_mesh`` uses trimesh and is only needed when a
check fails.
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.mesh.structure import MeshQuality


def face_normals_raw(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unnormalised right-hand face normals (length = twice the triangle area)."""
    v0 = vertices[faces[:, 0]]
    return np.cross(vertices[faces[:, 1]] - v0, vertices[faces[:, 2]] - v0)


def edge_topology(faces: np.ndarray, n_vertices: int) -> tuple[bool, bool, int]:
    """(watertight, winding_consistent, number of distinct undirected edges).

    Watertight: every undirected edge is used by exactly two triangles (trimesh's definition).
    Winding consistent: every edge shared by exactly two triangles is used once in each direction.
    """
    if len(faces) == 0:
        return False, False, 0
    u = faces.ravel()
    v = faces[:, [1, 2, 0]].ravel()
    n = np.int64(max(int(n_vertices), 1))
    key = (np.minimum(u, v) * n + np.maximum(u, v)) * 2 + (u > v)
    key.sort()
    und = key >> 1
    m = len(key)
    if m % 2 == 0:
        a, b = und[0::2], und[1::2]
        if np.array_equal(a, b) and (m == 2 or not np.any(a[1:] == b[:-1])):
            # closed 2-manifold edges: each pair is one edge; consistent iff directions differ
            return True, bool(np.all((key[0::2] & 1) == 0) and np.all((key[1::2] & 1) == 1)), m // 2
    starts = np.flatnonzero(np.r_[True, und[1:] != und[:-1]])
    counts = np.diff(np.r_[starts, m])
    two = starts[counts == 2]
    winding = bool(np.all((key[two] & 1) != (key[two + 1] & 1)))
    return bool(np.all(counts == 2)), winding, int(len(starts))


def count_components(faces: np.ndarray, n_vertices: int) -> int:
    """Connected pieces of the surface (vertices joined by triangle edges; unused vertices ignored)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(faces) == 0:
        return 0
    used = np.zeros(n_vertices, bool)
    used[faces.ravel()] = True
    g = coo_matrix((np.ones(2 * len(faces), np.int8),
                    (np.r_[faces[:, 0], faces[:, 1]], np.r_[faces[:, 1], faces[:, 2]])),
                   shape=(n_vertices, n_vertices))
    n, lab = connected_components(g, directed=False)
    return int(n - np.count_nonzero(~used))  # every unused vertex is a component of its own


def check_mesh(vertices, faces, *, voxel_volume_ml: float | None = None, method: str = "",
               face_normals: np.ndarray | None = None) -> MeshQuality:
    """Measure a triangle surface in LPS mm; nothing is changed.

    ``face_normals``: optional precomputed ``face_normals_raw(vertices, faces)`` (saves one pass).
    """
    vertices = np.asarray(vertices, np.float64).reshape(-1, 3)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    n_faces = len(faces)
    if n_faces == 0:
        return MeshQuality(0, len(vertices), False, False, False, 0, 0, 0.0, 0.0, (np.nan,) * 3,
                           voxel_volume_ml, [], method)
    watertight, winding, n_edges = edge_topology(faces, len(vertices))
    fn = face_normals_raw(vertices, faces) if face_normals is None else face_normals
    dbl_area = np.sqrt(np.einsum("ij,ij->i", fn, fn))
    area = float(dbl_area.sum() / 2.0)
    # signed tetrahedra against a reference point inside the bounding box (less cancellation)
    ref = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    p0 = vertices[faces[:, 0]] - ref
    six_vol = np.einsum("ij,ij->i", p0, fn)
    volume_mm3 = float(six_vol.sum() / 6.0) if watertight else 0.0
    if watertight and winding and abs(volume_mm3) > 0:
        tri_sum = p0 + (vertices[faces[:, 1]] - ref) + (vertices[faces[:, 2]] - ref)
        centroid = ref + (six_vol @ tri_sum) / (4.0 * six_vol.sum())
    else:
        # area-weighted centroid of an open surface
        tri_c = (vertices[faces[:, 0]] + vertices[faces[:, 1]] + vertices[faces[:, 2]]) / 3.0
        centroid = dbl_area @ tri_c / max(float(dbl_area.sum()), 1e-30)
    used = np.zeros(len(vertices), bool)
    used[faces.ravel()] = True
    n_used = int(np.count_nonzero(used))
    return MeshQuality(
        triangles=n_faces,
        vertices=int(len(vertices)),
        watertight=watertight,
        winding_consistent=winding,
        outward=bool(watertight and volume_mm3 > 0),
        components=count_components(faces, len(vertices)),
        euler_number=int(n_used - n_edges + n_faces),
        volume_ml=abs(volume_mm3) / 1000.0,
        area_mm2=area,
        centroid_lps=tuple(float(c) for c in centroid),  # type: ignore[arg-type]
        voxel_volume_ml=voxel_volume_ml,
        method=method,
    )


def repair_mesh(vertices, faces) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Cheap, safe repairs: merge duplicate vertices, drop degenerate and duplicate faces and unused
    vertices, make winding consistent, turn an inside-out closed surface outward, fill small holes.

    Returns (vertices, faces, list of what was done). Never moves a vertex.
    """
    import trimesh

    actions: list[str] = []
    tm = trimesh.Trimesh(np.asarray(vertices, float), np.asarray(faces, np.int64), process=False, validate=False)
    n_v = len(tm.vertices)
    tm.merge_vertices()
    if len(tm.vertices) != n_v:
        actions.append(f"merged {n_v - len(tm.vertices)} duplicate vertices")
    keep = tm.nondegenerate_faces()
    if not keep.all():
        actions.append(f"removed {int((~keep).sum())} degenerate triangles")
        tm.update_faces(keep)
    uniq = tm.unique_faces()
    if uniq.sum() != len(tm.faces):
        actions.append(f"removed {len(tm.faces) - int(uniq.sum())} duplicate triangles")
        tm.update_faces(uniq)
    n_v = len(tm.vertices)
    tm.remove_unreferenced_vertices()
    if len(tm.vertices) != n_v:
        actions.append(f"removed {n_v - len(tm.vertices)} unused vertices")
    if len(tm.faces) and not tm.is_winding_consistent:
        trimesh.repair.fix_winding(tm)
        actions.append("made triangle winding consistent")
    if len(tm.faces) and not tm.is_watertight:
        before = len(tm.faces)
        trimesh.repair.fill_holes(tm)
        if len(tm.faces) != before:
            actions.append(f"filled holes with {len(tm.faces) - before} triangles")
    if len(tm.faces) and tm.is_watertight and tm.is_winding_consistent and tm.volume < 0:
        tm.invert()
        actions.append("flipped inside-out surface")
    return np.asarray(tm.vertices, float), np.asarray(tm.faces, np.int64), actions
