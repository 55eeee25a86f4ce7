"""Mesh checks and repair with trimesh: watertight, winding, outward normals, volume, area, centroid."""

from __future__ import annotations

import numpy as np

from surgtwin.core.mesh.structure import MeshQuality


def _trimesh(vertices, faces):
    import trimesh

    return trimesh.Trimesh(np.asarray(vertices, float), np.asarray(faces, np.int64), process=False, validate=False)


def check_mesh(vertices, faces, *, voxel_volume_ml: float | None = None, method: str = "") -> MeshQuality:
    """Measure a triangle surface in LPS mm; nothing is changed."""
    tm = _trimesh(vertices, faces)
    n_faces = len(tm.faces)
    if n_faces == 0:
        return MeshQuality(0, len(tm.vertices), False, False, False, 0, 0, 0.0, 0.0, (np.nan,) * 3,
                           voxel_volume_ml, [], method)
    watertight = bool(tm.is_watertight)
    winding = bool(tm.is_winding_consistent)
    volume_mm3 = float(tm.volume) if watertight else 0.0
    if watertight and winding and abs(volume_mm3) > 0:
        centroid = np.asarray(tm.center_mass, dtype=float)
    else:
        # area-weighted centroid of an open surface
        centroid = np.asarray(tm.triangles_center.T @ tm.area_faces / max(tm.area, 1e-30), dtype=float)
    components = int(tm.body_count) if n_faces else 0
    return MeshQuality(
        triangles=n_faces,
        vertices=int(len(tm.vertices)),
        watertight=watertight,
        winding_consistent=winding,
        outward=bool(watertight and volume_mm3 > 0),
        components=components,
        euler_number=int(tm.euler_number),
        volume_ml=abs(volume_mm3) / 1000.0,
        area_mm2=float(tm.area),
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
