"""Structured tet meshes for the FE tests (boxes, a quarter annulus) as ``TetMesh`` objects."""

from __future__ import annotations

import numpy as np

from surgtwin.core.mesh.tetra import TetMesh, tet_volumes


def as_tetmesh(nodes, elements, regions=None, names=None, mean_hu=None) -> TetMesh:
    nodes = np.ascontiguousarray(nodes, dtype=float)
    elements = np.ascontiguousarray(elements, dtype=np.int64)
    neg = tet_volumes(nodes, elements) < 0
    elements[neg] = elements[neg][:, [0, 2, 1, 3]]
    regions = np.ones(len(elements), np.int32) if regions is None else np.asarray(regions, np.int32)
    names = names or {int(v): f"region_{v}" for v in np.unique(regions)}
    return TetMesh(nodes, elements, regions, names, 1.0, mean_hu=mean_hu)


def box(xs, ys, zs) -> TetMesh:
    """A box split into tetrahedra on the tensor grid ``xs`` x ``ys`` x ``zs`` (mm)."""
    from skfem import MeshTet

    m = MeshTet.init_tensor(np.asarray(xs, float), np.asarray(ys, float), np.asarray(zs, float))
    return as_tetmesh(m.p.T, m.t.T)


def quarter_annulus(a: float, b: float, height: float, nr: int, nt: int, nz: int) -> TetMesh:
    """The quarter (x >= 0, y >= 0) of a tube with radii ``a`` < ``b`` and ``height`` along z:
    a tensor grid in (r, theta, z) mapped to Cartesian coordinates."""
    from skfem import MeshTet

    m = MeshTet.init_tensor(np.linspace(a, b, nr + 1), np.linspace(0.0, np.pi / 2, nt + 1),
                            np.linspace(0.0, height, nz + 1))
    r, t, z = m.p
    return as_tetmesh(np.column_stack([r * np.cos(t), r * np.sin(t), z]), m.t.T)


def faces_where(mesh: TetMesh, predicate) -> np.ndarray:
    """Boundary faces all of whose corners satisfy ``predicate(points (k, 3)) -> bool (k,)``."""
    faces = mesh.boundary_faces()
    ok = predicate(mesh.nodes[faces.ravel()]).reshape(-1, 3)
    return faces[ok.all(axis=1)]
