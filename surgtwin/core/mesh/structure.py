"""``StructureMesh`` (one closed triangle surface of one anatomical structure) and its quality report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class MeshQuality:
    """Checks of one triangle surface (trimesh-based; see ``surgtwin.core.mesh.checks``).

    ``volume_ml`` is the enclosed volume (meaningful when watertight), ``centroid_lps`` the centre of
    the enclosed volume in LPS mm (the area centroid when the mesh is open), ``voxel_volume_ml`` the
    voxel-count volume of the label it came from (None for imported meshes).
    """

    triangles: int
    vertices: int
    watertight: bool
    winding_consistent: bool
    outward: bool
    components: int
    euler_number: int
    volume_ml: float
    area_mm2: float
    centroid_lps: tuple[float, float, float]
    voxel_volume_ml: float | None = None
    repairs: list[str] = field(default_factory=list)
    method: str = ""

    @property
    def volume_error(self) -> float | None:
        """(mesh volume - voxel volume) / voxel volume, or None without a voxel volume."""
        if not self.voxel_volume_ml:
            return None
        return (self.volume_ml - self.voxel_volume_ml) / self.voxel_volume_ml

    @property
    def printable(self) -> bool:
        return self.watertight and self.winding_consistent and self.outward and self.volume_ml > 0

    def problems(self) -> list[str]:
        """Human-readable reasons why the mesh is not printable (empty when it is)."""
        out = []
        if not self.watertight:
            out.append("the surface is not closed (holes or non-manifold edges)")
        if not self.winding_consistent:
            out.append("triangle winding is inconsistent")
        if self.watertight and not self.outward:
            out.append("normals point inwards")
        if self.triangles == 0:
            out.append("the mesh is empty")
        return out

    def as_dict(self) -> dict:
        d = asdict(self)
        d["centroid_lps"] = [round(float(c), 4) for c in self.centroid_lps]
        d["volume_ml"] = round(float(self.volume_ml), 4)
        d["area_mm2"] = round(float(self.area_mm2), 3)
        if self.voxel_volume_ml is not None:
            d["voxel_volume_ml"] = round(float(self.voxel_volume_ml), 4)
        err = self.volume_error
        d["volume_error"] = None if err is None else round(float(err), 5)
        return d


@dataclass(eq=False)
class StructureMesh:
    """A triangle surface of one structure in LPS mm.

    ``vertices``: (N, 3) float64 LPS mm; ``faces``: (M, 3) int64 vertex indices, counter-clockwise
    seen from outside (right-hand normals point out of the structure); ``normals``: (N, 3) unit
    outward vertex normals or None.
    """

    name: str
    label: int
    color: tuple[int, int, int]
    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None = None
    quality: MeshQuality | None = None

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64).reshape(-1, 3)

    @property
    def n_triangles(self) -> int:
        return int(len(self.faces))

    def to_trimesh(self):
        """A ``trimesh.Trimesh`` view (no processing: vertices and faces kept as they are)."""
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, process=False, validate=False)

    def __repr__(self) -> str:
        return (
            f"StructureMesh(name={self.name!r}, label={self.label}, vertices={len(self.vertices)}, "
            f"triangles={self.n_triangles})"
        )


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, *, face_normals: np.ndarray | None = None) -> np.ndarray:
    """Area-weighted unit vertex normals (outward for outward-wound faces).

    ``face_normals``: optional unnormalised right-hand face normals (length = twice the area).
    """
    if face_normals is None:
        v = vertices[faces]
        face_normals = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    idx = faces.ravel()
    n = np.empty((len(vertices), 3))
    for d in range(3):
        n[:, d] = np.bincount(idx, weights=np.repeat(face_normals[:, d], 3), minlength=len(vertices))
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return n / norm
